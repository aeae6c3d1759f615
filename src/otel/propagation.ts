/**
 * The client side of `pipeline-status-sdk/otel`: the trace headers of every report.
 */
import { type MeterProvider, type TextMapPropagator, context, metrics, propagation } from '@opentelemetry/api'
import { PACKAGE_NAME, PACKAGE_VERSION } from '../contract/package-info.js'
import { clientTelemetry } from '../internal/client-telemetry.js'
import { setTraceHeaders } from '../internal/trace-propagation.js'
import { ATTRIBUTES, METRICS } from './names.js'

/** Options of {@link registerPipelineStatusTracing}. */
export interface RegisterPipelineStatusTracingOptions {
  /**
   * Writes the headers (W3C Trace Context's `traceparent` and `tracestate`, and whatever else the
   * propagator carries, such as `baggage`).
   * @default the global propagator (`propagation`: the OpenTelemetry Node SDK sets W3C Trace Context and Baggage)
   */
  propagator?: TextMapPropagator | undefined
  /**
   * Where the client's metrics go: `pipeline_status.client.dead_letters` (a counter, by route and
   * kind) and `pipeline_status.client.outbox.depth` (a gauge: the updates waiting in the
   * process's outboxes).
   * @default the global one (`metrics.getMeterProvider()`)
   */
  meterProvider?: MeterProvider | undefined
}

/**
 * Makes every request of every `PrismaAPIClient` in this process (stage updates, completions,
 * heartbeats, cancellations, run creation and the run's event stream) carry the trace context
 * active when it was made: a call inside a span continues that span's trace on the server
 * (`pipelineStatusInstrumentation`). Every attempt of one request carries the same headers; an
 * update the outbox sends later carries the context of its send. Call it once, after the
 * OpenTelemetry SDK has started; calling it again replaces the earlier registration. Also
 * records the client's metrics (see {@link RegisterPipelineStatusTracingOptions.meterProvider}).
 * Returns a function that removes the headers and stops the metrics.
 *
 * @example
 * ```ts
 * import { trace } from '@opentelemetry/api'
 * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
 * import { registerPipelineStatusTracing } from 'pipeline-status-sdk/otel'
 *
 * registerPipelineStatusTracing()
 * const client = new PrismaAPIClient()
 * await trace.getTracer('runner').startActiveSpan('nightly-import', async (span) => {
 *   const runId = (await client.createRun()).run.id
 *   await client.markStageProcessing(runId, 1)
 *   span.end()
 * })
 * await client.close()
 * ```
 */
export function registerPipelineStatusTracing(options: RegisterPipelineStatusTracingOptions = {}): () => void {
  const { propagator } = options
  const headers = (): Record<string, string> => {
    const carrier: Record<string, string> = {}
    if (propagator) propagator.inject(context.active(), carrier, { set: (c, key, value) => void (c[key] = value) })
    else propagation.inject(context.active(), carrier)
    return carrier
  }
  setTraceHeaders(headers)
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(PACKAGE_NAME, PACKAGE_VERSION)
  const deadLetters = meter.createCounter(METRICS.clientDeadLetters, { unit: '{update}', description: 'Updates the outbox kept as dead letters' })
  const depth = meter.createObservableGauge(METRICS.clientOutboxDepth, { unit: '{update}', description: 'Updates waiting in the outboxes' })
  const telemetry = clientTelemetry()
  const observe = (result: { observe(value: number): void }) => {
    let waiting = 0
    for (const read of telemetry.outboxes) waiting += read()
    result.observe(waiting)
  }
  depth.addCallback(observe)
  telemetry.deadLettered = ({ route, kind }) => deadLetters.add(1, { [ATTRIBUTES.route]: route, [ATTRIBUTES.deadLetterKind]: kind })
  return () => {
    setTraceHeaders(undefined)
    telemetry.deadLettered = undefined
    depth.removeCallback(observe)
  }
}
