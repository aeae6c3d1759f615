/**
 * What `runPipeline` resolves: the run's summary, its stages, and the warnings of what was not
 * delivered or was changed to be deliverable.
 */
import type { CompleteRunResponse } from '../contract/records.js'
import type { FinalStatus, StageStatus } from '../contract/status.js'
import type { QueuedDelivery, UpdateOutcome } from './delivery.js'
import { type DeadLetter, EARLIER_CHUNK_DEAD_LETTERED, type EntrySubject, subjectOf } from './outbox/entry.js'
import type { RunFinishedEvent } from './run-finished.js'
import type { OutputAlteration } from './stage-output.js'

/** How one stage went. */
export interface StageSummary {
  /** 1-based number of the stage. */
  stageNumber: number
  /** The name from the client's catalogue. */
  stageName: string
  /** `PENDING` for a stage that never started; `COMPLETED` for one skipped as already completed. */
  status: StageStatus
  /** Wall time of the stage function in milliseconds; `undefined` if it never started (or was skipped). */
  durationMs: number | undefined
  /**
   * `'already-completed'`: the stage was not run, because an earlier process of this run had
   * completed it (a restarted runner with the same `runId`: the server held it COMPLETED, or that
   * process's last update of it, still in the outbox, was its COMPLETED). Nothing was reported for
   * it; its entry in `outputs` is its output read back as stored (see
   * `StageContext.previousOutputs`). Absent for a stage this call ran or did not reach.
   */
  skipped?: 'already-completed'
  /** The thrown error's message, for a FAILED stage (its last attempt's). */
  error?: string
  /** How many attempts the stage ran (or was about to run), when it was retried; absent after one. */
  attempts?: number
  /** Whether every update of this stage was delivered or queued in the outbox. */
  reported: boolean
}

/**
 * A stage update the server answered `conflict`: the stage was already final, with another
 * output, which the server kept; this run's output for it was not stored. It happens when the
 * stage was finalized earlier with another output: by a cancel (the app's `POST /cancel` stores
 * unfinished stages CANCELLED without output), by another runner on the same run id, or by a rerun.
 */
export interface StageConflict {
  /** The stage. */
  stageNumber: number
  /** The final status this run sent, which is also the one the server keeps (a conflict repeats a final status). */
  status: FinalStatus
  /**
   * The output this run sent (as serialised and fitted for sending), `null` when it sent none;
   * at most 200 UTF-16 code units, a longer one cut there and ended with `…` (a surrogate pair
   * is never split).
   */
  sentOutput: string | null
  /**
   * The output the server kept, `null` when it has none (e.g. a stage the app's cancel
   * finalized); bounded like `sentOutput`. Read the whole one with `getStatus`.
   */
  storedOutput: string | null
}

/** The longest output in a `StageConflict`, in UTF-16 code units (the `…` comes after). */
export const CONFLICT_OUTPUT_PREVIEW_LENGTH = 200

/** `text` cut to `CONFLICT_OUTPUT_PREVIEW_LENGTH` code units plus `…`, never splitting a surrogate pair. */
export function outputPreview(text: string | null): string | null {
  if (text === null || text.length <= CONFLICT_OUTPUT_PREVIEW_LENGTH) return text
  let end = CONFLICT_OUTPUT_PREVIEW_LENGTH
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end -= 1
  return `${text.slice(0, end)}…`
}

