/**
 * A stage's and a run's timing (docs/contract.md "Timing"): when they started, and the floor of a
 * runner-sent `completedAt`, so that no duration is negative. Pure; the state machine
 * (`decideStageUpdate`) applies it.
 */
import type { RunState, StageState } from './state.js'

/** When a stored stage started: its `startedAt`, else (a row stored before the column) its creation. */
export function stageStartedAt(stage: StageState): Date {
  return stage.startedAt ?? stage.createdAt
}

/**
 * The earliest `completedAt` a stage may store: its start, so that its duration is never
 * negative; a stage without a row (its first report is final, and it starts then) the run's creation.
 */
export function completedAtFloor(run: RunState, stage: StageState | undefined): { notBefore: Date; notBeforeIs: 'start' | 'creation' } {
  return stage ? { notBefore: stageStartedAt(stage), notBeforeIs: 'start' } : { notBefore: run.createdAt, notBeforeIs: 'creation' }
}

/**
 * The run with its `startedAt`: the one stored, else that of its first applied stage update. A
 * run a stage finished before the run's start (a later stage first reported final with an
 * instant before the first stage's receipt) ends at its start: its duration is never negative.
 */
export function started(run: RunState, stage: StageState): RunState {
  const startedAt = run.startedAt ?? stage.startedAt ?? stage.createdAt
  const completedAt = run.completedAt && run.completedAt < startedAt ? startedAt : run.completedAt
  return run.startedAt === startedAt && completedAt === run.completedAt ? run : { ...run, startedAt, completedAt }
}
