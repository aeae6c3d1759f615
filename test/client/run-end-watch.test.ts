/**
 * The run-end watch (docs/contract.md "Runner control"): while `runPipeline` runs a stage, the
 * client follows its own run's live stream, against the real handlers over HTTP
 * (test/client/support/test-server.ts streams `text/event-stream` answers as they come). A
 * cancel aborts a busy stage through the stream, not a heartbeat (the heartbeat interval is the
 * contract's longest, one hour, so only the one at the stage's start is ever sent); a server
 * without the route leaves the heartbeats to tell; one stream per run, shared by its stages and
 * closed with the pipeline. Assertions wait on conditions, never on how long something took.
 */
import { PrismaAPIClient, isRunFinishedError, runPipeline } from 'pipeline-status-sdk/client'
import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { until } from '../support/until.js'
import { clientFactory } from './support/client-factory.js'
import { heartbeatsOf as heartbeatsOfRun, sixtySeconds, streamRequestsOf, summaryPath } from './support/run-end-watch.js'
import { TEST_SECRET, useTestServer } from './support/test-server.js'

/** The contract's longest heartbeat interval: no second heartbeat within any test. */
const HOUR = 3_600_000

const server = useTestServer()
const warnings: string[] = []
const logger = { info: () => {}, warn: (message: string) => void warnings.push(message), error: () => {} }
const { make: makeClient, track } = clientFactory(() => ({
  baseUrl: server().origin,
  secret: TEST_SECRET,
  logger,
  retry: { limit: 1, baseDelayMs: 5 },
  heartbeatIntervalMs: HOUR,
}))

async function cancel(runId: string, reason: string): Promise<void> {
  expect((await server().cancel(runId, reason)).status).toBe(200)
}

const eventsOf = (runId: string) => streamRequestsOf(server(), runId)
const heartbeatsOf = (runId: string) => heartbeatsOfRun(server(), runId)

describe('a cancel from the web app reaches a busy stage through the run stream', () => {
  it('aborts a running 60 s stage: learned from the stream, with one heartbeat sent (the stage start) and none after the cancel', async () => {
    const client = makeClient()
    const { run } = await client.createRun('watch_cancel')
    const seen: { reason?: unknown } = {}
    const pipeline = runPipeline({ runId: run.id, client, stages: [() => 1, sixtySeconds(seen), () => 3, () => 4, () => 5] })
    // The stream is open and the stage running before the cancel.
    await until('the run stream to be open and stage 2 running', () => server().openStreams === 1 && heartbeatsOf(run.id).some((r) => r.body.includes('"stageNumber":2')))
    const beatsBefore = heartbeatsOf(run.id).length
    await cancel(run.id, 'stopped from the web app')
    const summary = await pipeline
    await until('the stage to see its abort', () => seen.reason !== undefined)

    expect(isRunFinishedError(seen.reason)).toBe(true)
    expect(summary).toMatchObject({ status: 'CANCELLED', error: 'stopped from the web app', finishedElsewhere: { status: 'CANCELLED', learnedFrom: 'stream' } })
    expect(summary.stages.map((s) => s.status)).toEqual(['COMPLETED', 'CANCELLED', 'PENDING', 'PENDING', 'PENDING'])
    // No heartbeat told it: none was sent between the cancel and the abort.
    expect(heartbeatsOf(run.id)).toHaveLength(beatsBefore)
    // The headers the runner's other requests carry: the webhook secret.
    expect(eventsOf(run.id)[0]?.headers).toMatchObject({ 'x-webhook-secret': TEST_SECRET, accept: 'text/event-stream' })
    // The summary view of the set stream (its end, no outputs or chunks sent back), not the run's own stream.
    expect(eventsOf(run.id).map((request) => request.url)).toEqual([summaryPath(run.id)])
    await until('the run stream to be closed', () => server().openStreams === 0)
  })

  it('holds one stream per run, shared by its stages and their retries, closed when the pipeline ends', async () => {
    warnings.length = 0
    const client = makeClient()
    const { run } = await client.createRun('watch_one')
    const openDuring: number[] = []
    let failures = 0
    const stage = async () => {
      // Each stage waits until the stream is open, so that every one of them runs under it.
      await until('the run stream to be open', () => server().openStreams === 1)
      openDuring.push(eventsOf(run.id).length)
      return 'done'
    }
    const flaky = {
      run: async () => {
        await stage()
        if (failures++ < 1) throw new Error('transient')
        return 'done'
      },
      retry: { attempts: 2, backoffMs: 0 },
    }
    const summary = await runPipeline({ runId: run.id, client, stages: [stage, flaky, stage, stage, stage] })
    // Its own last stage finished the run: not news from the stream.
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true })
    expect(summary.finishedElsewhere).toBeUndefined()
    expect(openDuring).toEqual([1, 1, 1, 1, 1, 1])
    expect(eventsOf(run.id)).toHaveLength(1)
    await until('the run stream to be closed', () => server().openStreams === 0)
    expect(warnings).toEqual([])
  })
})