/** What {@link runPipeline} resolves. */
export interface PipelineSummary {
  /** The run that was executed. */
  runId: string
  /**
   * How the run ended: `COMPLETED`, `FAILED` (a stage threw) or `CANCELLED` (the signal
   * aborted), or, when the run was finished by someone else, its status as stored (see
   * `finishedElsewhere`).
   */
  status: FinalStatus
  /** One entry per stage function, in order, also for stages that never started. */
  stages: StageSummary[]
  /**
   * The outputs of the stages that completed, in order: what each stage function returned, and,
   * for a stage skipped as already completed, its stored output read back (see
   * `StageContext.previousOutputs`). The same array `results` gets.
   */
  outputs: unknown[]
  /** Wall time of the whole run in milliseconds. */
  durationMs: number
  /** Why the run failed or was cancelled (the stored reason when it was finished elsewhere). */
  error?: string
  /**
   * Set when the run was finished by someone else while it ran (cancelled by the web app,
   * failed by the stale-run sweeper, completed by `/complete`): the running stage's signal was
   * aborted, no further stage started, no stage update nor completion was sent after it. Also
   * set when the `/complete` itself was refused because the run had just ended elsewhere (its
   * completion is then superseded, not undelivered).
   */
  finishedElsewhere?: RunFinishedEvent
  /**
   * `true` when the run was deleted on the server while it ran (the app deleted it; the run's live
   * stream ended with `: closed deleted`): the running stage's signal was aborted (its reason a
   * `RunDeletedError`), no further stage started, and nothing more was sent for the run (every
   * update, the completion too, would be answered `404 run_not_found`). `status` is then
   * `CANCELLED` and `error` names the deletion; `onRunFinished` is not called (no run is left to
   * have finished).
   */
  deleted?: true
  /**
   * Problems that did not stop the run: an output the client had to change, an update that
   * was not delivered (one line per cause, each kind of update in it named once with a count,
   * `stage 2 progress report ×312`; at most 20 causes, further ones
   * share a last line; for every kind of update: a stage's status change, the
   * completion, a progress report, a streamed output chunk the outbox dead-lettered after it
   * waited, and an earlier process's update the outbox dead-lettered, named as that process's; the
   * chunks of a stage not delivered because an earlier chunk of it was not are one line, naming
   * that chunk and how many followed), a
   * debug output that could not be saved, a `/complete` answered `duplicate` (delivered, but the
   * app's `onRunCompleted` hook had already run with an earlier completion's results, so these
   * did not reach it; or, when an earlier attempt of this `/complete` got no definite answer, both
   * possibilities, see `completion.unansweredAttempt`; also logged once at warn). One line each.
   */
  warnings: string[]
  /**
   * Whether every update of the run (each stage change and the completion) reached the server
   * and was accepted by the time `runPipeline` resolved. `false` when one still waits in the
   * outbox, was dead-lettered (refused for good) or failed; `warnings` says which (for those
   * waiting: how many, and the outbox's directory). An update queued in the outbox during an
   * outage is judged when `runPipeline` resolves, not when it was queued: once the outbox
   * delivered it (a flush, its background redelivery), it counts as delivered; once the outbox
   * dead-lettered it, as not delivered. A progress report or a streamed output chunk lost,
   * refused, or dead-lettered by the outbox after it waited does not make it `false`: a warning
   * names it (`Stage 2 progress report was not delivered (dead-lettered): ...`, `Stage 2 output
   * chunk 3 ...`), and the stage's status changes and final output, which the server keeps
   * instead, are what it judges; one still waiting in the outbox is counted among those waiting.
   * Nor does an update an earlier process of the run left in the outbox (a restarted runner) that
   * the outbox dead-lettered, before this call started or while it ran: it is not this run's, and
   * a warning names it as that process's (`An earlier process's stage 1 PROCESSING was not
   * delivered (dead-lettered): ...`), unless this run relied on it: the pending COMPLETED of a
   * stage it skipped because of it, or the pending FAILED/CANCELLED stage update or `/complete` it
   * was not resumed for. That one is not stored, so it makes this `false`, and its warning says
   * what this run relied on and the fix (a pending COMPLETED, FAILED, CANCELLED or `/complete`
   * dead-lettered before this call started skips nothing and ends nothing: the stage runs again,
   * the run is resumed) (`...; this run skipped stage 1 relying on it, so the
   * stage is not stored as COMPLETED on the server: rerun the run, or report the stage again ...`).
   * A run whose stages all completed can still be `status:
   * 'COMPLETED'` with `delivered: false`: the server then does not know it (e.g. it catalogues
   * fewer stages than the runner).
   */
  delivered: boolean
  /**
   * The stage outputs the client changed so that the stages' status could be stored: an output
   * JSON cannot hold replaced by a placeholder, unstorable characters replaced, or an output cut
   * to the server's body limit. Empty when none was.
   */
  alteredOutputs: OutputAlteration[]
  /**
   * The stage updates the server answered `conflict` (also listed in `warnings`): the stage was
   * already final with another output, which stays; the output sent here was not stored. Empty
   * when none was. Such updates count as delivered.
   */
  conflicts: StageConflict[]
  /**
   * The `/complete` answer (`outcome: 'applied'` when its results reached the app's
   * `onRunCompleted` hook, `'duplicate'` when an earlier completion had, with a warning), the
   * queued delivery, or the error it failed with; absent with `complete: false`. A queued one's
   * outcome, once the outbox delivers it or gives it up (after this summary), goes to the
   * client's `onQueuedCompletion` with the same `idempotencyKey`. `unansweredAttempt`, with
   * `response.outcome: 'duplicate'` only: an earlier attempt of this `/complete` got no definite
   * answer (its cause, e.g. `timed out after 30000 ms`, `ECONNRESET`, `HTTP 502`), so the server
   * may have received it: the `duplicate` may be the answer to this very completion, whose results
   * then reached the hook once, or another party's `/complete` came first. The warning says both.
   */
  completion?: { ok: true; response: CompleteRunResponse | QueuedDelivery; unansweredAttempt?: string } | { ok: false; error: unknown }
}

