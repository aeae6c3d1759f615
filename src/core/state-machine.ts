/**
 * The one place where the semantics of docs/design.md ("Semantics") live. Pure: no I/O, no clock (callers pass
 * `now`), no randomness. The Prisma store and the in-memory store both call these functions
 * inside their own transaction and persist exactly what they return.
 */
import type { CompleteRun } from '../contract/complete.js'
import type { RunEndReason, StageProgress } from '../contract/runner-control.js'
import type { StageUpdate } from '../contract/stage-update.js'
import { type StageCatalogue, lastStageNumber } from '../contract/stages.js'
import { isFinalStatus, type FinalStatus, type StageStatus } from '../contract/status.js'
import { timestampToDate } from '../contract/timestamp.js'
import type { RunState, StageState } from './state.js'
import { isPositive } from '../internal/is-positive.js'

/** Why an update was refused; maps to a 409 problem. */
export type ConflictCode = 'run_finished' | 'stage_finished'

/**
 * How far a runner-sent instant may be ahead of the server's clock before it is clamped, in
 * milliseconds: 5 minutes (see {@link clampRunnerInstant}).
 */
export const DEFAULT_CLOCK_SKEW_TOLERANCE_MS = 300_000

/** A runner-sent instant that was outside its window and was stored clamped to it. */
export interface ClampedInstant {
  /** The body field that carried it. */
  field: 'completedAt'
  /** The instant the runner sent. */
  sent: Date
  /** The instant stored: the nearer end of the window. */
  stored: Date
  /**
   * Which end: `ahead` (after the server's now + tolerance: a runner clock ahead) or `before_creation`
   * (before the run's row was created: a clock behind, or a naive local time read as UTC).
   */
  bound: 'ahead' | 'before_creation'
  /**
   * The skew, in milliseconds, a positive number: for `ahead`, how far the instant was past the
   * server's now; for `before_creation`, how far before the run's creation.
   */
  skewMs: number
  /** The tolerance the window was built with, in milliseconds. */
  toleranceMs: number
}

/**
 * The one rule for an instant a runner sends (a stage's or a run's `completedAt`): it is stored as
 * sent inside [`notBefore`, `now + toleranceMs`], clamped to the nearer end outside it, never
 * refused (a status must not be lost for a clock). `notBefore` is the run's `createdAt`: nothing
 * of a run happened before its row existed. When the window is empty (a web instance's clock
 * behind the one that created the row by more than the tolerance), `notBefore` wins.
 * `clamped` is set only when the instant was moved.
 */
export function clampRunnerInstant(
  sent: Date,
  window: { notBefore: Date; now: Date; toleranceMs: number; field?: ClampedInstant['field'] },
): { at: Date; clamped?: ClampedInstant } {
  const { notBefore, now, toleranceMs, field = 'completedAt' } = window
  const latest = now.getTime() + toleranceMs
  const at = sent.getTime()
  if (at < notBefore.getTime()) {
    return { at: notBefore, clamped: { field, sent, stored: notBefore, bound: 'before_creation', skewMs: notBefore.getTime() - at, toleranceMs } }
  }
  if (at > latest) {
    const stored = new Date(Math.max(latest, notBefore.getTime()))
    return { at: stored, clamped: { field, sent, stored, bound: 'ahead', skewMs: at - now.getTime(), toleranceMs } }
  }
  return { at: sent }
}

/**
 * The warning for a clamped instant, with its cause and its fix, e.g. `run r1: the runner sent
 * completedAt 2026-01-01T18:00:00.000Z, 9 hours ahead of the server's clock (tolerance 5 minutes);
 * stored clamped to 2026-01-01T09:05:00.000Z. The runner's clock is ahead: ...`.
 */
export function describeClampedInstant(runId: string, clamped: ClampedInstant): string {
  const sent = clamped.sent.toISOString()
  const stored = clamped.stored.toISOString()
  const off = approximateDuration(clamped.skewMs)
  if (clamped.bound === 'ahead') {
    return (
      `run ${runId}: the runner sent ${clamped.field} ${sent}, ${off} ahead of the server's clock (tolerance ` +
      `${describeDuration(clamped.toleranceMs)}); stored clamped to ${stored}. The runner's clock is ahead: sync it (NTP), ` +
      'or raise clockSkewToleranceMs if such skew is expected'
    )
  }
  return (
    `run ${runId}: the runner sent ${clamped.field} ${sent}, ${off} before the run was created (${stored}); ` +
    'stored clamped to its creation. The runner\'s clock is behind, or it sent a local time without an offset, ' +
    "which is read as UTC: send UTC instants with 'Z' (Python: datetime.now(timezone.utc).isoformat())"
  )
}

