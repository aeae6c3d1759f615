/**
 * The stage-update hot path: one statement reads, one writes. No transaction: the write succeeds
 * only if the run's version is still the one read.
 */
import type { TableNames } from '../table-names.js'
import {
  notified,
  runColumns,
  runUpdate,
  STAGE_STARTED_AT_VALUE,
  STAGE_VALUE_COUNT,
  stageColumns,
  stageConflict,
  stageInsert,
  whenNotified,
} from './columns.js'

/** Reads a run, its version and stage `$2` (when it has a row) of run `$1`, in one consistent read. */
export function readRunStageSql(names: TableNames): string {
  const { runTable, stageTable, run: r, stage: s } = names
  return (
    `SELECT ${runColumns(names, 'r')}, ${stageColumns(names)} FROM ${runTable} r ` +
    `LEFT JOIN ${stageTable} s ON s.${s.runId} = r.${r.id} AND s.${s.stageNumber} = $2 WHERE r.${r.id} = $1`
  )
}

/**
 * Writes the run (`runWriteValues`, `$1`–`$8`) and upserts its stage (`stageValues`, `$9`–`$22`),
 * then the notify channel `$23` when `notify`. One statement, one implicit transaction: the run
 * row's update holds its lock while the stage is written, and writes nothing at all when another
 * write changed the version first (no row returned). The run's `startedAt` is kept once set, else
 * becomes the stage's (the state machine's rule: the run starts with its first applied stage update).
 */
export function writeRunStageSql(names: TableNames, notify: boolean): string {
  const { runTable, run: r } = names
  const stageParameter = (i: number): string => `$${i + 9}`
  const startedAt = `${r.startedAt} = COALESCE(${r.startedAt}, ${stageParameter(STAGE_STARTED_AT_VALUE)}::timestamptz)`
  return (
    `WITH run AS (UPDATE ${runTable} SET ${runUpdate(names)}, ${startedAt} ` +
    `WHERE ${r.id} = $1 AND ${r.version} = $2 RETURNING ${r.id} AS id, ${r.version} AS version)` +
    `${notified(notify, stageParameter(STAGE_VALUE_COUNT))} ` +
    `${stageInsert(names, stageParameter, 'run.id')} FROM run${whenNotified(notify)} ${stageConflict(names)} RETURNING 1 AS "written"`
  )
}
