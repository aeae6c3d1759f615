/**
 * The Express example's OpenTelemetry start-up (examples/express/telemetry.ts) against a real
 * OTLP/HTTP receiver started here, with `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`: the Node SDK's
 * global tracer, context and propagator, a runner span around the client's reports, and the
 * stage spans and metrics arriving as OTLP JSON at /v1/traces and /v1/metrics.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { trace } from '@opentelemetry/api'
import { registerPipelineStatusTracing } from 'pipeline-status-sdk/otel'
import { createPipelineStatusHandlers, MemoryStore } from 'pipeline-status-sdk/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTelemetry } from '../../examples/express/telemetry.js'
import { quiet } from '../support/loggers.js'
import { inProcessClient } from './support.js'

const SECRET = 'otlp-secret'

interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: Array<{ key: string; value: Record<string, unknown> }>
}

/** What the receiver got, by path. */
const received: Array<{ path: string; contentType: string | undefined; body: unknown }> = []
let receiver: Server
let endpoint: string
const saved = { ...process.env }

beforeAll(async () => {
  receiver = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      received.push({ path: request.url ?? '', contentType: request.headers['content-type'], body: JSON.parse(Buffer.concat(chunks).toString('utf8')) })
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
  endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`
})

afterAll(async () => {
  process.env = saved
  await new Promise((resolve) => receiver.close(resolve))
})

describe('the Express example’s telemetry', () => {
  it('starts nothing without OTEL_EXPORTER_OTLP_ENDPOINT', async () => {
    expect(await startTelemetry({})).toBeUndefined()
  })

  it('exports a runner’s trace continued by the stage spans, and the metrics, as OTLP JSON', async () => {
    Object.assign(process.env, {
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'otlp-test',
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_METRICS_EXPORTER: 'otlp',
    })
    const telemetry = await startTelemetry()
    if (!telemetry) throw new Error('the SDK did not start')
    const unregister = registerPipelineStatusTracing()
    try {
      const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, logger: quiet, instrumentation: telemetry.instrumentation })
      const client = inProcessClient(SECRET, handlers.fetch)
      const runner = await trace.getTracer('runner').startActiveSpan('runner job', async (span) => {
        await client.createRun('otlp_run')
        await client.markStageProcessing('otlp_run', 1)
        await client.sendStageUpdate('otlp_run', { stageNumber: 1, stageName: 'Input Processing', status: 'COMPLETED' })
        span.end()
        return span.spanContext()
      })
      await telemetry.shutdown()

      const traces = received.filter((request) => request.path === '/v1/traces')
      expect(traces.length).toBeGreaterThan(0)
      expect(traces.every((request) => request.contentType?.startsWith('application/json'))).toBe(true)
      const spans = traces.flatMap((request) =>
        (request.body as { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> }).resourceSpans.flatMap((resource) =>
          resource.scopeSpans.flatMap((scope) => scope.spans),
        ),
      )
      const stage = spans.find((span) => span.name === 'process Input Processing')
      expect(spans.find((span) => span.name === 'runner job')).toMatchObject({ traceId: runner.traceId, spanId: runner.spanId })
      // 5: SPAN_KIND_CONSUMER.
      expect(stage).toMatchObject({ traceId: runner.traceId, parentSpanId: runner.spanId, kind: 5 })
      expect(stage?.attributes).toContainEqual({ key: 'pipeline_status.run.id', value: { stringValue: 'otlp_run' } })

      const metricNames = received
        .filter((request) => request.path === '/v1/metrics')
        .flatMap((request) =>
          (request.body as { resourceMetrics: Array<{ scopeMetrics: Array<{ metrics: Array<{ name: string }> }> }> }).resourceMetrics.flatMap((resource) =>
            resource.scopeMetrics.flatMap((scope) => scope.metrics.map((metric) => metric.name)),
          ),
        )
      expect(metricNames).toEqual(expect.arrayContaining(['pipeline_status.stage.duration', 'pipeline_status.runs', 'pipeline_status.updates']))
    } finally {
      unregister()
    }
  })
})
