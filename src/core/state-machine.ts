/**
 * The one place where the semantics of docs/design.md ("Semantics") live. Pure: no I/O, no clock (callers pass
 * `now`), no randomness. The Prisma store and the in-memory store both call these functions
 * inside their own transaction and persist exactly what they return. This module decides the
 * writes that move a run (stage updates, completion, cancellation); its siblings hold the rules
 * they share: `runner-instants.ts` (a runner's clock), `stage-progress.ts` (progress) and
 * `run-liveness.ts` (heartbeats and stale runs).
 */
import type { CompleteRun } from '../contract/complete.js'
import type { RunEndReason } from '../contract/runner-control.js'
import type { StageUpdate } from '../contract/stage-update.js'
import { DEFAULT_PIPELINE, type StageCatalogue, lastStageNumber } from '../contract/stages.js'
import { isFinalStatus, type FinalStatus, type StageStatus } from '../contract/status.js'
import { timestampToDate } from '../contract/timestamp.js'
import { type ClampedInstant, DEFAULT_CLOCK_SKEW_TOLERANCE_MS, clampRunnerInstant } from './runner-instants.js'
import { attemptFieldsDiffer, compareAttempt, finalAttemptFields, nextAttemptFields, storedAttemptFields } from './stage-attempts.js'
import { compareProgress, decideProgress } from './stage-progress.js'
import { completedAtFloor, stageStartedAt, started } from './stage-timing.js'
import { nextTraceFields } from './stage-trace.js'
import type { RunState, StageState } from './state.js'

/**
 * Why an update was refused; maps to a 409 problem. `unknown_pipeline`: the run has no catalogue
 * of its own and its pipeline is no longer configured (see `catalogueOfRun`).
 */
export type ConflictCode = 'run_finished' | 'stage_finished' | 'unknown_pipeline'

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
      /** Whether the run's status changed (`false`: its stages had already finished it with this status). */
      statusChanged: boolean
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
  /**
   * The W3C `traceparent` the report came with, already checked (`parseTraceparent`); kept as the
   * stage's parent or, starting a higher attempt, as a link (`nextTraceFields`).
   */
  traceparent?: string | undefined
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
export function decideStageUpdate({ run, stage, update, stages, now, clockSkewToleranceMs, traceparent }: StageUpdateInput): StageDecision {
  const n = update.stageNumber
  if (!Number.isInteger(n) || n < 1 || n > lastStageNumber(stages)) {
    throw new RangeError(`stageNumber ${n} is outside the catalogue 1..${lastStageNumber(stages)}`)
  }
  const current: StageStatus = stage?.status ?? 'PENDING'
  const incoming = update.status
  const attemptOrder = compareAttempt(stage?.attempt, update.attempt)
  // A report of an earlier attempt is late, whatever else it carries.
  if (attemptOrder === 'lower') return { outcome: 'stale', stage: stage ?? null, run }

  if (incoming === current) {
    if (stage && incoming === 'PROCESSING') {
      const attempts = decideAttemptChange({ run, stage, update, now, traceparent })
      if (attempts) return attempts
      // A PROCESSING update that carries newer progress is a change, not a retry.
      if (update.progress !== undefined) {
        const progress = decideProgress({ run, stage, progress: update.progress, now })
        if (progress.outcome === 'applied') return { ...progress, run: started(progress.run, progress.stage, run), statusChanged: false }
        // Older progress (a lower seq) is a late arrival on this route as on a heartbeat.
        if (progress.outcome === 'stale') return progress
      }
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
    ...completedAtFloor(run, stage),
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
    // The row's creation, or the finish of a stage first reported final (so startedAt ≤ completedAt).
    startedAt: stage ? stageStartedAt(stage) : (completedAt ?? now),
    // Final statuses carry no attempt fields (the contract refuses them) and keep the stored
    // ones, but no longer wait for a retry.
    ...(finalStage ? finalAttemptFields(stage) : nextAttemptFields(stage, update, now)),
    // Streamed output stays with its stage; a final output replaces the text shown, not `outputSeq`.
    outputSeq: stage?.outputSeq ?? null,
    outputBytes: stage?.outputBytes ?? null,
    ...nextTraceFields(stage, traceparent, attemptOrder === 'higher'),
  }

  const nextRun = deriveRun(run, nextStage, stages, now)
  // Every applied update is activity, even one that leaves the run PROCESSING: the stale-run
  // check reads it from the run's updatedAt alone, so that it needs no join over the stages.
  return {
    outcome: 'applied',
    stage: nextStage,
    run: started(nextRun ?? { ...run, updatedAt: now }, nextStage, run),
    statusChanged: nextRun !== undefined,
    ...(sent?.clamped ? { clamped: sent.clamped } : {}),
  }
}

/**
 * A same-status `PROCESSING` update that changes the stage's attempt fields: a higher attempt
 * (which resets the stage's progress and output) or new fields of the same one (`nextRetryAt:
 * null` when it starts). `undefined` when the attempt fields stay as stored. On a finished run
 * such an update is a late `PROCESSING`: stale.
 */
function decideAttemptChange({ run, stage, update, now, traceparent }: Pick<StageUpdateInput, 'run' | 'update' | 'now' | 'traceparent'> & { stage: StageState }): StageDecision | undefined {
  const fields = nextAttemptFields(stage, update, now)
  if (!attemptFieldsDiffer(fields, storedAttemptFields(stage))) return undefined
  if (isFinalStatus(run.status)) return { outcome: 'stale', stage, run }
  const higher = compareAttempt(stage.attempt, update.attempt) === 'higher'
  const progress = higher
    ? (update.progress ?? null)
    : update.progress !== undefined && compareProgress(stage.progress, update.progress) === 'newer'
      ? update.progress
      : (stage.progress ?? null)
  const next: StageState = {
    ...stage,
    stageName: update.stageName,
    output: higher ? (update.output ?? null) : stage.output,
    progress,
    // A higher attempt restarts the streamed output: its chunks are deleted with this write.
    ...(higher ? { outputSeq: null, outputBytes: null } : {}),
    updatedAt: now,
    ...fields,
    ...nextTraceFields(stage, traceparent, higher),
  }
  return { outcome: 'applied', stage: next, run: started({ ...run, updatedAt: now }, next, run), statusChanged: false }
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
      statusChanged: false,
    }
  }
  const sent = body.completedAt
    ? clampRunnerInstant(timestampToDate(body.completedAt), {
        ...(run.startedAt ? { notBefore: run.startedAt, notBeforeIs: 'run_start' as const } : { notBefore: run.createdAt }),
        of: 'run',
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
    statusChanged: true,
    ...(sent?.clamped ? { clamped: sent.clamped } : {}),
  }
}

/** The decision for one `POST /cancel`. */
export type CancelDecision =
  | {
      outcome: 'applied'
      /** The run, `CANCELLED`, with the reason as `error` and `completedAt` now. */
      run: RunState
      /**
       * The stages that were `PROCESSING`, now `CANCELLED` (output, progress and attempt kept;
       * `nextRetryAt` `null`: a cancelled stage does not retry, see `finalAttemptFields`).
       */
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
      .map((stage) => ({ ...stage, ...finalAttemptFields(stage), status: 'CANCELLED' as const, completedAt: now, updatedAt: now })),
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
    pipeline: DEFAULT_PIPELINE,
    catalogue: null,
    tags: [],
    metadata: {},
    startedAt: null,
  }
}
