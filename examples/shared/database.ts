/**
 * Opens the database that the examples, the demo and the tests use: real PostgreSQL when a
 * URL is given, otherwise embedded PostgreSQL (PGlite) on a data folder or in memory, so a
 * fresh machine needs nothing installed. Either way the SQL in `prisma/migrations` (the same
 * files users deploy with `prisma migrate deploy`) is applied before the client is returned.
 *
 * Pending migrations are recorded in Prisma's own `_prisma_migrations` table, in the format
 * `prisma migrate deploy` reads, so a database prepared here can later be migrated by Prisma
 * and the other way round.
 *
 * PGlite serves one connection, inside this process. A second process (a runner talking to
 * the same embedded database) would need it served over a socket with
 * `@electric-sql/pglite-socket`; nothing here does that yet.
 */
import { createHash, randomUUID } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PGlite } from '@electric-sql/pglite'
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { PrismaPGlite } from 'pglite-prisma-adapter'
import { createPgConnections, type PgConnections, type PgLiveModeSetting } from 'pipeline-status-sdk/pg'
import { PrismaClient } from '../../src/generated/prisma/client.js'

/** The folder holding `<timestamp>_<name>/migration.sql`, as `prisma migrate` lays it out. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations/', import.meta.url))

/** How long a request waits for a pooled connection, in milliseconds. */
export const POOL_CONNECTION_TIMEOUT_MS = 5_000
/** How long PostgreSQL lets one statement run before it cancels it, in milliseconds. */
export const STATEMENT_TIMEOUT_MS = 10_000
/** How long PostgreSQL keeps a transaction that sends nothing, in milliseconds. */
export const IDLE_IN_TRANSACTION_TIMEOUT_MS = 20_000

/** Prisma Migrate's advisory lock key, so this and `prisma migrate deploy` never run at once. */
const MIGRATION_LOCK_KEY = 72707369

/** PostgreSQL's `duplicate_table` and `duplicate_object` (type, constraint, index) errors. */
const ALREADY_EXISTS_CODES = new Set(['42P07', '42710'])

/**
 * Thrown by {@link openDatabase} when the database already has what a pending migration creates
 * but `_prisma_migrations` does not record that migration: the migrations were applied another
 * way (with `psql`, say), so neither this nor `prisma migrate deploy` can tell what is applied.
 * Its message is one line saying what to do.
 */
export class MigrationHistoryError extends Error {
  /** The migration that found its objects already there. */
  readonly migration: string
  /** Every migration `_prisma_migrations` does not record, oldest first. */
  readonly unrecorded: readonly string[]

