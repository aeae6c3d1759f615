/**
 * The Express example's OpenTelemetry start-up (examples/express/telemetry.ts) against a real
 * OTLP/HTTP receiver started here, with `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`: the Node SDK's
 * global tracer, context and propagator, a runner span around the client's reports, and the
 * stage spans and metrics arriving as OTLP JSON at /v1/traces and /v1/metrics.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { context, diag, metrics, propagation, trace } from '@opentelemetry/api'
import { registerPipelineStatusTracing } from 'pipeline-status-sdk/otel'
import { createPipelineStatusHandlers, MemoryStore } from 'pipeline-status-sdk/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTelemetry, TelemetryConfigurationError } from '../../examples/express/telemetry.js'
import { quiet } from '../support/loggers.js'
import { until } from '../support/until.js'
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

  it('refuses an OTLP protocol the SDK does not support, naming the variable', async () => {
    const refused = startTelemetry({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http' })
    await expect(refused).rejects.toThrow(TelemetryConfigurationError)
    await expect(refused).rejects.toThrow('OTEL_EXPORTER_OTLP_PROTOCOL="http" is not an OTLP protocol: set http/protobuf, http/json, grpc or leave it unset')
    await expect(startTelemetry({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'json' })).rejects.toThrow(
      'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="json"',
    )
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

  it('prints an export failure: OpenTelemetry’s diagnostic logger at WARN', async () => {
    const refusing = createServer((_request, response) => response.writeHead(404).end())
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve))
    const printed: Array<{ level: string; message: string }> = []
    const record = (level: string) => (message: string) => printed.push({ level, message })
    const logger = { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug'), verbose: record('verbose') }
    // The previous case's SDK stays the global one; a fresh start needs the globals free.
    for (const api of [trace, context, propagation, metrics, diag]) api.disable()
    try {
      Object.assign(process.env, {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(refusing.address() as AddressInfo).port}`,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_METRICS_EXPORTER: 'none',
        OTEL_BSP_SCHEDULE_DELAY: '10',
      })
      const telemetry = await startTelemetry(process.env, { diagLogger: logger })
      if (!telemetry) throw new Error('the SDK did not start')
      trace.getTracer('runner').startSpan('lost').end()
      // The batch's scheduled export fails: the SDK's error handler reports it through diag.error.
      await until('the export failure is printed', () => printed.some((line) => line.level === 'error' && /404|Not Found/i.test(line.message)))
      // Shutting down exports nothing more and rejects nothing the test needs.
      await telemetry.shutdown().catch(() => undefined)
      expect(printed.filter((line) => ['info', 'debug', 'verbose'].includes(line.level))).toEqual([])
    } finally {
      diag.disable()
      trace.disable()
      process.env = { ...saved }
      await new Promise((resolve) => refusing.close(resolve))
    }
  })
})
