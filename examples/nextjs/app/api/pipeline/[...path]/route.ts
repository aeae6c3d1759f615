import { pipelineRoutes } from '@/lib/pipeline-routes'

// Every route of the contract under /api/pipeline (this folder), on the app's own
// PrismaClient (see lib/pipeline-routes.ts, which creates the handlers on the first request:
// `next build` imports this file without DATABASE_URL):
//   POST /api/pipeline/runs                  create a run (runner or app; webhook secret)
//   POST /api/pipeline/{runId}/stage-update  the runner reports a stage (webhook secret)
//   POST /api/pipeline/{runId}/complete      the runner ends the run (webhook secret)
//   GET  /api/pipeline/{runId}/status        the run as stored (run read token, see lib/run-read-token.ts)
//   GET  /api/pipeline/{runId}/events        the page's live stream (Server-Sent Events, same token)
//   GET  /api/pipeline/runs, /events?limit=… the home page's list and its live stream (open to all: see authorize)

export const GET = (request: Request) => pipelineRoutes().GET(request)
export const POST = (request: Request) => pipelineRoutes().POST(request)

// No `dynamic` or `runtime` export: this app builds with `cacheComponents` (next.config.ts), under
// which Next.js refuses both, and a route handler that reads its request already runs at request
// time on the Node.js runtime (the store is Prisma on pg). Without `cacheComponents`, add
// `export const dynamic = 'force-dynamic'` (see docs/nextjs.md). On a serverless host the
// function's time limit cuts the live stream; the page's subscriber then resumes with
// Last-Event-ID.
