/**
 * The OpenTelemetry SDK set up for a test file: spans into an in-memory exporter, metrics read on
 * demand, the async-hooks context manager (so a runner's active span reaches its client calls)
 * and the client's trace headers (W3C propagator) and metrics registered.
 */
import { context, type Span } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { type DataPoint, type Histogram, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { PrismaAPIClient } from 'pipeline-status-sdk/client'
import { registerPipelineStatusTracing } from 'pipeline-status-sdk/otel'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { quiet } from '../support/loggers.js'

/** A reader that exports nothing: the test collects when it asserts. */
class TestMetricReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** The providers and what they recorded. */
export interface Telemetry {
  readonly exporter: InMemorySpanExporter
  readonly tracerProvider: BasicTracerProvider
  readonly meterProvider: MeterProvider
  /** The spans of the package's own tracer ended so far: the server's stage spans. */
  stageSpans(): ReadableSpan[]
  /** Collects the metrics now; `points` reads this collection. */
  collect(): Promise<void>
  /** The data points of metric `name` in the last collection. */
  points(name: string): Array<DataPoint<number | Histogram>>
  /** Runs `fn` in an active runner span, ended after it; returns the span. */
  inRunnerSpan(name: string, fn: () => Promise<void>): Promise<Span>
}

/** Registers the set-up in the file's hooks. */
export function useTelemetry(): Telemetry {
  const exporter = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const reader = new TestMetricReader()
  const meterProvider = new MeterProvider({ readers: [reader] })
  const contextManager = new AsyncLocalStorageContextManager()
  let unregister: (() => void) | undefined
  let collected: Awaited<ReturnType<MetricReader['collect']>> | undefined

  beforeAll(() => {
    context.setGlobalContextManager(contextManager.enable())
    unregister = registerPipelineStatusTracing({ propagator: new W3CTraceContextPropagator(), meterProvider })
  })
  afterEach(() => exporter.reset())
  afterAll(async () => {
    unregister?.()
    context.disable()
    await tracerProvider.shutdown()
    await meterProvider.shutdown()
  })

  return {
    exporter,
    tracerProvider,
    meterProvider,
    stageSpans: () => exporter.getFinishedSpans().filter((span) => span.instrumentationScope.name === 'pipeline-status-sdk'),
    async collect() {
      collected = await reader.collect()
    },
    points(name) {
      const metrics = collected?.resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics) ?? []
      return (metrics.find((metric) => metric.descriptor.name === name)?.dataPoints ?? []) as Array<DataPoint<number | Histogram>>
    },
    inRunnerSpan(name, fn) {
      return tracerProvider.getTracer('runner').startActiveSpan(name, async (span) => {
        try {
          await fn()
        } finally {
          span.end()
        }
        return span
      })
    },
  }
}

/**
 * A runner's client that sends to `fetch` (the handlers' own, in process) with `secret`: it
 * throws on errors and opens no run stream.
 */
export function inProcessClient(secret: string, fetch: (request: Request) => Promise<Response>): PrismaAPIClient {
  return new PrismaAPIClient({
    baseUrl: 'https://app.test',
    secret,
    throwOnError: true,
    followRunStream: false,
    logger: quiet,
    fetch: (input, init) => fetch(new Request(input, init)),
  })
}
