/**
 * The hot path's statements as PL/pgSQL functions: the stage update's two (`stage-update.ts`),
 * the heartbeat's (`touchRunSql`, `runs.ts`) and the run's insert (`insertRunSql`), created by the
 * package's migration {@link STORE_FUNCTIONS_MIGRATION}, so that a store whose statements
 * reach the database unnamed (the Prisma client's raw queries, or a pool behind a transaction
 * pooler) still has them parsed and planned once per database connection: PL/pgSQL keeps each
 * statement's plan for the session, as a named prepared statement would, and a function lives in
 * the database, so it works through PgBouncer in transaction mode where named statements do not.
 *
 * The migration creates them for the default table and column names, in the schema it is applied
 * to (`pipeline-status migrate --schema` or the `search_path`), each with that `search_path`
 * pinned (`SET search_path FROM CURRENT`), so its unqualified names find the tables beside it. A
 * store with the default names calls them, schema-qualified when its own names are; a store with
 * other names (`@@map`, `@map`) sends its statements inline. Each function's name ends in a hash of
 * its definition, so a database holds the function of exactly the SQL this code would send, or
 * none (a package version whose migration was not applied): then too the store sends its
 * statements inline. `PrismaStore` says once which and why.
 * `test/prisma/store-functions.test.ts` checks that the migration creates the functions
 * this code names.
 */
import { fnv1a32 } from '../../../internal/fnv1a.js'
import { quoteIdentifier } from '../../../internal/quote-identifier.js'
import { resolveTableNames, type TableNames } from '../table-names.js'
import { CATALOGUE_DIGEST_UNKNOWN, catalogueLookupSql, keepCatalogueSql } from './catalogue.js'
import { CATALOGUE_PARAMETER } from './columns.js'
import { INSERT_CATALOGUE_PARAMETER, INSERT_DIGEST_PARAMETER } from './runs.js'
import { WRITE_DIGEST_PARAMETER } from './stage-update.js'
import { buildStatements, type StoreStatements } from './statements.js'

export { CATALOGUE_DIGEST_UNKNOWN }

/** The migration that creates the functions of the current statements. */
export const STORE_FUNCTIONS_MIGRATION = '20261207110000_pipeline_catalogue'

/** One statement as a function: its name, the SQL that creates it, and the statement that calls it with the statement's parameters. */
export interface StoreFunction {
  /** Its name, schema-qualified (quoted) when the store's tables are. */
  readonly name: string
  /** `CREATE OR REPLACE FUNCTION …`, unqualified: what the migration runs in the schema it is applied to. */
  readonly create: string
  /** `SELECT name($1::type, …) …`: the call with the statement's parameters, in the statement's order. */
  readonly call: string
  /**
   * `name(type, …)`: the function the call resolves to, its argument types as the call casts
   * them (the enum qualified as in the call, else found by search_path like the call's cast), for
   * `to_regprocedure` ({@link STORE_FUNCTIONS_PROBE}).
   */
  readonly signature: string
  /** The package's own types the signature names (the enum, qualified as in the call): the probe asks for them first. */
  readonly packageTypes: readonly string[]
}

/** The hot path's functions. */
export interface StoreFunctions {
  /** `readRunStage`'s row as JSON text (`"row"`), `NULL` when the run does not exist. */
  readonly readRunStage: StoreFunction
  /**
   * `writeRunStage` with one more argument, the catalogue's digest (`$31`, {@link WRITE_CATALOGUE_DIGEST}):
   * `"written"` is 1 when written, `NULL` when the run's version had changed, and
   * {@link CATALOGUE_DIGEST_UNKNOWN} when the catalogue came as its digest alone and
   * `"PipelineCatalogue"` has no such row (nothing was written: send it again whole).
   */
  readonly writeRunStage: StoreFunction
  /** `touchRun`'s row as JSON text (`"row"`), `NULL` when no run was touched. */
  readonly touchRun: StoreFunction
  /**
   * `insertRun` with the catalogue's digest as one more argument (`$13`, as the write function's
   * {@link WRITE_CATALOGUE_DIGEST}): `"created"` is 1 when inserted, `NULL` when a run with its id
   * existed, {@link CATALOGUE_DIGEST_UNKNOWN} when the digest alone came and its row is not there.
   */
  readonly insertRun: StoreFunction
}

/** The parameter types of `readRunStageSql` (`$1`–`$3`), as PostgreSQL infers them for the default names. */
export const READ_RUN_STAGE_TYPES: readonly string[] = ['text', 'integer', 'text[]']

/**
 * The parameter types of `writeRunStageSql` (`$1`–`$30`: `runWriteValues`, then `stageValues`), as
 * PostgreSQL infers them for the default names (the stage's status shares the run's enum).
 */