  constructor(migration: string, unrecorded: readonly string[], cause: unknown) {
    super(
      `The database already has the tables of migration ${migration} (${(cause as Error).message}) but no Prisma ` +
        `migration history for it in "_prisma_migrations" (were the migrations applied with psql?). This example ` +
        `migrates its database itself, as prisma migrate deploy does: use an empty database, or record each ` +
        `migration already applied with \`npx prisma migrate resolve --applied <name>\` ` +
        `(not recorded: ${unrecorded.join(', ')}) and start again.`,
      { cause },
    )
    this.name = 'MigrationHistoryError'
    this.migration = migration
    this.unrecorded = unrecorded
  }
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** A PostgreSQL connection URL for requests (`DATABASE_URL`; a pooler's is fine). Without it, PGlite is used. */
  url?: string | undefined
  /**
   * A direct session URL (`DIRECT_DATABASE_URL`) for the migrations and `LISTEN`. Ignored without `url`.
   * @default `url`
   */
  directUrl?: string | undefined
  /** PGlite's data folder (created if missing, kept between runs). Without it, PGlite runs in memory. Ignored with `url`. */
  dataDir?: string | undefined
  /**
   * Connections in the pool of a PostgreSQL client. Ignored for PGlite, which has one.
   * @default 10
   */
  poolSize?: number | undefined
  /**
   * The live mode rule of `createPgConnections` (`live`): `'auto'` (LISTEN with `directUrl`, else
   * version polling), `'listen'` or `'poll'`. Ignored without `url`.
   * @default 'auto'
   */
  live?: PgLiveModeSetting | undefined
  /**
   * Receives the one warning when a connection pooler refuses the bounds as startup parameters
   * and the database does not set them either (see {@link openDatabase}), and the connections'
   * start line (`info`: which live mode and why).
   * @default `console`
   */
  logger?: { warn(message: string): void; info?(message: string): void } | undefined
}

/** An open database with its Prisma client. */
export interface Database {
  prisma: PrismaClient
  kind: 'postgres' | 'pglite'
  /**
   * Where `statement_timeout` and `idle_in_transaction_session_timeout` come from: `'connection'`
   * (sent as startup parameters by every pooled connection), `'database'` (a pooler refused
   * those, so the role's or database's own settings apply: `ALTER ROLE … SET`), or `'none'` (PGlite).
   */
  bounds: 'connection' | 'database' | 'none'
  /** The PGlite instance, e.g. to serve it over a socket; only for `kind: 'pglite'`. */
  pglite?: PGlite
  /**
   * The two URLs (`kind: 'postgres'` only): `connections.pool` is the `pg` pool under the Prisma
   * client; `connections.handlerOptions({ prisma })` gives the store and the handlers' `live`,
   * wired for `connections.liveMode` (LISTEN on the direct URL, or version polling).
   */
  connections?: PgConnections
  /** Disconnects the client (and closes PGlite). */
  close(): Promise<void>
}

/** The two statements migrations need, over either driver. */
interface SqlSession {
  query<Row>(sql: string, params?: unknown[]): Promise<Row[]>
  /** Runs a script of several statements. */
  exec(sql: string): Promise<void>
}

/** The server-side bounds (docs/operations.md), as `pg` startup parameters. */
const CONNECTION_BOUNDS = {
  statement_timeout: STATEMENT_TIMEOUT_MS,
  idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
} as const

/** PgBouncer's answer to a startup parameter it does not pass on (SQLSTATE 08P01). */
const REFUSED_STARTUP_PARAMETER = /unsupported startup parameter/i

/**
 * Opens a database and applies pending migrations. Throws {@link MigrationHistoryError} when the
 * database has the tables but `_prisma_migrations` does not record their migrations.
 *
 * With a URL, every pooled connection sends `statement_timeout` (10 s) and
 * `idle_in_transaction_session_timeout` (20 s) as startup parameters. A transaction pooler
 * (PgBouncer by default, Supavisor, Neon's pooler) refuses those, so when the first connection is
 * refused for that reason the pool connects without them and the database's own settings apply
 * (`ALTER ROLE <user> SET statement_timeout = '10s'`, docs/operations.md); a `SET` per connection
 * would not help there, as each transaction may run on another server connection. When the
 * database sets neither, `logger.warn` says so once, with that fix.
 *
 * @example
 * ```ts
 * import { openDatabase } from '../shared/database.js'
 * const db = await openDatabase({ url: process.env.DATABASE_URL, dataDir: '.data/pglite' })
 * const runs = await db.prisma.pipelineRun.count()
 * await db.close()
 * ```
 */
export async function openDatabase(options: OpenDatabaseOptions = {}): Promise<Database> {
  if (options.url) {
    const directUrl = options.directUrl || options.url
    const { client, pooled } = await connectForMigrations(options.url)
    // Migrations hold a session's advisory lock: on the direct URL when there is one.
    const migrating = directUrl === options.url ? client : (await connectForMigrations(directUrl)).client
    try {
      if (pooled) await warnWithoutDatabaseBounds(client, options.logger ?? console)
      await applyMigrations({
        query: async (sql, params) => (await migrating.query(sql, params)).rows,
        exec: async (sql) => void (await migrating.query(sql)),
      })
    } finally {
      await client.end()
      if (migrating !== client) await migrating.end()
    }
    let live = options.live
    if (live === 'listen' && !options.directUrl && pooled) {
      // The URL does not look like a pooler's, but one refused the startup parameters: LISTEN there would never be told of other sessions' writes.
      ;(options.logger ?? console).warn(
        "LISTEN (live: 'listen', LIVE_MODE=listen) needs a direct connection, but DATABASE_URL goes through a connection pooler " +
          '(it refused the startup parameters) and DIRECT_DATABASE_URL is not set: a transaction pooler never delivers ' +
          "another session's notifications, so live streams poll run versions instead (this example passes live: 'poll' to " +
          "createPgConnections, whose own line says so next). Fix: set DIRECT_DATABASE_URL to the database's own host and port.",
      )
      live = 'poll'
    }
    const connections = createPgConnections({
      connectionString: options.url,
      directConnectionString: options.directUrl,
      live,
      ...(options.logger ? { logger: options.logger } : {}),
      pool: {
        max: options.poolSize ?? 10,
        // Bounds on the database side too (docs/operations.md): a request never waits forever for
        // a pooled connection, and the server cancels a statement (a lock that is never released)
        // or a transaction left idle, freeing the connection the store has already given up on.
        // Behind a pooler that refuses them, the database's own settings apply instead.
        connectionTimeoutMillis: POOL_CONNECTION_TIMEOUT_MS,
        ...(pooled ? {} : CONNECTION_BOUNDS),
      },
    })
    // One pool under both Prisma's adapter and the store's own statements (createPrismaStore's `pool`).
    const prisma = new PrismaClient({ adapter: new PrismaPg(connections.pool) })
    return {
      prisma,
      kind: 'postgres',
      bounds: pooled ? 'database' : 'connection',
      connections,
      close: async () => {
        await prisma.$disconnect()
        await connections.close()
      },
    }
  }

  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true })
  const pglite = options.dataDir ? new PGlite(options.dataDir) : new PGlite()
  try {
    await applyMigrations({
      query: async (sql, params) => (await pglite.query(sql, params)).rows as never,
      exec: async (sql) => void (await pglite.exec(sql)),
    })
  } catch (error) {
    await pglite.close()
    throw error
  }
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) })
  return {
    prisma,
    kind: 'pglite',
    bounds: 'none',
    pglite,
    close: async () => {
      await prisma.$disconnect()
      await pglite.close()
    },
  }
}

