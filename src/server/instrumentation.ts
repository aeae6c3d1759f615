/**
 * The handlers' and the stale-run sweeper's instrumentation seam (DESIGN.md "Observability"): what
 * they tell a tracer and a meter, and when. `pipeline-status-sdk/otel` implements it with
 * OpenTelemetry (`pipelineStatusInstrumentation()`); the server itself never imports
 * `@opentelemetry/api`. Each call happens after its write committed, and a throw is logged, never
 * answered: instrumentation cannot fail a request.
 */
import type { RunStatus } from '../contract/status.js'
import type { StreamClosedCause } from '../contract/live-status.js'
import type { RunState, StageState } from '../core/state.js'
import { DEFAULT_PIPELINE } from '../contract/stages.js'
import { isFinalStatus } from '../contract/status.js'
import type { Logger } from '../internal/logger.js'
import type { ServedRead } from './storage/read-source.js'

/** A stage that just ended, with its run. */
export interface EndedStage {
  /** The run's id. */
  runId: string
  /** The run's pipeline. */
  pipeline: string
  /**
   * The stage as stored when it ended: its final `status`, `startedAt` (the span's start),
   * `completedAt` (its end), `attempt`, and `traceparent` / `traceLinks` (its parent and links).
   */
  stage: StageState
}

/** How a stage update came out: the `outcome` of its answer. */
export type StageUpdateOutcomeName = 'applied' | 'duplicate' | 'stale' | 'conflict'

/**
 * What the handlers and the sweeper report. Every method is optional.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers, MemoryStore } from 'pipeline-status-sdk/server'
 * import { pipelineStatusInstrumentation } from 'pipeline-status-sdk/otel'
 * const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: 'dev-secret', instrumentation: pipelineStatusInstrumentation() })
 * ```
 */
export interface PipelineStatusInstrumentation {
  /** A stage reached a final status: by its own update, a cancellation, or the stale-run sweep (`FAILED`). */
  stageEnded?(ended: EndedStage): void
  /** A run moved to `status` (created: `PENDING`). */
  runTransition?(transition: { runId: string; pipeline: string; status: RunStatus }): void
  /** A stage update was answered with `outcome` (refusals, 4xx, are not counted). */
  stageUpdate?(update: { pipeline: string; outcome: StageUpdateOutcomeName }): void
  /** A live stream opened (`+1`) or closed (`-1`). */
  streamsChanged?(delta: 1 | -1): void
  /**
   * The server ended a live stream before its run's end for a cause of its own (it sent
   * `: closed <cause>`): a run's own stream (`run`) or a set stream (`set`). Every one is told;
   * the handlers log only the first of each cause.
   */
  streamClosed?(closed: { cause: StreamClosedCause; stream: 'run' | 'set' }): void
  /**
   * With `readReplica`: a status read, stream snapshot, list page or count was served, by the
   * replica or (with the reason) by the primary. Not called without a replica.
   */
  readServed?(read: ServedRead): void
}

/** The instrumentation as the handlers call it: every method present, none throwing. */
export type InstrumentationCalls = Required<PipelineStatusInstrumentation>

const NONE: InstrumentationCalls = { stageEnded() {}, runTransition() {}, stageUpdate() {}, streamsChanged() {}, streamClosed() {}, readServed() {} }

/** `instrumentation` with each throw logged as a warning; a no-op when absent. */
export function resolveInstrumentation(instrumentation: PipelineStatusInstrumentation | undefined, logger: Logger): InstrumentationCalls {
  if (!instrumentation) return NONE
  const guard = <K extends keyof InstrumentationCalls>(name: K): InstrumentationCalls[K] =>
    ((input: never) => {
      try {
        ;(instrumentation[name] as ((input: never) => void) | undefined)?.call(instrumentation, input)
      } catch (error) {
        logger.warn(`pipeline-status: the instrumentation's ${name} threw; the request is not affected`, { error: String(error) })
      }
    }) as InstrumentationCalls[K]
  return {
    stageEnded: guard('stageEnded'),
    runTransition: guard('runTransition'),
    stageUpdate: guard('stageUpdate'),
    streamsChanged: guard('streamsChanged'),
    streamClosed: guard('streamClosed'),
    readServed: guard('readServed'),
  }
}

/** The pipeline of a run as reported: its own, else `default`. */
export function pipelineOf(run: RunState): string {
  return run.pipeline ?? DEFAULT_PIPELINE
}

/** Reports that a write moved `run` to its status (created: `PENDING`). */
export function reportRunTransition(calls: InstrumentationCalls, run: RunState): void {
  calls.runTransition({ runId: run.id, pipeline: pipelineOf(run), status: run.status })
}

/** Reports each stage of `stages` that is final as ended, with its run. */
export function reportStagesEnded(calls: InstrumentationCalls, run: RunState, stages: readonly StageState[]): void {
  for (const stage of stages) if (isFinalStatus(stage.status)) calls.stageEnded({ runId: run.id, pipeline: pipelineOf(run), stage })
}
