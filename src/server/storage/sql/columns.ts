/**
 * The fragments the statements share: the selected columns of a run and of a stage, the run's
 * update and the stage's upsert (LISTEN-mode notifications are sent after commit, in batches:
 * `notify-batcher.ts`). Names come quoted from
 * `table-names.ts`; every value is a bound parameter.
 */
import type { TableNames } from '../table-names.js'

/**
 * A `timestamptz` column read as epoch milliseconds (exact for timestamptz(3)). Instants are
 * written as ISO text with `Z` cast to timestamptz (`sql/parameters.ts`), so that neither a
 * driver's handling of `Date` nor the session's TimeZone can shift them: Prisma's adapter writes
 * a `Date` as wall-clock text without a zone and reads a timestamptz's local rendering as if it
 * were UTC (docs/operations.md).
 */
export function ms(column: string): string {
  return `(extract(epoch FROM ${column}) * 1000)::float8`
}

/**
 * A run's columns under `alias`, as `RunRow` and its `version` in `rows.ts`. `knownCatalogues`:
 * the placeholder of a text array of catalogue digests the store has parsed already (`md5` of the
 * stored text): the catalogue's text comes only when its digest is not among them, and its digest
 * always (`"catalogueDigest"`, `NULL` without a catalogue), so that a read of a run whose catalogue
 * the store knows returns 32 characters instead of the whole catalogue (6.5 KB for 200 stages).
 */
export function runColumns({ run: r }: TableNames, alias: string, onlyWhere?: string, knownCatalogues?: string): string {
  // The large columns (catalogue, tags, metadata) only on the rows where `onlyWhere` holds, when
  // given: a run joined with its stages repeats them on every stage's row otherwise.
  const large = (expression: string) => (onlyWhere === undefined ? expression : `CASE WHEN ${onlyWhere} THEN ${expression} END`)
  const text = `${alias}.${r.catalogue}::text`
  let catalogue = `${large(text)} AS "catalogue"`
  if (knownCatalogues !== undefined) {
    // The digest's expression, made once and written twice: the statement's text is the one the
    // migrated functions hold (their names hash it), so PostgreSQL still evaluates it twice per row.
    const digest = `md5(${text})`
    catalogue = `${large(`CASE WHEN ${digest} = ANY(${knownCatalogues}::text[]) THEN NULL ELSE ${text} END`)} AS "catalogue", ${large(digest)} AS "catalogueDigest"`
  }
  return (
    `${alias}.${r.id} AS "id", ${alias}.${r.status}::text AS "status", ${alias}.${r.error} AS "error", ` +
    `${ms(`${alias}.${r.completedAt}`)} AS "completedAt", ${ms(`${alias}.${r.completionReceivedAt}`)} AS "completionReceivedAt", ` +
    `${ms(`${alias}.${r.createdAt}`)} AS "createdAt", ${ms(`${alias}.${r.updatedAt}`)} AS "updatedAt", ${alias}.${r.version} AS "version", ` +
    `${ms(`${alias}.${r.lastActivityAt}`)} AS "lastActivityAt", ${alias}.${r.heartbeatIntervalMs} AS "heartbeatIntervalMs", ` +
    `${alias}.${r.pipeline} AS "pipeline", ${catalogue}, ${large(`${alias}.${r.tags}`)} AS "tags", ` +
    `${large(`${alias}.${r.metadata}::text`)} AS "metadata", ${ms(`${alias}.${r.startedAt}`)} AS "startedAt"`
  )
}

/**
 * The stage's columns of alias `s`, as `StageColumns` in `rows.ts`. Progress as text, parsed by
 * the store: drivers differ in how they return jsonb.
 */
export function stageColumns({ stage: s }: TableNames): string {
  return (
    `s.${s.stageName} AS "s_stageName", s.${s.status}::text AS "s_status", s.${s.output} AS "s_output", ` +
    `${ms(`s.${s.completedAt}`)} AS "s_completedAt", s.${s.progress}::text AS "s_progress", ${ms(`s.${s.createdAt}`)} AS "s_createdAt", ` +
    `${ms(`s.${s.updatedAt}`)} AS "s_updatedAt", ${ms(`s.${s.startedAt}`)} AS "s_startedAt", s.${s.attempt} AS "s_attempt", ` +
    `s.${s.maxAttempts} AS "s_maxAttempts", s.${s.lastError} AS "s_lastError", ${ms(`s.${s.nextRetryAt}`)} AS "s_nextRetryAt", ` +
    `s.${s.traceparent} AS "s_traceparent", s.${s.traceLinks} AS "s_traceLinks", s.${s.outputSeq} AS "s_outputSeq", ` +
    `s.${s.outputBytes} AS "s_outputBytes"`
  )
}

/**
 * A stage's streamed text (alias `s`), its chunks' text in `seq` order, as `"s_streamed"`; only
 * for a stage that shows it (the condition of `showsStreamedOutput` in `core/stage-output.ts`,
 * which the store applies again), else `NULL`, so a final output costs no aggregation.
 */
export function streamedTextColumn({ stage: s, chunkTable, chunk: c }: TableNames): string {
  return (
    `CASE WHEN s.${s.outputSeq} IS NOT NULL AND (s.${s.status}::text = 'PROCESSING' OR s.${s.output} IS NULL) ` +
    `THEN (SELECT string_agg(c.${c.text}, '' ORDER BY c.${c.seq}) FROM ${chunkTable} c ` +
    `WHERE c.${c.runId} = s.${s.runId} AND c.${c.stageNumber} = s.${s.stageNumber}) END AS "s_streamed"`
  )
}

