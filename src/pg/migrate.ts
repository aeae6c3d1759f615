/**
 * `applyMigrations`: the package's SQL migrations applied and recorded in `_prisma_migrations`
 * the way `prisma migrate deploy` does, without Prisma's schema engine (which the Prisma CLI
 * downloads, and which firewalled machines cannot fetch). Only for a database (or PostgreSQL
 * schema) that serves this package alone; it refuses any other history.
 *
 * Prisma's behaviour, from its source (prisma/prisma-engines, schema-engine), followed step by step:
 * - `core/src/commands/apply_migrations.rs`: take the lock; initialize the history; refuse when a
 *   recorded migration has `finished_at` and `rolled_back_at` both NULL (P3009); apply, in
 *   folder order, every migration with no row that is not rolled back. Per migration:
 *   `record_migration_started` (INSERT id, checksum, started_at, migration_name), the script,
 *   then `record_successful_step` (applied_steps_count + 1) and `record_migration_finished`
 *   (finished_at); on failure `record_failed_step` writes the error to `logs`, and stops.
 * - `sql-schema-connector/src/sql_migration_persistence.rs`: the id is a random UUID v4; the
 *   timestamps are the client's clock (`chrono::Utc::now()`), not the database's.
 * - `sql-schema-connector/src/flavour/postgres.rs`: the lock is `SELECT pg_advisory_lock(72707369)`,
 *   given up after 10 s (`ADVISORY_LOCK_TIMEOUT`); the table is created by the DDL copied in
 *   {@link CREATE_MIGRATIONS_TABLE}; `initialize` (sql_migration_persistence.rs) creates it only
 *   when absent and refuses a schema that has other tables but no history (P3005);
 *   `setup_connection` creates the URL's `?schema=` schema when it does not exist.
 * - `flavour/postgres/connector/native/mod.rs`: `apply_migration_script` sends the whole file as ONE
 *   simple query, so PostgreSQL runs a file of several statements in one implicit transaction
 *   and a file holding only `CREATE INDEX CONCURRENTLY` outside any transaction. Sending the file
 *   the same way (pg's `query` without parameters, PGlite's `exec`) gives the same rule.
 * - The checksum rule: see `migration-files.ts`.
 */
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { listMigrationFiles, type MigrationFile, packageMigrationsDir, scriptMatchesChecksum } from './migration-files.js'
import { errorMessage } from '../internal/error-message.js'
import { quoteIdentifier, schemaNameProblem } from '../internal/quote-identifier.js'
import { checkDatabaseUrl, describeUrl } from './database-url.js'
import { announcesOtherProcess } from './pooler-evidence.js'

/** Prisma Migrate's advisory lock key (prisma-engines `flavour/postgres.rs` `acquire_lock`). */
export const PRISMA_MIGRATE_LOCK_KEY = 72707369

/** `create_migrations_table` of prisma-engines `flavour/postgres.rs`, verbatim. */
export const CREATE_MIGRATIONS_TABLE = `CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);
`

/** Why {@link applyMigrations} stopped; see {@link MigrationError}. */
export type MigrationErrorCode =
  | 'foreign-history'
  | 'schema-not-empty'
  | 'checksum-mismatch'
  | 'failed-migration'
  | 'migration-failed'
  | 'lock-timeout'
  | 'transaction-pooler'
  | 'connection-failed'

/**
 * Thrown by {@link applyMigrations}. Its message says what was found and what to do.
 * `code` tells the cases apart: `foreign-history` (the history holds migrations that are not the
 * package's), `schema-not-empty` (tables but no history), `checksum-mismatch` (an applied package
 * migration whose file changed), `failed-migration` (a recorded migration that failed earlier),
 * `migration-failed` (a script failed in this run; `cause` is the database error),
 * `lock-timeout` (another migration held Prisma's lock for longer than `lockTimeoutMs`),
 * `transaction-pooler` (the connection goes through a pooler in transaction or statement mode,
 * where Prisma's session-level advisory lock protects nothing), `connection-failed` (a connection
 * string's database could not be reached within `connectTimeoutMs`; the message names its host and
 * port, `cause` is `pg`'s error).
 */
