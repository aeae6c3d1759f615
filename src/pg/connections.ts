/**
 * The two URLs of a deployment, said once: a pooled URL for requests (`DATABASE_URL`) and a
 * direct session URL for `LISTEN` and migrations (`DIRECT_DATABASE_URL`), Prisma's own pair
 * (`url` + `directUrl`).
 */
import pg from 'pg'
import { ServerConfigurationError } from '../server/configuration-error.js'
import { applyMigrations, type ApplyMigrationsOptions, type ApplyMigrationsResult } from './migrate.js'
import { createPgRunListener, type PgRunListener, type PgRunListenerOptions } from './run-listener.js'

/** Options of {@link createPgConnections}. */
export interface PgConnectionsOptions {
  /**
   * The URL requests use (`DATABASE_URL`): a transaction pooler's (PgBouncer, Supavisor, Neon's
   * `-pooler` host) or the database's own, e.g. `postgresql://user:pass@pooler:6543/app`.
   * {@link PgConnections.pool} connects to it.
   */
  connectionString: string
  /**
   * A direct session connection (`DIRECT_DATABASE_URL`, Prisma's `directUrl`): the database's own
   * host and port, or a pooler in session mode. The `LISTEN` connection and the migrations use it;
   * a transaction pooler cannot serve either (it never delivers another session's notifications,
   * and it does not keep a session's advisory lock).
   * @default `connectionString` (when that is a direct URL too, one URL is enough)
   */
  directConnectionString?: string | undefined
  /**
   * A read replica's URL (`REPLICA_DATABASE_URL`: a streaming standby, a managed read replica, a
   * Neon read replica's endpoint), for the handlers' `readReplica` (docs/read-replicas.md):
   * {@link PgConnections.replicaPool} connects to it with the request pool's settings
   * (`pool`), and {@link PgConnections.readReplica} is `{ pool: replicaPool }`.
   * @default none: no replica pool, and `readReplica` is `undefined`
   */
  replicaConnectionString?: string | undefined
  /**
   * More settings of the request pool (`pg.PoolConfig` without `connectionString`), e.g.
   * `{ max: 10, connectionTimeoutMillis: 5_000 }`.
   * @default `pg`'s defaults (10 connections, no connection timeout)
   */
  pool?: Omit<pg.PoolConfig, 'connectionString'> | undefined
  /**
   * Receives the one warning of {@link PgConnections.listener} when only a pooled URL is given.
   * @default `console`
   */
  logger?:
    | {
        /** Gets each warning as one line. */
        warn(message: string): void
      }
    | undefined
}

/** What {@link createPgConnections} returns: the request pool and the direct URL's users. */
export interface PgConnections {
  /**
   * The `pg` pool on `connectionString`: give it to Prisma's adapter (`new PrismaPg(pool)`) and to
   * the store (`createPrismaStore({ prisma, pool })`), so the store's own statements skip the
   * Prisma client's per-statement cost. Behind a transaction pooler the store turns to unnamed
   * prepared statements by itself (`namedStatements`).
   */
  readonly pool: pg.Pool
  /**
   * One connection on {@link PgConnections.directConnectionString} for the store's LISTEN-mode
   * notification batches (`createPrismaStore({ …, notifyChannel, notifyPool: db.notifyPool })`),
   * so a batch never queues behind the writes on {@link PgConnections.pool}. A `pg.Pool` with
   * `max: 1`: it connects on first use within 5 s (`connectionTimeoutMillis`), keeps TCP
   * keep-alive on, and opens a fresh connection after one fails (the store retries a failed
   * batch with backoff and logs once; other instances' safety poll covers the gap). Nothing
   * connects until the first batch.
   */
  readonly notifyPool: pg.Pool
  /**
   * With `replicaConnectionString`: a `pg` pool on the read replica (the request pool's settings),
   * else `undefined`. Nothing connects until the first replica read.
   */
  readonly replicaPool: pg.Pool | undefined
  /**
   * The handlers' `readReplica` option: `{ pool: replicaPool }` with `replicaConnectionString`,
   * else `undefined` (every read goes to the primary), so
   * `createPipelineStatusHandlers({ …, readReplica: db.readReplica })` works either way.
   */
  readonly readReplica: { pool: pg.Pool } | undefined
  /** The URL requests use: `connectionString`. */
  readonly connectionString: string
  /** The URL of `LISTEN` and migrations: `directConnectionString`, else `connectionString`. */
  readonly directConnectionString: string
  /**
   * Whether `directConnectionString` was given (`false`: the direct users fall back to
   * `connectionString`).
   */
  readonly hasDirectUrl: boolean
  /**
   * The `LISTEN` connection for the handlers' `live.listen` ({@link createPgRunListener}), always on
   * {@link PgConnections.directConnectionString}. When only `connectionString` is given and it looks like a
   * transaction pooler's (`pgbouncer=true`, port 6432 or 6543, a `-pooler` or `pooler.` host), it logs
   * one warning with the cause and the fix (set `DIRECT_DATABASE_URL`); a pooler that does not look like
   * one is found by the listener's own delivery check, which warns once too. Either way the process polls.
   */
  listener(options?: Omit<PgRunListenerOptions, 'connectionString'>): PgRunListener
  /** {@link applyMigrations} on {@link PgConnections.directConnectionString}. */
  migrate(options?: ApplyMigrationsOptions): Promise<ApplyMigrationsResult>
  /**
   * Ends the request pool, the notify connection and the replica pool (`pool.end()`, …); the
   * listener closes with the handlers. Close the store first, so its queued batch goes out.
   */
  close(): Promise<void>
}

