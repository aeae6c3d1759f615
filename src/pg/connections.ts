/**
 * The two URLs of a deployment, said once: a pooled URL for requests (`DATABASE_URL`) and a
 * direct session URL for `LISTEN` and migrations (`DIRECT_DATABASE_URL`), Prisma's own pair
 * (`url` + `directUrl`).
 */
import pg from 'pg'
import { ServerConfigurationError } from '../server/configuration-error.js'
import { LIVE_DEFAULTS, type LiveStatusOptions } from '../server/handler-options.js'
import type { PrismaStoreClient } from '../server/storage/prisma-client.js'
import { createPrismaStore, type PrismaStore, type PrismaStoreOptions } from '../server/storage/prisma-store.js'
import { checkDatabaseUrl, describeUrl } from './database-url.js'
import { applyMigrations, type ApplyMigrationsOptions, type ApplyMigrationsResult } from './migrate.js'
import { createPgRunListener, DEFAULT_NOTIFY_CHANNEL, type PgRunListener, type PgRunListenerOptions } from './run-listener.js'

/**
 * How live streams learn of changes written by other instances, as asked in
 * {@link PgConnectionsOptions.live}:
 * - `'auto'`: LISTEN whenever the app gives a direct connection (`directConnectionString`), else
 *   version polling;
 * - `'listen'`: LISTEN, also on `connectionString` alone (say so when that URL is direct);
 * - `'poll'`: version polling, no LISTEN connection and no notifications.
 */
export type PgLiveModeSetting = 'auto' | 'listen' | 'poll'

/** What {@link createPgConnections} decided for the live streams, and why (see {@link PgConnectionsOptions.live}). */
export interface PgLiveMode {
  /**
   * `'listen'`: the store notifies after commit on {@link PgConnections.notifyPool} and the
   * handlers hold one `LISTEN` connection on {@link PgConnections.directConnectionString};
   * `'poll'`: the handlers poll the versions of the runs they stream every `live.pollIntervalMs`.
   */
  readonly mode: 'listen' | 'poll'
  /** The cause, in words (for polling, with how to turn LISTEN on); the start line logs it. */
  readonly reason: string
}

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
   * How the live streams of handlers wired with {@link PgConnections.handlerOptions} learn of
   * changes written by other instances (the rule of issue 31 item 1 and DESIGN.md "Live status":
   * LISTEN is the default whenever the app gives a direct connection):
   * - `'auto'`: LISTEN when `directConnectionString` is given, unless it looks like a transaction
   *   pooler's (`pgbouncer=true`, port 6432 or 6543, a `-pooler` or `pooler.` host: then polling,
   *   with a warning); version polling with only `connectionString`, even a direct one, since
   *   nothing tells a direct URL from a pooler that does not look like one (give the same URL as
   *   `directConnectionString`, or `'listen'`, to say it is direct).
   * - `'listen'`: LISTEN on `directConnectionString`, else on `connectionString`, except when that
   *   only URL looks pooled: then polling, with a warning naming the fix. A session-mode pooler on a
   *   pooled-looking direct URL is taken at its word; the listener's delivery check still proves it.
   * - `'poll'`: version polling every `live.pollIntervalMs`; no LISTEN connection, no notifications.
   *
   * Either way a process whose LISTEN connection is not proven to deliver polls (docs/live-status.md).
   * @default 'auto'
   * @throws ServerConfigurationError from {@link createPgConnections} for any other value.
   */
  live?: PgLiveModeSetting | undefined
  /**
   * Receives the start line of {@link PgConnections.handlerOptions} (`info`: which live mode and
   * why) and the warnings: a LISTEN asked for that cannot be had, a failed idle connection.
   * @default `console`; a logger without `info` gets the start line on `warn`
   */
  logger?:
    | {
        /** Gets each warning as one line. */
        warn(message: string): void
        /** Gets the start line of {@link PgConnections.handlerOptions}. */
        info?(message: string): void
      }
    | undefined
}

