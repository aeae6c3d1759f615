import { pipelineRoutes } from '@/lib/pipeline-routes'

// The four routes of the contract under /api/pipeline (this folder), on the app's own
// PrismaClient (see lib/pipeline-routes.ts):
//   POST /api/pipeline/runs                  create a run (runner or app; webhook secret)
//   POST /api/pipeline/{runId}/stage-update  the runner reports a stage (webhook secret)
//   POST /api/pipeline/{runId}/complete      the runner ends the run (webhook secret)
//   GET  /api/pipeline/{runId}/status        the page polls it (run read token, see lib/run-read-token.ts)
export const { GET, POST } = pipelineRoutes
