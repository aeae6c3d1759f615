/**
 * The core state (`src/core/state.ts`) the unit tests of the state machine and the live streams
 * build by hand: one run, its stages, snapshots of it and output chunks, all at one instant.
 */
import type { OutputChunkRow, RunSnapshot, RunState, StageState } from '../../src/core/state.js'

/** The one instant every fixture is created and updated at. */
export const NOW = new Date('2026-12-06T10:00:00.000Z')

/** `run_1`, processing. */
export const run: RunState = { id: 'run_1', status: 'PROCESSING', error: null, completedAt: null, completionReceivedAt: null, createdAt: NOW, updatedAt: NOW }

/** Stage 1 (`Input Processing`), processing with no output, overridable field by field. */
export const stage = (fields: Partial<StageState> = {}): StageState => ({
  stageNumber: 1,
  stageName: 'Input Processing',
  status: 'PROCESSING',
  output: null,
  completedAt: null,
  createdAt: NOW,
  updatedAt: NOW,
  ...fields,
})

/** A snapshot of {@link run} at `version` with `stages`. */
export const snapshot = (version: number, stages: StageState[], extra: Partial<RunSnapshot> = {}): RunSnapshot => ({ run, stages, version, ...extra })

/** Chunk `seq` of stage 1, stored at `version`; its text `t{seq}` unless given. */
export const chunk = (seq: number, version: number, text = `t${seq}`): OutputChunkRow => ({ stageNumber: 1, seq, version, text })