/**
 * An update of the run that was not delivered, for the summary's warnings and its `delivered`:
 * one lost or refused on its first send, or one the outbox dead-lettered after it waited there.
 */
export interface Undelivered {
  /** What it was: a stage's status change, the completion, a progress report or an output chunk. */
  subject: EntrySubject
  state: UpdateOutcome['state']
  reason: string
  /** The problem `code` of the server's refusal, when it sent one (a dead letter's `code`). */
  code?: string
  /**
   * Left in the outbox by an earlier process of the run (a restarted runner's outbox delivered
   * it), not sent by this `runPipeline`: named as that process's, and not held against
   * `delivered`, unless this run relied on it (`reliedOn`).
   */
  earlier?: boolean
  /**
   * An earlier process's status change this run relied on ({@link EarlierReliance}): how, and
   * what it leaves unstored, for its warning. It counts against `delivered` like this run's own.
   */
  reliedOn?: string
}

/**
 * What a restarted `runPipeline` relied on of the updates an earlier process left pending in the
 * outbox when it started (restart-attempts.ts): the stages it skipped because that process's last
 * pending update of each was its COMPLETED (`from: 'outbox'`), and whether it did not resume the
 * run because that process's pending FAILED or CANCELLED stage update or `/complete` ends it.
 */
export interface EarlierReliance {
  /** The stages skipped as already completed on the strength of a pending COMPLETED alone. */
  skipped: ReadonlySet<number>
  /** The run was not resumed because the earlier process's pending updates end it. */
  ended: boolean
}

/**
 * A dead letter of the run as the summary says it. `earlier`: an earlier process left it in the
 * outbox, with what this run relied on of that process's pending updates ({@link relianceOn}
 * says whether this letter is one of them); `false`: this run's own.
 */
export function undeliveredLetter(letter: DeadLetter, earlier: EarlierReliance | false): Undelivered {
  const subject = subjectOf(letter)
  const update: Undelivered = { subject, state: 'dead-lettered', reason: letter.reason, ...(letter.code === undefined ? {} : { code: letter.code }) }
  if (earlier === false) return update
  const reliedOn = relianceOn(subject, earlier)
  return { ...update, earlier: true, ...(reliedOn === undefined ? {} : { reliedOn }) }
}

/**
 * Whether this run relied on an earlier process's update (its warning's words), else `undefined`:
 * the pending COMPLETED of a stage it skipped because of it, or, when that process's pending
 * updates end the run and this run was not resumed because of them, its pending FAILED or
 * CANCELLED stage update or `/complete`. Dead-lettered, it is not stored, yet this run's outcome
 * assumed it would be.
 */
function relianceOn(subject: EntrySubject, on: EarlierReliance): string | undefined {
  if (subject.kind === 'status' && subject.status === 'COMPLETED' && on.skipped.has(Number(subject.stageNumber))) {
    return (
      `this run skipped stage ${subject.stageNumber} relying on it, so the stage is not stored as COMPLETED on the server: ` +
      `rerun the run, or report the stage again (markStageComplete with its output)`
    )
  }
  const ending = subject.kind === 'completion' || (subject.kind === 'status' && (subject.status === 'FAILED' || subject.status === 'CANCELLED'))
  if (on.ended && ending) {
    return `this run was not resumed relying on it, so the server does not hold it: rerun the run, or send it again (${subject.kind === 'completion' ? 'completeRun' : 'the mark* method of that status'})`
  }
  return undefined
}

/**
 * The one rule of `delivered`: whether this undelivered update makes it `false`. A status change
 * of a stage and the completion do: the server's record of the run misses them. A progress
 * report or a streamed output chunk does not (a later report, the stage's final status and its
 * output stand in for them; their warning says what was lost), nor does an earlier process's
 * update, unless this run relied on it (a stage it skipped, or the run end it was not resumed for:
 * {@link EarlierReliance}), which misses from the server's record as this run's own would.
 */
