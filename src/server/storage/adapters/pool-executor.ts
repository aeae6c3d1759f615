/**
 * The store's statements on the app's `pg` pool, skipping the Prisma client's per-statement
 * cost: named prepared statements until the database (or a transaction pooler in front of it)
 * refuses one, then unnamed ones (`PrismaStoreOptions.namedStatements`).
 */
import { errorMessage } from '../../../internal/error-message.js'
import { fnv1a32 } from '../../../internal/fnv1a.js'
import { type CallGuard, errorCode, type SqlExecutor } from './sql-executor.js'

/**
 * A `pg` pool (or anything with its `query`), for {@link PrismaStoreOptions.pool}: e.g. the
 * `pg.Pool` an app already hands to `new PrismaPg(pool)`.
 */
export interface PrismaStorePool {
  /**
   * Runs one statement with bound parameters (`$1`, `$2`, …) (`pg`'s `QueryConfig`). With
   * `name`, a named prepared statement, parsed once per connection; without, an unnamed one
   * (see {@link PrismaStoreOptions.namedStatements}).
   */
  query(config: { name?: string; text: string; values: unknown[] }): PromiseLike<{ rows: unknown[] }>
}

/** How {@link createPoolExecutor} sends statements. */
export interface PoolExecutorOptions {
  /** `PrismaStoreOptions.namedStatements`: `true` always named, `false` always unnamed, `undefined` named until refused. */
  namedStatements: boolean | undefined
  /** Bounds and classifies each attempt. */
  guard: CallGuard
  /** Says once, with the fix, that the pool path turned to unnamed statements. */
  warn: (message: string, fields: Record<string, unknown>) => void
}

/**
 * SQLSTATEs of a named statement a server connection does not have (`26000`
 * invalid_sql_statement_name) or already has from another client (`42P05`
 * duplicate_prepared_statement): what a transaction pooler's named statements fail with.
 */
const REFUSED_NAMED_STATEMENT = new Set(['26000', '42P05'])

/**
 * SQLSTATEs of a named statement that a connection prepared before a migration changed a table
 * under it (a migration applied while the app runs): `0A000` "cached plan must not change result
 * type" (a column it returns changed type), `42846` cannot_coerce and `42804` datatype_mismatch (a
 * parameter's type, fixed when it was prepared, no longer fits its column). PostgreSQL raises them
 * while planning the statement again, before it runs, so it wrote nothing.
 */
const STALE_NAMED_STATEMENT = new Set(['0A000', '42846', '42804'])

/** How often one statement is renamed after going stale, at most (each a migration applied while the app ran). */
const MAX_RENAMES = 8

/** An executor on `pool`, named statements chosen by `options.namedStatements`. */
export function createPoolExecutor(pool: PrismaStorePool, options: PoolExecutorOptions): SqlExecutor {
  const { guard, warn } = options
  // Whether statements are named now; the default turns to unnamed ones when a pooler refuses them.
  let named = options.namedStatements ?? true
  const unnamedOnRefusal = options.namedStatements === undefined
  const unnamed = <Row>(text: string, values: unknown[]) => guard(poolRows<Row>(pool.query({ text, values })))
  // A statement's current name and how often it was renamed: a new name (its text's name and a
  // generation) once a connection's prepared copy went stale, so that every connection prepares it
  // again. pg keeps each name's statement per connection and offers no way to drop it; the old ones
  // end with their connection.
  const renamed = new Map<string, { name: string; renames: number }>()
  let warnedStale = false
  return {
    get prepares() {
      return named
    },
    async query<Row>(text: string, values: unknown[]): Promise<Row[]> {
      if (!named) return unnamed<Row>(text, values)
      const name = renamed.get(text)?.name ?? statementName(text)
      try {
        return await guard(poolRows<Row>(pool.query({ name, text, values })))
      } catch (error) {
        const code = String(errorCode(error))
        if (STALE_NAMED_STATEMENT.has(code)) {
          // Renamed once per stale name (other connections' calls with it only retry), at most
          // MAX_RENAMES times per statement: an error of the statement itself stays an error.
          const current = renamed.get(text) ?? { name: statementName(text), renames: 0 }
          if (current.name === name && current.renames < MAX_RENAMES) {
            renamed.set(text, { name: `${statementName(text)}_${(generations += 1).toString(36)}`, renames: current.renames + 1 })
          }
          if (!warnedStale) {
            warnedStale = true
            warn(
              `pipeline-status: a prepared statement no longer fits its table (${code}: ${errorMessage(error)}): the schema changed ` +
                'after the store prepared it, as a migration applied while the app runs does. The call is sent again (nothing had ' +
                'been written) and the statement prepared again under a new name on each connection; said once',
              { code },
            )
          }
          // Unnamed: planned afresh, whatever this connection has prepared.
          return unnamed<Row>(text, values)
        }
        if (!unnamedOnRefusal || !REFUSED_NAMED_STATEMENT.has(code)) throw error
        // Refused at Parse or Bind, before anything ran: sending it again unnamed is safe.
        if (named) {
          named = false
          warn(
            `pipeline-status: the database refused a named prepared statement (${String(errorCode(error))}: ${errorMessage(error)}), ` +
              'as a transaction pooler (PgBouncer in transaction mode, Supavisor, Neon) does; the store now sends unnamed statements, ' +
              'which cost a parse per call. Pass namedStatements: false to createPrismaStore to start that way, or give it a pool on a direct URL',
            { code: errorCode(error) },
          )
        }
        return unnamed<Row>(text, values)
      }
    },
  }
}

function poolRows<Row>(pending: PromiseLike<{ rows: unknown[] }>): Promise<Row[]> {
  return Promise.resolve(pending).then((result) => result.rows as Row[])
}

const statementNames = new Map<string, string>()

/** Statements renamed since the process started (a suffix of each new name): unique per process, so no two executors' renamed statements share a name. */
let generations = 0

/**
 * A prepared statement's name derived from its text (FNV-1a), so that stores with different
 * table names sharing one pool never reuse a name for another statement.
 */
function statementName(sql: string): string {
  let name = statementNames.get(sql)
  if (name === undefined) {
    name = `pss_${fnv1a32(sql).toString(36)}_${sql.length.toString(36)}`
    statementNames.set(sql, name)
  }
  return name
}
