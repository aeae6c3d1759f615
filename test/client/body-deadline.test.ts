/**
 * Every wait has a deadline, the body included: a server (or proxy) that sends the headers and
 * then stalls, or trickles the body a byte a second, ends each attempt of every request the
 * client makes by the client's own `timeout` (a timeout, not the server closing), the next
 * attempt carries the same `Idempotency-Key`, and `runPipeline` completes once the server
 * recovers. Real sockets and a real clock: the bounds are ceilings of 5x the timeout.
 */
import {
  type PrismaAPIClientOptions,
  StatusTimeoutError,
  isStatusTimeoutError,
  runPipeline,
  type StageContext,
} from 'pipeline-status-sdk/client'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { recordingLogger } from '../support/loggers.js'
import { clientFactory } from './support/client-factory.js'
import { createRunOn } from './support/outbox-fixture.js'
import { type Fault, TEST_SECRET, type TestServer, startTestServer } from './support/test-server.js'

let server: TestServer

beforeEach(async () => {
  server = await startTestServer()
})
afterEach(() => server.stop())

const clients = clientFactory(() => ({ baseUrl: server.origin, secret: TEST_SECRET, retry: { limit: 2, baseDelayMs: 5, maxDelayMs: 10 } }))

function makeClient(overrides: PrismaAPIClientOptions = {}) {
  const logger = recordingLogger()
  return { client: clients.make({ logger, ...overrides }), logger }
}

/** The attempts that ended without an answer, as the client's debug lines report them. */
function timedOutAttempts(logger: ReturnType<typeof recordingLogger>, timeout: number) {
  return logger.lines
    .filter((l) => l.level === 'debug' && l.message.includes(`→ no response (timed out after ${timeout} ms)`))
    .map((l) => ({ message: l.message, durationMs: l.details?.['durationMs'] as number, key: l.details?.['idempotencyKey'] }))
}

const keys = (suffix: string) => server.requestsTo(suffix).map((r) => r.headers['idempotency-key'])

// The trickle sends one byte a second, so a deadline per socket read (urllib's, undici's
// headers timeout) never fires; the timeout is longer than the gap between two bytes.
const faults: Array<[string, Fault, number]> = [
  ['stalls after the headers', { stallBody: true }, 300],
  ['trickles the body a byte a second', { trickleBodyMs: 1000 }, 1500],
]