export function countsAgainstDelivered(update: Undelivered): boolean {
  if (update.subject.kind === 'progress' || update.subject.kind === 'output') return false
  return update.earlier !== true || update.reliedOn !== undefined
}

/** The summary's `delivered`: no update of this run is undelivered by {@link countsAgainstDelivered}, and none still waits in the outbox. */
export function allDelivered(undelivered: UndeliveredLog, stillQueued: number): boolean {
  return stillQueued === 0 && !undelivered.againstDelivered
}

/** `stage 2 COMPLETED`, `the completion`, `stage 2 progress report`, `stage 2 output chunk 3`; `an earlier process's stage 1 PROCESSING`. */
function words({ subject, earlier }: Undelivered): string {
  const what = (() => {
    switch (subject.kind) {
      case 'completion':
        return earlier ? 'completion' : 'the completion'
      case 'status':
        return `stage ${subject.stageNumber} ${subject.status}`
      case 'progress':
        return `stage ${subject.stageNumber} progress report`
      case 'output':
        return `stage ${subject.stageNumber} output chunk ${subject.seq}`
      case 'stage-update':
        return earlier ? 'stage update' : 'a stage update'
    }
  })()
  return earlier ? `an earlier process's ${what}` : what
}

/**
 * Whether an undelivered output chunk follows on from an earlier chunk of its stage that was not
 * delivered: refused `output_out_of_order` (the server applies chunks only in order), or
 * dead-lettered unsent by the outbox for that reason ({@link EARLIER_CHUNK_DEAD_LETTERED}).
 */
function followsOn(update: Undelivered): boolean {
  return update.subject.kind === 'output' && (update.code === 'output_out_of_order' || update.reason === EARLIER_CHUNK_DEAD_LETTERED)
}

/** The chunk numbers of a kind or a cascade: the lowest and the highest (a `seq` that is not a number is left out). */
interface SeqRange {
  min: number
  max: number
}

function widen(range: SeqRange | undefined, seq: string): SeqRange | undefined {
  const n = Number(seq)
  if (!Number.isFinite(n)) return range
  return range ? { min: Math.min(range.min, n), max: Math.max(range.max, n) } : { min: n, max: n }
}

/** `chunk 4`, `chunks 4 to 6`; empty when no chunk had a number. */
function chunkRange(range: SeqRange | undefined): string {
  if (!range) return ''
  return range.min === range.max ? `chunk ${range.min}` : `chunks ${range.min} to ${range.max}`
}

/**
 * One kind of update in a line, named once with its count: every status change of a stage, the
 * completion, a stage's progress reports, a stage's output chunks (with their range), each apart
 * for an earlier process's. Their number is bounded by the catalogue, not by the reports sent.
 */
interface KindCount {
  /** The first update of the kind, whose words name it. */
  first: Undelivered
  count: number
  /** Output chunks: their range. */
  seqs?: SeqRange | undefined
}

/** The kind's key: an output chunk's without its `seq` (a stage's chunks are one kind). */
function kindKey(update: Undelivered): string {
  return update.subject.kind === 'output' ? `${update.earlier === true}\u0000output\u0000${update.subject.stageNumber}` : words(update)
}

/** `stage 2 progress report ×312`, `stage 2 output chunk ×3 (chunks 4 to 9)`; one update: its words (`stage 2 output chunk 4`). */
function kindWords({ first, count, seqs }: KindCount): string {
  if (count === 1) return words(first)
  if (first.subject.kind !== 'output') return `${words(first)} ×${count}`
  const whose = first.earlier ? "an earlier process's " : ''
  const range = chunkRange(seqs)
  return `${whose}stage ${first.subject.stageNumber} output chunk ×${count}${range === '' ? '' : ` (${range})`}`
}

/** The updates of one warning line: how many, and of what kinds. */
class Kinds {
  readonly #kinds = new Map<string, KindCount>()
  count = 0

  add(update: Undelivered): void {
    this.count++
    const key = kindKey(update)
    const known = this.#kinds.get(key)
    const seq = update.subject.kind === 'output' ? update.subject.seq : undefined
    if (known) {
      known.count++
      if (seq !== undefined) known.seqs = widen(known.seqs, seq)
    } else {
      this.#kinds.set(key, { first: update, count: 1, ...(seq === undefined ? {} : { seqs: widen(undefined, seq) }) })
    }
  }

