/**
 * A pipeline's catalogue kept once under its digest (`"PipelineCatalogue"`, migration
 * 20261207110000_pipeline_catalogue): the one copy of the SQL that keeps a catalogue's text under
 * its digest and takes it back by the digest, for the functions' first step (`catalogueByDigest`
 * in `functions.ts`) and for the statements sent inline (`writeRunStageKeepingSql`,
 * `writeRunStageByDigestSql` in `stage-update.ts`, `insertRunKeepingSql`, `insertRunByDigestSql`
 * in `runs.ts`). Two rules, the same on both paths: with the text and its digest, the text is kept
 * under the digest (`ON CONFLICT DO NOTHING`); with the digest alone, the text is the one kept,
 * and when none is kept the statement writes nothing and answers {@link CATALOGUE_DIGEST_UNKNOWN}.
 */
import type { TableNames } from '../table-names.js'

/** The package's migration that creates the table of catalogues by digest. */
export const PIPELINE_CATALOGUE_MIGRATION = '20261207110000_pipeline_catalogue'

/** What a writing function, or statement sent inline, answers when the catalogue's digest alone came and its row is not there (nothing was written). */
export const CATALOGUE_DIGEST_UNKNOWN = -1

/**
 * The catalogue kept under the digest `digest` (a placeholder): `SELECT c.stages <into> FROM
 * <table> c WHERE c.digest = <digest>`, `into` the PL/pgSQL `INTO $n` of a function or the
 * column's alias (`AS "stages"`) of a statement. At most one row: the digest is the table's key.
 */
export function catalogueLookupSql({ catalogueTable, catalogue: c }: TableNames, digest: string, into: string): string {
  return `SELECT c.${c.stages} ${into} FROM ${catalogueTable} c WHERE c.${c.digest} = ${digest}`
}

/** Keeps the catalogue's text (`text`, a placeholder) under its digest (`digest`), unless a row has that digest already. */
export function keepCatalogueSql({ catalogueTable, catalogue: c }: TableNames, digest: string, text: string): string {
  return `INSERT INTO ${catalogueTable} (${c.digest}, ${c.stages}) VALUES (${digest}, ${text}) ON CONFLICT DO NOTHING`
}

/**
 * The catalogue a statement sent inline stores, of `sources` (placeholders, columns, subqueries)
 * the first not `NULL`, each read as `json`: a `json` or `jsonb` column takes it by assignment, and
 * a text sent as `json` is kept as sent (as `jsonb` it would be rewritten, and no longer be the
 * text its digest was made of). `json` to `json` is no cast at all.
 */
export function catalogueAsJson(...sources: string[]): string {
  return `COALESCE(${sources.map((source) => `${source}::json`).join(', ')})`
}

/**
 * A statement sent inline with the catalogue's text and its digest: the CTE that keeps it, and the
 * condition that makes the statement's own write wait for it.
 */
export interface InlineKeptCatalogue {
  /** `kept_catalogue AS (…)`: the first CTE (followed by `, ` or the statement). */
  readonly cte: string
  /**
   * A condition that always holds (`(SELECT count(*) FROM kept_catalogue) >= 0`), for the
   * statement's write: PostgreSQL evaluates it once, before the write touches the run's row, and so
   * keeps the catalogue first. The functions keep it first too (`catalogueByDigest` in
   * `functions.ts`), and two writes of one run that keep one new catalogue, one inline and one by
   * a function, take the two locks in one order: the catalogue's key, then the run's row. Left to
   * itself PostgreSQL would run the unreferenced CTE last, after the run's row, and the two could
   * deadlock (SQLSTATE 40P01; `test/prisma/catalogue-lock-order.test.ts`).
   */
  readonly first: string
}

/**
 * A statement sent inline with the catalogue's text (`text`) and its digest: `kept_catalogue`,
 * which keeps the text whether or not the statement writes (as the function does before its
 * statement), and before the statement's write ({@link InlineKeptCatalogue.first}). The text as
 * `json` (see {@link catalogueAsJson}).
 */
export function inlineKeptCatalogue(names: TableNames, digest: string, text: string): InlineKeptCatalogue {
  return {
    cte: `kept_catalogue AS (${keepCatalogueSql(names, digest, `${text}::json`)} RETURNING 1)`,
    first: '(SELECT count(*) FROM kept_catalogue) >= 0',
  }
}

/**
 * The parts of a statement sent inline with the catalogue's digest alone (`digest`; its text's
 * placeholder `text` is `NULL` then): the first CTE (`cte`, followed by `, `), the catalogue to
 * store (`value`), the condition the statement writes under (`found`), and its answer.
 */
export interface InlineCatalogueByDigest {
  /** `catalogue_by_digest AS (…)`: the kept catalogue, no row when none has the digest. */
  readonly cte: string
  /**
   * The catalogue to store: `column` first when given (the run's catalogue column, kept once
   * set), then the text sent (`NULL` here), else the kept one ({@link catalogueAsJson}).
   */
  value(column?: string): string
  /** True when the digest has a row: the statement writes only then. */
  readonly found: string
  /**
   * The statement's answer, as a function's: `, <name> AS (<write>) SELECT …` with `write` a
   * data-modifying statement `RETURNING 1 AS "<name>"` (at most one row): one row, `"<name>"` 1
   * when written, `NULL` when not, {@link CATALOGUE_DIGEST_UNKNOWN} when the digest had no row.
   */
  answer(write: string, name: string): string
}

/** The parts of a statement that takes the catalogue by `digest` alone (see {@link InlineCatalogueByDigest}). */
export function inlineCatalogueByDigest(names: TableNames, digest: string, text: string): InlineCatalogueByDigest {
  const kept = '(SELECT k."stages" FROM catalogue_by_digest k LIMIT 1)'
  const found = 'EXISTS (SELECT FROM catalogue_by_digest)'
  return {
    cte: `catalogue_by_digest AS (${catalogueLookupSql(names, digest, 'AS "stages"')})`,
    value: (column) => (column === undefined ? catalogueAsJson(text, kept) : catalogueAsJson(column, text, kept)),
    found,
    answer: (write, name) =>
      `, ${name} AS (${write}) SELECT CASE WHEN ${found} THEN (SELECT "${name}" FROM ${name}) ELSE ${CATALOGUE_DIGEST_UNKNOWN} END AS "${name}"`,
  }
}
