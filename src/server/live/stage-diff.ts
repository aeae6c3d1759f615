/**
 * What a stream last sent of one run, and so what it sends next (DESIGN.md "Live status",
 * "Timing, attempts and streamed output"; docs/contract.md "Streamed output"): the `update` with
 * only the stages changed since, the run's streamed-output chunks as `output` events, and their
 * order. ONE rule for both kinds of stream: a run's own stream (`OpenStream`, event-stream.ts)
 * and each member of a set stream's `full` view (set-stream.ts) keep one {@link StageDiff} per
 * run and write the events it plans, each with its own `id:` form. The output is kept apart and
 * compared by value, never copied into the JSON of the rest. Not importable outside this package.
 */
import type { RunUpdateEvent, RunUpdateStage, StageOutputEvent } from '../../contract/live-status.js'
import type { StageOutputRecord } from '../../contract/records.js'
import { isFinalStatus } from '../../contract/status.js'
import { toStatusResponse } from '../../core/state-to-records.js'
import type { OutputChunkRow, RunSnapshot } from '../../core/state.js'

/** One event a stream sends about a run, and the run version it stands for (its `id:`). */
export type PlannedEvent =
  | { readonly event: 'update'; readonly data: RunUpdateEvent; readonly version: number }
  | { readonly event: 'output'; readonly data: StageOutputEvent; readonly version: number }

/** What a stream last sent of one stage: the output apart, so it is compared, never copied. */
interface SentStage {
  /** The stage without its output, as JSON. */
  readonly rest: string
  /** The output as sent (the snapshot's own string, shared by every stream of the run). */
  readonly output: string | null
  /** Whether the output is the stage's streamed text, which travels as `output` events. */
  readonly streamed: boolean
  readonly status: StageOutputRecord['status']
  readonly outputSeq: number | null
}

/** The numbers of the snapshot's stages whose output is their streamed text (`Store.getRun` marks them). */
export function streamedStages(snapshot: RunSnapshot): Set<number> {
  return new Set(snapshot.stages.filter((stage) => stage.streamedOutput === true).map((stage) => stage.stageNumber))
}

/** What one stream last sent of one run: the version and each stage. */
export class StageDiff {
  #version = -1
  #stages = new Map<number, SentStage>()
  readonly #omitUnchangedOutputs: boolean

  /**
   * `omitUnchangedOutputs`: an `update` leaves out a stage's `output` when this stream already
   * sent that output (a run's stream opened with `?outputs=changed`; set streams send it whole).
   */
  constructor(omitUnchangedOutputs = false) {
    this.#omitUnchangedOutputs = omitUnchangedOutputs
  }

  /** The version this stream sent the state of; -1 before it sent any. */
  get version(): number {
    return this.#version
  }

