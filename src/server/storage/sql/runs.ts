/** The statements on runs outside a transaction: create, read, write if unchanged, heartbeat. */
import type { TableNames } from '../table-names.js'
import { type InlineCatalogueByDigest, inlineCatalogueByDigest, type InlineKeptCatalogue, inlineKeptCatalogue } from './catalogue.js'
import { runColumns, runUpdate, stageColumns, streamedTextColumn } from './columns.js'

/** Reads run `$1` and its version. */
export function readRunSql(names: TableNames): string {
  return `SELECT ${runColumns(names, 'r')} FROM ${names.runTable} r WHERE r.${names.run.id} = $1`
}

/**
 * Reads run `$1` joined with every stage it has, one row per stage (or one without), ordered by
 * stage number, with each stage's streamed text (`withText`) or `NULL` in its place. The run's
 * large columns (catalogue, tags, metadata) come on the first row only (`NULL` on the others):
 * repeated per stage they made a read of a run with n stages cost n catalogues (a 200-stage
 * catalogue is ~6 KB of text, serialised by the database and parsed by the driver per row).
 * `many`: the runs whose ids are in the text array `$1` instead, ordered by id, then stage number,
 * the large columns on each run's first row. The catalogue only when its digest is not in the
 * text array `$2` (`runColumns`).
 */
export function readRunStagesSql(names: TableNames, withText = true, many = false): string {
  const { runTable, stageTable, run: r, stage: s } = names
  const streamed = withText ? streamedTextColumn(names) : 'NULL::text AS "s_streamed"'
  const firstRow = `row_number() OVER (${many ? `PARTITION BY r.${r.id} ` : ''}ORDER BY s.${s.stageNumber}) = 1`
  return (
    `SELECT ${runColumns(names, 'r', firstRow, '$2')}, s.${s.stageNumber} AS "s_stageNumber", ${stageColumns(names)}, ${streamed} FROM ${runTable} r ` +
    `LEFT JOIN ${stageTable} s ON s.${s.runId} = r.${r.id} WHERE r.${r.id} ${many ? '= ANY($1::text[])' : '= $1'} ` +
    `ORDER BY ${many ? `r.${r.id}, ` : ''}s.${s.stageNumber}`
  )
}

/** The versions of the runs whose ids are in the text array `$1`. */
export function readVersionsSql({ runTable, run: r }: TableNames): string {
  return `SELECT r.${r.id} AS "id", r.${r.version} AS "version" FROM ${runTable} r WHERE r.${r.id} = ANY($1::text[])`
}

/**
 * Inserts a run (id, status, error, completedAt, completionReceivedAt, createdAt, updatedAt,
 * version, pipeline, catalogue, tags, metadata as `$1`–`$12`) unless one with its id exists:
 * `INSERT … ON CONFLICT DO NOTHING`, so a concurrent create of the same id waits for the other to
 * commit and then inserts nothing. The catalogue (`$10`, JSON text) takes the column's type, `json`
 * or `jsonb` (`runLabelsUpdate`).
 */
export function insertRunSql(names: TableNames): string {
  return runInsert(names)
}

/** The catalogue's placeholder number in `insertRunSql` (`$10`). */
export const INSERT_CATALOGUE_PARAMETER = 10

/** The catalogue's digest's placeholder in the inline inserts that take it (`$13`, one past `insertRunSql`'s; the insert function's argument too). */
export const INSERT_DIGEST_PARAMETER = 13

/**
 * `insertRunSql` that also keeps the run's catalogue (`$10`, its text) in the catalogue table
 * under its digest (`$13`, {@link INSERT_DIGEST_PARAMETER}), whether or not the run is inserted:
 * the inline form of the insert function called with both (`sql/catalogue.ts`).
 */
export function insertRunKeepingSql(names: TableNames): string {
  return runInsert(names, { kept: inlineKeptCatalogue(names, `$${INSERT_DIGEST_PARAMETER}`, `$${INSERT_CATALOGUE_PARAMETER}`) })
}

