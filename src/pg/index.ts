/**
 * LISTEN mode for the live status streams, on Node with `pg` (an optional peer dependency that
 * only this entry imports, so `pipeline-status-sdk/server` stays usable on edge runtimes).
 *
 * One `LISTEN` connection per process: the store sends `pg_notify(channel, '<runId>:<version>')`
 * with every write (`notifyChannel` on the `PrismaStore`), PostgreSQL delivers it at commit to
 * every listening instance, and each one reads the runs it streams that changed. Notifications
 * need a direct session connection: not a transaction pooler (PgBouncer in transaction mode,
 * most serverless poolers), which never delivers them.
 *
 * @example
 * ```ts
 * import { createPgRunListener } from 'pipeline-status-sdk/pg'
 * import { createPipelineStatusHandlers, PrismaStore } from 'pipeline-status-sdk/server'
 *
 * const handlers = createPipelineStatusHandlers({
 *   store: new PrismaStore(prisma, { notifyChannel: 'pipeline_status' }),
 *   live: { listen: createPgRunListener({ connectionString: process.env.DIRECT_DATABASE_URL!, channel: 'pipeline_status' }) },
 * })
 * ```
 *
 * It also holds {@link applyMigrations}: the package's migrations applied and recorded as
 * `prisma migrate deploy` does, for code that starts the app on a database that serves only
 * this package (the `pipeline-status migrate` command runs the same function).
 *
 * @module pipeline-status-sdk/pg
 */
import pg from 'pg'
import type { RunChangeSink, RunChangeSource } from '../server/live/run-watcher.js'

export type { RunChangeSink, RunChangeSource } from '../server/live/run-watcher.js'
export { applyMigrations, MigrationError } from './migrate.js'
export type {
  ApplyMigrationsOptions,
  ApplyMigrationsResult,
  MigrationErrorCode,
  PGliteLike,
  PgQueryable,
} from './migrate.js'

/** The default notification channel of {@link createPgRunListener} (and the name to give the store's `notifyChannel`). */
export const DEFAULT_NOTIFY_CHANNEL = 'pipeline_status'

/** Options of {@link createPgRunListener}. */
export interface PgRunListenerOptions {
  /**
   * A PostgreSQL connection string for a direct session connection (not a transaction pooler),
   * e.g. `postgresql://user:pass@db:5432/app`.
   */
  connectionString: string
  /**
   * The channel to `LISTEN` on; the same as the store's `notifyChannel`.
   * @default 'pipeline_status'
   */
  channel?: string | undefined
  /**
   * How long to wait before reconnecting after the connection dropped, in milliseconds; doubled
   * per failed attempt up to 30 s. Streams poll run versions meanwhile.
   * @default 500
   */
  reconnectDelayMs?: number | undefined
}

/** The LISTEN source of {@link createPgRunListener}; hand it to the handlers' `live.listen`. */
export interface PgRunListener extends RunChangeSource {
  /** Whether the `LISTEN` connection is up. */
  readonly connected: boolean
  /** The backend process id of the `LISTEN` connection (`pg_backend_pid()`), while connected. */
  readonly backendPid: number | undefined
}

/**
 * Creates the LISTEN connection of one process. It connects when the handlers start watching,
 * reconnects after a drop (then every streamed run is read again, as notifications sent while it
 * was down are lost), and closes with `handlers.close()`.
 *
 * @example
 * ```ts
 * import { createPgRunListener } from 'pipeline-status-sdk/pg'
 * const listen = createPgRunListener({ connectionString: process.env.DIRECT_DATABASE_URL! })
 * ```
 */
export function createPgRunListener(options: PgRunListenerOptions): PgRunListener {
  const channel = options.channel ?? DEFAULT_NOTIFY_CHANNEL
  const baseDelay = options.reconnectDelayMs ?? 500
  let client: pg.Client | undefined
  let sink: RunChangeSink | undefined
  let closed = false
  let connected = false
  let backendPid: number | undefined
  let failures = 0
  let timer: ReturnType<typeof setTimeout> | undefined

  const connect = async (): Promise<void> => {
    if (closed || !sink) return
    const next = new pg.Client({ connectionString: options.connectionString })
    client = next
    let dropped = false
    const drop = (error?: unknown) => {
      if (dropped) return
      dropped = true
      if (client === next) client = undefined
      next.removeAllListeners('notification')
      void next.end().catch(() => undefined)
      if (connected) {
        connected = false
        backendPid = undefined
        sink?.disconnected(error)
      }
      if (closed) return
      failures += 1
      timer = setTimeout(() => void connect(), Math.min(30_000, baseDelay * 2 ** Math.max(0, failures - 1)))
      timer.unref()
    }
    next.on('error', drop)
    next.on('end', () => drop(new Error('The LISTEN connection ended')))
    next.on('notification', (message) => {
      if (message.channel !== channel || message.payload === undefined) return
      const { runId, version } = parsePayload(message.payload)
      sink?.change(runId, version)
    })
    try {
      await next.connect()
      const result = await next.query<{ pid: number }>(`LISTEN ${quoteIdentifier(channel)}; SELECT pg_backend_pid() AS pid`)
      if (closed) {
        await next.end()
        return
      }
      const rows = (Array.isArray(result) ? result.at(-1)?.rows : (result as pg.QueryResult<{ pid: number }>).rows) ?? []
      backendPid = rows[0]?.pid
      failures = 0
      connected = true
      sink?.connected()
    } catch (error) {
      drop(error)
    }
  }

  return {
    get connected() {
      return connected
    },
    get backendPid() {
      return backendPid
    },
    start(target) {
      sink = target
      void connect()
    },
    async close() {
      closed = true
      if (timer !== undefined) clearTimeout(timer)
      const current = client
      client = undefined
      connected = false
      await current?.end().catch(() => undefined)
    },
  }
}

/** `runId:version` (run ids may hold colons: the version is after the last one); a bare run id has no version. */
function parsePayload(payload: string): { runId: string; version: number | undefined } {
  const at = payload.lastIndexOf(':')
  const tail = at < 0 ? '' : payload.slice(at + 1)
  if (/^\d+$/.test(tail)) return { runId: payload.slice(0, at), version: Number(tail) }
  return { runId: payload, version: undefined }
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}