it('a client that only signs (Standard Webhooks, no secret) signs its stream request too, and learns from it', async () => {
  const signingSecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
  const signedOnly = createPipelineStatusHandlers({ store: server().store, secret: [], signing: { secret: signingSecret }, logger: { error: () => undefined, warn: () => undefined } })
  server().setHandler(signedOnly.fetch)
  const client = track(new PrismaAPIClient({ baseUrl: server().origin, secret: '', signing: { secret: signingSecret }, logger, heartbeatIntervalMs: HOUR }))
  const { run } = await client.createRun('watch_signed')
  const seen: { reason?: unknown } = {}
  const pipeline = runPipeline({ runId: run.id, client, stages: [sixtySeconds(seen), () => 2, () => 3, () => 4, () => 5] })
  await until('the run stream to be open', () => server().openStreams === 1)
  // The set stream's route (`GET {base}/events?run=…&view=summary`), signed like its other requests.
  expect(eventsOf(run.id)[0]?.headers['webhook-id']).toMatch(/^GET events [0-9a-f-]{36}$/)
  // Another runner ends the run, signed like any request to these handlers.
  const other = track(new PrismaAPIClient({ baseUrl: server().origin, secret: '', signing: { secret: signingSecret }, logger, throwOnError: true }))
  await other.completeRun(run.id, { status: 'CANCELLED', error: 'ended by another runner' })
  const summary = await pipeline
  expect(summary.finishedElsewhere).toMatchObject({ status: 'CANCELLED', learnedFrom: 'stream' })
})

describe('retries under the run stream', () => {
  it('a cancel during the wait before the next attempt ends the wait at once (an hour-long backoff): no further attempt', async () => {
    const client = makeClient()
    const { run } = await client.createRun('watch_retry_wait')
    const attempts: number[] = []
    const retrying: number[] = []
    const pipeline = runPipeline({
      runId: run.id,
      client,
      retry: { attempts: 3, backoffMs: HOUR },
      onProgress: (event) => {
        if (event.type === 'stage-retrying') retrying.push(event.attempt)
      },
      stages: [
        async ({ attempt }) => {
          attempts.push(attempt)
          // The stream is open before the attempt fails, so the cancel below reaches the wait.
          await until('the run stream to be open', () => server().openStreams === 1)
          throw new Error('model timed out')
        },
        () => 2,
        () => 3,
        () => 4,
        () => 5,
      ],
    })
    // Stored, not merely arrived (the server records a request before its handlers apply it): a
    // cancel applied first would have the retry's report refused, and the attempt never stored.
    await until('the retry to be reported', () =>
      server().requestsTo(`/${run.id}/stage-update`).some((r) => r.body.includes('"nextRetryAt":"') && r.answeredAt !== undefined),
    )
    await cancel(run.id, 'stopped while waiting')
    const summary = await pipeline
    expect(attempts).toEqual([1])
    expect(retrying).toEqual([2])
    expect(summary).toMatchObject({ status: 'CANCELLED', finishedElsewhere: { learnedFrom: 'stream' } })
    expect(summary.stages[0]).toMatchObject({ status: 'CANCELLED', attempts: 2 })
    const stage = (await client.getStatus(run.id)).stages[0]
    expect(stage).toMatchObject({ status: 'CANCELLED', attempt: 2, maxAttempts: 3, lastError: 'model timed out', nextRetryAt: null })
  })
})

