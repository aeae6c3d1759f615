/**
 * The writing instance of notify-after-commit.test.ts's crash case, in a child process of its own
 * so that the test can kill it with SIGKILL. argv: the database URL, the notify channel, the run
 * id. Its store batches notifications only every hour, so the write's notification is still
 * queued when the parent kills it right after the write's 200: it is never sent. Tells the parent
 * `{ type: 'written', status }`. Relative imports, so tsx alone runs it.
 */
import { PrismaPg } from '@prisma/adapter-pg'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { createPipelineStatusHandlers } from '../../src/server/handlers.js'
import { createPrismaStore } from '../../src/server/storage/prisma-store.js'

const [url, channel, runId] = process.argv.slice(2) as [string, string, string]
const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url }) })
const store = createPrismaStore({ prisma, notifyChannel: channel, notifyIntervalMs: 3_600_000 })
const secret = 'notify-crash-secret'
const handlers = createPipelineStatusHandlers({ store, secret, logger: { warn: () => {}, error: () => {} } })
const response = await handlers.fetch(
  new Request(`http://app.test/api/pipeline/${runId}/stage-update`, {
    method: 'POST',
    headers: { 'X-Webhook-Secret': secret, 'Content-Type': 'application/json' },
    body: JSON.stringify({ stageNumber: 2, stageName: 'Stage 2', status: 'PROCESSING', output: 'from the doomed writer' }),
  }),
)
process.send?.({ type: 'written', status: response.status, queued: store.notifyCounts })
// Waits to be killed; the batch is an hour away.
setInterval(() => {}, 60_000)