/**
 * Options of {@link PgConnections.handlerOptions}: the app's Prisma client and whatever else the
 * store, the live streams and the listener take; the live wiring itself (the store's `pool`,
 * `notifyChannel`, `notifyPool` and the handlers' `live.listen`) is the connections' to set.
 */
export interface PgHandlerOptionsInput<Client extends PrismaStoreClient = PrismaStoreClient> {
  /** The app's `PrismaClient`, on `new PrismaPg(db.pool)`. */
  prisma: Client
  /**
   * More options of the store (`createPrismaStore`), e.g. `{ queryTimeoutMs: 5_000 }` or
   * `{ schema: 'pipeline' }`.
   * @default none
   */
  store?: Omit<PrismaStoreOptions<Client>, 'prisma' | 'pool' | 'notifyChannel' | 'notifyPool'> | undefined
  /**
   * More settings of the live streams (the handlers' `live`), e.g. `{ pollIntervalMs: 500 }`.
   * @default the handlers' defaults (docs/live-status.md)
   */
  live?: Omit<LiveStatusOptions, 'listen'> | undefined
  /**
   * In LISTEN mode, settings of the listener (`createPgRunListener`); its `channel` is the store's
   * `notifyChannel` too, so the two cannot differ. Ignored when polling.
   * @default `{ channel: 'pipeline_status' }` and the listener's defaults
   */
  listener?: Omit<PgRunListenerOptions, 'connectionString'> | undefined
}

/**
 * What {@link PgConnections.handlerOptions} returns: spread it into `createExpressRouter`,
 * `createPipelineStatusHandlers` or `createNextRouteHandlers`. Both halves of the live mode
 * travel together: in LISTEN mode the store notifies and `live.listen` listens, on one channel.
 */
