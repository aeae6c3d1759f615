/** The sweeps' statements: list stale runs, fail one unless a heartbeat came, delete expired runs. */
import type { TableNames } from '../table-names.js'
import { RUN_WRITE_VALUE_COUNT, runColumns, runUpdate } from './columns.js'

/**
 * Lists runs with a status in `$1` last seen before `$2` (or, with `$4` as now and an announced
 * interval, silent for more than `$5` intervals), oldest first, at most `$3`.
 */
export function listStaleRunsSql(names: TableNames): string {
  const { runTable, run: r } = names
  const lastSeen = `GREATEST(r.${r.updatedAt}, COALESCE(r.${r.lastActivityAt}, r.${r.updatedAt}))`
  return (
    `SELECT ${runColumns(names, 'r')} FROM ${runTable} r WHERE r.${r.status}::text = ANY($1::text[]) AND ` +
    `CASE WHEN r.${r.heartbeatIntervalMs} IS NULL OR $4::timestamptz IS NULL THEN ${lastSeen} < $2::timestamptz ` +
    `ELSE ${lastSeen} < $4::timestamptz - make_interval(secs => $5::integer * r.${r.heartbeatIntervalMs} / 1000.0) END ` +
    `ORDER BY r.${r.updatedAt}, r.${r.id} LIMIT $3`
  )
}

/**
 * The sweeper's write: like `writeRunSql`, and only if no heartbeat came since it read the run
 * (a heartbeat changes no version): lastActivityAt is still `$13` (after `runWriteValues`).
 */
export function writeRunIfSilentSql(names: TableNames): string {
  const { runTable, run: r } = names
  return (
    `WITH run AS (UPDATE ${runTable} SET ${runUpdate(names)} WHERE ${r.id} = $1 AND ${r.version} = $2 ` +
    `AND ${r.lastActivityAt} IS NOT DISTINCT FROM $${RUN_WRITE_VALUE_COUNT + 1}::timestamptz RETURNING ${r.id} AS id, ${r.version} AS version) ` +
    `SELECT 1 AS "written" FROM run`
  )
}

/**
 * Deletes up to `$3` runs in status `$1` last changed before `$2`, with their stages, and counts
 * them. Bounded and safe with several instances: rows another sweep holds are skipped, not waited for.
 */
export function deleteFinishedRunsSql({ runTable, stageTable, chunkTable, run: r, stage: s, chunk: c }: TableNames): string {
  return (
    `WITH doomed AS (SELECT r.${r.id} AS id FROM ${runTable} r WHERE r.${r.status}::text = $1 AND r.${r.updatedAt} < $2::timestamptz ` +
    `ORDER BY r.${r.updatedAt} LIMIT $3 FOR UPDATE SKIP LOCKED), ` +
    `gone_stages AS (DELETE FROM ${stageTable} s USING doomed WHERE s.${s.runId} = doomed.id), ` +
    // The foreign key cascades too; said here as for the stages, so a schema without it purges alike.
    `gone_chunks AS (DELETE FROM ${chunkTable} c USING doomed WHERE c.${c.runId} = doomed.id), ` +
    `gone AS (DELETE FROM ${runTable} r USING doomed WHERE r.${r.id} = doomed.id RETURNING 1) ` +
    `SELECT count(*)::integer AS "deleted" FROM gone`
  )
}
