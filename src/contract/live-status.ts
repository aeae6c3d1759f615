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
  /**
   * The run is finished ({@link RunEndEvent}). A run's stream closes after it and the subscriber
   * does not reconnect; a set stream stays open (a `run=` stream closes after every listed run ended).
   */
  end: 'end',
  /** One applied chunk of a stage's streamed output ({@link StageOutputEvent}); never in a set stream's `summary` view. */
  output: 'output',
  /** Set streams only: a run stopped matching the stream's filters (a tag removed, a status filter left) ({@link RunLeaveEvent}). */
  leave: 'leave',
  /** Set streams only: every run of the stream's first membership was sent as a `snapshot` ({@link SetStreamReadyEvent}). */
  ready: 'ready',
} as const)

/** What one cause of {@link STREAM_CLOSED_CAUSES} is. */
export interface StreamClosedCauseSpec {
  /** Which streams send it: `run`, a run's own stream (`GET {base}/{runId}/events`); `set`, set streams (`GET {base}/events`). */
  readonly streams: readonly ('run' | 'set')[]
  /** Whether a set stream's comment names the member run (a run's stream always names its run). */
  readonly setNamesRun: boolean
  /** What it means and what the reconnect gets, for the OpenAPI document and the docs. */
  readonly meaning: string
}

/**
 * Why the server ends a live stream before its run's `end`, for a reason of its own: it sends the
 * comment `: closed <cause> <runId>` (`: closed <cause>` where no run is named) right before the
 * stream ends. A comment, not an event: `end` means the run finished and the subscriber stops for
 * good, while after these the package's subscribers stop where reconnecting cannot help
 * (`deleted`, `not-admitted`, `credential-expired` with a read token: `RunStreamClosedError`) and
 * otherwise reconnect as after any drop, the cause kept as that of `reconnecting`. Shutdown and a reader too far behind
 * end a stream without one. The server's streams and the OpenAPI document both read this table,
 * so a cause cannot be sent without being described. Internal (no entry exports it).
 */
export const STREAM_CLOSED_CAUSES = {
  'not-admitted': {
    streams: ['run', 'set'],
    setNamesRun: true,
    meaning:
      "the request's credential no longer covers the run as it now is (a tag read token whose tag the run lost, a run that left the app's `listScope`); the change is not sent, and the reconnect is judged afresh (refused: `401 invalid_read_token`, or the app's answer)",
  },
  'update-unavailable': {
    streams: ['run', 'set'],
    setNamesRun: true,
    meaning:
      "the next `update` could not be made (a stage created or restarted, streamed and finished between two of the server's reads of the run without its text; a rare race); the reconnect resumes with `Last-Event-ID` or gets a fresh snapshot, so nothing is lost",
  },
  'credential-expired': {
    streams: ['run', 'set'],
    setNamesRun: false,
    meaning:
      "the credential the stream was opened with expired: a read token, or the app's session whose `expiresAt` its `authorize` hook answered with; the stream ends at that instant whether or not the run changed. The reconnect with the same token is `401 invalid_read_token`; a session's asks `authorize` again (an `expiresAt` already past is `401 authentication_required`)",
  },
  deleted: {
    streams: ['run', 'set'],
    setNamesRun: true,
    meaning:
      "the run is no longer stored: it was deleted while unfinished (by the app or by hand; the retention sweep deletes finished runs only, whose own streams have ended). The reconnect is `404 run_not_found`. A `run=` set stream ends so; a filter set stream's deleted run leaves it (`leave`) instead",
  },
  'membership-failed': {
    streams: ['set'],
    setNamesRun: false,
    meaning:
      "a filter stream's new membership (the runs its window holds) could not be applied after `ready` (an unexpected server error); the reconnect gets fresh snapshots, so nothing is lost",
  },
} as const satisfies Record<StreamClosedCause, StreamClosedCauseSpec>

/**
 * Why the server ended a live stream before `end` (its `: closed <cause>` comment):
 * - `not-admitted`: the credential no longer covers the run as it now is (a tag read token whose
 *   tag the run lost, a run that left the app's `listScope`);
 * - `update-unavailable`: the next `update` could not be made (a rare race; nothing is lost);
 * - `credential-expired`: the read token, or the app's session, the stream was opened with expired;
 * - `deleted`: the run was deleted while unfinished;
 * - `membership-failed`: a filter set stream's new membership could not be applied (a server error).
 *
 * The server's table of causes (internal) is checked against this union when it compiles.
 */
export type StreamClosedCause = 'not-admitted' | 'update-unavailable' | 'credential-expired' | 'deleted' | 'membership-failed'

/** A `: closed` comment as read: the cause and the run it names (`undefined` where it names none). */
export interface StreamClosedComment {
  /** Why the server ended the stream. */
  readonly cause: StreamClosedCause
  /** The run the comment names (a set stream's member; a run's own stream names its run); `undefined` where it names none. */
  readonly runId: string | undefined
}

/**
 * Reads a comment's text (what follows the `:`) as a `: closed <cause> [<runId>]` comment;
 * `undefined` for any other comment, a cause not in {@link STREAM_CLOSED_CAUSES} included (a
 * later server's: that end is then a drop like any other).
 */
export function parseStreamClosedComment(comment: string): StreamClosedComment | undefined {
  const match = /^\s*closed\s+(\S+)(?:\s+(\S+))?\s*$/.exec(comment)
  if (!match || !Object.hasOwn(STREAM_CLOSED_CAUSES, match[1]!)) return undefined
  return { cause: match[1] as StreamClosedCause, runId: match[2] }
}

