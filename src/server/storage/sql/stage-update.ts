/**
 * The stage-update hot path: one statement reads, one writes. No transaction: the write succeeds
 * only if the run's version is still the one read.
 */
import type { TableNames } from '../table-names.js'
import { RUN_WRITE_VALUE_COUNT, runColumns, runUpdate, stageColumns, stageConflict, stageInsert } from './columns.js'

/**
 * Reads a run, its version and stage `$2` (when it has a row) of run `$1`, in one consistent read;
 * the run's catalogue only when its digest is not in the text array `$3` (`runColumns`).
 */
export function readRunStageSql(names: TableNames): string {
  const { runTable, stageTable, run: r, stage: s } = names
  return (
    `SELECT ${runColumns(names, 'r', undefined, '$3')}, ${stageColumns(names)} FROM ${runTable} r ` +
    `LEFT JOIN ${stageTable} s ON s.${s.runId} = r.${r.id} AND s.${s.stageNumber} = $2 WHERE r.${r.id} = $1`
  )
}

/**
 * Writes the run (`runWriteValues`, `$1`–`$12`, its `startedAt` kept once set) and upserts its
 * stage (`stageValues`, `$13`–`$30`) in one statement, one implicit transaction: the run
 * row's update holds its lock while the stage is written, and writes nothing at all when another
 * write changed the version first (no row returned). The run's `startedAt` is kept once set, else
 * becomes the stage's (the state machine's rule: the run starts with its first applied stage update).
 * `alongside`: more data-modifying CTEs (`, name AS (…)`) that read `run` and so write only with it
 * (`sql/output-chunks.ts`).
 */
export function writeRunStageSql(names: TableNames, alongside = ''): string {
  const { runTable, run: r } = names
  return (
    `WITH run AS (UPDATE ${runTable} SET ${runUpdate(names)} ` +
    `WHERE ${r.id} = $1 AND ${r.version} = $2 RETURNING ${r.id} AS id, ${r.version} AS version)${alongside} ` +
    `${stageInsert(names, (i) => `$${i + RUN_WRITE_VALUE_COUNT + 1}`, 'run.id')} FROM run ${stageConflict(names)} RETURNING 1 AS "written"`
  )
}
