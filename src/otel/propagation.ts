/**
 * The client side of `pipeline-status-sdk/otel`: the trace headers of every report.
 */
import { type TextMapPropagator, context, propagation } from '@opentelemetry/api'
import { setTraceHeaders } from '../internal/trace-propagation.js'

/** Options of {@link registerPipelineStatusTracing}. */
export interface RegisterPipelineStatusTracingOptions {
  /**
   * Writes the headers (W3C Trace Context's `traceparent` and `tracestate`, and whatever else the
   * propagator carries, such as `baggage`).
   * @default the global propagator (`propagation`: the OpenTelemetry Node SDK sets W3C Trace Context and Baggage)
   */
  propagator?: TextMapPropagator | undefined
}

/**
 * Makes every request of every `PrismaAPIClient` in this process (stage updates, completions,
 * heartbeats, cancellations, run creation and the run's event stream) carry the trace context
 * active when it was made: a call inside a span continues that span's trace on the server
 * (`pipelineStatusInstrumentation`). Every attempt of one request carries the same headers; an
 * update the outbox sends later carries the context of its send. Call it once, after the
 * OpenTelemetry SDK has started; calling it again replaces the earlier registration. Returns a
 * function that removes it.
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
 *   await client.markStageProcessing(runId, 1)
 *   span.end()
 * })
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
  return () => setTraceHeaders(undefined)
}