/**
 * Whether a `: closed` cause ends a subscriber's following of the run at once: reconnecting
 * cannot help. The one rule of every subscriber of the package (the browser/Node subscribers in
 * `src/live`, the runner's run-end watch in `src/client`): `deleted` and `not-admitted` always; an
 * expired read token (`psrt1.…`, the request's `authorization`) is refused again for sure, while
 * an expired session may have been renewed (the reconnect asks `authorize` again).
 */
export function closedStops(cause: StreamClosedCause, authorization: string | null | undefined): boolean {
  if (cause === 'deleted' || cause === 'not-admitted') return true
  return cause === 'credential-expired' && isReadToken(authorization)
}

/** A read token (`psrt1.…`, a run's or a tag's, bare or as `Bearer …`): it names its own expiry, so a new one is needed once it expired. */
function isReadToken(token: string | null | undefined): boolean {
  return token != null && /^(Bearer\s+)?psrt1\./i.test(token)
}

/** The `: closed` comments one kind of stream may end with, described for its OpenAPI response. */
export function describeStreamClosedComments(stream: 'run' | 'set'): string {
  const causes = Object.entries(STREAM_CLOSED_CAUSES as Record<StreamClosedCause, StreamClosedCauseSpec>).filter(([, spec]) => spec.streams.includes(stream))
  const listed = causes
    .map(([cause, spec]) => `\`: closed ${cause}${stream === 'run' || spec.setNamesRun ? ' <runId>' : ''}\`: ${spec.meaning}.`)
    .join(' ')
  const naming = stream === 'run' ? 'naming its run' : 'naming the member run where shown (a comment without one: the stream ended, not one of its runs)'
  return (
    `The server may end the stream before \`end\` for a reason of its own: it then sends the comment \`: closed <cause>\` right before the end, ${naming}. ` +
    'A comment, not an event: `end` means the run finished and the subscriber stops, while after these a subscriber stops where reconnecting cannot help (what each reconnect gets is said below; the package\'s subscribers stop for `deleted`, `not-admitted` and `credential-expired` with a read token) and otherwise reconnects as after any drop. Shutdown and a reader too far behind end a stream without one. ' +
    listed
  )
}

/** The most runs a set stream names with `run=` (`GET {base}/events?run=a&run=b`); more is a 400 naming `run`. */
export const MAX_SET_STREAM_RUNS = 50

/**
 * The views of a set stream (`GET {base}/events?view=`): `full` (the default: `snapshot` data is
 * each run's status document, then `update` and `output` events) or `summary` (what lists and
 * dashboards use: `snapshot` and `update` data are `RunSummary`, no `output` events).
 */
export const SET_STREAM_VIEWS = ['full', 'summary'] as const
/** A view of a set stream. */
export type SetStreamView = (typeof SET_STREAM_VIEWS)[number]

/**
 * The `data:` of an `output` event: one applied chunk of a stage's streamed output. `id:` is the
 * run version the chunk made. Append `text` to the stage's output only when `seq` is the stage's
 * `outputSeq + 1` ({@link applyOutputChunk}).
 */
export const StageOutputEvent = z.object({
  /** The run the chunk belongs to. */
  runId: z.string(),
  /** The stage's number. */
  stageNumber: z.number().int(),
  /** The chunk's `seq` within the stage's current attempt. */
  seq: z.number().int(),
  /** The chunk's text. */
  text: z.string(),
})
/**
 * The `data:` of an `output` event.
 * @interface
 */
export type StageOutputEvent = z.infer<typeof StageOutputEvent>

/** The `data:` of a set stream's `leave` event: the run no longer matches the stream's filters. */
export const RunLeaveEvent = z.object({
  /** The run that left. */
  runId: z.string(),
})
/**
 * The `data:` of a `leave` event.
 * @interface
 */
export type RunLeaveEvent = z.infer<typeof RunLeaveEvent>

/** The `data:` of a set stream's `ready` event, sent once after the first membership's snapshots. */
export const SetStreamReadyEvent = z.object({
  /** How many runs the stream follows now (0 for a filter nothing matches yet). */
  runs: z.number().int(),
})
/**
 * The `data:` of a `ready` event.
 * @interface
 */
export type SetStreamReadyEvent = z.infer<typeof SetStreamReadyEvent>

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

/**
 * Applies an `output` event to a status document: the chunk's text is appended to its stage's
 * output when `seq` is the stage's `outputSeq + 1` (0 for a stage with none) and the stage has no
 * final output yet; otherwise (a chunk already held, one of a previous attempt, a gap the next
 * snapshot or update repairs) the document is returned unchanged. Pure: the inputs are not changed.
 *
 * @example
 * ```ts
 * import { applyOutputChunk, type RunStatusResponse, type StageOutputEvent } from 'pipeline-status-sdk'
 * declare const current: RunStatusResponse // what the page shows
 * declare const chunk: StageOutputEvent // an `output` event's data
 * const next = applyOutputChunk(current, chunk) // the same object when the chunk was not the next one
 * ```
 */
export function applyOutputChunk(current: RunStatusResponse, chunk: StageOutputEvent): RunStatusResponse {
  if (current.run.id !== chunk.runId) return current
  const index = current.stages.findIndex((stage) => stage.stageNumber === chunk.stageNumber)
  if (index === -1) return current
  const stage = current.stages[index]!
  if (stage.status !== 'PROCESSING') return current
  if (chunk.seq !== (stage.outputSeq ?? -1) + 1) return current
  const stages = current.stages.slice()
  stages[index] = { ...stage, output: (chunk.seq === 0 ? '' : (stage.output ?? '')) + chunk.text, outputSeq: chunk.seq }
  return { ...current, stages }
}
