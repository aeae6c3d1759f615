/**
 * Whether a `PrismaStore`'s statements sent inline (a pool with named statements, names other
 * than the defaults, the functions missing) can keep catalogues in the table of catalogues by
 * digest (`TableNames.catalogueTable`, `"PipelineCatalogue"` unless renamed; `sql/catalogue.ts`),
 * and what the store says about it. One rule: the store asks the database for the table, with its
 * two columns, the first time an inline statement would use it; while it is missing the store
 * sends each catalogue whole (as before the table existed: nothing is lost, each run stores its
 * own copy) and asks again at most every {@link STORE_FUNCTIONS_RECHECK_MS}, so a migration applied
 * while the app runs takes effect without a restart. A statement the database answers with "no
 * such table", "no such column" or "permission denied" (SQLSTATE 42P01, 42703, 42501: dropped or
 * revoked since) about this table marks it missing at once (the same about the run's or the
 * stages' table is thrown as it is: `lost`); a table the role may not read and insert into counts
 * as missing.
 * Each change between the two is logged once, `warn`, with its cause and, going without, the fix.
 * Internal.
 */
import { errorMessage } from '../../internal/error-message.js'
import type { Logger } from '../../internal/logger.js'
import { hasSqlState, sqlStateMessage } from '../database-errors.js'
import type { SqlExecutor } from './adapters/sql-executor.js'
import { STORE_FUNCTIONS_RECHECK_MS } from './function-calls.js'
import { RecheckedPresence } from './rechecked-presence.js'
import { PIPELINE_CATALOGUE_MIGRATION } from './sql/catalogue.js'
import type { TableNames } from './table-names.js'

/**
 * Whether the table named by the text `$1` (quoted, qualified or found by search_path, as the
 * statements name it) exists with the columns whose quoted names are in the text array `$2`
 * (always quoted, as `quoteIdentifier` quotes them), and the session's role may read it and
 * insert into it: `"ok"`. Never raises for a missing schema, table or column.
 */
export const CATALOGUE_TABLE_PROBE =
  // has_table_privilege with 'SELECT, INSERT' would hold for either one: asked one at a time.
  'SELECT count(*) = cardinality($2::text[]) AND coalesce(has_table_privilege(to_regclass($1::text), \'SELECT\') ' +
  'AND has_table_privilege(to_regclass($1::text), \'INSERT\'), false) AS "ok" ' +
  'FROM pg_attribute a WHERE a.attrelid = to_regclass($1::text) ' +
  `AND a.attnum > 0 AND NOT a.attisdropped AND '"' || replace(a.attname::text, '"', '""') || '"' = ANY($2::text[])`

/**
 * SQLSTATEs undefined_table, undefined_column and insufficient_privilege: a statement found the
 * table (or a column of it) gone, or the role no longer allowed to use it. A statement that uses
 * the table uses the run's and the stages' tables too: these say which by their words.
 */
const GONE = ['42P01', '42703', '42501']

/** The alias the statements give the catalogue table where they read it (`catalogueLookupSql`): `column c.stages does not exist`. */
const LOOKUP_ALIAS = 'c'

/** The parts of a quoted, maybe qualified, name (`"app"."catalogues"` → `['app', 'catalogues']`). */
function unquotedParts(quoted: string): string[] {
  return [...quoted.matchAll(/"((?:[^"]|"")*)"/g)].map((match) => (match[1] as string).replaceAll('""', '"'))
}

/**
 * Whether PostgreSQL's words for a {@link GONE} state name the catalogue table `table` (its
 * unquoted name, and schema when qualified) or one of its `columns` (unquoted): `true` when they
 * name it, `false` when they name another table (`relation "PipelineRun"`, `column "tags" of
 * relation "PipelineRun"`, `column r.version`, `permission denied for table StageOutput`),
 * `undefined` when they name no table (`column "version" does not exist`) or are not words this
 * knows (another `lc_messages`).
 */
export function namesCatalogueTable(message: string, table: { schema?: string | undefined; name: string }, columns: readonly string[]): boolean | undefined {
  const isTable = (named: string) => named === table.name || (table.schema !== undefined && named === `${table.schema}.${table.name}`)
  const relation = /^relation "(.+)" does not exist$/.exec(message)
  if (relation) return isTable(relation[1] as string)
  const ofRelation = /^column "(?:[^"]|"")+" of relation "(.+)" does not exist$/.exec(message)
  if (ofRelation) return isTable(ofRelation[1] as string)
  // A column read through an alias: the lookup's alias for the table, another one for the others.
  const aliased = /^column ([A-Za-z_][A-Za-z0-9_$]*)\.(.+) does not exist$/.exec(message)
  if (aliased) return aliased[1] === LOOKUP_ALIAS && columns.includes((aliased[2] as string).replace(/^"(.*)"$/, '$1'))
  const denied = /^permission denied for (?:table|relation) (.+)$/.exec(message)
  if (denied) return isTable(denied[1] as string)
  return undefined
}