/**
 * `insertRunSql` with the run's catalogue by its digest (`$13`) alone (`$10` `NULL`): the text
 * kept in the catalogue table under it. One row, as the insert function answers: `"created"` 1
 * when inserted, `NULL` when a run with its id existed, `CATALOGUE_DIGEST_UNKNOWN` when no row has
 * the digest (nothing inserted).
 */
export function insertRunByDigestSql(names: TableNames): string {
  return runInsert(names, { byDigest: inlineCatalogueByDigest(names, `$${INSERT_DIGEST_PARAMETER}`, `$${INSERT_CATALOGUE_PARAMETER}`) })
}

/**
 * The insert of `insertRunSql`: with the catalogue kept first (`kept`, inserted only after it:
 * `InlineKeptCatalogue.first`), or taken by its digest (`byDigest`), when given.
 */
function runInsert({ runTable, run: r }: TableNames, parts: { kept?: InlineKeptCatalogue; byDigest?: InlineCatalogueByDigest } = {}): string {
  const { kept, byDigest } = parts
  const into =
    `INSERT INTO ${runTable} (${r.id}, ${r.status}, ${r.error}, ${r.completedAt}, ${r.completionReceivedAt}, ` +
    `${r.createdAt}, ${r.updatedAt}, ${r.version}, ${r.pipeline}, ${r.catalogue}, ${r.tags}, ${r.metadata}) `
  const values = (catalogue: string) =>
    `$1, $2, $3, $4::timestamptz, $5::timestamptz, $6::timestamptz, $7::timestamptz, $8, $9, ${catalogue}, $11::text[], $12::text::jsonb`
  const conflict = `ON CONFLICT (${r.id}) DO NOTHING RETURNING 1 AS "created"`
  const text = `$${INSERT_CATALOGUE_PARAMETER}`
  if (kept) return `WITH ${kept.cte} ${into}SELECT ${values(text)} WHERE ${kept.first} ${conflict}`
  if (!byDigest) return `${into}VALUES (${values(text)}) ${conflict}`
  return `WITH ${byDigest.cte}${byDigest.answer(`${into}SELECT ${values(byDigest.value())} WHERE ${byDigest.found} ${conflict}`, 'created')}`
}

/** Writes the run (`runWriteValues`, `$1`–`$12`) only if its version is still `$2`. */
export function writeRunSql(names: TableNames): string {
  const { runTable, run: r } = names
  return (
    `WITH run AS (UPDATE ${runTable} SET ${runUpdate(names)} ` +
    `WHERE ${r.id} = $1 AND ${r.version} = $2 RETURNING ${r.id} AS id, ${r.version} AS version) ` +
    `SELECT 1 AS "written" FROM run`
  )
}

/**
 * The heartbeat: stores `$2` as run `$1`'s lastActivityAt (and the interval `$3`, when given),
 * never the version, so no new ETag or event; returns the run joined with stage `$4`. Only an
 * unfinished run (status in `$5`), checked in the same statement: a heartbeat that waited for
 * the lock of a run being finished re-checks the committed status and writes nothing after it.
 */
export function touchRunSql(names: TableNames): string {
  const { runTable, stageTable, run: r, stage: s } = names
  return (
    `WITH r AS (UPDATE ${runTable} SET ${r.lastActivityAt} = $2::timestamptz, ` +
    `${r.heartbeatIntervalMs} = COALESCE($3::integer, ${r.heartbeatIntervalMs}) ` +
    `WHERE ${r.id} = $1 AND ${r.status}::text = ANY($5::text[]) RETURNING *) ` +
    `SELECT ${runColumns(names, 'r', undefined, '$6')}, ${stageColumns(names)} FROM r ` +
    `LEFT JOIN ${stageTable} s ON s.${s.runId} = r.${r.id} AND s.${s.stageNumber} = $4::integer`
  )
}