/**
 * One place for the two URLs: a `pg` pool on the request URL (for Prisma's adapter and the
 * store), and the direct URL for the `LISTEN` connection and the migrations. Nothing connects
 * until used.
 *
 * @throws ServerConfigurationError when `connectionString` is empty (`DATABASE_URL` unset), naming the variable.
 *
 * @example
 * ```ts
 * import { createPgConnections } from 'pipeline-status-sdk/pg'
 *
 * const db = createPgConnections({
 *   connectionString: process.env.DATABASE_URL ?? '', // pooled: requests
 *   directConnectionString: process.env.DIRECT_DATABASE_URL, // direct: LISTEN and migrations
 * })
 * await db.migrate()
 * const listen = db.listener() // for the handlers' live.listen
 * ```
 */
export function createPgConnections(options: PgConnectionsOptions): PgConnections {
  const connectionString = options.connectionString?.trim() ?? ''
  if (connectionString === '') {
    throw new ServerConfigurationError(
      'createPgConnections: connectionString is empty: set DATABASE_URL to postgresql://USER:PASSWORD@HOST:5432/DATABASE (the pooled URL, if you have one)',
    )
  }
  const direct = options.directConnectionString?.trim() || undefined
  const directConnectionString = direct ?? connectionString
  const logger = options.logger ?? console
  const pool = new pg.Pool({ ...options.pool, connectionString })
  // An idle pooled connection that fails (a database restart) emits 'error' on the pool, which
  // would end the process without a listener; the next checkout opens a fresh connection.
  pool.on('error', (error) => logger.warn(`pipeline-status: an idle connection of the request pool failed: ${error.message}`))
  const notifyPool = new pg.Pool({ connectionString: directConnectionString, max: 1, connectionTimeoutMillis: NOTIFY_CONNECT_TIMEOUT_MS, keepAlive: true })
  notifyPool.on('error', (error) =>
    logger.warn(
      `pipeline-status: the notify connection (notifyPool, on ${describeUrl(directConnectionString)}) failed: ${error.message}. ` +
        'The next batch opens a new one; until then other instances catch up with their safety poll. Check DIRECT_DATABASE_URL.',
    ),
  )
  const replica = options.replicaConnectionString?.trim() || undefined
  const replicaPool = replica === undefined ? undefined : new pg.Pool({ ...options.pool, connectionString: replica })
  replicaPool?.on('error', (error) =>
    logger.warn(`pipeline-status: an idle connection of the replica pool (${describeUrl(replica ?? '')}) failed: ${error.message}. Reads go to the primary while the replica fails; check REPLICA_DATABASE_URL`),
  )
  let warned = false
  return {
    pool,
    notifyPool,
    replicaPool,
    readReplica: replicaPool && { pool: replicaPool },
    connectionString,
    directConnectionString,
    hasDirectUrl: direct !== undefined,
    listener(listenerOptions = {}) {
      if (direct === undefined && !warned && looksPooled(connectionString)) {
        warned = true
        logger.warn(
          'pipeline-status: LISTEN mode was asked for, but only a pooled URL is given (DATABASE_URL, connectionString: ' +
            `${describeUrl(connectionString)}). A transaction pooler never delivers another session's notifications, so live ` +
            'streams will poll run versions instead. Fix: set DIRECT_DATABASE_URL (directConnectionString) to the database\'s own ' +
            'host and port (or a pooler in session mode), or leave LISTEN mode off.',
        )
      }
      return createPgRunListener({ ...listenerOptions, connectionString: directConnectionString })
    },
    migrate: (migrateOptions) => applyMigrations(directConnectionString, migrateOptions),
    close: async () => {
      await Promise.all([pool.end(), notifyPool.end(), replicaPool?.end()])
    },
  }
}

/** How long the notify connection may take to connect, in milliseconds. */
const NOTIFY_CONNECT_TIMEOUT_MS = 5_000

/** Hosts, ports and parameters the well-known transaction poolers use. */
export function looksPooled(url: string): boolean {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return false
  }
  if (parsed.searchParams.get('pgbouncer') === 'true') return true
  if (parsed.port === '6432' || parsed.port === '6543') return true
  return /-pooler\.|(^|\.)pooler\./i.test(parsed.hostname)
}

/** The URL without its password, for a log line. */
function describeUrl(url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}${parsed.port ? `:${parsed.port}` : ''}`
  } catch {
    return 'an unparsable URL'
  }
}