/**
 * A skew for people: rounded to the unit below its largest, then at most two units, e.g.
 * `32399995` → `9 hours`, `5430000` → `1 hour 31 minutes`, `42000` → `42 seconds`, `250` → `250 ms`.
 */
function approximateDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`
  const index = DURATION_UNITS.findIndex(([size]) => ms >= size)
  const granularity = DURATION_UNITS[index + 1]?.[0] ?? 1_000
  let rest = Math.round(ms / granularity) * granularity
  const parts: string[] = []
  for (const [size, unit] of DURATION_UNITS) {
    if (rest < size) {
      if (parts.length > 0) break
      continue
    }
    const count = Math.floor(rest / size)
    parts.push(`${count} ${unit}${count === 1 ? '' : 's'}`)
    rest -= count * size
    if (parts.length === 2 || rest === 0) break
  }
  return parts.join(' ')
}

/** The decision for one stage update. */
export type StageDecision =
  | {
      outcome: 'applied'
      /** The stage to store (insert or update). */
      stage: StageState
      /**
       * The run to store. Its `updatedAt` is always the update's time, also when nothing else
       * of it changes, so that the run's last activity can be seen (see {@link decideStaleRun}).
       */
      run: RunState
      /** Whether the run's status changed (and with it `error` or `completedAt`). */
      statusChanged: boolean
      /** Set when the update's `completedAt` was outside its window and was stored clamped. */
      clamped?: ClampedInstant
    }
  | {
      /** `duplicate`: the stage already has this status. `stale`: the update is older than what is stored. */
      outcome: 'duplicate' | 'stale'
      /** The stored stage, or `null` when the stage has no row. */
      stage: StageState | null
      run: RunState
    }
  | {
      /**
       * Answered 200 and nothing changes: the stage is already final with this status and the
       * update carries a different output (the stored one stays). It has no `code`, unlike the
       * refusal (409) below.
       */
      outcome: 'conflict'
      /** The stored stage. */
      stage: StageState
      run: RunState
    }
  | { outcome: 'conflict'; code: ConflictCode; detail: string }

/** The decision for one explicit completion. */
export type CompletionDecision =
  | {
      outcome: 'applied'
      run: RunState
      /** The app's `onRunCompleted` hook runs in this transaction: this is the first accepted `/complete`. */
      runCompletionHook: true
      /** Set when the body's `completedAt` was outside its window and was stored clamped. */
      clamped?: ClampedInstant
    }
  | { outcome: 'duplicate'; run: RunState }
  | { outcome: 'conflict'; code: 'run_finished'; detail: string }

/** Inputs of {@link decideStageUpdate}. */
export interface StageUpdateInput {
  /** The run as stored, read under the run's lock. */
  run: RunState
  /** The stored row of the updated stage, or `undefined` when it has none (PENDING). */
  stage: StageState | undefined
  /** The validated update. */
  update: StageUpdate
  /** The stage catalogue; completing its last stage completes the run. */
  stages: StageCatalogue
  /** The current time, used for timestamps the update does not carry. */
  now: Date
  /**
   * How far the update's `completedAt` may be ahead of `now`, in milliseconds (see
   * {@link clampRunnerInstant}). @default DEFAULT_CLOCK_SKEW_TOLERANCE_MS
   */
  clockSkewToleranceMs?: number | undefined
}

const RANK: Readonly<Record<StageStatus, number>> = {
  PENDING: 0,
  PROCESSING: 1,
  COMPLETED: 2,
  FAILED: 2,
  CANCELLED: 2,
}

/**
 * Whether a final stage status agrees with a finished run's outcome: a stage completing never
 * contradicts it; a failed or cancelled stage agrees only with a run that ended the same way.
 */
function agreesWithOutcome(stageStatus: FinalStatus, runStatus: FinalStatus): boolean {
  return stageStatus === 'COMPLETED' || stageStatus === runStatus
}

/**
 * Decides what one stage update does to a run. The update must already be validated
 * against the catalogue (`stageNumber` in 1..N).
 */
export function decideStageUpdate({ run, stage, update, stages, now, clockSkewToleranceMs }: StageUpdateInput): StageDecision {
  const n = update.stageNumber
  if (!Number.isInteger(n) || n < 1 || n > lastStageNumber(stages)) {
    throw new RangeError(`stageNumber ${n} is outside the catalogue 1..${lastStageNumber(stages)}`)
  }
  const current: StageStatus = stage?.status ?? 'PENDING'
  const incoming = update.status

  if (incoming === current) {
    // A PROCESSING update that carries newer progress is a change, not a retry.
    if (stage && incoming === 'PROCESSING' && update.progress !== undefined) {
      const progress = decideProgress({ run, stage, progress: update.progress, now })
      if (progress.outcome === 'applied') return { ...progress, statusChanged: false }
      // Older progress (a lower seq) is a late arrival on this route as on a heartbeat.
      if (progress.outcome === 'stale') return progress
    }
    // A final status again with another output: the first one stays, and the sender is told.
    if (stage && isFinalStatus(incoming) && update.output != null && update.output !== stage.output) {
      return { outcome: 'conflict', stage, run }
    }
    return { outcome: 'duplicate', stage: stage ?? null, run }
  }
  // A stage never moves backwards: PROCESSING after a final status is a late arrival.
  if (RANK[incoming] < RANK[current]) return { outcome: 'stale', stage: stage ?? null, run }
  if (isFinalStatus(current)) {
    return {
      outcome: 'conflict',
      code: 'stage_finished',
      detail: `Stage ${n} is ${current} and cannot become ${incoming}`,
    }
  }

  if (isFinalStatus(run.status)) {
    if (incoming === 'PROCESSING') return { outcome: 'stale', stage: stage ?? null, run }
    if (!agreesWithOutcome(incoming, run.status)) {
      return {
        outcome: 'conflict',
        code: 'run_finished',
        detail: `Run ${run.id} is ${run.status}; stage ${n} cannot become ${incoming}`,
      }
    }
  }

  const finalStage = isFinalStatus(incoming)
  const sent = finalStage && update.completedAt ? clampRunnerInstant(timestampToDate(update.completedAt), {
    notBefore: run.createdAt,
    now,
    toleranceMs: clockSkewToleranceMs ?? DEFAULT_CLOCK_SKEW_TOLERANCE_MS,
  }) : undefined
  const completedAt = finalStage ? (sent?.at ?? now) : null
  const nextStage: StageState = {
    stageNumber: n,
    stageName: update.stageName,
    status: incoming,
    // A final update without output keeps what PROCESSING stored; PROCESSING stores its own.
    output: update.output ?? (finalStage ? (stage?.output ?? null) : null),
    completedAt,
    // A final status keeps the last progress, so a page can still show where the stage ended.
    progress: finalStage ? (stage?.progress ?? null) : (update.progress ?? stage?.progress ?? null),
    createdAt: stage?.createdAt ?? now,
    updatedAt: now,
  }

  const nextRun = deriveRun(run, nextStage, stages, now)
  // Every applied update is activity, even one that leaves the run PROCESSING: the stale-run
  // check reads it from the run's updatedAt alone, so that it needs no join over the stages.
  return {
    outcome: 'applied',
    stage: nextStage,
    run: nextRun ?? { ...run, updatedAt: now },
    statusChanged: nextRun !== undefined,
    ...(sent?.clamped ? { clamped: sent.clamped } : {}),
  }
}

/** The run after a stage change, or `undefined` when the run does not change. */
function deriveRun(run: RunState, stage: StageState, stages: StageCatalogue, now: Date): RunState | undefined {
  // A finished run never changes its own status.
  if (isFinalStatus(run.status)) return undefined
  switch (stage.status) {
    case 'FAILED':
      return {
        ...run,
        status: 'FAILED',
        error: stage.output ?? `Stage ${stage.stageNumber} (${stage.stageName}) failed`,
        completedAt: stage.completedAt ?? now,
        updatedAt: now,
      }
    case 'CANCELLED':
      return { ...run, status: 'CANCELLED', completedAt: stage.completedAt ?? now, updatedAt: now }
    case 'COMPLETED':
      if (stage.stageNumber === lastStageNumber(stages)) {
        return { ...run, status: 'COMPLETED', completedAt: stage.completedAt ?? now, updatedAt: now }
      }
      return run.status === 'PENDING' ? { ...run, status: 'PROCESSING', updatedAt: now } : undefined
    case 'PROCESSING':
      return run.status === 'PENDING' ? { ...run, status: 'PROCESSING', updatedAt: now } : undefined
    case 'PENDING':
      return undefined
  }
}

/** Inputs of {@link decideCompletion}. */
export interface CompletionInput {
  /** The run as stored, read under the run's lock. */
  run: RunState
  /** The validated `/complete` body. */
  body: CompleteRun
  /** The current time, stored as `completionReceivedAt` (and `completedAt` when the body has none). */
  now: Date
  /**
   * How far the body's `completedAt` may be ahead of `now`, in milliseconds (see
   * {@link clampRunnerInstant}). @default DEFAULT_CLOCK_SKEW_TOLERANCE_MS
   */
  clockSkewToleranceMs?: number | undefined
}

/**
 * Decides what an explicit `/complete` does. The first accepted completion of a run is
 * `applied` (and runs the app's hook), also when the stages already finished the run with
 * the same status: "already COMPLETED" never means "results already saved".
 */
export function decideCompletion({ run, body, now, clockSkewToleranceMs }: CompletionInput): CompletionDecision {
  if (isFinalStatus(run.status)) {
    if (run.status !== body.status) {
      return {
        outcome: 'conflict',
        code: 'run_finished',
        detail: `Run ${run.id} is ${run.status} and cannot be completed as ${body.status}`,
      }
    }
    if (run.completionReceivedAt !== null) return { outcome: 'duplicate', run }
    return {
      outcome: 'applied',
      run: { ...run, error: run.error ?? body.error ?? null, completionReceivedAt: now, updatedAt: now },
      runCompletionHook: true,
    }
  }
  const sent = body.completedAt
    ? clampRunnerInstant(timestampToDate(body.completedAt), {
        notBefore: run.createdAt,
        now,
        toleranceMs: clockSkewToleranceMs ?? DEFAULT_CLOCK_SKEW_TOLERANCE_MS,
      })
    : undefined
  return {
    outcome: 'applied',
    run: {
      ...run,
      status: body.status,
      error: body.error ?? null,
      completedAt: sent?.at ?? now,
      completionReceivedAt: now,
      updatedAt: now,
    },
    runCompletionHook: true,
    ...(sent?.clamped ? { clamped: sent.clamped } : {}),
  }
}

/** The decision for a run that may have stopped reporting. */
export type StaleRunDecision =
  | {
      /** The run had no update for longer than allowed: it is failed. */
      outcome: 'failed'
      /** The run to store: `FAILED`, with `error`, `completedAt` and `updatedAt` set to now. */
      run: RunState
    }
  | {
      /** `finished`: the run already has a final status. `active`: it was updated recently enough. */
      outcome: 'finished' | 'active'
      /** The run, unchanged. */
      run: RunState
    }

/** Inputs of {@link decideStaleRun}. */
export interface StaleRunInput {
  /** The run as stored, read under the run's lock. */
  run: RunState
  /** The current time. */
  now: Date
  /**
   * How long an unfinished run may go without an applied update before it counts as stopped, in
   * milliseconds. A positive number.
   */
  staleAfterMs: number
}

/**
 * The moment before which an unfinished run's last activity (`updatedAt`) makes it stale:
 * `now - staleAfterMs`. Stores list candidates with it; {@link decideStaleRun} decides with it.
 * Throws a `RangeError` unless `staleAfterMs` is a positive, finite number.
 */
export function staleRunCutoff(now: Date, staleAfterMs: number): Date {
  if (!isPositive(staleAfterMs)) {
    throw new RangeError(`staleAfterMs must be a positive number of milliseconds, got ${String(staleAfterMs)}`)
  }
  return new Date(now.getTime() - staleAfterMs)
}

/**
 * Decides whether a run stopped reporting. An unfinished run (`PENDING` or `PROCESSING`) not
 * heard from (see {@link lastSeenAt}: its last applied update or heartbeat) for longer than its
 * silence limit (see {@link silenceLimitMs}: 3 announced heartbeat intervals, else `staleAfterMs`)
 * becomes `FAILED`, with an `error` that says why ("No heartbeat for 45 s ..."). `completionReceivedAt` stays `null`: the runner's own `/complete`
 * `FAILED`, should it still arrive, is accepted once and runs the app's `onRunCompleted` hook,
 * while a `/complete` `COMPLETED` is refused like for any failed run.
 */
export function decideStaleRun({ run, now, staleAfterMs }: StaleRunInput): StaleRunDecision {
  staleRunCutoff(now, staleAfterMs)
  if (isFinalStatus(run.status)) return { outcome: 'finished', run }
  const limit = silenceLimitMs(run, staleAfterMs)
  const silentMs = now.getTime() - lastSeenAt(run).getTime()
  if (silentMs <= limit) return { outcome: 'active', run }
  const error = run.heartbeatIntervalMs
    ? `No heartbeat for ${Math.floor(silentMs / 1000)} s (the runner announced one every ${describeDuration(run.heartbeatIntervalMs)}): the runner stopped reporting`
    : `No update for more than ${describeDuration(staleAfterMs)}: the runner stopped reporting`
  return { outcome: 'failed', run: { ...run, status: 'FAILED', error, completedAt: now, updatedAt: now } }
}

const DURATION_UNITS: ReadonlyArray<readonly [ms: number, unit: string]> = [
  [86_400_000, 'day'],
  [3_600_000, 'hour'],
  [60_000, 'minute'],
  [1_000, 'second'],
]

/** `900000` → `15 minutes`; the largest unit that divides the duration exactly. */
function describeDuration(ms: number): string {
  for (const [size, unit] of DURATION_UNITS) {
    if (ms >= size && ms % size === 0) {
      const count = ms / size
      return `${count} ${unit}${count === 1 ? '' : 's'}`
    }
  }
  return `${ms} ms`
}

/**
 * Which of two progress reports of one stage is kept: the one with the higher `seq`, whatever
 * the order they arrived in. `newer`: `incoming` replaces `stored`; `same`: equal `seq` (a retry,
 * nothing changes); `older`: `stored` is kept.
 */
export function compareProgress(stored: StageProgress | null | undefined, incoming: StageProgress): 'newer' | 'same' | 'older' {
  if (stored === null || stored === undefined || incoming.seq > stored.seq) return 'newer'
  return incoming.seq === stored.seq ? 'same' : 'older'
}

/** The decision for progress sent on a heartbeat (or on a `PROCESSING` update of a `PROCESSING` stage). */
export type ProgressDecision =
  | {
      outcome: 'applied'
      /** The stage with the new progress. */
      stage: StageState
      /** The run with `updatedAt` set to now: a new run version. */
      run: RunState
    }
  | {
      /**
       * `duplicate`: this `seq` is already stored. `stale`: a higher `seq` is stored, the stage is
       * not `PROCESSING` (no row yet, or finished), or the run is finished.
       */
      outcome: 'duplicate' | 'stale'
      stage: StageState | null
      run: RunState
    }

/** Inputs of {@link decideProgress}. */
export interface ProgressInput {
  /** The run as stored. */
  run: RunState
  /** The stage as stored, or `undefined` when it has no row. */
  stage: StageState | undefined
  /** The validated progress. */
  progress: StageProgress
  /** The current time. */
  now: Date
}

/**
 * Decides what progress does to a stage: stored only on a `PROCESSING` stage of an unfinished
 * run, and only when its `seq` is higher than the stored one (see {@link compareProgress}).
 */
export function decideProgress({ run, stage, progress, now }: ProgressInput): ProgressDecision {
  if (!stage || stage.status !== 'PROCESSING' || isFinalStatus(run.status)) {
    return { outcome: 'stale', stage: stage ?? null, run }
  }
  const order = compareProgress(stage.progress, progress)
  if (order !== 'newer') return { outcome: order === 'same' ? 'duplicate' : 'stale', stage, run }
  return {
    outcome: 'applied',
    stage: { ...stage, progress, updatedAt: now },
    run: { ...run, updatedAt: now },
  }
}

/**
 * What a heartbeat's activity (its `lastActivityAt` and announced interval) does to a run:
 * `recorded` on an unfinished run; `stale` on a finished one, which never changes again (a
 * heartbeat that arrives after the run finished is a late arrival, answered with the run as
 * stored so that the runner learns how it ended).
 */
export function decideHeartbeat(run: RunState): 'recorded' | 'stale' {
  return isFinalStatus(run.status) ? 'stale' : 'recorded'
}

/** The decision for one `POST /cancel`. */
export type CancelDecision =
  | {
      outcome: 'applied'
      /** The run, `CANCELLED`, with the reason as `error` and `completedAt` now. */
      run: RunState
      /** The stages that were `PROCESSING`, now `CANCELLED` (output and progress kept). */
      stages: StageState[]
    }
  | { outcome: 'duplicate'; run: RunState }
  | { outcome: 'conflict'; code: 'run_finished'; detail: string }

/** Inputs of {@link decideCancel}. */
export interface CancelInput {
  /** The run as stored. */
  run: RunState
  /** Its stored stages (only the `PROCESSING` ones matter). */
  stages: readonly StageState[]
  /** The reason sent, stored as the run's `error`. */
  reason: string | undefined
  /** The current time. */
  now: Date
}

/**
 * Decides what a cancellation does: an unfinished run becomes `CANCELLED` with its `PROCESSING`
 * stages; a run already `CANCELLED` is a duplicate (idempotent); a `COMPLETED` or `FAILED` run is a
 * conflict and nothing changes.
 */
export function decideCancel({ run, stages, reason, now }: CancelInput): CancelDecision {
  if (run.status === 'CANCELLED') return { outcome: 'duplicate', run }
  if (isFinalStatus(run.status)) {
    return { outcome: 'conflict', code: 'run_finished', detail: `Run ${run.id} is ${run.status} and cannot be cancelled` }
  }
  return {
    outcome: 'applied',
    run: { ...run, status: 'CANCELLED', error: reason ?? null, completedAt: now, updatedAt: now },
    stages: stages
      .filter((stage) => stage.status === 'PROCESSING')
      .map((stage) => ({ ...stage, status: 'CANCELLED' as const, completedAt: now, updatedAt: now })),
  }
}

/**
 * How a write that moved `before` to `after` ended the run, or `undefined` when it did not end it
 * (the run was already finished, or is not finished now). The one rule behind `onRunEnded`
 * running exactly once: only the write that takes a run from unfinished to final ends it.
 */
export function runEndReason(
  before: RunState,
  after: RunState,
  cause: 'stage' | 'complete' | 'cancel' | 'sweep',
): RunEndReason | undefined {
  if (isFinalStatus(before.status) || !isFinalStatus(after.status)) return undefined
  switch (cause) {
    case 'complete':
      return 'completed_explicitly'
    case 'cancel':
      return 'cancelled'
    case 'sweep':
      return 'swept_as_stale'
    case 'stage':
      return after.status === 'COMPLETED' ? 'last_stage_completed' : after.status === 'FAILED' ? 'stage_failed' : 'stage_cancelled'
  }
}

/**
 * How many announced heartbeat intervals a run may miss before the stale-run sweep fails it: 3,
 * so one lost or late heartbeat (a slow request, a retry) never fails a healthy run, and a killed
 * runner is noticed within about three intervals plus the sweep interval.
 */
export const MISSED_HEARTBEATS_LIMIT = 3

/** When the runner was last heard from: the later of the run's last change and its last heartbeat. */
export function lastSeenAt(run: RunState): Date {
  const activity = run.lastActivityAt
  return activity && activity.getTime() > run.updatedAt.getTime() ? activity : run.updatedAt
}

/**
 * How long a run may stay silent before it counts as stopped, in milliseconds:
 * {@link MISSED_HEARTBEATS_LIMIT} × its announced heartbeat interval, or `staleAfterMs` for a run
 * that never announced one.
 */
export function silenceLimitMs(run: RunState, staleAfterMs: number): number {
  return run.heartbeatIntervalMs ? MISSED_HEARTBEATS_LIMIT * run.heartbeatIntervalMs : staleAfterMs
}

/** A new run in its initial state. */
export function newRun(id: string, now: Date): RunState {
  return {
    id,
    status: 'PENDING',
    error: null,
    completedAt: null,
    completionReceivedAt: null,
    createdAt: now,
    updatedAt: now,
    lastActivityAt: null,
    heartbeatIntervalMs: null,
  }
}
