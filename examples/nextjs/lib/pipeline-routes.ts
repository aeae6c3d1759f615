import 'server-only'
import { createNextRouteHandlers } from 'pipeline-status-sdk/next'
import { createPrismaStore } from 'pipeline-status-sdk/server'
import { pool, prisma } from '@/lib/prisma'
import { readTokenSecret } from '@/lib/run-read-token'
import { stages } from '@/lib/stages'

/**
 * The package's route handlers on the app's PrismaClient, the store's own statements on the
 * `pg` pool under it (the fast path; behind a transaction pooler the store turns to unnamed
 * prepared statements by itself): mounted by the catch-all route
 * (app/api/pipeline/[...path]/route.ts), and called in-process by the run page, which renders
 * the run as stored through the same status handler the browser may read.
 *
 * The webhook secret comes from WEBHOOK_SECRET (comma-separated to rotate it); `next build`
 * does not need it, the running server does (without it, every route answers a problem+json
 * 500 `configuration_error` and the log says so once). Browsers read a run with a per-run read
 * token (lib/run-read-token.ts), which `readTokens` accepts for that run's reads only.
 *
 * Lists (`GET /runs`, `GET /runs/counts` and the home page's live list, the set stream
 * `GET /events`) are open to every visitor: `authorize` allows `action: 'list'` and nothing else.
 * The demo has no users and its home page shows every run anyway. A real app checks its session
 * here and returns what the user may see from `listScope` (e.g. `{ tags: [`team:${team}`] }`), or
 * hands the page a tag read token (docs/following-many-runs.md). Reads of one run still need the
 * run's token (or the secret): this hook refuses them (403) without one.
 */
const readSecret = readTokenSecret()
export const pipelineRoutes = createNextRouteHandlers({
  store: createPrismaStore({ prisma, pool }),
  stages,
  authorize: ({ action }) => action === 'list',
  ...(readSecret === undefined ? {} : { readTokens: { secret: readSecret } }),
})
