/**
 * A poison update must not block its run, and a fixable one must not be lost: what no retry
 * can fix leaves the outbox as a dead letter (on disk, logged, readable), 401/403 stay queued
 * and are retried slowly until the secret is fixed, and every update has a maximum age.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DEFAULT_STAGES } from 'pipeline-status-sdk/client'
import { createProblem } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { describe, expect, it, vi } from 'vitest'
import { clientInternals } from '../../src/client/client-internals.js'
import { RECENT_RUNS } from '../../src/client/recent-runs.js'
import { recordingLogger } from '../support/loggers.js'
import { useServerAndOutbox } from './support/outbox-fixture.js'
import { type RecordedRequest, TEST_SECRET } from './support/test-server.js'
import { nearCeiling } from './support/outbox-jitter.js'

const PROBLEM_JSON = { 'content-type': 'application/problem+json' }

const env = useServerAndOutbox()
const { makeClient, createRun } = env

const update = (request: RecordedRequest) => {
  const body = JSON.parse(request.body) as { stageNumber?: number; status: string }
  return request.url.endsWith('/complete') ? `complete ${body.status}` : `${body.stageNumber} ${body.status}`
}
const lines = (file: string) => (existsSync(join(env.dir, file)) ? readFileSync(join(env.dir, file), 'utf8').split('\n').filter(Boolean) : [])

describe('dead letters', () => {
  it('dead-letters an update refused with 400 while in the outbox; the run\'s next updates arrive in order', async () => {
    const runId = await createRun()
    const logger = recordingLogger()
    const client = makeClient({ logger, outbox: { dir: env.dir, retryDelayMs: 20, maxRetryDelayMs: 50 } })
    await env.server.stop()
    for (const send of [
      () => client.initializePipelineStages(runId),
      () => client.markStageComplete(runId, 1, 'one'),
      () => client.markStageProcessing(runId, 2),
      () => client.markStageComplete(runId, 2, 'two'),
    ]) {
      expect(await send()).toBe(true)
    }
    expect(client.pendingCount(runId)).toBe(4)
    const poison = JSON.parse(lines('journal.jsonl')[1] ?? '{}') as { id: string; body: string }

    await env.server.start()
    // The second queued update (stage 1 COMPLETED) is refused for good; nothing else is.
    const problem = createProblem('validation_failed', { detail: 'output: too long', errors: [{ field: 'output', message: 'too long' }] })
    env.server.inject(
      { status: 503 }, // the first background pass still finds the server unready
    )
    const refuseOnce = (request: Request) => {
      if (request.headers.get('idempotency-key') === poison.id && !refused) {
        refused = true
        return new Response(JSON.stringify(problem), { status: 400, headers: PROBLEM_JSON })
      }
      return handler(request)
    }
    let refused = false
    const handler = createPipelineStatusHandlers({ store: env.server.store, secret: TEST_SECRET, logger: { warn: () => {}, error: () => {} } }).fetch
    env.server.setHandler(refuseOnce)

    // No flush(): the background redelivery gets past the poison update by itself.
    await vi.waitFor(() => expect(client.pendingCount(runId)).toBe(0), { timeout: 10_000, interval: 20 })
    expect(await client.markStageProcessing(runId, 3)).toBe(true)

    // Every update but the poison one arrived, in the order it was sent, the poison one once.
    const arrived = env.server.requests.slice(1).map(update)
    expect(arrived).toEqual(['1 PROCESSING', '1 COMPLETED', '2 PROCESSING', '2 COMPLETED', '3 PROCESSING'])
    const stages = (await client.getStatus(runId)).stages
    expect(stages.map((s) => `${s.stageNumber} ${s.status}`)).toEqual(['1 PROCESSING', '2 COMPLETED', '3 PROCESSING'])

    // The dead letter is on disk, readable through the client, and was logged as an error.
    const letters = await client.deadLetters(runId)
    expect(letters).toEqual([
      expect.objectContaining({ id: poison.id, runId, route: 'stageUpdate', body: poison.body, status: 400, code: 'validation_failed' }),
    ])
    expect(letters[0]?.reason).toMatch(/HTTP 400 validation_failed: output: too long/)
    expect(lines('dead-letters.jsonl').map((line) => JSON.parse(line))).toEqual(letters)
    expect(logger.lines.filter((l) => l.level === 'error').map((l) => l.message)).toEqual([
      expect.stringMatching(/^Outbox: run run_1: stage 1 COMPLETED dead-lettered \(HTTP 400 validation_failed: output: too long\); kept in .*dead-letters\.jsonl, the run's later updates go on$/),
    ])
    // A new client on the same directory reads them too.
    await client.close({ timeoutMs: 100 })
    expect(await makeClient().deadLetters()).toEqual(letters)
  })

  it('dead-letters a queued update the real handlers refuse with 409 and goes on with the run', async () => {
    const runId = await createRun()
    const client = makeClient()
    await client.markStageComplete(runId, 5, 'done') // the run is COMPLETED
    await env.server.stop()
    await client.markStageFailed(runId, 4, 'too late') // contradicts the outcome: 409 once delivered
    await client.completeRun(runId, { status: 'COMPLETED', fullReportMarkdown: '# R' })
    await env.server.start()
    expect(await client.flush()).toEqual({ delivered: 1, rejected: 1, pending: 0 })
    expect(await client.deadLetters(runId)).toEqual([expect.objectContaining({ status: 409, code: 'run_finished' })])
    expect((await client.getStatus(runId)).run.completionReceivedAt).not.toBeNull()
  })

  it('dead-letters a 4xx on the first delivery too, when there is an outbox; false without one', async () => {
    const client = makeClient()
    expect(await client.markStageProcessing('unknown_run', 1)).toBe(false)
    expect(await client.deadLetters()).toEqual([expect.objectContaining({ runId: 'unknown_run', status: 404, code: 'run_not_found' })])
    expect(client.pendingCount()).toBe(0)
  })
})

describe('401 and 403 stay queued', () => {
  it('retries a 401 slowly with an error each time, and delivers once the secret is fixed, in order', async () => {
    const runId = await createRun()
    // The web app was deployed with a new secret; the runner still has the old one.
    env.server.setHandler(createPipelineStatusHandlers({ store: env.server.store, secret: 'new-secret', logger: { warn: () => {}, error: () => {} } }).fetch)
    const logger = recordingLogger()
    const slow = 300
    const client = makeClient({ logger, outbox: { dir: env.dir, retryDelayMs: 5, maxRetryDelayMs: slow } })
    expect(await client.initializePipelineStages(runId)).toBe(true)
    expect(await client.markStageComplete(runId, 1, 'one')).toBe(true)
    // 401 is not retried in place (no retry can fix it at once): one request, then the outbox.
    expect(env.server.requests).toHaveLength(1)
    expect(client.pendingCount(runId)).toBe(2)

    await vi.waitFor(() => expect(env.server.requests.length).toBeGreaterThanOrEqual(3), { timeout: 10_000, interval: 20 })
    const times = env.server.requests.map((r) => r.arrivedAt)
    // Slowly: every redelivery waits the longest delay, not the short backoff.
    for (let i = 1; i < 3; i++) expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(slow - 5)
    // Only the run's head is tried: the later update waits behind it.
    expect(new Set(env.server.requests.slice(0, 3).map(update))).toEqual(new Set(['1 PROCESSING']))
    // The server sees the third request before the client has read its 401 and logged it.
    const errorLines = () => logger.lines.filter((l) => l.level === 'error').map((l) => l.message)
    await vi.waitFor(() => expect(errorLines().length).toBeGreaterThanOrEqual(3), { timeout: 10_000, interval: 20 })
    const errors = errorLines()
    expect(errors[0]).toMatch(/^Run run_1: stage 1 PROCESSING refused \(HTTP 401 unauthorized.*\); check that the runner's secret matches the web app's\. Queued in the outbox and retried slowly/)
    // One error per refused redelivery, each with when the next attempt is.
    expect(errors.slice(1, 3)).toEqual([
      expect.stringMatching(new RegExp(`^Outbox: run run_1: stage 1 PROCESSING refused \\(HTTP 401 unauthorized.*\\); check that the runner's secret matches the web app's\\. Kept queued, retried slowly: next attempt in ${slow} ms$`)),
      expect.stringMatching(/Kept queued, retried slowly: next attempt in 300 ms$/),
    ])
    expect(await client.deadLetters()).toEqual([])

    // Fixing the secret (the web app accepts the runner's during a rotation) delivers them.
    env.server.setHandler(createPipelineStatusHandlers({ store: env.server.store, secret: ['new-secret', TEST_SECRET], logger: { warn: () => {}, error: () => {} } }).fetch)
    await vi.waitFor(() => expect(client.pendingCount()).toBe(0), { timeout: 10_000, interval: 20 })
    const stages = (await client.getStatus(runId)).stages
    expect(stages.map((s) => [s.stageNumber, s.status, s.output])).toEqual([[1, 'COMPLETED', 'one']])
    expect(env.server.requests.filter((r) => r.method === 'POST').slice(-2).map(update)).toEqual(['1 PROCESSING', '1 COMPLETED'])
  })

  it('queues a 403 the same way', async () => {
    const runId = await createRun()
    env.server.inject({ status: 403, headers: PROBLEM_JSON, body: JSON.stringify(createProblem('forbidden')) })
    const client = makeClient()
    expect(await client.markStageProcessing(runId, 1)).toBe(true)
    expect(client.pendingCount(runId)).toBe(1)
    expect(await client.flush()).toEqual({ delivered: 1, rejected: 0, pending: 0 })
  })

  it('resolves false for a 401 without an outbox: there is nowhere to keep it', async () => {
    const runId = await createRun()
    const client = makeClient({ secret: 'wrong', outbox: undefined })
    expect(await client.markStageProcessing(runId, 1)).toBe(false)
  })
})

describe('maximum age', () => {
  it('dead-letters updates older than outbox.maxAgeMs and lets the run\'s new ones through', async () => {
    const runId = await createRun()
    const logger = recordingLogger()
    const client = makeClient({ logger, outbox: { dir: env.dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling, maxAgeMs: 150 } })
    await env.server.stop()
    await client.initializePipelineStages(runId)
    await client.markStageComplete(runId, 1, 'one')
    await new Promise((resolve) => setTimeout(resolve, 200))
    await env.server.start()
    expect(await client.flush()).toEqual({ delivered: 0, rejected: 2, pending: 0 })
    expect(env.server.requests).toHaveLength(0)
    const letters = await client.deadLetters(runId)
    expect(letters.map((l) => [l.status, l.reason])).toEqual([
      [undefined, expect.stringMatching(/^expired: undelivered \d+ s after its first attempt \(maxAgeMs 150\)$/)],
      [undefined, expect.stringMatching(/^expired:/)],
    ])
    expect(logger.lines.filter((l) => l.level === 'error' && /dead-lettered \(expired/.test(l.message))).toHaveLength(2)
    expect(await client.markStageProcessing(runId, 2)).toBe(true)
    expect(env.server.requests.map(update)).toEqual(['2 PROCESSING'])
  })

  it('counts 72 hours from the first attempt by default', async () => {
    const runId = await createRun()
    const hours = (n: number) => new Date(Date.now() - n * 3_600_000).toISOString()
    const entry = (stageNumber: number, firstAttemptAt: string) => ({
      v: 1,
      id: crypto.randomUUID(),
      runId,
      route: 'stageUpdate',
      body: JSON.stringify({ stageNumber, stageName: DEFAULT_STAGES[stageNumber - 1]?.name, status: 'PROCESSING' }),
      queuedAt: firstAttemptAt,
      firstAttemptAt,
    })
    writeFileSync(join(env.dir, 'journal.jsonl'), `${JSON.stringify(entry(1, hours(72.1)))}\n${JSON.stringify(entry(2, hours(71.9)))}\n`)
    const client = makeClient()
    expect(await client.flush()).toEqual({ delivered: 1, rejected: 1, pending: 0 })
    expect(env.server.requests.map(update)).toEqual(['2 PROCESSING'])
    expect((await client.deadLetters()).map((l) => JSON.parse(l.body).stageNumber)).toEqual([1])
  })

  it("keeps an earlier process's dead letters for the most recent runs only, until runPipeline takes them", async () => {
    // An earlier process left one expired update for each of RECENT_RUNS + 1 runs; none is ever taken by a runPipeline.
    const expired = new Date(Date.now() - 73 * 3_600_000).toISOString()
    const entry = (runId: string) => ({
      v: 1,
      id: crypto.randomUUID(),
      runId,
      route: 'stageUpdate',
      body: JSON.stringify({ stageNumber: 1, stageName: DEFAULT_STAGES[0]?.name, status: 'PROCESSING' }),
      queuedAt: expired,
      firstAttemptAt: expired,
    })
    const runs = Array.from({ length: RECENT_RUNS + 1 }, (_, i) => `earlier-${i}`)
    writeFileSync(join(env.dir, 'journal.jsonl'), runs.map((runId) => `${JSON.stringify(entry(runId))}\n`).join(''))
    const client = makeClient()
    expect(await client.flush()).toEqual({ delivered: 0, rejected: RECENT_RUNS + 1, pending: 0 })
    const { takeEarlierDeadLetters } = clientInternals(client)
    // Past the bound the oldest run's letters are gone; a recent run's are kept.
    expect(takeEarlierDeadLetters('earlier-0')).toEqual([])
    expect(takeEarlierDeadLetters(`earlier-${RECENT_RUNS}`)).toEqual([expect.objectContaining({ runId: `earlier-${RECENT_RUNS}`, reason: expect.stringMatching(/^expired:/) })])
    expect(takeEarlierDeadLetters('earlier-1')).toHaveLength(1)
    // On disk all of them stay, for a human to read.
    expect(await client.deadLetters()).toHaveLength(RECENT_RUNS + 1)
  })

  it('refuses a maxAgeMs that is not positive', () => {
    expect(() => makeClient({ outbox: { dir: env.dir, maxAgeMs: 0 } })).toThrow(/outbox.maxAgeMs/)
  })
})