export class MigrationError extends Error {
  /** Always `'MigrationError'`, also across module formats. */
  override readonly name = 'MigrationError'
  /** Why it was refused or failed (see {@link MigrationErrorCode}). */
  readonly code: MigrationErrorCode
  /** The migration concerned, when there is one. */
  readonly migration: string | undefined

  constructor(code: MigrationErrorCode, message: string, options: { migration?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.migration = options.migration
  }
}

/** A `pg.Client`, a `pg.PoolClient` or a `pg.Pool` (one of its connections is used for the run). */
export interface PgQueryable {
  /** Runs one statement with `$1`-style parameters, as `pg` does. */
  query(text: string, values?: unknown[]): Promise<unknown>
}

/** A PGlite instance (`@electric-sql/pglite`), or anything with its `query` and `exec`. */
export interface PGliteLike {
  /** Runs one statement with `$1`-style parameters and answers its rows. */
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>
  /** Runs a script of statements (a migration file) as one simple query. */
  exec(text: string): Promise<unknown>
}

/** Options of {@link applyMigrations}. */
export interface ApplyMigrationsOptions {
  /**
   * The PostgreSQL schema to migrate, as Prisma's `?schema=`: created when missing, and the
   * session's `search_path` while migrating (restored afterwards on a client you passed).
   * At most 63 bytes as UTF-8 (PostgreSQL's limit), else a `RangeError`.
   * @default the connection string's `?schema=`, else `public`; for a client, its `current_schema()`
   */
  schema?: string | undefined
  /**
   * How long to wait for Prisma's advisory lock (another `prisma migrate deploy` or
   * `applyMigrations` running), in milliseconds; Prisma waits 10 s.
   * @default 10000
   */
  lockTimeoutMs?: number | undefined
  /**
   * How long to wait for the connection, in milliseconds (connection strings only).
   * @default 10000
   */
  connectTimeoutMs?: number | undefined
  /**
   * The folder of `<name>/migration.sql` migrations to apply.
   * @default the package's own `prisma/migrations`
   */
  migrationsDir?: string | undefined
}

/** What {@link applyMigrations} did. */
export interface ApplyMigrationsResult {
  /** The migrations applied by this call, in order. */
  applied: string[]
  /** The migrations that were applied before. */
  alreadyApplied: string[]
  /** The PostgreSQL schema migrated. */
  schema: string
  /** One line saying the above, e.g. `applied 5 migrations to schema "public": 20261124204841_init, …`. */
  summary: string
}

interface Session {
  query<Row>(sql: string, params?: unknown[]): Promise<Row[]>
  /** One simple query, as Prisma sends a migration script. */
  script(sql: string): Promise<void>
  close(): Promise<void>
}

interface HistoryRow {
  id: string
  checksum: string
  finished_at: Date | null
  migration_name: string
  logs: string | null
  rolled_back_at: Date | null
  started_at: Date
}

/**
 * Applies the package's migrations (`prisma/migrations` of pipeline-status-sdk) to a PostgreSQL
 * database that serves only this package, recording each in `_prisma_migrations` exactly as
 * `prisma migrate deploy` does, so Prisma can take over later and the other way round. Holds
 * Prisma's advisory lock (72707369) throughout, so it needs a session connection: not a
 * transaction pooler (PgBouncer in transaction mode), which may hand the unlock to another
 * server connection. Behind a pooler it first opens a second connection to see whether the two
 * share a server process, and refuses when they do (`transaction-pooler`); for a `pg` client you
 * pass it can only see its own server process change. Applies nothing twice: a second call changes nothing. Node only.
 *
 * @param target A connection string (`postgresql://…`, `?schema=` honoured), a `pg` client or
 * pool, or a PGlite instance. A client you pass stays open.
 * @returns What was applied and a one-line summary.
 * @throws {@link MigrationError} when the history holds anything but the package's migrations
 * (`foreign-history`, `schema-not-empty`, `checksum-mismatch`, `failed-migration`), when a script
 * fails (`migration-failed`, naming the migration and the database error), or after
 * `lockTimeoutMs` waiting for the lock (`lock-timeout`), or when the connection goes through a
 * pooler in transaction mode (`transaction-pooler`, before anything is changed: it names
 * DIRECT_DATABASE_URL), or when a connection string's database cannot be reached within `connectTimeoutMs`
 * (`connection-failed`, naming host:port without the password and what to check; `cause` is `pg`'s error).
 * @throws RangeError before creating anything, when the schema (`options.schema` or the URL's
 * `?schema=`) is longer than 63 bytes as UTF-8 (PostgreSQL's NAMEDATALEN − 1), which PostgreSQL
 * would silently truncate.
 * @throws ServerConfigurationError (from `pipeline-status-sdk/server`) before connecting, when a connection
 * string's scheme is not `postgres:` or `postgresql:`, naming DIRECT_DATABASE_URL.
 *
 * @example
 * ```ts
 * import { applyMigrations } from 'pipeline-status-sdk/pg'
 * const { summary } = await applyMigrations(process.env.DIRECT_DATABASE_URL!)
 * console.info(summary)
 * ```
 */
export async function applyMigrations(
  target: string | PgQueryable | PGliteLike,
  options: ApplyMigrationsOptions = {},
): Promise<ApplyMigrationsResult> {
  const migrations = listMigrationFiles(options.migrationsDir ?? packageMigrationsDir())
  const { session, urlSchema, probe } = await openSession(target, options.connectTimeoutMs ?? 10_000)
  try {
    if (probe !== undefined) await refuseTransactionPooler(session, probe)
    await acquireLock(session, options.lockTimeoutMs ?? 10_000)
    try {
      const schema =
        options.schema ?? urlSchema ?? (typeof target === 'string' ? 'public' : (await session.query<{ s: string }>('SELECT current_schema() AS s'))[0]?.s ?? 'public')
      // Before anything is created: PostgreSQL would truncate a longer name and report success.
      const problem = schemaNameProblem(schema)
      if (problem) throw new RangeError(problem)
      const [{ path }] = (await session.query<{ path: string }>(`SELECT current_setting('search_path') AS path`)) as [{ path: string }]
      await ensureSchema(session, schema)
      await session.query(`SET search_path TO ${quoteIdentifier(schema)}`)
      try {
        return await migrate(session, migrations, schema)
      } finally {
        await session.query(`SELECT set_config('search_path', $1, false)`, [path])
      }
    } finally {
      await session.query('SELECT pg_advisory_unlock($1)', [PRISMA_MIGRATE_LOCK_KEY])
    }
  } finally {
    await session.close()
  }
}

async function migrate(session: Session, migrations: readonly MigrationFile[], schema: string): Promise<ApplyMigrationsResult> {
  const known = new Map(migrations.map((migration) => [migration.name, migration]))
  const hasTable = (await session.query<{ t: string | null }>(`SELECT to_regclass($1) AS t`, [`${quoteIdentifier(schema)}._prisma_migrations`]))[0]?.t
  const rows = hasTable
    ? await session.query<HistoryRow>(
        'SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at FROM _prisma_migrations ORDER BY started_at',
      )
    : []
  const live = rows.filter((row) => row.rolled_back_at === null)
  // No history (no "_prisma_migrations", or one that records nothing but rolled-back attempts:
  // an app's empty one, or one a refused attempt left behind): the schema must hold no tables.
  if (live.length === 0) {
    const tables = await session.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname = $1 AND c.relname <> '_prisma_migrations' ORDER BY 1`,
      [schema],
    )
    if (tables.length > 0) {
      throw new MigrationError(
        'schema-not-empty',
        `Schema "${schema}" has tables (${tables.map((table) => table.name).join(', ')}) but no migration history ` +
          `(${hasTable ? '"_prisma_migrations" records no applied migration' : 'no "_prisma_migrations"'}), so it is not a database that serves only pipeline-status-sdk. Add the package's schema ` +
          'to your own migrations instead (`pipeline-status migrate --into prisma/migrations`, then `prisma migrate deploy`, ' +
          "which needs Prisma's schema engine), or give the package a PostgreSQL schema of its own, which needs no engine " +
          '(`pipeline-status migrate --schema pipeline`). If these are the package\'s own tables, applied from ' +
          '`pipeline-status migrate --print` (which records no history), keep upgrading that way: ' +
          '`pipeline-status migrate --print --after <the last migration applied>`.',
      )
    }
  }

  const foreign = [...new Set(live.filter((row) => !known.has(row.migration_name)).map((row) => row.migration_name))]
  if (foreign.length > 0) {
    throw new MigrationError(
      'foreign-history',
      `The migration history of schema "${schema}" holds migrations that are not pipeline-status-sdk's ` +
        `(${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? `, and ${foreign.length - 5} more` : ''}): the database ` +
        'belongs to an app with its own migrations. Give the package a PostgreSQL schema of its own, with its own history ' +
        '(`pipeline-status migrate --schema pipeline`; needs no Prisma engine), or write the package schema into the app\'s ' +
        'history with `pipeline-status migrate --into prisma/migrations` and deploy it with the app\'s migrations ' +
        '(`prisma migrate deploy`), or give a DBA `pipeline-status migrate --print`; without --schema, `pipeline-status migrate` ' +
        'only migrates a database that serves this package alone.',
    )
  }
  const failed = live.filter((row) => row.finished_at === null)
  if (failed.length > 0) {
    const first = failed[0]!
    throw new MigrationError(
      'failed-migration',
      `Migration ${first.migration_name} failed on ${first.started_at.toISOString()} and is recorded as failed` +
        `${first.logs ? ` (${firstLine(first.logs)})` : ''}; nothing is applied after a failed migration (Prisma's P3009). ` +
        `Repair the schema, then mark it rolled back: UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE id = '${first.id}'; ` +
        `(or npx prisma migrate resolve --rolled-back ${first.migration_name}) and run again.`,
      { migration: first.migration_name },
    )
  }
  for (const row of live) {
    const file = known.get(row.migration_name)!
    if (!scriptMatchesChecksum(file.sql, row.checksum)) {
      throw new MigrationError(
        'checksum-mismatch',
        `Migration ${row.migration_name} was applied with checksum ${row.checksum}, but the package's migration.sql ` +
          `now has ${file.checksum}: the file or the recorded row was changed after it was applied. The package never ` +
          'edits a released migration; reinstall pipeline-status-sdk, or if the database really matches the file, ' +
          `set the checksum: UPDATE "_prisma_migrations" SET checksum = '${file.checksum}' WHERE id = '${row.id}';`,
        { migration: row.migration_name },
      )
    }
  }

  const done = new Set(live.map((row) => row.migration_name))
  const pending = migrations.filter((migration) => !done.has(migration.name))
  const alreadyApplied = migrations.filter((migration) => done.has(migration.name)).map((migration) => migration.name)
  if (pending.length > 0 && !hasTable) await session.script(CREATE_MIGRATIONS_TABLE)

  const applied: string[] = []
  for (const migration of pending) {
    const id = randomUUID()
    await session.query('INSERT INTO _prisma_migrations (id, checksum, started_at, migration_name) VALUES ($1, $2, $3, $4)', [
      id,
      migration.checksum,
      new Date(),
      migration.name,
    ])
    try {
      await session.script(migration.sql)
    } catch (error) {
      const detail = describeDatabaseError(error, migration.sql)
      await session.query('UPDATE _prisma_migrations SET logs = $1 WHERE id = $2', [`${migration.name}: ${detail}`, id])
      throw new MigrationError(
        'migration-failed',
        `Migration ${migration.name} failed: ${detail}. Nothing of it was kept${applied.length > 0 ? ` (applied before it: ${applied.join(', ')})` : ''}; ` +
          `it is recorded as failed in "_prisma_migrations", so fix the cause, mark it rolled back ` +
          `(UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE id = '${id}';) and run again.`,
        { migration: migration.name, cause: error },
      )
    }
    await session.query('UPDATE _prisma_migrations SET applied_steps_count = applied_steps_count + 1 WHERE id = $1', [id])
    await session.query('UPDATE _prisma_migrations SET finished_at = $1 WHERE id = $2', [new Date(), id])
    applied.push(migration.name)
  }

  const summary =
    applied.length === 0
      ? `nothing to apply: all ${migrations.length} migrations of pipeline-status-sdk are applied to schema "${schema}"`
      : `applied ${applied.length} migration${applied.length === 1 ? '' : 's'} to schema "${schema}" (${applied.join(', ')})` +
        `${alreadyApplied.length > 0 ? `; ${alreadyApplied.length} were applied before` : ''}`
  return { applied, alreadyApplied, schema, summary }
}

