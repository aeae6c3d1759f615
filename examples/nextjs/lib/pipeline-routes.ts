import 'server-only'
import { createNextRouteHandlers, type NextRouteHandlers } from 'pipeline-status-sdk/next'
import type { LiveStatusOptions } from 'pipeline-status-sdk/server'
import { getDb, getPrisma } from '@/lib/prisma'
import { readTokenSecret } from '@/lib/run-read-token'
import { stages } from '@/lib/stages'

interface PipelineRoutesInstance {
  routes: NextRouteHandlers
  /** The handlers' store: closed after them, so that its queued notifications go out. */
  store: { close(): Promise<void> }
}

const globalForRoutes = globalThis as typeof globalThis & { pipelineStatusRoutes?: PipelineRoutesInstance }

// `next dev` evaluates this module again after each edit: the previous instance is closed (its
// live streams end and the browsers resume them on the new one; its LISTEN connection closes),
// so the edit takes effect and no connection is left behind. Never in production.
if (process.env.NODE_ENV !== 'production' && globalForRoutes.pipelineStatusRoutes) {
  const previous = globalForRoutes.pipelineStatusRoutes
  delete globalForRoutes.pipelineStatusRoutes
  void previous.routes
    .close()
    .then(() => previous.store.close())
    .catch((error: unknown) => console.warn('[nextjs-example] closing the previous route handlers failed:', error))
}

/**
 * The package's route handlers on the app's PrismaClient, the store's own statements on the
 * `pg` pool under it (the fast path; behind a transaction pooler the store turns to unnamed
 * prepared statements by itself): mounted by the catch-all route
 * (app/api/pipeline/[...path]/route.ts), and called in-process by the run page, which renders
 * the run as stored through the same status handler the browser may read.
 *
 * `getDb().handlerOptions({ prisma })` gives the store and the live streams' settings together:
 * with DIRECT_DATABASE_URL, LISTEN (the store notifies after commit, the handlers listen on the
 * direct URL), else version polling (lib/prisma.ts). Created on the first call, not at import,
 * because `next build` imports this module without DATABASE_URL; one instance per process.
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
export function pipelineRoutes(): NextRouteHandlers {
  globalForRoutes.pipelineStatusRoutes ??= createPipelineRoutes()
  return globalForRoutes.pipelineStatusRoutes.routes
}

function createPipelineRoutes(): PipelineRoutesInstance {
  const { store, live } = getDb().handlerOptions({ prisma: getPrisma(), live: liveSettings() })
  const readSecret = readTokenSecret()
  const routes = createNextRouteHandlers({
    store,
    live,
    stages,
    authorize: ({ action }) => action === 'list',
    ...(readSecret === undefined ? {} : { readTokens: { secret: readSecret } }),
  })
  return { routes, store }
}

/**
 * Optional: LIVE_POLL_INTERVAL_MS (how often streams read run versions while polling, 250 ms) and
 * LIVE_SAFETY_POLL_INTERVAL_MS (the same read while LISTEN delivers, 5 s), in milliseconds. The
 * handlers refuse a value that is not a positive integer (a 500 `configuration_error`, logged once).
 */
function liveSettings(): Omit<LiveStatusOptions, 'listen'> {
  const poll = process.env['LIVE_POLL_INTERVAL_MS']
  const safety = process.env['LIVE_SAFETY_POLL_INTERVAL_MS']
  return {
    ...(poll ? { pollIntervalMs: Number(poll) } : {}),
    ...(safety ? { safetyPollIntervalMs: Number(safety) } : {}),
  }
}