describe("the server's `: closed <cause>` comment (the subscribers' rule; a deleted run: run-end-watch-deleted.test.ts)", () => {
  /** The real handlers, except that the first stream request is answered with a stream that only says `: closed <cause> <runId>` and ends. */
  function closingFirstStream(cause: string): void {
    const real = createPipelineStatusHandlers({ store: server().store, secret: TEST_SECRET, logger: { error: () => undefined, warn: () => undefined } })
    let first = true
    server().setHandler((request) => {
      const url = new URL(request.url)
      if (!url.pathname.endsWith('/events') || !first) return real.fetch(request)
      first = false
      return new Response(`: closed ${cause} ${url.searchParams.get('run')}\n\n`, { headers: { 'content-type': 'text/event-stream' } })
    })
  }

  it('a cause a reconnect helps (update-unavailable): reconnects as after any drop, and a cancel then reaches the stage through the stream', async () => {
    closingFirstStream('update-unavailable')
    warnings.length = 0
    const client = makeClient()
    const { run } = await client.createRun('watch_closed_unavailable')
    const seen: { reason?: unknown } = {}
    const pipeline = runPipeline({ runId: run.id, client, stages: [sixtySeconds(seen), () => 2, () => 3, () => 4, () => 5] })
    await until('the reconnected stream to be open', () => eventsOf(run.id).length === 2 && server().openStreams === 1)
    await cancel(run.id, 'stopped after the reconnect')
    const summary = await pipeline
    await until('the stage to see its abort', () => seen.reason !== undefined)
    expect(summary.finishedElsewhere).toMatchObject({ status: 'CANCELLED', learnedFrom: 'stream' })
    expect(warnings).toEqual([expect.stringMatching(/was CANCELLED/)])
  })

  it('a cause a reconnect cannot help (not-admitted): no reconnect, one warning with the cause; the heartbeat stays the fallback', async () => {
    closingFirstStream('not-admitted')
    warnings.length = 0
    const client = makeClient()
    const { run } = await client.createRun('watch_closed_not_admitted')
    const summary = await runPipeline({
      runId: run.id,
      client,
      stages: [
        // The stage runs until the watch gave up, so that the stream is armed when the comment comes.
        async () => {
          await until('the watch to give up', () => warnings.some((w) => w.includes('live stream')))
          return 1
        },
        () => 2,
        () => 3,
        () => 4,
        () => 5,
      ],
    })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true })
    expect(eventsOf(run.id)).toHaveLength(1)
    expect(warnings).toEqual([expect.stringMatching(/live stream: the server ended GET .* with ': closed not-admitted' .*reconnecting cannot help; a cancel .*next heartbeat.*Fix: /)])
  })
})