async function openSession(
  target: string | PgQueryable | PGliteLike,
  connectTimeoutMs: number,
): Promise<{ session: Session; urlSchema: string | undefined; probe: PoolerProbe | undefined }> {
  if (typeof target === 'string') {
    checkDatabaseUrl(target, { where: 'applyMigrations', option: 'the connection string', variable: 'DIRECT_DATABASE_URL' })
    const { connectionString, schema } = splitSchemaParam(target)
    const config = { connectionString, connectionTimeoutMillis: connectTimeoutMs }
    const client = new pg.Client(config)
    await connectOrExplain(client, connectionString, connectTimeoutMs)
    return { session: pgSession(client, () => client.end()), urlSchema: schema, probe: { client, config } }
  }
  if (isPGlite(target)) {
    return {
      session: {
        query: async <Row>(sql: string, params?: unknown[]) => (await target.query(sql, params)).rows as Row[],
        script: async (sql) => void (await target.exec(sql)),
        close: async () => {},
      },
      urlSchema: undefined,
      probe: undefined,
    }
  }
  if (isPool(target)) {
    const client = await target.connect()
    const { options } = target as { options?: pg.PoolConfig }
    return {
      session: pgSession(client, async () => client.release()),
      urlSchema: undefined,
      probe: { client, config: options === undefined ? undefined : { ...options, connectionTimeoutMillis: connectTimeoutMs } },
    }
  }
  return { session: pgSession(target, async () => {}), urlSchema: undefined, probe: { client: target, config: undefined } }
}