/** The catalogue table of one store, as its inline statements see it; see the module's description. */
export class CatalogueTable {
  /** The table's quoted name, as the statements and the messages name it. */
  readonly #table: string
  /** The table's name and schema, and its columns' names, unquoted: as PostgreSQL's errors name them. */
  readonly #named: { table: { schema?: string | undefined; name: string }; columns: readonly string[] }
  /** Asks the database whether the table is there and usable: `true`, else why not. */
  readonly #ask: () => Promise<true | string>
  readonly #presence: RecheckedPresence

  constructor(sql: SqlExecutor, names: Pick<TableNames, 'catalogueTable' | 'catalogue'>, logger: () => Logger, now: () => number = Date.now) {
    const table = names.catalogueTable
    // Its columns' quoted names (digest, stages).
    const columns = [names.catalogue.digest, names.catalogue.stages]
    this.#table = table
    const parts = unquotedParts(table)
    this.#named = {
      table: parts.length > 1 ? { schema: parts[0], name: parts.at(-1) as string } : { name: parts[0] ?? table },
      columns: columns.map((column) => unquotedParts(column)[0] ?? column),
    }
    this.#ask = async () => {
      const rows = await sql.query<{ ok: boolean }>(CATALOGUE_TABLE_PROBE, [table, columns])
      return rows[0]?.ok === true || `the database has no table ${table} with columns ${columns.join(', ')} (on the search_path when unqualified) that this role may read and insert into`
    }
    this.#presence = new RecheckedPresence({
      what: 'it',
      recheckMs: STORE_FUNCTIONS_RECHECK_MS,
      now,
      probe: this.#ask,
      onPresentAgain: () =>
        logger().warn(`pipeline-status: the database has ${table} now; stage updates and run creations sent inline send each catalogue once, then its digest`, {
          migration: PIPELINE_CATALOGUE_MIGRATION,
          table,
        }),
      onMissing: (cause) =>
        logger().warn(
          'pipeline-status: stage updates and run creations sent inline (not through the package\'s functions) send each run\'s ' +
            `catalogue whole (~6.5 KB of JSON for 200 stages) instead of its digest, because ${cause}. Nothing is lost: each run ` +
            `stores its own copy. The table comes with the package's migration ${PIPELINE_CATALOGUE_MIGRATION}: apply it ` +
            '(npx pipeline-status migrate); with models of other names (@@map, @map, @@schema), copy the PipelineCatalogue model ' +
            "beside them, mapped the same way, or name its table with createPrismaStore's names.PipelineCatalogue. " +
            'The store asks for it again every minute',
          { migration: PIPELINE_CATALOGUE_MIGRATION, table },
        ),
    })
  }

  /** The table's quoted name, as the statements name it (`"PipelineCatalogue"` unless renamed or qualified). */
  get name(): string {
    return this.#table
  }

  /**
   * Whether inline statements keep catalogues in the table now: asked the first time, and again
   * at most every {@link STORE_FUNCTIONS_RECHECK_MS} while it is missing. Throws
   * `StoreUnavailableError` when asking found the database unreachable (asked again next time).
   */
  usable(): Promise<boolean> {
    return this.#presence.present()
  }

  /**
   * Whether `error`, thrown by a statement that used the table, says it (or a column) is gone or
   * no longer usable by the role (SQLSTATE 42P01, 42703, 42501; refused before anything ran):
   * then it is marked missing, said once, and the caller sends its statement without it. Only
   * when the error is the table's: the statement uses the run's and the stages' tables too, and
   * a column missing there (their migration not applied) is `false`, so that the caller throws it
   * as it is (`database_not_migrated`, naming the column and the fix), rather than blaming this
   * table and sending the statement again. Which table: by PostgreSQL's words
   * ({@link namesCatalogueTable}), else (words that name no table, or another language) by asking
   * the database whether the table is there and usable. Any other error: `false`.
   */
  async lost(error: unknown): Promise<boolean> {
    const state = GONE.find((candidate) => hasSqlState(error, candidate))
    if (state === undefined) return false
    const message = sqlStateMessage(error, state)
    const named = message === undefined ? undefined : namesCatalogueTable(message, this.#named.table, this.#named.columns)
    if (named === false) return false
    if (named === undefined) {
      // Unreachable, or asking failed: the statement's own error is the one to throw.
      const answer = await this.#ask().catch(() => true as const)
      if (answer === true) return false
    }
    this.#presence.missing(`a statement found it gone (${errorMessage(error)})`)
    return true
  }
}
