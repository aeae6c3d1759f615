/**
 * OpenTelemetry end to end (DESIGN.md "Observability"): a runner's client, inside its own spans,
 * reports to the handlers; the handlers record one span per stage continuing the runner's trace
 * (retries as links, cancel and the stale-run sweep included) and the metrics. On the in-memory
 * store and on PostgreSQL, so both keep the trace context the same way.
 */
import { SpanKind, SpanStatusCode } from '@opentelemetry/api'
import type { Histogram } from '@opentelemetry/sdk-metrics'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import type { RunStatusResponse } from 'pipeline-status-sdk'
import { ATTRIBUTES, METRICS, pipelineStatusInstrumentation } from 'pipeline-status-sdk/otel'
import { createPipelineStatusHandlers, createRunReadToken, createStaleRunSweeper, MemoryStore, type Store } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { quiet } from '../support/loggers.js'
import { until } from '../support/until.js'
import { useTestDatabase } from '../support/use-test-database.js'
import { inProcessClient, useTelemetry } from './support.js'

const SECRET = 'otel-secret'
const BASE = 'https://app.test/api/pipeline'

const telemetry = useTelemetry()

/** Handlers on `store` with the instrumentation, a client that sends to them, and a raw sender. */
function setUp(store: Store<unknown>) {
  let time = Date.parse('2026-12-06T08:00:00.000Z')
  const clock = () => new Date(time)
  const instrumentation = pipelineStatusInstrumentation({ tracerProvider: telemetry.tracerProvider, meterProvider: telemetry.meterProvider })
  const handlers = createPipelineStatusHandlers({ store, secret: SECRET, clock, logger: quiet, instrumentation })
  const client = inProcessClient(SECRET, handlers.fetch)
  const send = (path: string, body: unknown) =>
    handlers.fetch(new Request(`${BASE}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-webhook-secret': SECRET }, body: JSON.stringify(body) }))
  const status = async (runId: string) =>
    (await (await handlers.fetch(new Request(`${BASE}/${runId}/status`, { headers: { 'x-webhook-secret': SECRET } }))).json()) as RunStatusResponse
  return { handlers, client, send, status, clock, advance: (ms: number) => void (time += ms), instrumentation }
}

function spanOf(spans: ReadableSpan[], stageNumber: number): ReadableSpan {
  const found = spans.filter((span) => span.attributes[ATTRIBUTES.stageNumber] === stageNumber)
  expect(found, `spans of stage ${stageNumber}`).toHaveLength(1)
  return found[0] as ReadableSpan
}

const ms = (time: [number, number]) => time[0] * 1000 + time[1] / 1e6

function theScenario(storeOf: () => Store<unknown>, prefix: string) {
  it('continues the runner’s trace: one span per stage when it ends, retries as links, cancel included, and the metrics', async () => {
    const { client, send, status, advance } = setUp(storeOf())
    // Without `completedAt` (markStageComplete sends the runner's clock): the handlers' clock ends the stage.
    const end = (runId: string, stageNumber: number, stageName: string, output: string) =>
      client.sendStageUpdate(runId, { stageNumber, stageName, status: 'COMPLETED', output })
    const runId = `${prefix}_traced`
    const first = await telemetry.inRunnerSpan('nightly import', async () => {
      await client.createRun(runId)
      await client.markStageProcessing(runId, 1)
      advance(1500)
      await end(runId, 1, 'Input Processing', '{"rows":3}')
      await client.sendStageUpdate(runId, { stageNumber: 2, stageName: 'Signal Amplification', status: 'PROCESSING', attempt: 1, maxAttempts: 2 })
      // A late copy of stage 1's end, and another output for it: a duplicate and a conflict.
      await end(runId, 1, 'Input Processing', '{"rows":3}')
      await end(runId, 1, 'Input Processing', '{"rows":4}')
    })
    advance(2000)
    // The retry runs in a trace of its own (another worker picked the stage up).
    const retry = await telemetry.inRunnerSpan('nightly import, retry', async () => {
      await client.sendStageUpdate(runId, { stageNumber: 2, stageName: 'Signal Amplification', status: 'PROCESSING', attempt: 2, maxAttempts: 2, lastError: 'timeout' })
      // The first attempt's late report: stale.
      await client.sendStageUpdate(runId, { stageNumber: 2, stageName: 'Signal Amplification', status: 'PROCESSING', attempt: 1, maxAttempts: 2 })
      advance(500)
      await end(runId, 2, 'Signal Amplification', 'done')
      await client.markStageProcessing(runId, 3)
    })
    advance(700)
    expect((await send(`/${runId}/cancel`, { reason: 'stopped by the user' })).status).toBe(200)

    const spans = telemetry.stageSpans()
    expect(spans).toHaveLength(3)
    const stored = await status(runId)
    const [one, two, three] = [spanOf(spans, 1), spanOf(spans, 2), spanOf(spans, 3)]
    const runner = first.spanContext()
    const retried = retry.spanContext()

    expect(one.name).toBe('process Input Processing')
    expect(one.kind).toBe(SpanKind.CONSUMER)
    expect(one.spanContext().traceId).toBe(runner.traceId)
    expect(one.parentSpanContext?.spanId).toBe(runner.spanId)
    expect(one.links).toEqual([])
    expect(one.attributes).toMatchObject({
      [ATTRIBUTES.runId]: runId,
      [ATTRIBUTES.pipeline]: 'default',
      [ATTRIBUTES.stageNumber]: 1,
      [ATTRIBUTES.stageName]: 'Input Processing',
      [ATTRIBUTES.stageAttempt]: 1,
      [ATTRIBUTES.stageStatus]: 'COMPLETED',
      'messaging.operation.type': 'process',
      'messaging.destination.name': 'default',
    })
    expect(ms(one.startTime)).toBe(Date.parse(stored.stages[0]?.startedAt as string))
    expect(ms(one.endTime)).toBe(Date.parse(stored.stages[0]?.completedAt as string))
    expect(ms(one.endTime) - ms(one.startTime)).toBe(1500)

    // Stage 2: its first report's trace is the parent; the attempt that started elsewhere is a link.
    expect(two.spanContext().traceId).toBe(runner.traceId)
    expect(two.parentSpanContext?.spanId).toBe(runner.spanId)
    expect(two.links.map((link) => link.context)).toMatchObject([{ traceId: retried.traceId, spanId: retried.spanId }])
    expect(two.attributes).toMatchObject({ [ATTRIBUTES.stageAttempt]: 2, [ATTRIBUTES.stageStatus]: 'COMPLETED' })
    expect(ms(two.endTime) - ms(two.startTime)).toBe(2500)

    // Stage 3 ended by the app's cancel: CANCELLED, in the retry's trace.
    expect(three.spanContext().traceId).toBe(retried.traceId)
    expect(three.parentSpanContext?.spanId).toBe(retried.spanId)
    expect(three.attributes[ATTRIBUTES.stageStatus]).toBe('CANCELLED')
    expect(three.status.code).toBe(SpanStatusCode.UNSET)

    await telemetry.collect()
    const mine = <T>(points: Array<{ attributes: Record<string, unknown>; value: T }>) => points.filter((point) => point.attributes[ATTRIBUTES.pipeline] === 'default')
    const updates = Object.fromEntries(mine(telemetry.points(METRICS.updates)).map((point) => [point.attributes[ATTRIBUTES.updateOutcome], point.value]))
    // Cumulative over the file: at least this scenario's (applied: 1,1,2,2,2,3; duplicate 1, conflict 1, stale 1).
    expect(updates.applied).toBeGreaterThanOrEqual(6)
    expect(updates.duplicate).toBeGreaterThanOrEqual(1)
    expect(updates.conflict).toBeGreaterThanOrEqual(1)
    expect(updates.stale).toBeGreaterThanOrEqual(1)
    const runs = Object.fromEntries(mine(telemetry.points(METRICS.runs)).map((point) => [point.attributes[ATTRIBUTES.runStatus], point.value]))
    expect(runs).toMatchObject({ PENDING: expect.any(Number), PROCESSING: expect.any(Number), CANCELLED: expect.any(Number) })
    const durations = mine(telemetry.points(METRICS.stageDuration) as Array<{ attributes: Record<string, unknown>; value: Histogram }>)
    const completedFirst = durations.find((point) => point.attributes[ATTRIBUTES.stageName] === 'Input Processing' && point.attributes[ATTRIBUTES.stageStatus] === 'COMPLETED')
    expect(completedFirst?.value.count).toBeGreaterThanOrEqual(1)
    expect(completedFirst?.value.min).toBe(1.5)
  })

  it('ends the running stage’s span as FAILED when the stale-run sweeper fails its run', async () => {
    const store = storeOf()
    const { client, clock, advance, instrumentation } = setUp(store)
    const runId = `${prefix}_swept`
    const runner = await telemetry.inRunnerSpan('crashing runner', async () => {
      await client.createRun(runId)
      await client.markStageProcessing(runId, 1)
    })
    advance(16 * 60_000)
    const sweeper = createStaleRunSweeper({ store, staleAfterMs: 15 * 60_000, clock, logger: quiet, instrumentation })
    expect((await sweeper.sweep()).map((run) => run.id)).toContain(runId)
    const span = spanOf(telemetry.stageSpans().filter((candidate) => candidate.attributes[ATTRIBUTES.runId] === runId), 1)
    expect(span.parentSpanContext?.spanId).toBe(runner.spanContext().spanId)
    expect(span.attributes[ATTRIBUTES.stageStatus]).toBe('FAILED')
    expect(span.status.code).toBe(SpanStatusCode.ERROR)
    expect(ms(span.endTime) - ms(span.startTime)).toBe(16 * 60_000)
  })
}

describe('on the in-memory store', () => {
  theScenario(() => new MemoryStore(), 'memory')

  it('counts open live streams', async () => {
    const { handlers, client } = setUp(new MemoryStore())
    await client.createRun('memory_streamed')
    const open = () => {
      const point = telemetry.points(METRICS.streams)[0]
      return typeof point?.value === 'number' ? point.value : 0
    }
    await telemetry.collect()
    const before = open()
    const controller = new AbortController()
    const response = await handlers.fetch(new Request(`${BASE}/memory_streamed/events`, { headers: { 'x-webhook-secret': SECRET }, signal: controller.signal }))
    expect(response.status).toBe(200)
    await telemetry.collect()
    expect(open()).toBe(before + 1)
    await response.body?.cancel()
    controller.abort()
    await until('the stream is counted closed', () => {
      void telemetry.collect()
      return open() === before
    })
  })

  it("counts streams the server ended with ': closed <cause>', by cause and stream kind", async () => {
    const readSecret = 'otel-read-token-secret-of-32-chars!!'
    const instrumentation = pipelineStatusInstrumentation({ tracerProvider: telemetry.tracerProvider, meterProvider: telemetry.meterProvider })
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, readTokens: { secret: readSecret }, logger: quiet, instrumentation })
    try {
      const post = (path: string, body: unknown) =>
        handlers.fetch(new Request(`${BASE}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-webhook-secret': SECRET }, body: JSON.stringify(body) }))
      const token = await createRunReadToken({ tag: 'team:a', secret: readSecret, expiresInSeconds: 600 })
      const closedCount = () =>
        telemetry
          .points(METRICS.streamsClosed)
          .filter((point) => point.attributes[ATTRIBUTES.streamClosedCause] === 'not-admitted' && point.attributes[ATTRIBUTES.streamKind] === 'run')
          .reduce((sum, point) => sum + (typeof point.value === 'number' ? point.value : 0), 0)
      await telemetry.collect()
      const before = closedCount()
      for (const runId of ['otel_tagged_1', 'otel_tagged_2']) {
        expect((await post('/runs', { id: runId, tags: ['team:a'] })).status).toBe(201)
        const response = await handlers.fetch(new Request(`${BASE}/${runId}/events`, { headers: { authorization: `Bearer ${token}` } }))
        expect(response.status).toBe(200)
        expect((await post(`/${runId}/tags`, { remove: ['team:a'] })).status).toBe(200)
        expect(await response.text()).toContain(`: closed not-admitted ${runId}`)
      }
      // Both counted (the handlers log the first only).
      await telemetry.collect()
      expect(closedCount()).toBe(before + 2)
    } finally {
      await handlers.close()
    }
  })

  it('counts reads served with a read replica, by kind, source and fallback reason', async () => {
    const primary = new MemoryStore()
    // A replica that has no run at all: every read of one run falls back as `missing`; lists come from it.
    const replica = new MemoryStore()
    const instrumentation = pipelineStatusInstrumentation({ tracerProvider: telemetry.tracerProvider, meterProvider: telemetry.meterProvider })
    const handlers = createPipelineStatusHandlers({ store: primary, secret: SECRET, logger: quiet, instrumentation, readReplica: { store: replica } })
    const headers = { 'x-webhook-secret': SECRET, 'content-type': 'application/json' }
    expect((await handlers.fetch(new Request(`${BASE}/runs`, { method: 'POST', headers, body: JSON.stringify({ id: 'replica_counted' }) }))).status).toBe(201)
    expect((await handlers.fetch(new Request(`${BASE}/replica_counted/status`, { headers }))).status).toBe(200)
    expect((await handlers.fetch(new Request(`${BASE}/runs`, { headers }))).status).toBe(200)
    await telemetry.collect()
    const points = telemetry.points(METRICS.reads).map((point) => ({ ...point.attributes, value: point.value }))
    expect(points).toEqual(
      expect.arrayContaining([
        { [ATTRIBUTES.readKind]: 'status', [ATTRIBUTES.readSource]: 'primary', [ATTRIBUTES.readFallbackReason]: 'missing', value: 1 },
        { [ATTRIBUTES.readKind]: 'list', [ATTRIBUTES.readSource]: 'replica', value: 1 },
      ]),
    )
    expect(handlers.readStats()).toMatchObject({ replica: true, replicaReads: 1, primaryFallbacks: { missing: 1 } })
  })

  it('sends no trace headers outside a span, and records nothing without the instrumentation', async () => {
    const seen: Array<string | null> = []
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, logger: quiet })
    const client = inProcessClient(SECRET, (request) => {
      seen.push(request.headers.get('traceparent'))
      return handlers.fetch(request)
    })
    await client.createRun('memory_plain')
    await client.markStageProcessing('memory_plain', 1)
    await client.markStageComplete('memory_plain', 1)
    expect(seen).toEqual([null, null, null])
    expect(telemetry.stageSpans()).toEqual([])
  })
})

describe('on PostgreSQL', () => {
  const fixture = useTestDatabase()
  theScenario(() => fixture.store as Store<unknown>, 'pg')
})
