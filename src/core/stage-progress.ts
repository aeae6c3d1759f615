/**
 * Progress a runner reports for a `PROCESSING` stage (on a heartbeat, or on a `PROCESSING` update):
 * which report is kept, and what it does to the stage. Pure: callers pass `now`.
 */
import type { StageProgress } from '../contract/runner-control.js'
import { isFinalStatus } from '../contract/status.js'
import type { RunState, StageState } from './state.js'

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
