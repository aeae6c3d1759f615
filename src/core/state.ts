import type { RunStatus, StageStatus } from '../contract/status.js'

/** A run as the state machine and the stores see it. */
export interface RunState {
  id: string
  status: RunStatus
  error: string | null
  completedAt: Date | null
  /** When the first accepted `/complete` was stored; `null` until then. */
  completionReceivedAt: Date | null
  createdAt: Date
  updatedAt: Date
}

/** A stored stage as the state machine and the stores see it. */
export interface StageState {
  stageNumber: number
  stageName: string
  status: StageStatus
  output: string | null
  completedAt: Date | null
  createdAt: Date
  updatedAt: Date
}

/** A run with its stored stages, ordered by stage number. */
export interface RunSnapshot {
  run: RunState
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