/**
 * Connects, or throws `connection-failed` saying where to (host:port, never the password) and what
 * to check: `pg` alone says only "Connection terminated unexpectedly" or "connect ECONNREFUSED".
 */
async function connectOrExplain(client: pg.Client, connectionString: string, connectTimeoutMs: number): Promise<void> {
  try {
    await client.connect()
  } catch (error) {
    // A failed connect may leave the socket open; nothing else will close it.
    await client.end().catch(() => undefined)
    const said = errorMessage(error) || String((error as { code?: unknown })?.code ?? 'no reason given')
    throw new MigrationError(
      'connection-failed',
      `Could not connect to the database at ${describeUrl(connectionString)} (within ${connectTimeoutMs} ms): ${said}. Nothing was changed. ` +
        'Check DIRECT_DATABASE_URL (or --database-url): that it names the database\'s own host and port, that the host is reachable ' +
        'from here (firewall, VPN, security group), and that the database is up and accepts connections.',
      { cause: error },
    )
  }
}

/** The connection a migration runs on, and how to open a second one to the same place. */
interface PoolerProbe {
  client: PgQueryable
  /** A second connection's configuration; `undefined` for a client passed in. */
  config: pg.ClientConfig | undefined
}

/**
 * Refuses a connection through a pooler in transaction (or statement) mode, where the session
 * lock Prisma's migrations rely on belongs to a server connection that other clients share.
 *
 * A direct connection announces its server process id at start-up (BackendKeyData, `pg`'s
 * `processID`), and `pg_backend_pid()` answers the same; a pooler announces an id of its own, so
 * only then is more evidence needed. In session mode every client connection keeps one server
 * process; in transaction mode the pooler hands the server connection back after each statement.
 * So while this connection is idle, a second one is opened and asked for its server process: the
 * same process as this connection's (or this connection's process changing between statements)
 * proves statement-level sharing. A busy pooler may hand the second connection another process;
 * then nothing is proven and the migration goes on, as it would without the check.
 */
