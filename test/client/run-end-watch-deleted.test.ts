/**
 * The run-end watch and a run deleted while `runPipeline` runs it, against the real handlers on
 * the Prisma store over HTTP (PostgreSQL when DATABASE_URL is set, else PGlite): the app deletes
 * the run (`prisma.pipelineRun.delete`, by hand); the runner's stream ends with
 * `: closed deleted <runId>` (docs/live-status.md "When the server ends the stream"). The runner
 * stops watching (no reconnect, which would be `404 run_not_found`), aborts the running stage,
 * starts no further stage, sends nothing more for the run (no stage update, no `/complete`) and
 * says so once in its log, with the cause. Assertions wait on conditions, never on timing.
 */
import { isRunDeletedError, runPipeline } from 'pipeline-status-sdk/client'
import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { until } from '../support/until.js'
import { useTestDatabase } from '../support/use-test-database.js'
import { clientFactory } from './support/client-factory.js'
import { heartbeatsOf as heartbeatsOfRun, sixtySeconds, streamRequestsOf as streamRequestsOfRun } from './support/run-end-watch.js'
import { TEST_SECRET, useTestServer } from './support/test-server.js'

/** The contract's longest heartbeat interval: no second heartbeat within any test. */
const HOUR = 3_600_000

const fixture = useTestDatabase()
const server = useTestServer()
const lines: { level: string; message: string }[] = []
const logger = {
  debug: (message: string) => void lines.push({ level: 'debug', message }),
  info: (message: string) => void lines.push({ level: 'info', message }),
  warn: (message: string) => void lines.push({ level: 'warn', message }),
  error: (message: string) => void lines.push({ level: 'error', message }),
}
let handlers: ReturnType<typeof createPipelineStatusHandlers> | undefined
beforeEach(() => {
  lines.length = 0
  handlers = createPipelineStatusHandlers({ store: fixture.store, secret: TEST_SECRET, logger: { warn: () => {}, error: () => {} }, live: { pollIntervalMs: 20 } })
  server().setHandler(handlers.fetch)
})
afterEach(async () => {
  await handlers?.close()
})
const { make: makeClient } = clientFactory(() => ({
  baseUrl: server().origin,
  secret: TEST_SECRET,
  logger,
  retry: { limit: 1, baseDelayMs: 5 },
  heartbeatIntervalMs: HOUR,
}))

const streamRequestsOf = (runId: string) => streamRequestsOfRun(server(), runId)
const heartbeatsOf = (runId: string) => heartbeatsOfRun(server(), runId)

describe('a run deleted while runPipeline runs it', () => {
  it('stops watching at `: closed deleted`, aborts the stage, sends nothing more, and says so once', async () => {
    const client = makeClient()
    const { run } = await client.createRun('watch_deleted')
    const seen: { reason?: unknown } = {}
    const pipeline = runPipeline({ runId: run.id, client, stages: [() => 1, sixtySeconds(seen), () => 3, () => 4, () => 5] })
    await until('the run stream to be open and stage 2 running', () => server().openStreams === 1 && heartbeatsOf(run.id).some((r) => r.body.includes('"stageNumber":2')))
    const before = server().requests.length

    // The app deletes the run while it runs (its stages go with it).
    await fixture.db.prisma.pipelineRun.delete({ where: { id: run.id } })
    const summary = await pipeline
    await until('the stage to see its abort', () => seen.reason !== undefined)

    expect(isRunDeletedError(seen.reason)).toBe(true)
    expect(summary).toMatchObject({ runId: run.id, status: 'CANCELLED', deleted: true, delivered: true })
    expect(summary.error).toMatch(/deleted on the server/)
    expect(summary.finishedElsewhere).toBeUndefined()
    expect(summary.stages.map((s) => s.status)).toEqual(['COMPLETED', 'CANCELLED', 'PENDING', 'PENDING', 'PENDING'])
    // Nothing after the deletion: no reconnect of the stream (it would be 404), no update, no heartbeat, no /complete.
    expect(server().requests.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual([])
    expect(streamRequestsOf(run.id)).toHaveLength(1)
    await until('the run stream to be closed', () => server().openStreams === 0)
    // Said once, at warn, with the cause; no degradation warning (the stream was not refused).
    const warned = lines.filter((line) => line.level === 'warn')
    expect(warned).toHaveLength(1)
    expect(warned[0]?.message).toMatch(/closed deleted/)
    expect(warned[0]?.message).toContain(run.id)
  })
})