describe('falls back to heartbeats when the stream is unavailable', () => {
  it('a server whose events route answers 404 (an older server): one attempt, one warning with cause and fix, the heartbeat tells', async () => {
    const real = createPipelineStatusHandlers({ store: server().store, secret: TEST_SECRET, logger: { error: () => undefined, warn: () => undefined } })
    server().setHandler((request) =>
      new URL(request.url).pathname.endsWith('/events')
        ? new Response(JSON.stringify({ type: 'about:blank', title: 'Not Found', status: 404, code: 'route_not_found' }), {
            status: 404,
            headers: { 'content-type': 'application/problem+json' },
          })
        : real.fetch(request),
    )
    warnings.length = 0
    // The shortest interval: the heartbeat is what tells here.
    const client = makeClient({ heartbeatIntervalMs: 1000 })
    const { run } = await client.createRun('watch_fallback')
    const seen: { reason?: unknown } = {}
    const pipeline = runPipeline({ runId: run.id, client, stages: [sixtySeconds(seen), () => 2, () => 3, () => 4, () => 5] })
    // The summary view first, then the run's own stream (an older server has neither): one warning, for the second.
    await until('the stream to be tried', () => eventsOf(run.id).length === 2 && warnings.length === 1)
    await cancel(run.id, 'stopped')
    const summary = await pipeline
    await until('the stage to see its abort', () => seen.reason !== undefined)

    expect(isRunFinishedError(seen.reason)).toBe(true)
    expect(summary.finishedElsewhere).toMatchObject({ status: 'CANCELLED', learnedFrom: 'heartbeat' })
    expect(eventsOf(run.id).map((request) => request.url)).toEqual([summaryPath(run.id), `/api/pipeline/${run.id}/events`])
    expect(warnings.filter((w) => w.includes('live stream'))).toEqual([expect.stringMatching(/answered 404 or 405: the server has no live stream route; .*next heartbeat \(every 1000 ms\).*Fix: /)])
  })

  it('a stream whose headers never come is given up at the connect deadline (the client timeoutMs) and tried again', async () => {
    const real = createPipelineStatusHandlers({ store: server().store, secret: TEST_SECRET, logger: { error: () => undefined, warn: () => undefined } })
    server().setHandler((request) => (new URL(request.url).pathname.endsWith('/events') ? new Promise<Response>(() => {}) : real.fetch(request)))
    warnings.length = 0
    const client = makeClient({ timeoutMs: 200 })
    const { run } = await client.createRun('watch_connect')
    const controller = new AbortController()
    const pipeline = runPipeline({ runId: run.id, client, signal: controller.signal, stages: [sixtySeconds({}), () => 2, () => 3, () => 4, () => 5] })
    await until('a second stream attempt', () => eventsOf(run.id).length >= 2)
    expect(warnings.filter((w) => w.includes('live stream'))).toEqual([expect.stringMatching(/failed \(no answer headers within 200 ms\); retrying with backoff/)])
    controller.abort()
    expect((await pipeline).status).toBe('CANCELLED')
  })

  it('a stream refused to the runner (403) is one warning with its fix; a wrong secret is left to the updates\' error (test/client/messages.test.ts)', async () => {
    const real = createPipelineStatusHandlers({ store: server().store, secret: TEST_SECRET, logger: { error: () => undefined, warn: () => undefined } })
    const forbidden = { type: 'urn:pipeline-status-sdk:problem:forbidden', title: 'Not allowed to stream this run', status: 403, code: 'forbidden' }
    server().setHandler((request) =>
      new URL(request.url).pathname.endsWith('/events')
        ? Response.json(forbidden, { status: 403, headers: { 'content-type': 'application/problem+json' } })
        : real.fetch(request),
    )
    warnings.length = 0
    const client = makeClient()
    const { run } = await client.createRun('watch_forbidden')
    const summary = await runPipeline({ runId: run.id, client, stages: [1, 2, 3, 4, 5].map((n) => () => n) })
    expect(summary.status).toBe('COMPLETED')
    expect(eventsOf(run.id)).toHaveLength(1)
    expect(warnings).toEqual([
      `Run ${run.id}: live stream: GET ${server().origin}${summaryPath(run.id)} was refused (HTTP 403 forbidden); a cancel (or the stale-run ` +
        'sweeper) reaches a running stage at its next heartbeat (every 3600000 ms) instead of within a second. Fix: let the webhook secret read ' +
        "the run (an authorize hook that refuses the runner's reads), or turn the stream off with followRunStream: false.",
    ])
  })

  it('network errors: retried with backoff while the heartbeats go on; followRunStream: false opens none', async () => {
    let refused = 0
    const client = makeClient({
      heartbeatIntervalMs: 1000,
      fetch: (url, init) => (new URL(url).pathname.endsWith('/events') ? (refused++, Promise.reject(new TypeError('fetch failed'))) : fetch(url, init)),
    })
    warnings.length = 0
    const { run } = await client.createRun('watch_network')
    const seen: { reason?: unknown } = {}
    const pipeline = runPipeline({ runId: run.id, client, stages: [sixtySeconds(seen), () => 2, () => 3, () => 4, () => 5] })
    await until('the stream to be retried', () => refused >= 2)
    await cancel(run.id, 'stopped')
    const summary = await pipeline
    expect(summary.finishedElsewhere).toMatchObject({ status: 'CANCELLED', learnedFrom: 'heartbeat' })
    expect(warnings.filter((w) => w.includes('live stream'))).toEqual([expect.stringMatching(/live stream: GET .*\/events\?run=.*&view=summary failed \(fetch failed\); retrying with backoff; .*Fix: /)])

    const off = makeClient({ followRunStream: false })
    const other = await off.createRun('watch_off')
    await runPipeline({ runId: other.run.id, client: off, stages: [1, 2, 3, 4, 5].map((n) => () => n) })
    expect(eventsOf(other.run.id)).toEqual([])
  })
})

it('a client closed while a stage runs closes its streams', async () => {
  const client = new PrismaAPIClient({ baseUrl: server().origin, secret: TEST_SECRET, logger, heartbeatIntervalMs: HOUR })
  const { run } = await client.createRun('watch_close')
  const controller = new AbortController()
  const pipeline = runPipeline({ runId: run.id, client, signal: controller.signal, stages: [sixtySeconds({}), () => 2, () => 3, () => 4, () => 5], complete: false })
  await until('the run stream to be open', () => server().openStreams === 1)
  await client.close({ timeoutMs: 100 })
  await until('the run stream to be closed', () => server().openStreams === 0)
  controller.abort()
  expect((await pipeline).status).toBe('CANCELLED')
})
