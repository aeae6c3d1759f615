/**
 * The stage-update hot path: one statement reads, one writes. No transaction: the write succeeds
 * only if the run's version is still the one read.
 */
import type { TableNames } from '../table-names.js'
import { catalogueAsJson, type InlineCatalogueByDigest, inlineCatalogueByDigest, type InlineKeptCatalogue, inlineKeptCatalogue } from './catalogue.js'
import { CATALOGUE_PARAMETER, RUN_WRITE_VALUE_COUNT, runColumns, runUpdate, STAGE_VALUE_COUNT, stageColumns, stageConflict, stageInsert } from './columns.js'

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
 * `alongside`: more data-modifying CTEs (`, name AS (…)`) after the run's, which read `run` and
 * so write only with it (`sql/output-chunks.ts`).
 */
export function writeRunStageSql(names: TableNames, alongside = ''): string {
  return runStageWrite(names, { alongside })
}

/** The catalogue's digest's placeholder in the inline stage writes that take it (`$31`, one past `writeRunStageSql`'s; the write function's argument too). */
export const WRITE_DIGEST_PARAMETER = RUN_WRITE_VALUE_COUNT + STAGE_VALUE_COUNT + 1

/**
 * `writeRunStageSql` that also keeps the run's catalogue (`$9`, its text) in the catalogue table
 * under its digest (`$31`, {@link WRITE_DIGEST_PARAMETER}), whether or not the run is written:
 * the inline form of the write function called with both (`sql/catalogue.ts`).
 */
export function writeRunStageKeepingSql(names: TableNames): string {
  const text = `$${CATALOGUE_PARAMETER}`
  return runStageWrite(names, {
    kept: inlineKeptCatalogue(names, `$${WRITE_DIGEST_PARAMETER}`, text),
    catalogue: (column) => catalogueAsJson(column, text),
  })
}

/**
 * `writeRunStageSql` with the run's catalogue by its digest (`$31`) alone (`$9` `NULL`): the text
 * kept in the catalogue table under it, stored as `$9` would be. One row, as the write function
 * answers: `"written"` 1 when written, `NULL` when the run's version had changed,
 * `CATALOGUE_DIGEST_UNKNOWN` when no row has the digest (nothing written).
 */
export function writeRunStageByDigestSql(names: TableNames): string {
  return runStageWrite(names, { byDigest: inlineCatalogueByDigest(names, `$${WRITE_DIGEST_PARAMETER}`, `$${CATALOGUE_PARAMETER}`) })
}

/**
 * The stage write of `writeRunStageSql`: `alongside` after the run's CTE; the catalogue kept
 * before the run is written (`kept`), or taken by digest (`byDigest`); the catalogue column's
 * value by `catalogue` (`runUpdate`), when given.
 */
function runStageWrite(
  names: TableNames,
  parts: { alongside?: string; kept?: InlineKeptCatalogue; byDigest?: InlineCatalogueByDigest; catalogue?: (column: string) => string },
): string {
  const { runTable, run: r } = names
  const { alongside = '', kept, byDigest, catalogue } = parts
  const write = `${stageInsert(names, (i) => `$${i + RUN_WRITE_VALUE_COUNT + 1}`, 'run.id')} FROM run ${stageConflict(names)} RETURNING 1 AS "written"`
  const first = kept ? `${kept.cte}, ` : byDigest ? `${byDigest.cte}, ` : ''
  const condition = kept ? ` AND ${kept.first}` : byDigest ? ` AND ${byDigest.found}` : ''
  return (
    `WITH ${first}run AS (UPDATE ${runTable} SET ${runUpdate(names, byDigest?.value ?? catalogue)} ` +
    `WHERE ${r.id} = $1 AND ${r.version} = $2${condition} RETURNING ${r.id} AS id, ${r.version} AS version)${alongside}` +
    (byDigest ? byDigest.answer(write, 'written') : ` ${write}`)
  )
}