async function refuseTransactionPooler(session: Session, probe: PoolerProbe): Promise<void> {
  const backend = async () => Number((await session.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))[0]?.pid)
  const first = await backend()
  if (announcesOtherProcess(probe.client, first) === false) return
  const pids = [first]
  if (probe.config !== undefined) {
    const other = new pg.Client(probe.config)
    if (probe.config.connectionString === undefined) await other.connect()
    else await connectOrExplain(other, probe.config.connectionString, Number(probe.config.connectionTimeoutMillis))
    try {
      pids.push(Number((await other.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid))
    } finally {
      await other.end()
    }
  }
  pids.push(await backend())
  const shared = pids.length === 3 ? pids[1] === first || pids[1] === pids[2] : false
  if (!shared && pids.at(-1) === first) return
  throw new MigrationError(
    'transaction-pooler',
    `The connection goes through a connection pooler in transaction mode (PgBouncer's pool_mode = transaction, or a ` +
      `provider's pooled port): ${shared ? `two connections of this migration were served by the same server process (${pids[1]})` : `its server process changed between two statements (${first}, then ${pids.at(-1)})`}, ` +
      `so Prisma's advisory lock ${PRISMA_MIGRATE_LOCK_KEY}, which belongs to a server session, would not keep two migrations apart. ` +
      'Nothing was changed. Migrate over a direct connection to PostgreSQL: set DIRECT_DATABASE_URL (or --database-url) ' +
      "to the database's own host and port, or to a pooler in session mode.",
  )
}

