/**
 * OpenTelemetry for pipeline-status-sdk (DESIGN.md "Observability"); the only module that imports
 * `@opentelemetry/api` (1.x, an optional peer dependency: install it to use this entry). Without
 * this entry nothing is traced and nothing changes.
 *
 * - In the runner: {@link registerPipelineStatusTracing}, once, and every request of every
 *   `PrismaAPIClient` carries the W3C Trace Context (`traceparent`, `tracestate`) of the context
 *   active when it was made, through the global propagator (the OpenTelemetry SDK's).
 * - In the web app: {@link pipelineStatusInstrumentation} as the handlers' and the stale-run
 *   sweeper's `instrumentation`: one span per stage, continuing the runner's trace, and metrics.
 *
 * @example
 * ```ts
 * // runner.ts, after the OpenTelemetry SDK has started
 * import { registerPipelineStatusTracing } from 'pipeline-status-sdk/otel'
 * registerPipelineStatusTracing()
 * ```
 *
 * @module otel
 */
export { registerPipelineStatusTracing } from './propagation.js'
export type { RegisterPipelineStatusTracingOptions } from './propagation.js'
export { pipelineStatusInstrumentation } from './instrumentation.js'
export type { PipelineStatusInstrumentationOptions } from './instrumentation.js'
export { ATTRIBUTES, METRICS } from './names.js'
export type { EndedStage, PipelineStatusInstrumentation, StageUpdateOutcomeName } from '../server/instrumentation.js'
