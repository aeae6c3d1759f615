import { pipelineRoutes } from '@/lib/pipeline-routes'

// Every route of the contract under /api/pipeline (this folder), on the app's own
// PrismaClient (see lib/pipeline-routes.ts):
//   POST /api/pipeline/runs                  create a run (runner or app; webhook secret)
//   POST /api/pipeline/{runId}/stage-update  the runner reports a stage (webhook secret)
//   POST /api/pipeline/{runId}/complete      the runner ends the run (webhook secret)
//   GET  /api/pipeline/{runId}/status        the run as stored (run read token, see lib/run-read-token.ts)
//   GET  /api/pipeline/{runId}/events        the page's live stream (Server-Sent Events, same token)

export const { GET, POST } = pipelineRoutes

// The live stream is a long-lived streaming Response: never cached or prerendered, and on the
// Node.js runtime (the store is Prisma on pg). On a serverless host the function's time limit
// cuts the stream; the page's subscriber then resumes with Last-Event-ID.
export const dynamic = 'force-dynamic'
export const runtime = 'nodejs'
