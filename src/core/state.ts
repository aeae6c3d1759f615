import type { RunStatus, StageStatus } from '../contract/status.js'

/** A run as the state machine and the stores see it. */
export interface RunState {
  /** The run's id (`PipelineRun.id`). */
  id: string
  /** The run's status. */
  status: RunStatus
  /** Why the run failed or was cancelled; `null` otherwise. */
  error: string | null
  /** When the run finished; `null` while it is not finished. */
  completedAt: Date | null
  /** When the first accepted `/complete` was stored; `null` until then. */
  completionReceivedAt: Date | null
  /** When the run was created. */
  createdAt: Date
  /** When the run last changed. */
  updatedAt: Date
}

/** A stored stage as the state machine and the stores see it. */
export interface StageState {
  /** 1-based number of the stage. */
  stageNumber: number
  /** The name the last applied update sent. */
  stageName: string
  /** The stage's status; never `PENDING` for a stored row. */
  status: StageStatus
  /** The stage's output as sent (a JSON string or markdown); `null` when none. */
  output: string | null
  /** When the stage finished; `null` while it is `PROCESSING`. */
  completedAt: Date | null
  /** When the first update of the stage was stored. */
  createdAt: Date
  /** When the stage last changed. */
  updatedAt: Date
}

/** A run with its stored stages, ordered by stage number. */
export interface RunSnapshot {
  /** The run. */
  run: RunState
  /** Its stored stages; stages without a row (`PENDING`) are absent. */
  stages: StageState[]
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
  }
}