  /** `stage 1 PROCESSING, stage 2 progress report ×312, the completion`. */
  toString(): string {
    return [...this.#kinds.values()].map(kindWords).join(', ')
  }
}

/** The updates not delivered for one cause (or one relied-on update): the first says the cause. */
interface CauseLine {
  type: 'cause'
  first: Undelivered
  kinds: Kinds
}

/** A chunk cascade: the first chunk of a stage not delivered, and how many later ones were not because of it. */
interface CascadeLine {
  type: 'cascade'
  first: Undelivered & { subject: { kind: 'output' } }
  after: number
  seqs: SeqRange | undefined
  states: Set<Undelivered['state']>
}

/** `2 later chunks of the streamed output of stage 2 (chunks 4 to 5) were not delivered (dead-lettered) because stage 2 output chunk 3 was not: ...`. */
function cascadeWarning({ first, after, seqs, states }: CascadeLine): string {
  const range = chunkRange(seqs)
  const whose = first.earlier ? "an earlier process's " : ''
  return (
    `${after} later chunk${after === 1 ? '' : 's'} of the streamed output of ${whose}stage ${first.subject.stageNumber}${range === '' ? '' : ` (${range})`} ` +
    `${after === 1 ? 'was' : 'were'} not delivered (${[...states].join(', ')}) because ${words(first)} was not: ` +
    "the server applies a stage's chunks only in order, so none after a missing one can be stored (output_out_of_order)"
  )
}

/**
 * How many causes of undelivered updates a run's summary names on lines of their own; the updates
 * of later causes share one last line. With the kinds named once each with a count, this bounds
 * what a run keeps of its undelivered updates, however many reports it sends.
 */
export const UNDELIVERED_CAUSE_LINES = 20

/**
 * The undelivered updates of one run, kept as its summary says them, in memory bounded by the
 * catalogue and {@link UNDELIVERED_CAUSE_LINES}, not by how many updates were sent: one warning
 * per cause, each kind of update in it named once with a count (`312 updates were not delivered
 * (failed): ... (stage 2 progress report ×312)`); `Stage 1 PROCESSING was not delivered (failed):
 * HTTP 404 run_not_found` for a single update. An earlier process's update this run relied on is
 * a line of its own, saying so. The chunks of a stage not delivered because an earlier chunk of
 * it was not (refused `output_out_of_order`, or dead-lettered unsent for it: {@link followsOn})
 * are one line after that chunk's, naming it and how many followed, whatever the offsets in each
 * refusal's detail. Past {@link UNDELIVERED_CAUSE_LINES} causes, the updates of further causes
 * are one last line, with the first of those causes.
 */
export class UndeliveredLog {
  readonly #lines: (CauseLine | CascadeLine)[] = []
  readonly #byCause = new Map<string, CauseLine>()
  /** Per stage (and process), the last chunk not delivered that did not follow on from a known one, and its cascade once one follows. */
  readonly #firsts = new Map<string, { first: CascadeLine['first']; cascade?: CascadeLine }>()
  #causes = 0
  /** The updates of the causes past {@link UNDELIVERED_CAUSE_LINES}. */
  #others: { first: Undelivered; kinds: Kinds } | undefined
  #againstDelivered = false

  /** Whether one of the updates makes the summary's `delivered` `false` ({@link countsAgainstDelivered}). */
  get againstDelivered(): boolean {
    return this.#againstDelivered
  }

  add(update: Undelivered): void {
    if (countsAgainstDelivered(update)) this.#againstDelivered = true
    if (update.subject.kind === 'output') {
      const stage = `${update.earlier === true}\u0000${update.subject.stageNumber}`
      const known = this.#firsts.get(stage)
      if (known && followsOn(update)) {
        if (!known.cascade) {
          known.cascade = { type: 'cascade', first: known.first, after: 0, seqs: undefined, states: new Set() }
          this.#lines.push(known.cascade)
        }
        known.cascade.after++
        known.cascade.seqs = widen(known.cascade.seqs, update.subject.seq)
        known.cascade.states.add(update.state)
        return
      }
      // A new first: a chunk refused for another cause, or the first out-of-order refusal with no earlier chunk named.
      this.#firsts.set(stage, { first: update as CascadeLine['first'] })
    }
    // A relied-on update says what this run assumed of it: a line of its own (there are at most as many as the earlier process left).
    if (update.reliedOn !== undefined) {
      const kinds = new Kinds()
      kinds.add(update)
      this.#lines.push({ type: 'cause', first: update, kinds })
      return
    }
    const key = `${update.state}\u0000${update.reason}`
    const line = this.#byCause.get(key)
    if (line) {
      line.kinds.add(update)
    } else if (this.#causes < UNDELIVERED_CAUSE_LINES) {
      this.#causes++
      const created: CauseLine = { type: 'cause', first: update, kinds: new Kinds() }
      created.kinds.add(update)
      this.#byCause.set(key, created)
      this.#lines.push(created)
    } else {
      this.#others ??= { first: update, kinds: new Kinds() }
      this.#others.kinds.add(update)
    }
  }

