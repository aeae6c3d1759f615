/**
 * OpenTelemetry for the Express example (docs/tracing.md): when `OTEL_EXPORTER_OTLP_ENDPOINT` is
 * set, the OpenTelemetry Node SDK starts and exports traces and metrics over OTLP, configured by
 * the standard environment variables it reads itself (`OTEL_EXPORTER_OTLP_PROTOCOL`:
 * `http/protobuf` by default, `http/json` or `grpc`, anything else refused; `OTEL_SERVICE_NAME`;
 * `OTEL_METRIC_EXPORT_INTERVAL`; `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER`). The handlers
 * (and a sweeper, when `startExpressExample` is given `staleRunSweeper`) then get
 * `pipelineStatusInstrumentation()`: one span per stage, continuing the runner's trace, and the
 * package's metrics. OpenTelemetry's diagnostic logger prints its warnings and errors to the
 * console (export failures, such as an unreachable or wrong endpoint), unless `OTEL_LOG_LEVEL`
 * sets another level. Unset: nothing is loaded, nothing is recorded.
 */
import type { api } from '@opentelemetry/sdk-node'
import type { PipelineStatusInstrumentation } from 'pipeline-status-sdk/server'

type DiagLogger = api.DiagLogger

/** The started SDK: the instrumentation to give the handlers, and its shutdown (flushes what is left). */
export interface ExampleTelemetry {
  readonly instrumentation: PipelineStatusInstrumentation
  shutdown(): Promise<void>
}

/** The OTLP protocols the Node SDK's exporters support, the values `OTEL_EXPORTER_OTLP_PROTOCOL` may take. */
export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json', 'grpc'] as const

/** An OTLP protocol variable with a value the SDK does not support (the example exits on it). */
export class TelemetryConfigurationError extends Error {
  override readonly name = 'TelemetryConfigurationError'
}

/** Options of {@link startTelemetry}. */
export interface TelemetryOptions {
  /** Where OpenTelemetry's diagnostics at WARN and above go. @default a `DiagConsoleLogger` (the console) */
  readonly diagLogger?: DiagLogger | undefined
}

/**
 * Starts the Node SDK when `OTEL_EXPORTER_OTLP_ENDPOINT` is set in `env`; `undefined` otherwise.
 * Throws {@link TelemetryConfigurationError} (before loading anything) when
 * `OTEL_EXPORTER_OTLP_PROTOCOL` or its per-signal `…_TRACES_…` / `…_METRICS_…` variant is not
 * one of {@link OTLP_PROTOCOLS}: the SDK would otherwise fall back silently.
 */
export async function startTelemetry(env: NodeJS.ProcessEnv = process.env, options: TelemetryOptions = {}): Promise<ExampleTelemetry | undefined> {
  if (!env['OTEL_EXPORTER_OTLP_ENDPOINT']) return undefined
  for (const name of ['OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL']) {
    const value = env[name]?.trim()
    if (value && !(OTLP_PROTOCOLS as readonly string[]).includes(value)) {
      throw new TelemetryConfigurationError(`${name}=${JSON.stringify(value)} is not an OTLP protocol: set ${OTLP_PROTOCOLS.join(', ')} or leave it unset (http/protobuf)`)
    }
  }
  // Loaded only when used: the example runs without the OpenTelemetry packages otherwise.
  const [{ NodeSDK, api }, { pipelineStatusInstrumentation }] = await Promise.all([import('@opentelemetry/sdk-node'), import('pipeline-status-sdk/otel')])
  // Export failures (a wrong endpoint, a collector that is down) are otherwise silent. With
  // OTEL_LOG_LEVEL set, the SDK registers the logger at that level itself.
  if (!env['OTEL_LOG_LEVEL']) api.diag.setLogger(options.diagLogger ?? new api.DiagConsoleLogger(), api.DiagLogLevel.WARN)
  const sdk = new NodeSDK({ serviceName: env['OTEL_SERVICE_NAME'] ?? 'pipeline-status-express-example' })
  sdk.start()
  return { instrumentation: pipelineStatusInstrumentation(), shutdown: () => sdk.shutdown() }
}
