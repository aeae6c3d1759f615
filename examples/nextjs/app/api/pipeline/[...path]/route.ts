import { createNextRouteHandlers } from 'pipeline-status-sdk/next'
import { prisma } from '@/lib/prisma'
import { authorizeRunRead } from '@/lib/run-read-token'
import { stages } from '@/lib/stages'

// The four routes of the contract under /api/pipeline (this folder), on the app's own
// PrismaClient:
//   POST /api/pipeline/runs                  create a run (runner or app; webhook secret)
//   POST /api/pipeline/{runId}/stage-update  the runner reports a stage (webhook secret)
//   POST /api/pipeline/{runId}/complete      the runner ends the run (webhook secret)
//   GET  /api/pipeline/{runId}/status        the page polls it (run read token, see authorize)
// The webhook secret comes from WEBHOOK_SECRET (comma-separated to rotate it); `next build`
// does not need it, the running server does.
export const { GET, POST } = createNextRouteHandlers({ prisma, stages, authorize: authorizeRunRead })