export const WRITE_RUN_STAGE_TYPES: readonly string[] = [
  'text', 'integer', '"RunStatus"', 'text', 'timestamp with time zone', 'timestamp with time zone',
  'timestamp with time zone', 'integer', 'json', 'text[]', 'text', 'timestamp with time zone',
  'text', 'integer', 'text', '"RunStatus"', 'text', 'timestamp with time zone', 'text',
  'timestamp with time zone', 'timestamp with time zone', 'timestamp with time zone', 'integer',
  'integer', 'text', 'timestamp with time zone', 'text', 'text[]', 'integer', 'integer',
]

/**
 * The write function's arguments beyond the statement's (`$31`): the catalogue's digest
 * (`catalogueDigest`), `NULL` when the write fills no catalogue. With the catalogue's text (`$9`)
 * too, the function keeps the text in `"PipelineCatalogue"` under the digest (once: `ON CONFLICT
 * DO NOTHING`); with `$9` `NULL`, it takes the text from there. So a store sends a catalogue's
 * text once, and each later run's first update of that pipeline sends 64 characters instead
 * (~6.5 KB for 200 stages; bench/README.md "The catalogue by its digest").
 */
export const WRITE_CATALOGUE_DIGEST = 'text'

/** The parameter types of `insertRunSql` (`$1`–`$12`), as PostgreSQL infers them for the default names. */
export const INSERT_RUN_TYPES: readonly string[] = [
  'text', '"RunStatus"', 'text', 'timestamp with time zone', 'timestamp with time zone', 'timestamp with time zone',
  'timestamp with time zone', 'integer', 'text', 'json', 'text[]', 'text',
]

/** The parameter types of `touchRunSql` (`$1`–`$6`), as PostgreSQL infers them. */
export const TOUCH_RUN_TYPES: readonly string[] = ['text', 'timestamp with time zone', 'integer', 'integer', 'text[]', 'text[]']

/**
 * Whether every function whose signature (`StoreFunction.signature`, schema-qualified or not) is
 * in the text array `$1` exists, resolved as its call resolves it: `"ok"`. By signature
 * (`to_regprocedure`), not by name: `to_regproc` is `NULL` for a name with several overloads,
 * as when two schemas on the search_path each hold the package's tables and functions (the
 * write function's enum argument differs per schema), though the call resolves by search_path.
 * The package's types the signatures name (`StoreFunction.packageTypes`, the text array `$2`)
 * are asked for first: `to_regprocedure` raises, rather than answering `NULL`, when a type of the
 * signature does not exist (a database without the package's migrations), and `false` is the answer there.
 */
export const STORE_FUNCTIONS_PROBE =
  'SELECT CASE WHEN (SELECT bool_and(to_regtype(type) IS NOT NULL) FROM unnest($2::text[]) AS type) ' +
  'THEN (SELECT bool_and(to_regprocedure(signature) IS NOT NULL) FROM unnest($1::text[]) AS signature) ELSE false END AS "ok"'

type FunctionStatements = Pick<
  StoreStatements,
  'readRunStage' | 'writeRunStage' | 'touchRun' | 'insertRun' | 'writeRunStageByDigest' | 'insertRunByDigest'
>

let defaults: { names: TableNames; statements: StoreStatements } | undefined

/** The default names, unqualified, and their statements: the SQL inside the functions (built once). */
function defaultNames(): { names: TableNames; statements: StoreStatements } {
  if (defaults === undefined) {
    const names = resolveTableNames({}, {})
    defaults = { names, statements: buildStatements(names) }
  }
  return defaults
}

/**
 * The functions the migration creates, for a store with `names` and `statements`: called in its
 * schema when its names are qualified; `undefined` when its statements are not the default names'
 * own (the functions would run other SQL than the store's), the catalogue table's name included.
 */
export function migratedFunctionsFor(names: Pick<TableNames, 'schema'>, statements: FunctionStatements): StoreFunctions | undefined {
  const expected = names.schema === undefined ? defaultNames().statements : buildStatements(resolveTableNames({}, { schema: names.schema }))
  const same =
    statements.readRunStage === expected.readRunStage &&
    statements.writeRunStage === expected.writeRunStage &&
    statements.touchRun === expected.touchRun &&
    statements.insertRun === expected.insertRun &&
    // The catalogue table's name too (`names.PipelineCatalogue`, `@@map`): the functions keep and
    // read catalogues in "PipelineCatalogue" itself, as these statements name it.
    statements.writeRunStageByDigest === expected.writeRunStageByDigest &&
    statements.insertRunByDigest === expected.insertRunByDigest
  if (!same) return undefined
  return storeFunctions(names.schema)
}