function pgSession(client: PgQueryable, close: () => Promise<void>): Session {
  return {
    query: async <Row>(sql: string, params?: unknown[]) => ((await client.query(sql, params)) as pg.QueryResult).rows as Row[],
    // No parameters: pg sends a simple query, as Prisma does.
    script: async (sql) => void (await client.query(sql)),
    close,
  }
}

function isPGlite(target: PgQueryable | PGliteLike): target is PGliteLike {
  return typeof (target as { exec?: unknown }).exec === 'function'
}

function isPool(target: PgQueryable): target is PgQueryable & { connect(): Promise<pg.PoolClient> } {
  return typeof (target as { connect?: unknown }).connect === 'function' && 'idleCount' in target && 'totalCount' in target
}

/** The URL without Prisma's `schema` parameter (which `pg` does not know), and that schema. */
export function splitSchemaParam(connectionString: string): { connectionString: string; schema: string | undefined } {
  let url: URL
  try {
    url = new URL(connectionString)
  } catch {
    return { connectionString, schema: undefined }
  }
  const schema = url.searchParams.get('schema') ?? undefined
  if (schema === undefined) return { connectionString, schema }
  url.searchParams.delete('schema')
  return { connectionString: url.toString(), schema }
}

/** Polls `pg_try_advisory_lock` until `timeoutMs`: a wait with a deadline, as Prisma's 10 s. */
async function acquireLock(session: Session, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
    const [row] = await session.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [PRISMA_MIGRATE_LOCK_KEY])
    if (row?.locked) return
    if (Date.now() >= deadline) {
      const holders = await session.query<{ pid: number }>(
        // Advisory locks are the database's own: another database's migration holds its own 72707369.
        `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = $1 AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [PRISMA_MIGRATE_LOCK_KEY],
      )
      throw new MigrationError(
        'lock-timeout',
        `Another migration holds Prisma's advisory lock ${PRISMA_MIGRATE_LOCK_KEY}` +
          `${holders.length > 0 ? ` (server process ${holders.map((holder) => holder.pid).join(', ')})` : ''}; gave up after ${timeoutMs} ms. ` +
          'Wait for it (prisma migrate deploy, or another instance starting) and run again; a crashed session releases it when its connection closes.',
      )
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(delay, Math.max(1, deadline - Date.now()))))
  }
}

async function ensureSchema(session: Session, schema: string): Promise<void> {
  const [row] = await session.query<{ exists: boolean }>('SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS exists', [schema])
  if (!row?.exists) await session.query(`CREATE SCHEMA ${quoteIdentifier(schema)}`)
}

/** `42P07 relation "PipelineRun" already exists (line 5: CREATE TABLE "PipelineRun" ()` */
function describeDatabaseError(error: unknown, sql: string): string {
  const { code, message, position } = error as { code?: unknown; message?: unknown; position?: unknown }
  let where = ''
  const offset = Number(position)
  if (Number.isInteger(offset) && offset > 0) {
    const before = sql.slice(0, offset - 1).split('\n')
    const line = sql.split('\n')[before.length - 1] ?? ''
    where = ` (line ${before.length}: ${line.trim()})`
  }
  return `${typeof code === 'string' ? `${code} ` : ''}${typeof message === 'string' ? message : String(error)}${where}`
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? ''
}