  /** The summary's warnings, one per line, in the order their first update came. */
  warnings(): string[] {
    const lines = this.#lines.map((line) => {
      if (line.type === 'cascade') return cascadeWarning(line)
      const { first, kinds } = line
      if (kinds.count === 1) {
        const what = words(first)
        return `${what.charAt(0).toUpperCase()}${what.slice(1)} was not delivered (${first.state}): ${first.reason}${first.reliedOn === undefined ? '' : `; ${first.reliedOn}`}`
      }
      return `${kinds.count} updates were not delivered (${first.state}): ${first.reason} (${kinds})`
    })
    if (this.#others) {
      const { first, kinds } = this.#others
      lines.push(
        `${kinds.count} more update${kinds.count === 1 ? ' was' : 's were'} not delivered for other causes, the first (${first.state}): ${first.reason} (${kinds})`,
      )
    }
    return lines
  }
}

/** The warnings of `undelivered`, in order ({@link UndeliveredLog}). */
export function undeliveredWarnings(undelivered: Iterable<Undelivered>): string[] {
  const log = new UndeliveredLog()
  for (const update of undelivered) log.add(update)
  return log.warnings()
}

/** A `/complete` answered `duplicate`, as {@link duplicateCompletion} says it. */
export interface DuplicateCompletion {
  /** The one warning of it, for the summary's `warnings` and the log (at warn). */
  warning: string
  /**
   * The cause of an earlier attempt of this completion that got no definite answer, when one did:
   * the `duplicate` may then be the server's answer to that attempt (the hook ran with these results).
   */
  unansweredAttempt?: string
}

/**
 * The one rule of a `/complete` answered `duplicate`, for `runPipeline` and `onQueuedCompletion`
 * alike; `undefined` for any other answer. Delivered, but the run's completion had already been
 * received. Who sent that one is known only when no earlier attempt of this completion went
 * unanswered: then it was another party's (`otherCause` says when it came), the app's
 * `onRunCompleted` hook ran with its results, and these did not reach it. When an attempt got no
 * definite answer (`unanswered`: its cause, a timeout, a reset, a gateway's 502/504), the server
 * may have received it and run the hook with these very results, and this `duplicate` be its
 * answer to the retry: the warning says both possibilities, in the Python client's words.
 */
export function duplicateCompletion(response: CompleteRunResponse, unanswered: string | undefined, otherCause: string): DuplicateCompletion | undefined {
  if (response.outcome !== 'duplicate') return undefined
  if (unanswered === undefined) {
    return {
      warning: `The run's completion had already been received (outcome "duplicate"), so these results did not reach the app's onRunCompleted hook, which ran once with the earlier /complete's: ${otherCause}`,
    }
  }
  return {
    warning:
      `The run's completion was answered "duplicate" after an earlier attempt of it got no definite answer (${unanswered}), so that attempt may have been received: ` +
      "if it was, the app's onRunCompleted hook ran once with these results; if another /complete of this run " +
      '(another runner or process on the same run id, or the web app) was received first, these results did not reach it',
    unansweredAttempt: unanswered,
  }
}

export function describeAlteration(alteration: OutputAlteration): string {
  if (alteration.kind === 'unserialisable') {
    return `Stage ${alteration.stageNumber} output cannot be serialised as JSON (${alteration.reason ?? 'unknown reason'}); a placeholder was sent instead`
  }
  if (alteration.kind === 'replaced') {
    return `Stage ${alteration.stageNumber} output: ${alteration.replacedCharacters ?? 0} character(s) PostgreSQL cannot store (NUL, lone surrogates) replaced with U+FFFD`
  }
  const limit = alteration.maxBodyBytes === undefined ? '' : ` (${alteration.maxBodyBytes} bytes)`
  return `Stage ${alteration.stageNumber} output truncated from ${alteration.originalBytes} to ${alteration.sentBytes} bytes to fit the server's body limit${limit}; it ends with the truncation marker`
}
