/**
 * What `runPipeline` resolves: the run's summary, its stages, and the warnings of what was not
 * delivered or was changed to be deliverable.
 */
import type { CompleteRunResponse } from '../contract/records.js'
import type { FinalStatus, StageStatus } from '../contract/status.js'
import type { QueuedDelivery, UpdateOutcome } from './delivery.js'
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
   * was not delivered, a debug output that could not be saved, a `/complete` answered
   * `duplicate` (delivered, but the app's `onRunCompleted` hook had already run with an earlier
   * completion's results, so these did not reach it; also logged once at warn). One line each.
   */
  warnings: string[]
  /**
   * Whether every update of the run (each stage change and the completion) reached the server
   * and was accepted by the time `runPipeline` resolved. `false` when one still waits in the
   * outbox, was dead-lettered (refused for good) or failed; `warnings` says which (for those
   * waiting: how many, and the outbox's directory). An update queued in the outbox during an
   * outage is judged when `runPipeline` resolves, not when it was queued: once the outbox
   * delivered it (a flush, its background redelivery), it counts as delivered; once the outbox
   * dead-lettered it, as not delivered. Progress reports and streamed output chunks lost or
   * refused do not make it `false` (their own warnings say so), but one still waiting in the
   * outbox is counted among those waiting. A run whose stages all completed can still be `status: 'COMPLETED'` with `delivered: false`: the
   * server then does not know it (e.g. it catalogues fewer stages than the runner).
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
   * queued delivery, or the error it failed with; absent with `complete: false`.
   */
  completion?: { ok: true; response: CompleteRunResponse | QueuedDelivery } | { ok: false; error: unknown }
}

/** An update of the run that was not delivered, for the summary's warnings. */
export interface Undelivered {
  /** `Stage 2 COMPLETED`, `The completion`. */
  what: string
  state: UpdateOutcome['state']
  reason: string
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
    if (updates.length === 1) return `${first.what} was not delivered (${first.state}): ${first.reason}`
    const which = updates.map((u) => u.what.replace(/^The /, 'the ').replace(/^Stage /, 'stage ')).join(', ')
    return `${updates.length} updates were not delivered (${first.state}): ${first.reason} (${which})`
  })
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
