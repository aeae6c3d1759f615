/**
 * Streamed output chunks (`POST /{runId}/stages/{stageNumber}/output`): the stage write that
 * also inserts a chunk row, or deletes the stage's rows (an applied higher attempt), in one
 * statement like every stage write; the reads of one chunk and of the chunks after a version;
 * and the transaction's insert and delete.
 */
import type { TableNames } from '../table-names.js'
import { RUN_WRITE_VALUE_COUNT, STAGE_VALUE_COUNT } from './columns.js'
import { writeRunStageSql } from './stage-update.js'

/** The parameter number of the stage's `stageNumber` in a stage write (`stageValues`' second value). */
const STAGE_NUMBER_PARAMETER = `$${RUN_WRITE_VALUE_COUNT + 2}::integer`
/** The first parameter after the run's and the stage's values. */
const NEXT_PARAMETER = RUN_WRITE_VALUE_COUNT + STAGE_VALUE_COUNT + 1

/**
 * `writeRunStage` that also inserts chunk (`seq` `$31`, `text` `$32`) of the stage, with the
 * run's new version, when the run's version is still the one read: one statement, so the run,
 * the stage's `outputSeq` and the chunk commit together or not at all.
 */
export function writeRunStageChunkSql(names: TableNames): string {
  const { chunkTable, chunk: c } = names
  return writeRunStageSql(
    names,
    `, chunk AS (INSERT INTO ${chunkTable} (${c.runId}, ${c.stageNumber}, ${c.seq}, ${c.version}, ${c.text}) ` +
      `SELECT run.id, ${STAGE_NUMBER_PARAMETER}, $${NEXT_PARAMETER}::integer, run.version, $${NEXT_PARAMETER + 1} FROM run)`,
  )
}

/** `writeRunStage` that also deletes every chunk of the stage (its streamed output restarts with a higher attempt). */
export function writeRunStageDropChunksSql(names: TableNames): string {
  const { chunkTable, chunk: c } = names
  return writeRunStageSql(
    names,
    `, dropped AS (DELETE FROM ${chunkTable} c USING run WHERE c.${c.runId} = run.id AND c.${c.stageNumber} = ${STAGE_NUMBER_PARAMETER})`,
  )
}

/** The text of chunk `$3` of stage `$2` of run `$1`. */
export function readOutputChunkSql({ chunkTable, chunk: c }: TableNames): string {
  return `SELECT c.${c.text} AS "text" FROM ${chunkTable} c WHERE c.${c.runId} = $1 AND c.${c.stageNumber} = $2 AND c.${c.seq} = $3`
}

/**
 * The streamed text of stage `$2` of run `$1` up to chunk `$3`: its chunks' text in `seq` order
 * (the `(runId, stageNumber, seq)` key), `NULL` when it has none.
 */
export function readStreamedOutputSql({ chunkTable, chunk: c }: TableNames): string {
  return (
    `SELECT string_agg(c.${c.text}, '' ORDER BY c.${c.seq}) AS "text" FROM ${chunkTable} c ` +
    `WHERE c.${c.runId} = $1 AND c.${c.stageNumber} = $2 AND c.${c.seq} <= $3`
  )
}

/**
 * The first `$3` chunks of run `$1` whose version is greater than `$2`, in version order (the
 * `(runId, version)` index, so only those rows are read); `$3` NULL: all of them.
 */
export function readOutputChunksSinceSql({ chunkTable, chunk: c }: TableNames): string {
  return (
    `SELECT c.${c.stageNumber} AS "stageNumber", c.${c.seq} AS "seq", c.${c.version} AS "version", c.${c.text} AS "text" ` +
    `FROM ${chunkTable} c WHERE c.${c.runId} = $1 AND c.${c.version} > $2 ORDER BY c.${c.version} LIMIT $3::bigint`
  )
}

/** In a transaction, after `saveRun`: inserts chunk `$3` (`text` `$4`) of stage `$2` of run `$1` with the run's version. */
export function saveOutputChunkSql({ runTable, run: r, chunkTable, chunk: c }: TableNames): string {
  return (
    `INSERT INTO ${chunkTable} (${c.runId}, ${c.stageNumber}, ${c.seq}, ${c.version}, ${c.text}) ` +
    `SELECT r.${r.id}, $2, $3, r.${r.version}, $4 FROM ${runTable} r WHERE r.${r.id} = $1`
  )
}

/** In a transaction: deletes every chunk of stage `$2` of run `$1`. */
export function deleteOutputChunksSql({ chunkTable, chunk: c }: TableNames): string {
  return `DELETE FROM ${chunkTable} c WHERE c.${c.runId} = $1 AND c.${c.stageNumber} = $2`
}