  /** Records a snapshot as sent: its version and its document's stages (`streamed`: {@link streamedStages}). */
  remember(version: number, stages: readonly StageOutputRecord[], streamed: ReadonlySet<number>): void {
    this.#version = version
    this.#stages = new Map(
      stages.map(({ output, ...rest }) => [
        rest.stageNumber,
        { rest: JSON.stringify(rest), output, streamed: streamed.has(rest.stageNumber), status: rest.status, outputSeq: rest.outputSeq },
      ]),
    )
  }

  /** A resume from `from` (a `Last-Event-ID` the stream can serve): no stage counts as sent, so the next update holds them all. */
  resumeAt(from: number): void {
    this.#version = from
    this.#stages = new Map()
  }

  /**
   * The events from the version sent to the snapshot's, then records the snapshot as sent:
   * `chunks` (the run's, any range; those after the version sent and up to the snapshot's apply)
   * as `output` events, and an `update` unless every version between was a chunk. When the
   * subscriber appends every chunk as it is (each stage with chunks is `PROCESSING` at the
   * `outputSeq` before them, as this stream last sent it), the chunks go first and the `update`
   * (the snapshot's version) after them. Otherwise (a stage created or restarted since, a resume)
   * the `update` goes first, at the version before the first chunk, with each such stage's
   * `outputSeq` as it was before its first chunk (and its output cleared when that chunk is `seq`
   * 0), so the chunks then apply in order; a stage finished since gets its whole text in the
   * update, and an update carrying a stage's whole text with `outputSeq` k is followed by none of
   * that stage's chunks of `seq` ≤ k (a subscriber appending every chunk repeats nothing; the
   * update's `id:` is then the version before the first chunk still sent, or the snapshot's); when
   * the last chunk sent is older than the snapshot, an `update` without stages (the run) follows
   * at the snapshot's version, so the last `id:` is always the version whose state was sent.
   *
   * `undefined` (nothing recorded) when the update cannot be made: a stage created or restarted,
   * streamed and finished between two reads, read without its text (`streamedText: false`),
   * which that update would carry. Rare; the stream closes and its subscriber reconnects.
   */
  changes(snapshot: RunSnapshot, chunks: readonly OutputChunkRow[], resuming = false): PlannedEvent[] | undefined {
    const version = snapshot.version ?? 0
    const from = this.#version
    const batch = chunks.filter((chunk) => chunk.version > from && chunk.version <= version)
    const document = toStatusResponse(snapshot)
    const streamed = streamedStages(snapshot)
    const firstSeq = new Map<number, number>()
    for (const chunk of batch) if (!firstSeq.has(chunk.stageNumber)) firstSeq.set(chunk.stageNumber, chunk.seq)
    const appends =
      !resuming &&
      [...firstSeq].every(([stageNumber, seq]) => {
        const sent = this.#stages.get(stageNumber)
        return sent?.status === 'PROCESSING' && (sent.outputSeq ?? -1) === seq - 1
      })
    const runId = document.run.id
    let events: PlannedEvent[]
    if (appends) {
      events = batch.map((chunk): PlannedEvent => ({ event: 'output', data: outputEvent(runId, chunk), version: chunk.version }))
      // Only chunks since the last event: no `update` (its text travelled as `output` events).
      if (batch.length !== version - from) events.push({ event: 'update', data: this.#update(document, streamed), version })
    } else {
      const unreadable = snapshot.streamedText === false &&
        snapshot.stages.some((stage) => isFinalStatus(stage.status) && streamed.has(stage.stageNumber) && firstSeq.has(stage.stageNumber))
      if (unreadable) return undefined
      const update = this.#update(document, streamed, firstSeq)
      // A stage the update carries whole (its text with `outputSeq` k) takes no chunk of seq ≤ k:
      // a subscriber appending every chunk would repeat that text.
      const whole = new Map<number, number>()
      for (const stage of update.stages) {
        if (typeof stage.output === 'string' && stage.outputSeq !== null) whole.set(stage.stageNumber, stage.outputSeq)
      }
      const kept = batch.filter((chunk) => chunk.seq > (whole.get(chunk.stageNumber) ?? -1))
      const first = kept[0]
      events = [
        { event: 'update', data: update, version: first ? first.version - 1 : version },
        ...kept.map((chunk): PlannedEvent => ({ event: 'output', data: outputEvent(runId, chunk), version: chunk.version })),
      ]
      // Changes after the last chunk (already in the update): an update without stages carries the
      // snapshot's version as the last `id:`, so the subscriber's Last-Event-ID is the state it holds.
      const last = kept.at(-1)
      if (last && last.version < version) events.push({ event: 'update', data: { run: document.run, stages: [] }, version })
    }
    this.remember(version, document.stages, streamed)
    return events
  }

  /**
   * The `update` of a document: the run and each stage changed since this stream last sent it
   * (every stage when it sent none). A stage showing its streamed text has no `output` (the text
   * travels as `output` events); with `firstSeq` (the update goes before these chunks) such a
   * stage's `outputSeq` is the one before its first chunk, and a finished one carries its text.
   */
  #update(document: RunUpdateEvent, streamed: ReadonlySet<number>, firstSeq?: ReadonlyMap<number, number>): RunUpdateEvent {
    const changed: RunUpdateStage[] = []
    for (const stage of document.stages) {
      const sent = this.#stages.get(stage.stageNumber)
      const { output, ...stored } = stage
      const first = firstSeq?.get(stage.stageNumber)
      let rest: Omit<RunUpdateStage, 'output'> = stored
      // `undefined`: the update leaves the output out.
      let shown: string | null | undefined = output
      if (streamed.has(stage.stageNumber)) {
        if (first === undefined || stage.status === 'PROCESSING') shown = undefined
        if (first !== undefined && stage.status === 'PROCESSING') {
          rest = { ...stored, outputSeq: first === 0 ? null : first - 1 }
          // Chunk 0 starts the text afresh: what the subscriber holds (another attempt's) goes.
          if (first === 0) shown = null
        }
      }
      const outputChanged = shown !== undefined && (sent === undefined || sent.streamed || sent.output !== shown)
      if (sent !== undefined && first === undefined && !outputChanged && sent.rest === JSON.stringify(rest)) continue
      // An output this stream already sent is left out when the subscriber asked so (docs/contract.md).
      changed.push(shown !== undefined && (outputChanged || !this.#omitUnchangedOutputs) ? { ...rest, output: shown } : rest)
    }
    return { run: document.run, stages: changed }
  }
}

/** The `output` event of one chunk of `runId`. */
function outputEvent(runId: string, chunk: OutputChunkRow): StageOutputEvent {
  return { runId, stageNumber: chunk.stageNumber, seq: chunk.seq, text: chunk.text }
}
