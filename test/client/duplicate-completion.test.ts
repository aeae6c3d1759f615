/**
 * A `/complete` answered `duplicate` after an earlier attempt of it got no definite answer, over
 * real HTTP against the real handlers: the server received that attempt and ran the app's
 * `onRunCompleted` hook with these results, but its answer was lost (the connection closed, a
 * gateway's 502 or 504); the retry, with the same `Idempotency-Key`, is answered `duplicate` (the
 * server does not read the key: it recognises a repeated completion by the stored run). The
 * warning then says both possibilities, the summary's `completion.unansweredAttempt` and the
 * `onQueuedCompletion` event's name the cause, also when the attempt was made by an earlier
 * process (kept in the outbox). A definite refusal (a refused connection, a 503) keeps the plain
 * duplicate warning: another party's `/complete` came first.
 */
import { type PrismaAPIClientOptions, type QueuedCompletionEvent, isQueuedDelivery, runPipeline } from 'pipeline-status-sdk/client'
import { describe, expect, it } from 'vitest'
import { useHookedApp } from './support/hooked-app.js'
import { recordingLogger } from '../support/loggers.js'
import { clientFactory } from './support/client-factory.js'
import { type Fault, TEST_SECRET } from './support/test-server.js'
import { nearCeiling } from './support/outbox-jitter.js'

const t = useHookedApp('duplicate-completion-')
// Registered after the afterEach above: clients close before the server stops.
const clients = clientFactory(() => ({
  baseUrl: t.app.origin,
  secret: TEST_SECRET,
  heartbeatIntervalMs: 60_000,
  followRunStream: false,
  retry: { limit: 2, baseDelayMs: 5, maxDelayMs: 10 },
}))

function makeClient(overrides: PrismaAPIClientOptions = {}) {
  const logger = recordingLogger()
  return { client: clients.make({ logger, ...overrides }), logger }
}

const POSSIBLY_OWN = (cause: string) =>
  `The run's completion was answered "duplicate" after an earlier attempt of it got no definite answer (${cause}), so that attempt may have been received: ` +
  "if it was, the app's onRunCompleted hook ran once with these results; if another /complete of this run " +
  '(another runner or process on the same run id, or the web app) was received first, these results did not reach it'

const OTHER_PARTY_WHILE_QUEUED =
  "The run's completion had already been received (outcome \"duplicate\"), so these results did not reach the app's onRunCompleted hook, " +
  "which ran once with the earlier /complete's: another party completed the run while this /complete waited in the outbox"

/** The cause the client's retry warning gave for the completion's failed attempt `attempt`. */
function retryCause(logger: ReturnType<typeof recordingLogger>, runId: string, attempt = 1): string {
  const retries = logger.lines.filter((line) => line.level === 'warn' && line.message.startsWith(`Run ${runId}: completion failed (`))
  const cause = retries[attempt - 1]?.details?.['cause']
  expect(typeof cause).toBe('string')
  return cause as string
}

const warnings = (logger: ReturnType<typeof recordingLogger>) => logger.lines.filter((line) => line.level === 'warn').map((line) => line.message)

/** `/complete` as another party sends it (the web app, another runner). */
async function completeElsewhere(runId: string): Promise<void> {
  const { client } = makeClient()
  expect(await client.completeRun(runId, { status: 'COMPLETED', from: 'elsewhere' })).toMatchObject({ outcome: 'applied' })
}

const lostAnswers: Array<[string, Fault, RegExp]> = [
  ['the connection closes without an answer', { handledThen: { drop: true } }, /./],
  ["a gateway's 502", { handledThen: { status: 502 } }, /^HTTP 502$/],
  ["a gateway's 504", { handledThen: { status: 504 } }, /^HTTP 504$/],
]

describe.each(lostAnswers)("runPipeline whose /complete's first attempt was received but its answer lost: %s", (_, fault, causeShape) => {
  it('says both possibilities once (summary and log), names the cause in completion.unansweredAttempt; the hook ran once, with these results', async () => {
    const runId = 'lost_answer'
    const { client, logger } = makeClient()
    await client.createRun(runId)
    t.app.injectFor('/complete', fault)

    const summary = await runPipeline({ runId, client, stages: [1, 2, 3, 4, 5].map((n) => () => n), results: () => ({ from: 'this runner' }) })

    const cause = retryCause(logger, runId)
    expect(cause).toMatch(causeShape)
    // Both attempts carried one key; the server answered the second as a repeat of the run's completion.
    const keys = t.app.requestsTo('/complete').map((request) => request.headers['idempotency-key'])
    expect(keys).toHaveLength(2)
    expect(new Set(keys).size).toBe(1)
    expect(summary.completion).toEqual({ ok: true, response: expect.objectContaining({ outcome: 'duplicate' }), unansweredAttempt: cause })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [POSSIBLY_OWN(cause)] })
    expect(warnings(logger).filter((line) => line.includes('duplicate'))).toEqual([`Run ${runId}: ${POSSIBLY_OWN(cause)}`])
    expect(t.hooked).toEqual([{ runId, payload: expect.objectContaining({ from: 'this runner' }) }])
  })
})

