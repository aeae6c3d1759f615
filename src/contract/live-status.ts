import { z } from 'zod'
import { PipelineRunRecord, RunStatusResponse, StageOutputRecord } from './records.js'
import { DEFAULT_BASE_PATH, routePath } from './routes.js'

/**
 * The event names of the live status stream (`GET {basePath}/{runId}/events`,
 * `text/event-stream`). Each event's `id:` is the run's version.
 */
export const LIVE_EVENTS = Object.freeze({
  /** First event of every connection: the status document ({@link RunSnapshotEvent}). */
  snapshot: 'snapshot',
  /** A change: the run after it and the stages changed since the previous event ({@link RunUpdateEvent}). */
  update: 'update',
  /** The run is finished; the server closes the stream and the subscriber does not reconnect ({@link RunEndEvent}). */
  end: 'end',
} as const)

/** The `data:` of a `snapshot` event: the status document, exactly as `GET /status` returns it. */
export const RunSnapshotEvent = RunStatusResponse
/**
 * The `data:` of a `snapshot` event.
 * @interface
 */
export type RunSnapshotEvent = z.infer<typeof RunSnapshotEvent>

/**
 * A stage in an `update` event: as stored, except that `output` is absent when it is unchanged
 * since this stream last sent it (only on streams opened with `?outputs=changed`, which
 * `subscribeToRun` asks for); the subscriber keeps the output it has.
 */
export const RunUpdateStage = StageOutputRecord.extend({
  /** The stage's output; absent when unchanged since this stream sent it (keep the one you have). */
  output: StageOutputRecord.shape.output.optional(),
})
/**
 * A stage in an `update` event.
 * @interface
 */
export type RunUpdateStage = z.infer<typeof RunUpdateStage>

/**
 * The `data:` of an `update` event: the run after the change and every stage changed since the
 * previous event, as stored. Changes a few milliseconds apart may share one event; events are
 * never reordered. A subscriber replaces its run and merges the stages by `stageNumber`; a
 * stage without `output` keeps the output the subscriber has ({@link mergeRunUpdate}).
 */
export const RunUpdateEvent = z.object({
  /** The run as stored after the change. */
  run: PipelineRunRecord,
  /** The stages changed since the previous event, ordered by stage number. */
  stages: z.array(RunUpdateStage),
})
/**
 * The `data:` of an `update` event.
 * @interface
 */
export type RunUpdateEvent = z.infer<typeof RunUpdateEvent>

/** The `data:` of the `end` event: the finished run as stored. */
export const RunEndEvent = z.object({
  /** The run as stored, in a final status. */
  run: PipelineRunRecord,
})
/**
 * The `data:` of the `end` event.
 * @interface
 */
export type RunEndEvent = z.infer<typeof RunEndEvent>

/**
 * Builds the path of a run's live status stream, URL-encoding the run id.
 *
 * @example
 * ```ts
 * import { runEventsPath } from 'pipeline-status-sdk'
 * runEventsPath('run_1') // '/api/pipeline/run_1/events'
 * ```
 */
export function runEventsPath(runId: string, basePath: string = DEFAULT_BASE_PATH): string {
  if (runId === '') throw new TypeError('The events route needs a run id')
  return routePath('events', runId, basePath)
}

/**
 * Applies an `update` event to a status document: the run is replaced, each changed stage
 * replaces the stage of its number (or is added), and stages stay ordered by number. A stage sent
 * without `output` (unchanged) keeps the output it had (`null` for a stage not seen before). Pure:
 * the inputs are not changed.
 *
 * @example
 * ```ts
 * import { mergeRunUpdate, type RunStatusResponse, type RunUpdateEvent } from 'pipeline-status-sdk'
 * declare const current: RunStatusResponse // what the page shows
 * declare const update: RunUpdateEvent // an `update` event's data: the run and the stages that changed
 * const next = mergeRunUpdate(current, update)
 * ```
 */
export function mergeRunUpdate(current: RunStatusResponse | undefined, update: RunUpdateEvent): RunStatusResponse {
  const stages = new Map((current?.stages ?? []).map((stage) => [stage.stageNumber, stage]))
  for (const stage of update.stages) {
    const { output, ...rest } = stage
    stages.set(stage.stageNumber, { ...rest, output: output === undefined ? (stages.get(stage.stageNumber)?.output ?? null) : output })
  }
  // Whatever else the document carries (the server's catalogue) stays as the snapshot sent it.
  return { ...current, run: update.run, stages: [...stages.values()].sort((a, b) => a.stageNumber - b.stageNumber) }
}