export interface PgHandlerOptions<Client extends PrismaStoreClient = PrismaStoreClient> {
  /**
   * The store on {@link PgConnections.pool}; in LISTEN mode with `notifyChannel` and
   * `notifyPool: db.notifyPool`. Give it to the stale-run sweeper too, and `await store.close()`
   * after the handlers' `close()` on shutdown, so queued notifications go out.
   */
  readonly store: PrismaStore<Client>
  /**
   * The handlers' `live`: the given settings, plus `listen` in LISTEN mode (the listener on the
   * direct URL: its `state` and `counts` are there for metrics; the handlers start it with their
   * first stream and close it with theirs).
   */
  readonly live: Omit<LiveStatusOptions, 'listen'> & { readonly listen?: PgRunListener | undefined }
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
  /** Which live mode the handlers wired with {@link PgConnections.handlerOptions} use, and why (decided at creation). */
  readonly liveMode: PgLiveMode
  /**
   * The store and the handlers' `live` options of one handlers instance, wired for
   * {@link PgConnections.liveMode}: in LISTEN mode a `PrismaStore` on {@link PgConnections.pool}
   * that notifies after commit on {@link PgConnections.notifyPool} on the channel
   * `'pipeline_status'` (or `listener.channel`), and `live.listen` a listener on that channel on
   * {@link PgConnections.directConnectionString}; when polling, the store without notifications
   * and no listener. The first call logs one line (`logger.info`) naming the mode and the cause,
   * and for polling how to turn LISTEN on. Each call makes a new store and listener: call it once
   * per handlers instance. Nothing connects until used.
   *
   * @throws ServerConfigurationError (from `createPrismaStore` or `createPgRunListener`) for store or listener options that cannot work.
   *
   * @example
   * ```ts
   * import { createExpressRouter } from 'pipeline-status-sdk/express'
   * import { createPgConnections } from 'pipeline-status-sdk/pg'
   * import { prisma } from './prisma.js' // new PrismaClient({ adapter: new PrismaPg(db.pool) })
   * declare const db: ReturnType<typeof createPgConnections>
   *
   * const router = createExpressRouter({ ...db.handlerOptions({ prisma }) })
   * ```
   */
  handlerOptions<Client extends PrismaStoreClient>(options: PgHandlerOptionsInput<Client>): PgHandlerOptions<Client>
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
 * It also decides the live mode ({@link PgConnectionsOptions.live}): with a direct URL, LISTEN
 * by default; {@link PgConnections.handlerOptions} wires the store and the handlers for it.
 *
 * @throws ServerConfigurationError when `connectionString` is empty (`DATABASE_URL` unset), naming the variable; when
 * any of the three URLs has a scheme other than `postgres:` or `postgresql:` (`pg` would ignore it), naming the option,
 * its variable (`DATABASE_URL`, `DIRECT_DATABASE_URL`, `REPLICA_DATABASE_URL`) and the URL without its password; or
 * when `live` is not `'auto'`, `'listen'` or `'poll'`.
 *
 * @example
 * ```ts
 * import { PrismaPg } from '@prisma/adapter-pg'
 * import { createExpressRouter } from 'pipeline-status-sdk/express'
 * import { createPgConnections } from 'pipeline-status-sdk/pg'
 * import { PrismaClient } from './generated/prisma/client.js'
 *
 * const db = createPgConnections({
 *   connectionString: process.env.DATABASE_URL ?? '', // pooled: requests
 *   directConnectionString: process.env.DIRECT_DATABASE_URL, // direct: LISTEN and migrations
 * })
 * await db.migrate()
 * const prisma = new PrismaClient({ adapter: new PrismaPg(db.pool) })
 * // LISTEN with DIRECT_DATABASE_URL, version polling without it; one line at start says which.
 * const router = createExpressRouter({ ...db.handlerOptions({ prisma }) })
 * ```
 */
export function createPgConnections(options: PgConnectionsOptions): PgConnections {
  const connectionString = options.connectionString?.trim() ?? ''
  if (connectionString === '') {
    throw new ServerConfigurationError(
      'createPgConnections: connectionString is empty: set DATABASE_URL to postgresql://USER:PASSWORD@HOST:5432/DATABASE (the pooled URL, if you have one)',
    )
  }
  checkDatabaseUrl(connectionString, { where: 'createPgConnections', option: 'connectionString', variable: 'DATABASE_URL' })
  const direct = options.directConnectionString?.trim() || undefined
  if (direct !== undefined) checkDatabaseUrl(direct, { where: 'createPgConnections', option: 'directConnectionString', variable: 'DIRECT_DATABASE_URL' })
  const replica = options.replicaConnectionString?.trim() || undefined
  if (replica !== undefined) checkDatabaseUrl(replica, { where: 'createPgConnections', option: 'replicaConnectionString', variable: 'REPLICA_DATABASE_URL' })
  const directConnectionString = direct ?? connectionString
  const logger = options.logger ?? console
  const setting = options.live ?? 'auto'
  if (setting !== 'auto' && setting !== 'listen' && setting !== 'poll') {
    throw new ServerConfigurationError(`createPgConnections: live must be 'auto', 'listen' or 'poll', got ${JSON.stringify(setting)}`)
  }
  const decided = decideLiveMode(setting, connectionString, direct)
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
  const replicaPool = replica === undefined ? undefined : new pg.Pool({ ...options.pool, connectionString: replica })
  replicaPool?.on('error', (error) =>
    logger.warn(`pipeline-status: an idle connection of the replica pool (${describeUrl(replica ?? '')}) failed: ${error.message}. Reads go to the primary while the replica fails; check REPLICA_DATABASE_URL`),
  )
  let warned = false
  let announced = false
  return {
    pool,
    notifyPool,
    replicaPool,
    readReplica: replicaPool && { pool: replicaPool },
    connectionString,
    directConnectionString,
    hasDirectUrl: direct !== undefined,
    liveMode: { mode: decided.mode, reason: decided.reason },
    handlerOptions(wiring) {
      const listen = decided.mode === 'listen'
      const channel = wiring.listener?.channel ?? DEFAULT_NOTIFY_CHANNEL
      // The listener first: its options are checked before a store exists that nobody would close.
      const listener = listen ? createPgRunListener({ ...wiring.listener, channel, connectionString: directConnectionString }) : undefined
      const store = createPrismaStore({
        ...wiring.store,
        prisma: wiring.prisma,
        pool,
        ...(listen ? { notifyChannel: channel, notifyPool } : {}),
      })
      if (!announced) {
        announced = true
        const pollMs = wiring.live?.pollIntervalMs ?? LIVE_DEFAULTS.pollIntervalMs
        const line = listen
          ? `pipeline-status: live streams use LISTEN on channel '${channel}' (${describeUrl(directConnectionString)}): ${decided.reason}. ` +
            "The store notifies after commit on a connection of its own; until the listener is proven to deliver, streams poll run versions. Opt out with createPgConnections({ live: 'poll' }) (docs/live-status.md)"
          : `pipeline-status: live streams poll run versions every ${pollMs} ms: ${decided.reason} (docs/live-status.md)`
        if (decided.warn) logger.warn(line)
        else if (logger.info) logger.info(line)
        else logger.warn(line)
      }
      return { store, live: { ...wiring.live, ...(listener ? { listen: listener } : {}) } }
    },
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

/**
 * The live mode rule, in one place (issue 31 item 1; DESIGN.md "Live status" and "Scale"): LISTEN
 * whenever the app gives a direct connection, never on a URL that only looks pooled unless asked
 * for on a direct URL. `warn`: the app asked for something it does not get, or gave a direct URL
 * that looks like a pooler's.
 */
function decideLiveMode(setting: PgLiveModeSetting, connectionString: string, direct: string | undefined): PgLiveMode & { warn: boolean } {
  const turnOn = "To use LISTEN (a few milliseconds instead), set DIRECT_DATABASE_URL (createPgConnections' directConnectionString) to the database's own host and port (or a pooler in session mode)"
  if (setting === 'poll') {
    const how = direct === undefined ? `${turnOn} and leave live unset` : "To use LISTEN on the direct URL given, leave live unset"
    return { mode: 'poll', reason: `createPgConnections was given live: 'poll'. ${how}`, warn: false }
  }
  if (direct !== undefined) {
    if (setting === 'listen') return { mode: 'listen', reason: "createPgConnections was given live: 'listen' and a direct URL (DIRECT_DATABASE_URL, directConnectionString)", warn: false }
    if (looksPooled(direct)) {
      return {
        mode: 'poll',
        reason:
          `the direct URL (DIRECT_DATABASE_URL, directConnectionString: ${describeUrl(direct)}) looks like a transaction pooler's (pgbouncer=true, port 6432 or 6543, or a pooler host), ` +
          "which never delivers another session's notifications. Fix: give the database's own host and port, or pass live: 'listen' if it is a pooler in session mode",
        warn: true,
      }
    }
    return { mode: 'listen', reason: 'a direct URL is given (DIRECT_DATABASE_URL, directConnectionString)', warn: false }
  }
  if (setting === 'listen') {
    if (looksPooled(connectionString)) {
      return {
        mode: 'poll',
        reason:
          `live: 'listen' was asked for, but only a pooled URL is given (DATABASE_URL, connectionString: ${describeUrl(connectionString)}). ` +
          "A transaction pooler never delivers another session's notifications. Fix: set DIRECT_DATABASE_URL (directConnectionString) to the database's own host and port (or a pooler in session mode)",
        warn: true,
      }
    }
    return { mode: 'listen', reason: "createPgConnections was given live: 'listen' with one URL (DATABASE_URL, connectionString), taken as direct", warn: false }
  }
  return {
    mode: 'poll',
    reason: `no direct URL is given (only DATABASE_URL, connectionString: ${describeUrl(connectionString)}). ${turnOn}, or pass live: 'listen' when DATABASE_URL is direct itself`,
    warn: false,
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
