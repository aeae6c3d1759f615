/**
 * What `runPipeline` resolves: the run's summary, its stages, and the warnings of what was not
 * delivered or was changed to be deliverable.
 */
import type { CompleteRunResponse } from '../contract/records.js'
import type { FinalStatus, StageStatus } from '../contract/status.js'
import type { QueuedDelivery, UpdateOutcome } from './delivery.js'
import { type DeadLetter, type EntrySubject, subjectOf } from './outbox/entry.js'
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
   * Problems that did not stop the run: an output the client had to change, an update that
   * was not delivered (one line per cause, for every kind of update: a stage's status change, the
   * completion, a progress report, a streamed output chunk the outbox dead-lettered after it
   * waited, and an earlier process's update the outbox dead-lettered, named as that process's), a
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
   * delivered (dead-lettered): ...`). A run whose stages all completed can still be `status:
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
  /**
   * Left in the outbox by an earlier process of the run (a restarted runner's outbox delivered
   * it), not sent by this `runPipeline`: named as that process's, and not held against `delivered`.
   */
  earlier?: boolean
}

/** A dead letter of the run as the summary says it; `earlier`: an earlier process left it in the outbox. */
export function undeliveredLetter(letter: DeadLetter, earlier: boolean): Undelivered {
  return { subject: subjectOf(letter), state: 'dead-lettered', reason: letter.reason, ...(earlier ? { earlier } : {}) }
}

/**
 * The one rule of `delivered`: whether this undelivered update makes it `false`. A status change
 * of a stage and the completion do: the server's record of the run misses them. A progress
 * report or a streamed output chunk does not (a later report, the stage's final status and its
 * output stand in for them; their warning says what was lost), nor does an earlier process's update.
 */
export function countsAgainstDelivered(update: Undelivered): boolean {
  return update.earlier !== true && update.subject.kind !== 'progress' && update.subject.kind !== 'output'
}

/** The summary's `delivered`: no update of this run is undelivered by {@link countsAgainstDelivered}, and none still waits in the outbox. */
export function allDelivered(undelivered: readonly Undelivered[], stillQueued: number): boolean {
  return stillQueued === 0 && !undelivered.some(countsAgainstDelivered)
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
 * One warning per cause: `Stage 1 PROCESSING was not delivered (failed): HTTP 404 run_not_found`
 * for a single update, `11 updates were not delivered (failed): HTTP 401 unauthorized: ...
 * (stage 1 PROCESSING, ..., the completion)` when several failed the same way.
 */
export function undeliveredWarnings(undelivered: readonly Undelivered[]): string[] {
  const byCause = new Map<string, Undelivered[]>()
  for (const update of undelivered) {
    const key = `${update.state}\u0000${update.reason}`
    byCause.set(key, [...(byCause.get(key) ?? []), update])
  }
  return [...byCause.values()].map((updates) => {
    const [first] = updates as [Undelivered, ...Undelivered[]]
    if (updates.length === 1) {
      const what = words(first)
      return `${what.charAt(0).toUpperCase()}${what.slice(1)} was not delivered (${first.state}): ${first.reason}`
    }
    return `${updates.length} updates were not delivered (${first.state}): ${first.reason} (${updates.map(words).join(', ')})`
  })
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
