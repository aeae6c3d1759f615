/**
 * OpenTelemetry for the Express example (docs/tracing.md): when `OTEL_EXPORTER_OTLP_ENDPOINT` is
 * set, the OpenTelemetry Node SDK starts and exports traces and metrics over OTLP, configured by
 * the standard environment variables it reads itself (`OTEL_EXPORTER_OTLP_PROTOCOL`:
 * `http/protobuf` by default, `http/json` or `grpc`; `OTEL_SERVICE_NAME`;
 * `OTEL_METRIC_EXPORT_INTERVAL`; `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER`). The handlers
 * and the sweeper then get `pipelineStatusInstrumentation()`: one span per stage, continuing the
 * runner's trace, and the package's metrics. Unset: nothing is loaded, nothing is recorded.
 */
import type { PipelineStatusInstrumentation } from 'pipeline-status-sdk/server'

/** The started SDK: the instrumentation to give the handlers, and its shutdown (flushes what is left). */
export interface ExampleTelemetry {
  readonly instrumentation: PipelineStatusInstrumentation
  shutdown(): Promise<void>
}

/** Starts the Node SDK when `OTEL_EXPORTER_OTLP_ENDPOINT` is set in `env`; `undefined` otherwise. */
export async function startTelemetry(env: NodeJS.ProcessEnv = process.env): Promise<ExampleTelemetry | undefined> {
  if (!env['OTEL_EXPORTER_OTLP_ENDPOINT']) return undefined
  // Loaded only when used: the example runs without the OpenTelemetry packages otherwise.
  const [{ NodeSDK }, { pipelineStatusInstrumentation }] = await Promise.all([import('@opentelemetry/sdk-node'), import('pipeline-status-sdk/otel')])
  const sdk = new NodeSDK({ serviceName: env['OTEL_SERVICE_NAME'] ?? 'pipeline-status-express-example' })
  sdk.start()
  return { instrumentation: pipelineStatusInstrumentation(), shutdown: () => sdk.shutdown() }
}
