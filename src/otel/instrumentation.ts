/**
 * The server side of `pipeline-status-sdk/otel`: the handlers' and the sweeper's
 * {@link PipelineStatusInstrumentation} with OpenTelemetry's tracer and meter.
 */
import {
  type Attributes,
  type Link,
  type MeterProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type TracerProvider,
  metrics,
  trace,
} from '@opentelemetry/api'
import { PACKAGE_NAME, PACKAGE_VERSION } from '../contract/package-info.js'
import type { EndedStage, PipelineStatusInstrumentation } from '../server/instrumentation.js'
import { ATTRIBUTES, METRICS } from './names.js'
import { spanContextOf } from './trace-context.js'

/** Options of {@link pipelineStatusInstrumentation}. */
export interface PipelineStatusInstrumentationOptions {
  /**
   * Where the stage spans go.
   * @default the global one (`trace.getTracerProvider()`: the OpenTelemetry Node SDK's once started)
   */
  tracerProvider?: TracerProvider | undefined
  /**
   * Where the metrics go.
   * @default the global one (`metrics.getMeterProvider()`)
   */
  meterProvider?: MeterProvider | undefined
}

/**
 * The instrumentation of the handlers (`createPipelineStatusHandlers({ instrumentation })`) and of
 * the stale-run sweeper (`createStaleRunSweeper({ instrumentation })`), with OpenTelemetry
 * (DESIGN.md "Observability"):
 *
 * - one span per stage when it ends (its update, a cancellation, the stale-run sweep): kind
 *   `CONSUMER`, named `process <stage name>`, start = the stage's `startedAt`, end = its
 *   `completedAt`, parent = its first report's `traceparent`, links = those of the reports that
 *   started a later attempt; attributes `pipeline_status.run.id`, `pipeline_status.pipeline`,
 *   `pipeline_status.stage.number`, `pipeline_status.stage.name`, `pipeline_status.stage.attempt`,
 *   `pipeline_status.stage.status`, and OpenTelemetry's messaging attributes
 *   (`messaging.system` `pipeline_status`, `messaging.operation.type` `process`,
 *   `messaging.destination.name` the pipeline); a `FAILED` stage has status `ERROR`;
 * - metrics `pipeline_status.stage.duration` (histogram, s; by pipeline, stage name, status),
 *   `pipeline_status.runs` (run transitions, by pipeline and status), `pipeline_status.updates`
 *   (stage updates, by pipeline and outcome), `pipeline_status.streams` (open live streams),
 *   `pipeline_status.streams.closed` (streams the server ended with `: closed <cause>`, by
 *   `pipeline_status.stream.closed_cause` and `pipeline_status.stream.kind`) and,
 *   with a read replica, `pipeline_status.reads` (reads served, by kind, source and fallback reason).
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers, MemoryStore } from 'pipeline-status-sdk/server'
 * import { pipelineStatusInstrumentation } from 'pipeline-status-sdk/otel'
 * const handlers = createPipelineStatusHandlers({
 *   store: new MemoryStore(),
 *   secret: process.env.PIPELINE_WEBHOOK_SECRET,
 *   instrumentation: pipelineStatusInstrumentation(),
 * })
 * ```
 */
export function pipelineStatusInstrumentation(options: PipelineStatusInstrumentationOptions = {}): PipelineStatusInstrumentation {
  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(PACKAGE_NAME, PACKAGE_VERSION)
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(PACKAGE_NAME, PACKAGE_VERSION)
  const duration = meter.createHistogram(METRICS.stageDuration, {
    unit: 's',
    description: 'How long stages took, from their start to their end (startedAt to completedAt)',
  })
  const runs = meter.createCounter(METRICS.runs, { unit: '{transition}', description: 'Run transitions, by the status a run moved to' })
  const updates = meter.createCounter(METRICS.updates, { unit: '{update}', description: 'Stage updates answered, by outcome' })
  const streams = meter.createUpDownCounter(METRICS.streams, { unit: '{stream}', description: 'Live status streams open' })
  const streamsClosed = meter.createCounter(METRICS.streamsClosed, {
    unit: '{stream}',
    description: "Live status streams the server ended before their run's end, by cause (': closed <cause>')",
  })
  const reads = meter.createCounter(METRICS.reads, { unit: '{read}', description: 'Reads served with a read replica, by the replica or the primary' })

  return {
    stageEnded({ runId, pipeline, stage }: EndedStage) {
      const start = stage.startedAt ?? stage.createdAt
      const end = stage.completedAt ?? stage.updatedAt
      const attributes: Attributes = {
        [ATTRIBUTES.runId]: runId,
        [ATTRIBUTES.pipeline]: pipeline,
        [ATTRIBUTES.stageNumber]: stage.stageNumber,
        [ATTRIBUTES.stageName]: stage.stageName,
        [ATTRIBUTES.stageAttempt]: stage.attempt ?? 1,
        [ATTRIBUTES.stageStatus]: stage.status,
        'messaging.system': 'pipeline_status',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.destination.name': pipeline,
      }
      const parent = spanContextOf(stage.traceparent)
      const links: Link[] = []
      for (const traceparent of stage.traceLinks ?? []) {
        const context = spanContextOf(traceparent)
        if (context) links.push({ context })
      }
      const span = tracer.startSpan(
        `process ${stage.stageName}`,
        { kind: SpanKind.CONSUMER, startTime: start, attributes, links },
        parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT,
      )
      if (stage.status === 'FAILED') span.setStatus({ code: SpanStatusCode.ERROR, message: `Stage ${stage.stageNumber} (${stage.stageName}) failed` })
      span.end(end)
      duration.record(Math.max(0, end.getTime() - start.getTime()) / 1000, {
        [ATTRIBUTES.pipeline]: pipeline,
        [ATTRIBUTES.stageName]: stage.stageName,
        [ATTRIBUTES.stageStatus]: stage.status,
      })
    },
    runTransition({ pipeline, status }) {
      runs.add(1, { [ATTRIBUTES.pipeline]: pipeline, [ATTRIBUTES.runStatus]: status })
    },
    stageUpdate({ pipeline, outcome }) {
      updates.add(1, { [ATTRIBUTES.pipeline]: pipeline, [ATTRIBUTES.updateOutcome]: outcome })
    },
    streamsChanged(delta) {
      streams.add(delta)
    },
    streamClosed({ cause, stream }) {
      streamsClosed.add(1, { [ATTRIBUTES.streamClosedCause]: cause, [ATTRIBUTES.streamKind]: stream })
    },
    readServed({ kind, source, reason }) {
      const attributes: Attributes = { [ATTRIBUTES.readKind]: kind, [ATTRIBUTES.readSource]: source }
      if (reason !== undefined) attributes[ATTRIBUTES.readFallbackReason] = reason
      reads.add(1, attributes)
    },
  }
}