describe.each(faults)('a server that %s', (_, fault, timeout) => {
  // Only catches a deadline ignored: a stalled body never ends and a trickled one (JSON of
  // hundreds of bytes, a byte a second) ends after minutes, so an attempt that outlived its
  // deadline would take far longer than this. Not a margin on the deadline itself (5 × the
  // timeout was one: an event-loop pause on a loaded machine passed 1.5 s).
  const ceiling = 10_000

  it('ends each attempt of a stage update, a completion, createRun, getStatus and a heartbeat by the timeout; retries keep the Idempotency-Key', async () => {
    const runId = await createRunOn(server)
    const { client, logger } = makeClient({ timeoutMs: timeout })

    server.inject(fault, fault)
    expect(await client.markStageProcessing(runId, 1)).toBe(true)
    const updateKeys = keys('/stage-update')
    expect(updateKeys).toHaveLength(3)
    expect(new Set(updateKeys).size).toBe(1)
    expect(logger.lines.filter((l) => l.level === 'warn').map((l) => l.message)).toEqual([
      `Run ${runId}: stage 1 PROCESSING failed (timed out after ${timeout} ms); attempt 2 of 3 (retry 1 of 2) in ${logger.lines.find((l) => l.level === 'warn')?.details?.['delayMs']} ms`,
      expect.stringMatching(new RegExp(`^Run ${runId}: stage 1 PROCESSING failed \\(timed out after ${timeout} ms\\); attempt 3 of 3 \\(retry 2 of 2\\) in \\d+ ms$`)),
    ])

    server.inject(fault)
    const completion = await client.completeRun(runId, { status: 'COMPLETED', duration: 1 })
    // The stalled attempt was stored; its retry is answered as a replay of it.
    expect(completion).toMatchObject({ outcome: 'duplicate', run: { status: 'COMPLETED' } })
    expect(keys('/complete')).toHaveLength(2)
    expect(new Set(keys('/complete')).size).toBe(1)

    server.inject(fault)
    // Created by the stalled attempt: the retry finds it.
    expect(await client.createRun('run_2')).toMatchObject({ created: false, run: { id: 'run_2' } })
    expect(keys('/runs')).toHaveLength(2)
    expect(new Set(keys('/runs')).size).toBe(1)

    // Every attempt stalls: the error thrown is the client's timeout, after every attempt.
    server.setFault(fault)
    const error = await client.getStatus(runId).catch((thrown: unknown) => thrown)
    server.setFault(undefined)
    expect(error).toBeInstanceOf(StatusTimeoutError)
    expect(isStatusTimeoutError(error) && error.attempts).toBe(3)
    expect((error as Error).message).toBe(`GET ${server.origin}/api/pipeline/${runId}/status timed out after ${timeout} ms per attempt, 3 attempt(s)`)

    // A heartbeat is one attempt, never retried: it ends by the same deadline.
    server.inject(fault)
    expect(await client.heartbeat('run_2', 1)).toBeUndefined()
    expect(server.requestsTo('/heartbeat')).toHaveLength(1)

    // 2 (update) + 1 (completion) + 1 (createRun) + 3 (status) + 1 (heartbeat) attempts timed out.
    const attempts = timedOutAttempts(logger, timeout)
    expect(attempts).toHaveLength(8)
    for (const attempt of attempts) {
      // Never before the deadline (a timer may fire a millisecond early on the loop's clock).
      expect(attempt.durationMs).toBeGreaterThanOrEqual(timeout - 20)
      expect(attempt.durationMs).toBeLessThan(ceiling)
    }
    expect(logger.lines.at(-1)).toMatchObject({ level: 'debug', message: expect.stringMatching(/^Run run_2: heartbeat not delivered: .*timed out after/) })
  })

  it('lets runPipeline complete once the server recovers: the catalogue read and a stage update time out first', async () => {
    const runId = await createRunOn(server)
    const { client, logger } = makeClient({ timeoutMs: timeout, retry: { limit: 3, baseDelayMs: 5, maxDelayMs: 10 } })
    // The first two attempts of the catalogue read (GET /status) stall.
    server.inject(fault, fault)
    const secondStage = async ({ signal }: StageContext) => {
      // Once its heartbeat went out, stage 2's COMPLETED update is the next request.
      while (!server.requestsTo('/heartbeat').some((r) => r.body.includes('"stageNumber":2'))) {
        signal.throwIfAborted()
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      server.inject(fault)
      return 'two'
    }
    const summary = await runPipeline({ runId, client, stages: [() => 'one', secondStage, () => 'three', () => 'four', () => 'five'] })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [], outputs: ['one', 'two', 'three', 'four', 'five'] })
    expect(server.requestsTo('/status')).toHaveLength(3)
    const completedTwo = server.requestsTo('/stage-update').filter((r) => r.body.includes('"stageNumber":2') && r.body.includes('COMPLETED'))
    expect(completedTwo).toHaveLength(2)
    expect(completedTwo[0]?.headers['idempotency-key']).toBe(completedTwo[1]?.headers['idempotency-key'])
    const attempts = timedOutAttempts(logger, timeout)
    expect(attempts.map((a) => a.message.split(' →')[0])).toEqual([
      `GET ${server.origin}/api/pipeline/${runId}/status`,
      `GET ${server.origin}/api/pipeline/${runId}/status`,
      `POST ${server.origin}/api/pipeline/${runId}/stage-update`,
    ])
    for (const attempt of attempts) expect(attempt.durationMs).toBeLessThan(ceiling)
    const stored = await client.getStatus(runId)
    expect(stored.run.status).toBe('COMPLETED')
  })
})

describe('a custom fetch that ignores the signal', () => {
  it('still ends the attempt at the deadline', async () => {
    const runId = await createRunOn(server)
    // A body that never ends and a fetch that never aborts it.
    const stuck: typeof fetch = async () => new Response(new ReadableStream({ start: () => undefined }), { status: 200 })
    const { client } = makeClient({ timeoutMs: 100, fetch: stuck, throwOnError: true, retry: { limit: 1, baseDelayMs: 5 } })
    // The body never ends and nothing aborts the fetch: only the client's own deadline can end
    // the call, so its ending at all (within the test's timeout) proves it. No bound on the
    // elapsed time: on a loaded machine that would measure the machine, not the deadline.
    const error = await client.markStageProcessing(runId, 1).catch((thrown: unknown) => thrown)
    expect(isStatusTimeoutError(error) && error.attempts).toBe(2)
    expect((error as Error).message).toMatch(/timed out after 100 ms per attempt, 2 attempt\(s\)$/)
  })
})