describe('a /complete that waited in the outbox (onQueuedCompletion)', () => {
  it("is a plain duplicate when no attempt reached the server (connection refused) and another party's /complete came first", async () => {
    const runId = 'refused_then_elsewhere'
    const events: QueuedCompletionEvent[] = []
    const { client, logger } = makeClient({ outbox: { dir: t.dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling }, onQueuedCompletion: (event) => events.push(event) })
    await makeClient().client.createRun(runId)
    await t.app.stop()
    expect(isQueuedDelivery(await client.completeRun(runId, { status: 'COMPLETED', from: 'this runner' }))).toBe(true)
    expect(retryCause(logger, runId)).toMatch(/^ECONNREFUSED/)
    await t.app.start()
    await completeElsewhere(runId)

    expect(await client.flush()).toMatchObject({ delivered: 1, pending: 0 })
    expect(events).toEqual([expect.objectContaining({ runId, outcome: 'duplicate', earlierProcess: false })])
    expect(events[0]).not.toHaveProperty('unansweredAttempt')
    expect(warnings(logger).filter((line) => line.includes('duplicate'))).toEqual([`Run ${runId}: ${OTHER_PARTY_WHILE_QUEUED}`])
    expect(t.hooked.map((call) => call.payload['from'])).toEqual(['elsewhere'])
  })

  it('says both possibilities when its attempts were received without an answer, also to a restarted process delivering it', async () => {
    const runId = 'unanswered_then_restart'
    const { client, logger } = makeClient({ outbox: { dir: t.dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling } })
    await client.createRun(runId)
    // The first attempt is stored (the hook runs with these results), its answer lost; the retries are refused for sure.
    t.app.injectFor('/complete', { handledThen: { drop: true } }, { status: 503 }, { status: 503 }, { status: 503 })
    expect(isQueuedDelivery(await client.completeRun(runId, { status: 'COMPLETED', from: 'this runner' }))).toBe(true)
    const cause = retryCause(logger, runId)
    // The process ends with it still queued (close's flush is refused too).
    expect(await client.close({ timeoutMs: 5_000 })).toMatchObject({ pending: 1 })

    const events: QueuedCompletionEvent[] = []
    const restarted = makeClient({ outbox: { dir: t.dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling }, onQueuedCompletion: (event) => events.push(event) })
    expect(await restarted.client.flush()).toMatchObject({ delivered: 1, pending: 0 })
    expect(events).toEqual([expect.objectContaining({ runId, outcome: 'duplicate', earlierProcess: true, unansweredAttempt: cause })])
    expect(warnings(restarted.logger).filter((line) => line.includes('duplicate'))).toEqual([`Run ${runId}: ${POSSIBLY_OWN(cause)}`])
    expect(t.hooked).toEqual([{ runId, payload: expect.objectContaining({ from: 'this runner' }) }])
  })

  it('keeps that a redelivery from the outbox was received without an answer, for the process that delivers it next', async () => {
    const runId = 'redelivery_unanswered'
    const { client } = makeClient({ outbox: { dir: t.dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling } })
    await client.createRun(runId)
    // Queued after definite refusals: nothing unanswered yet.
    t.app.injectFor('/complete', { status: 503 }, { status: 503 }, { status: 503 })
    expect(isQueuedDelivery(await client.completeRun(runId, { status: 'COMPLETED', from: 'this runner' }))).toBe(true)
    // A redelivery is stored (the hook runs), its answer lost (a gateway's 504); then close's flush is refused for sure.
    t.app.injectFor('/complete', { handledThen: { status: 504 } }, { status: 503 })
    expect(await client.flush()).toMatchObject({ delivered: 0, pending: 1 })
    expect(await client.close({ timeoutMs: 5_000 })).toMatchObject({ pending: 1 })

    const events: QueuedCompletionEvent[] = []
    const restarted = makeClient({ outbox: { dir: t.dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling }, onQueuedCompletion: (event) => events.push(event) })
    expect(await restarted.client.flush()).toMatchObject({ delivered: 1, pending: 0 })
    expect(events).toEqual([expect.objectContaining({ runId, outcome: 'duplicate', earlierProcess: true, unansweredAttempt: 'HTTP 504' })])
    expect(warnings(restarted.logger).filter((line) => line.includes('duplicate'))).toEqual([`Run ${runId}: ${POSSIBLY_OWN('HTTP 504')}`])
    expect(t.hooked).toEqual([{ runId, payload: expect.objectContaining({ from: 'this runner' }) }])
  })
})