/**
 * A connection with the bounds as startup parameters; when a pooler refuses them, one without
 * (`pooled: true`). Any other connection error is thrown.
 */
async function connectForMigrations(url: string): Promise<{ client: pg.Client; pooled: boolean }> {
  const bounded = new pg.Client({ connectionString: url, connectionTimeoutMillis: POOL_CONNECTION_TIMEOUT_MS, ...CONNECTION_BOUNDS })
  try {
    await bounded.connect()
    return { client: bounded, pooled: false }
  } catch (error) {
    await bounded.end().catch(() => undefined)
    if (!REFUSED_STARTUP_PARAMETER.test(String((error as Error).message))) throw error
  }
  const plain = new pg.Client({ connectionString: url, connectionTimeoutMillis: POOL_CONNECTION_TIMEOUT_MS })
  await plain.connect()
  return { client: plain, pooled: true }
}

/** Warns once when, behind a pooler, the database does not set the bounds the pool could not send. */
async function warnWithoutDatabaseBounds(client: pg.Client, logger: { warn(message: string): void }): Promise<void> {
  const { rows } = await client.query<{ statement: string; idle: string; role: string }>(
    "SELECT current_setting('statement_timeout') AS statement, current_setting('idle_in_transaction_session_timeout') AS idle, current_user AS role",
  )
  const row = rows[0]
  const unset = row ? [['statement_timeout', row.statement, '10s'], ['idle_in_transaction_session_timeout', row.idle, '20s']].filter(([, value]) => value === '0') : []
  if (!row || unset.length === 0) return
  logger.warn(
    `The connection pooler refused statement_timeout and idle_in_transaction_session_timeout as startup parameters, so the ` +
      `pool connects without them, and the database sets no ${unset.map(([name]) => name).join(' and ')} either: a statement ` +
      `that never ends holds its server connection. Fix: ${unset.map(([name, , value]) => `ALTER ROLE "${row.role}" SET ${name} = '${value}';`).join(' ')} ` +
      `(docs/operations.md, "Behind a pooler, a proxy or a load balancer")`,
  )
}

/** The migration folders in the order Prisma applies them (their names start with a timestamp). */
export function listMigrations(dir: string = MIGRATIONS_DIR): Array<{ name: string; sql: string }> {
  return readdirSync(dir)
    .filter((name) => statSync(join(dir, name)).isDirectory())
    .sort()
    .map((name) => ({ name, sql: readFileSync(join(dir, name, 'migration.sql'), 'utf8') }))
}

/** The table `prisma migrate deploy` creates, column for column. */
const CREATE_HISTORY_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id" VARCHAR(36) PRIMARY KEY NOT NULL,
  "checksum" VARCHAR(64) NOT NULL,
  "finished_at" TIMESTAMPTZ,
  "migration_name" VARCHAR(255) NOT NULL,
  "logs" TEXT,
  "rolled_back_at" TIMESTAMPTZ,
  "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`

async function applyMigrations(session: SqlSession): Promise<void> {
  await session.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY])
  try {
    const [{ t: hasHistory }] = (await session.query<{ t: string | null }>(`SELECT to_regclass('"_prisma_migrations"')::text AS t`)) as [{ t: string | null }]
    const applied = hasHistory
      ? await session.query<{ migration_name: string }>(
          'SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
        )
      : []
    const done = new Set(applied.map((row) => row.migration_name))
    const pending = listMigrations().filter((migration) => !done.has(migration.name))
    for (const migration of pending) {
      // One transaction per migration: a failing script leaves no half-applied schema behind, and
      // the history table is created in the first one's, so a refused first migration (tables
      // applied another way, MigrationHistoryError) leaves no empty history behind either.
      await session.exec('BEGIN')
      try {
        await session.exec(CREATE_HISTORY_TABLE)
        await session.exec(migration.sql)
        await session.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, applied_steps_count)
           VALUES ($1, $2, now(), $3, 1)`,
          [randomUUID(), createHash('sha256').update(migration.sql).digest('hex'), migration.name],
        )
        await session.exec('COMMIT')
      } catch (error) {
        await session.exec('ROLLBACK')
        if (ALREADY_EXISTS_CODES.has(String((error as { code?: unknown }).code))) {
          throw new MigrationHistoryError(migration.name, pending.map((unrecorded) => unrecorded.name), error)
        }
        throw new Error(`Migration ${migration.name} failed`, { cause: error })
      }
    }
  } finally {
    await session.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY])
  }
}
