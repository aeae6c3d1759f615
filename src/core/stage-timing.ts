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
 * The earliest `completedAt` a stage may store, so that no duration is negative: a stage's own
 * start; for a stage without a row (its first report is final, and it starts then) the run's
 * `startedAt` when the run has one (the run starts with its first stage, so no stage starts
 * before it), else the run's creation.
 */
export function completedAtFloor(
  run: RunState,
  stage: StageState | undefined,
): { notBefore: Date; notBeforeIs: 'stage_start' | 'run_start' | 'creation' } {
  if (stage) return { notBefore: stageStartedAt(stage), notBeforeIs: 'stage_start' }
  return run.startedAt ? { notBefore: run.startedAt, notBeforeIs: 'run_start' } : { notBefore: run.createdAt, notBeforeIs: 'creation' }
}

/**
 * The run with its `startedAt`: the one stored, else that of its first applied stage update. A
 * run this update finishes before the run's start (a later stage first reported final with an
 * instant before the first stage's receipt) ends at its start. A run that had finished already
 * (`stored.completedAt`, e.g. by `/complete` before any stage reported) keeps its `completedAt`,
 * which is set once, and starts no later than it ended: no duration is ever negative.
 */
export function started(run: RunState, stage: StageState, stored: RunState): RunState {
  const stageStart = run.startedAt ?? stage.startedAt ?? stage.createdAt
  const endedBefore = stored.completedAt
  const startedAt = !run.startedAt && endedBefore && stageStart > endedBefore ? endedBefore : stageStart
  const finishesNow = run.completedAt !== null && endedBefore === null
  const completedAt = finishesNow && run.completedAt && run.completedAt < startedAt ? startedAt : run.completedAt
  return run.startedAt === startedAt && completedAt === run.completedAt ? run : { ...run, startedAt, completedAt }
}