/** The functions of the default names (pure: nothing is sent), called in `schema` when given. */
export function storeFunctions(schema?: string): StoreFunctions {
  const { names, statements } = defaultNames()
  /**
   * A function that may fill a run's catalogue (the stage update's write, the run's insert): the
   * catalogue by its digest first (`catalogueByDigest`), then the statement, whose one integer
   * column (`RETURNING 1 AS "<column>"`) it answers as `"<column>"`.
   */
  const writingFunction = (prefix: string, types: readonly string[], statement: string, catalogueParameter: number, digestParameter: number, column: string) => {
    const returning = `RETURNING 1 AS "${column}"`
    if (!statement.endsWith(returning)) throw new Error(`${prefix} must end with ${returning}`)
    // The digest is the argument after the statement's own, as in the statements sent inline.
    if (digestParameter !== types.length + 1) throw new Error(`${prefix}: the digest must be $${types.length + 1}`)
    return storeFunction(
      prefix,
      qualify,
      [...types, WRITE_CATALOGUE_DIGEST],
      'integer',
      `DECLARE ${column} integer;\nBEGIN\n${catalogueByDigest(names, catalogueParameter, digestParameter)}  ${statement.slice(0, -returning.length)}RETURNING 1 INTO ${column};\n  RETURN ${column};\nEND`,
      ` AS "${column}"`,
    )
  }
  // The heartbeat is a data-modifying WITH, which may not stand in a subquery: its row goes INTO a record.
  const touchFrom = ' FROM r LEFT JOIN '
  const at = statements.touchRun.lastIndexOf(touchFrom)
  if (at < 0) throw new Error(`touchRun must select${touchFrom}…`)
  // The call names the function, and the enum it casts to, in the store's schema when it has one.
  const qualify = (quoted: string) => (schema === undefined ? quoted : `${quoteIdentifier(schema)}.${quoted}`)
  return {
    readRunStage: storeFunction(
      'pipeline_status_read_run_stage',
      qualify,
      READ_RUN_STAGE_TYPES,
      'json STABLE',
      `BEGIN\n  RETURN (SELECT row_to_json(q) FROM (${statements.readRunStage}) q);\nEND`,
      '::text AS "row"',
    ),
    writeRunStage: writingFunction('pipeline_status_write_run_stage', WRITE_RUN_STAGE_TYPES, statements.writeRunStage, CATALOGUE_PARAMETER, WRITE_DIGEST_PARAMETER, 'written'),
    touchRun: storeFunction(
      'pipeline_status_touch_run',
      qualify,
      TOUCH_RUN_TYPES,
      'json',
      `DECLARE touched record;\nBEGIN\n  ${statements.touchRun.slice(0, at)} INTO touched${statements.touchRun.slice(at)};\n` +
        '  IF NOT FOUND THEN\n    RETURN NULL;\n  END IF;\n  RETURN row_to_json(touched);\nEND',
      '::text AS "row"',
    ),
    insertRun: writingFunction('pipeline_status_insert_run', INSERT_RUN_TYPES, statements.insertRun, INSERT_CATALOGUE_PARAMETER, INSERT_DIGEST_PARAMETER, 'created'),
  }
}

/**
 * The first step of the functions that fill a run's catalogue (the write's and the insert's; see
 * {@link WRITE_CATALOGUE_DIGEST}): the catalogue (`$text`, a PL/pgSQL argument, so assignable)
 * from `"PipelineCatalogue"` when only its digest (`$digest`) came, or kept there when both came,
 * by the SQL the statements sent inline use too (`sql/catalogue.ts`). It comes before the
 * statement, so an unknown digest writes nothing.
 */
function catalogueByDigest(names: TableNames, textParameter: number, digestParameter: number): string {
  const text = `$${textParameter}`
  const digest = `$${digestParameter}`
  return (
    `  IF ${digest} IS NOT NULL THEN\n` +
    `    IF ${text} IS NULL THEN\n` +
    `      ${catalogueLookupSql(names, digest, `INTO ${text}`)};\n` +
    `      IF NOT FOUND THEN\n        RETURN ${CATALOGUE_DIGEST_UNKNOWN};\n      END IF;\n` +
    '    ELSE\n' +
    `      ${keepCatalogueSql(names, digest, text)};\n` +
    '    END IF;\n' +
    '  END IF;\n'
  )
}

function storeFunction(
  prefix: string,
  qualify: (name: string) => string,
  types: readonly string[],
  returns: string,
  body: string,
  result: string,
): StoreFunction {
  const definition = `(${types.join(', ')}) RETURNS ${returns} LANGUAGE plpgsql SET search_path FROM CURRENT AS $pipeline_status$\n${body}\n$pipeline_status$`
  const name = quoteIdentifier(`${prefix}_${fnv1a32(definition).toString(16).padStart(8, '0')}`)
  // A quoted type is the package's enum, beside the tables; the others are PostgreSQL's own.
  const castTo = (type: string) => (type.startsWith('"') ? qualify(type) : type)
  return {
    name: qualify(name),
    create: `CREATE OR REPLACE FUNCTION ${name}${definition};`,
    call: `SELECT ${qualify(name)}(${types.map((type, i) => `$${i + 1}::${castTo(type)}`).join(', ')})${result}`,
    signature: `${qualify(name)}(${types.map(castTo).join(', ')})`,
    packageTypes: [...new Set(types.filter((type) => type.startsWith('"')).map(castTo))],
  }
}