/**
 * The run's status fields and version from `$3`–`$8`, then the catalogue (`$9`, stored only when
 * the run has none), tags (`$10`) and metadata (`$11`), each left alone when `NULL`, and its
 * `startedAt` (`$12`, stored only when the run has none: a run starts once): in the order of
 * `runWriteValues`. `catalogue`: the catalogue column's new value from the column's name, instead
 * of `COALESCE(column, $9)` (`InlineCatalogueByDigest.value` in `catalogue.ts`).
 */
export function runUpdate(names: TableNames, catalogue?: (column: string) => string): string {
  const { run: r } = names
  return (
    `${r.status} = $3, ${r.error} = $4, ${r.completedAt} = $5::timestamptz, ` +
    `${r.completionReceivedAt} = $6::timestamptz, ${r.updatedAt} = $7::timestamptz, ${r.version} = $8, ` +
    `${runLabelsUpdate(names, (i) => `$${i + CATALOGUE_PARAMETER}`, catalogue)}, ${r.startedAt} = COALESCE(${r.startedAt}, $12::timestamptz)`
  )
}

/** The catalogue's placeholder number in `runUpdate` (`$9`): the ninth of `runWriteValues`. */
export const CATALOGUE_PARAMETER = 9

/**
 * The catalogue (filled only when the run has none), tags and metadata from the parameters
 * `p(0)`–`p(2)`, each left alone when `NULL`: the values of `runColumnValues`. The catalogue's
 * parameter has no cast, so PostgreSQL gives it the column's own type: `json` as the package's
 * migrations make it, `jsonb` in a schema that kept the earlier type (either works).
 * `catalogue`: the catalogue column's new value from the column's name, instead of `COALESCE(column, p(0))`.
 */
export function runLabelsUpdate({ run: r }: TableNames, p: (i: number) => string, catalogue = (column: string) => `COALESCE(${column}, ${p(0)})`): string {
  return (
    `${r.catalogue} = ${catalogue(r.catalogue)}, ${r.tags} = COALESCE(${p(1)}::text[], ${r.tags}), ` +
    `${r.metadata} = COALESCE(${p(2)}::text::jsonb, ${r.metadata})`
  )
}

/** How many values `runWriteValues` binds (`$1`–`$12`): the status fields and versions, the catalogue, tags and metadata, the start. */
export const RUN_WRITE_VALUE_COUNT = 12

/** How many values `stageValues` binds (the stage's insert takes them from `p(0)` to `p(STAGE_VALUE_COUNT - 1)`). */
export const STAGE_VALUE_COUNT = 18


/**
 * The stage's insert: the values of `stageValues`, from parameter `p(0)` on (id, stageNumber,
 * stageName, status, output, completedAt, progress, createdAt, updatedAt, startedAt, attempt,
 * maxAttempts, lastError, nextRetryAt, traceparent, traceLinks, outputSeq, outputBytes), for the run `runId`.
 */
export function stageInsert({ stageTable, stage: s }: TableNames, p: (i: number) => string, runId: string): string {
  return (
    `INSERT INTO ${stageTable} (${s.id}, ${s.runId}, ${s.stageNumber}, ${s.stageName}, ${s.status}, ${s.output}, ` +
    `${s.completedAt}, ${s.progress}, ${s.createdAt}, ${s.updatedAt}, ${s.startedAt}, ${s.attempt}, ${s.maxAttempts}, ` +
    `${s.lastError}, ${s.nextRetryAt}, ${s.traceparent}, ${s.traceLinks}, ${s.outputSeq}, ${s.outputBytes}) ` +
    `SELECT ${p(0)}, ${runId}, ${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}::timestamptz, ${p(6)}::text::jsonb, ${p(7)}::timestamptz, ` +
    `${p(8)}::timestamptz, ${p(9)}::timestamptz, ${p(10)}::integer, ${p(11)}::integer, ${p(12)}, ${p(13)}::timestamptz, ${p(14)}, ${p(15)}::text[], ` +
    `${p(16)}::integer, ${p(17)}::integer`
  )
}

/** Turns the stage's insert into an upsert on `(runId, stageNumber)`, so concurrent first updates merge. */
export function stageConflict({ stage: s }: TableNames): string {
  return (
    `ON CONFLICT (${s.runId}, ${s.stageNumber}) DO UPDATE SET ${s.stageName} = EXCLUDED.${s.stageName}, ` +
    `${s.status} = EXCLUDED.${s.status}, ${s.output} = EXCLUDED.${s.output}, ` +
    `${s.completedAt} = EXCLUDED.${s.completedAt}, ${s.progress} = EXCLUDED.${s.progress}, ${s.updatedAt} = EXCLUDED.${s.updatedAt}, ` +
    `${s.startedAt} = EXCLUDED.${s.startedAt}, ${s.attempt} = EXCLUDED.${s.attempt}, ${s.maxAttempts} = EXCLUDED.${s.maxAttempts}, ` +
    `${s.lastError} = EXCLUDED.${s.lastError}, ${s.nextRetryAt} = EXCLUDED.${s.nextRetryAt}, ` +
    `${s.traceparent} = EXCLUDED.${s.traceparent}, ${s.traceLinks} = EXCLUDED.${s.traceLinks}, ` +
    `${s.outputSeq} = EXCLUDED.${s.outputSeq}, ${s.outputBytes} = EXCLUDED.${s.outputBytes}`
  )
}
