/** The statements inside an interactive transaction: lock the run, read and write it and its stages. */
import type { TableNames } from '../table-names.js'
import { runColumns, stageColumns, stageConflict, stageInsert } from './columns.js'

/** Reads run `$1` and its version and locks its row until the transaction ends. */
export function lockRunSql(names: TableNames): string {
  return `SELECT ${runColumns(names, 'r')} FROM ${names.runTable} r WHERE r.${names.run.id} = $1 FOR UPDATE`
}

/**
 * A transaction's run write (id, status, error, completedAt, completionReceivedAt, updatedAt as
 * `$1`–`$6`): the version is `$7` (the next of the one locked), else one more than stored;
 * `startedAt` `$8` only when none is stored (a run starts once).
 */
export function saveRunSql({ runTable, run: r }: TableNames): string {
  return (
    `UPDATE ${runTable} SET ${r.status} = $2, ${r.error} = $3, ${r.completedAt} = $4::timestamptz, ` +
    `${r.completionReceivedAt} = $5::timestamptz, ${r.updatedAt} = $6::timestamptz, ` +
    `${r.startedAt} = COALESCE(${r.startedAt}, $8::timestamptz), ` +
    `${r.version} = COALESCE($7::integer, ${r.version} + 1) WHERE ${r.id} = $1 RETURNING ${r.version} AS "version"`
  )
}

/** Reads stage `$2` of run `$1`. */
export function readStageSql(names: TableNames): string {
  const { stageTable, stage: s } = names
  return (
    `SELECT s.${s.stageNumber} AS "s_stageNumber", ${stageColumns(names)} FROM ${stageTable} s ` +
    `WHERE s.${s.runId} = $1 AND s.${s.stageNumber} = $2`
  )
}

/** Reads every stage of run `$1`, ordered by stage number. */
export function readStagesSql(names: TableNames): string {
  const { stageTable, stage: s } = names
  return (
    `SELECT s.${s.stageNumber} AS "s_stageNumber", ${stageColumns(names)} FROM ${stageTable} s ` +
    `WHERE s.${s.runId} = $1 ORDER BY s.${s.stageNumber}`
  )
}

/**
 * Upserts a stage of run `$1` (`stageValues` from `$2`): one INSERT … ON CONFLICT DO UPDATE,
 * which cannot raise a unique violation even without the run's lock.
 */
export function saveStageSql(names: TableNames): string {
  return `${stageInsert(names, (i) => `$${i + 2}`, '$1')} ${stageConflict(names)}`
}

/** Sends `$2` on channel `$1`; PostgreSQL delivers it at commit and drops it with a rollback. */
export function notifySql(): string {
  return `SELECT 1 AS "notified" FROM (SELECT pg_notify($1, $2)) n`
}
