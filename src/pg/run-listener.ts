/** The LISTEN connection of one process (see the module doc of `pipeline-status-sdk/pg`). */
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { backoffDelay } from '../internal/backoff.js'
import { errorMessage } from '../internal/error-message.js'
import type { RunChangeSink, RunChangeSource } from '../server/live/run-watcher.js'
import { quoteIdentifier } from '../internal/quote-identifier.js'
import { ServerConfigurationError } from '../server/configuration-error.js'
import { checkDatabaseUrl, describeUrl } from './database-url.js'
import { announcesOtherProcess } from './pooler-evidence.js'

/** The default notification channel of {@link createPgRunListener} (and the name to give the store's `notifyChannel`). */
export const DEFAULT_NOTIFY_CHANNEL = 'pipeline_status'

/** Appended to the channel for the cross-session delivery check, so checks never look like run changes. */
const CHECK_SUFFIX = ':check'
/** PostgreSQL's longest identifier, in bytes (NAMEDATALEN - 1). */
const MAX_CHANNEL_BYTES = 63
/** Idle time before the kernel sends the first TCP keep-alive probe on the LISTEN connection. */
const TCP_KEEPALIVE_DELAY_MS = 10_000
/** The longest wait between two reconnection attempts, and between two delivery re-checks. */
const MAX_BACKOFF_MS = 30_000
const MAX_RECHECK_MS = 300_000
/** `application_name` of the LISTEN connection and of the check's sender, to find them in `pg_stat_activity`. */
const LISTENER_APPLICATION_NAME = 'pipeline-status-listener'
const CHECK_APPLICATION_NAME = 'pipeline-status-listener-check'

/**
 * Where a {@link PgRunListener} is:
 * - `idle`: not started (the handlers start it with their first stream);
 * - `connecting`: opening the connection and sending `LISTEN`;
 * - `checking`: `LISTEN` succeeded; waiting for a notification sent from another session;
 * - `listening`: notifications from other sessions arrive (`connected` is true); the process does not poll;
 * - `unverified`: the connection works but no notification from another session arrived in
 *   time (a transaction pooler, typically); the process polls, and the check is repeated with backoff;
 * - `reconnecting`: the connection failed, ended or missed a liveness probe; waiting to reconnect,
 *   the process polls meanwhile;
 * - `closed`: `close()` was called.
 */
export type PgRunListenerState = 'idle' | 'connecting' | 'checking' | 'listening' | 'unverified' | 'reconnecting' | 'closed'

/** Options of {@link createPgRunListener}. */
export interface PgRunListenerOptions {
  /**
   * A PostgreSQL connection string for a direct session connection (not a transaction pooler),
   * e.g. `postgresql://user:pass@db:5432/app`. The delivery check opens a second, short-lived
   * connection with it after every `LISTEN`.
   */
  connectionString: string
  /**
   * The channel to `LISTEN` on; the same as the store's `notifyChannel`. Not empty, and at most 57 bytes (the
   * delivery check listens on `<channel>:check` too, and PostgreSQL names hold 63 bytes).
   * @default 'pipeline_status'
   */
  channel?: string | undefined
  /**
   * How long to wait before reconnecting after the connection dropped, in milliseconds; doubled
   * per failed attempt up to 30 s. Streams poll run versions meanwhile.
   * @default 500
   */
  reconnectDelayMs?: number | undefined
  /**
   * The deadline of opening the connection and of its `LISTEN`, and of the delivery check's
   * connection and `pg_notify`, in milliseconds; past it the attempt counts as failed.
   * @default 10000
   */
  connectTimeoutMs?: number | undefined
  /**
   * Milliseconds between two liveness probes (`SELECT 1` on the LISTEN connection), from the end
   * of one to the start of the next. With `probeTimeoutMs`, the longest a dead or half-open
   * connection goes unnoticed is about their sum; the TCP keep-alive (first probe after 10 s
   * idle) is there too, but a proxy or NAT that still answers TCP hides a dead path from it.
   * @default 5000
   */
  probeIntervalMs?: number | undefined
  /**
   * How long a liveness probe may take, in milliseconds. A probe that misses it drops the
   * connection (without waiting for a goodbye that a dead path never carries), the process polls
   * run versions, and the listener reconnects.
   * @default 5000
   */
  probeTimeoutMs?: number | undefined
  /**
   * How long, after each `LISTEN`, to wait for the check notification sent from another session
   * (a second, short-lived connection), in milliseconds. Until it arrives `connected` is false and
   * the process polls; if it does not arrive in time, one warning names the cause (a transaction
   * pooler, typically) and the fix (a direct URL), and the check is repeated with backoff (the
   * probe interval, doubled per failed check up to 5 minutes).
   * @default 5000
   */
  deliveryCheckTimeoutMs?: number | undefined
  /**
   * Called on every change of {@link PgRunListener.state}, with the cause when it is a failure.
   * The handlers' logger already gets one warning per degradation; this is for metrics and tests.
   * @default none
   */
  onStateChange?: ((state: PgRunListenerState, cause?: Error) => void) | undefined
}

/** Counters of a {@link PgRunListener} since it was created. */
export interface PgRunListenerCounts {
  /** Connections that failed, ended or missed a liveness probe after `LISTEN` succeeded on them. */
  drops: number
  /** Liveness probes that failed or missed their deadline (each also counts as a drop). */
  failedProbes: number
  /** Connection attempts that failed before `LISTEN` succeeded. */
  failedConnects: number
  /** Delivery checks in which no notification from another session arrived in time. */
  failedDeliveryChecks: number
}

/** The LISTEN source of {@link createPgRunListener}; hand it to the handlers' `live.listen`. */
export interface PgRunListener extends RunChangeSource {
  /**
   * Whether notifications sent from other sessions actually arrive: the connection is up, it
   * passes its liveness probes, and the delivery check after its `LISTEN` succeeded. While false
   * the process polls run versions.
   */
  readonly connected: boolean
  /** Where the listener is; see {@link PgRunListenerState}. */
  readonly state: PgRunListenerState
  /** The backend process id of the `LISTEN` connection (`pg_backend_pid()`), while it is open. */
  readonly backendPid: number | undefined
  /** What went wrong so far, counted. */
  readonly counts: Readonly<PgRunListenerCounts>
}

/** Why the LISTEN mode is not delivering, with the fix: what the handlers' logger gets once per degradation (`name` and `reason` tell the kinds apart; internal, so no guard is exported). */
class PgRunListenerError extends Error {
  override readonly name = 'PgRunListenerError'
  /** What failed. */
  readonly reason: 'connect' | 'probe' | 'dropped' | 'not-delivered'

  constructor(reason: PgRunListenerError['reason'], message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.reason = reason
  }
}

/**
 * Creates the LISTEN connection of one process. It connects when the handlers start watching,
 * checks that a notification sent from another session arrives, probes the connection every
 * `probeIntervalMs`, reconnects after a failure (then every streamed run is read again, as
 * notifications sent while it was down are lost), and closes with `handlers.close()`. Whenever
 * it is not delivering, the handlers poll run versions and log one warning with the cause.
 *
 * @throws ServerConfigurationError (from `pipeline-status-sdk/server`) when `connectionString` is not a `postgres:` or
 * `postgresql:` URL (naming DIRECT_DATABASE_URL), `channel` is empty or longer than 57 bytes, or a duration is not a positive number.
 *
 * @example
 * ```ts
 * import { createPgRunListener } from 'pipeline-status-sdk/pg'
 * const listen = createPgRunListener({ connectionString: process.env.DIRECT_DATABASE_URL! })
 * ```
 */
export function createPgRunListener(options: PgRunListenerOptions): PgRunListener {
  checkDatabaseUrl(options.connectionString, { where: 'createPgRunListener', option: 'connectionString', variable: 'DIRECT_DATABASE_URL' })
  const where = describeUrl(options.connectionString)
  /** Said after every failure to connect: where to, and what to check. */
  const connectFix = `Check DIRECT_DATABASE_URL (createPgConnections' directConnectionString): that ${where} is the database's own host and port, that it is reachable from here, and that the database is up; the listener retries with backoff, and live streams poll meanwhile`
  const channel = options.channel ?? DEFAULT_NOTIFY_CHANNEL
  const checkChannel = channel + CHECK_SUFFIX
  if (channel.length === 0) {
    throw new ServerConfigurationError(`createPgRunListener: channel must not be empty (LISTEN needs a name); leave it unset for '${DEFAULT_NOTIFY_CHANNEL}' or give the store's notifyChannel`)
  }
  if (Buffer.byteLength(checkChannel) > MAX_CHANNEL_BYTES) {
    throw new ServerConfigurationError(`createPgRunListener: channel is ${Buffer.byteLength(channel)} bytes; at most ${MAX_CHANNEL_BYTES - CHECK_SUFFIX.length} fit`)
  }
  const baseDelay = duration('reconnectDelayMs', options.reconnectDelayMs, 500)
  const connectTimeoutMs = duration('connectTimeoutMs', options.connectTimeoutMs, 10_000)
  const probeIntervalMs = duration('probeIntervalMs', options.probeIntervalMs, 5_000)
  const probeTimeoutMs = duration('probeTimeoutMs', options.probeTimeoutMs, 5_000)
  const checkTimeoutMs = duration('deliveryCheckTimeoutMs', options.deliveryCheckTimeoutMs, 5_000)
  const counts: PgRunListenerCounts = { drops: 0, failedProbes: 0, failedConnects: 0, failedDeliveryChecks: 0 }
  let client: pg.Client | undefined
  let sink: RunChangeSink | undefined
  let state: PgRunListenerState = 'idle'
  let backendPid: number | undefined
  let failures = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  /** Whether the sink was told of the current degradation (so it logs it once). */
  let reported = false

  const setState = (next: PgRunListenerState, cause?: Error) => {
    if (state === next || state === 'closed') return
    state = next
    try {
      options.onStateChange?.(next, cause)
    } catch {
      // A throwing callback must not break the connection's bookkeeping.
    }
  }
  // A function, not a comparison, so TypeScript does not narrow `state` across awaits.
  const isClosed = () => state === 'closed'
  const report = (error: PgRunListenerError) => {
    if (reported || isClosed()) return
    reported = true
    sink?.disconnected(error)
  }
  const arm = (fn: () => void, ms: number) => {
    if (timer !== undefined) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = undefined
      fn()
    }, ms)
    timer.unref()
  }

  const connect = async (): Promise<void> => {
    if (isClosed() || !sink) return
    setState('connecting')
    const next = new pg.Client({
      connectionString: options.connectionString,
      keepAlive: true,
      keepAliveInitialDelayMillis: TCP_KEEPALIVE_DELAY_MS,
      connectionTimeoutMillis: connectTimeoutMs,
      application_name: LISTENER_APPLICATION_NAME,
    })
    client = next
    let dropped = false
    let listened = false
    /** Whether this connection announced another server process than pg_backend_pid() (a pooler), once LISTEN succeeded. */
    let announced: { pooled: boolean | undefined; pid: unknown } = { pooled: undefined, pid: undefined }
    let check: { token: string; arrived: () => void } | undefined
    /** Failed delivery checks in a row on this connection, and when the next one is due. */
    let checks = 0
    let recheckAt = 0
    const drop = (error: PgRunListenerError) => {
      if (dropped) return
      dropped = true
      if (client === next) client = undefined
      backendPid = undefined
      next.removeAllListeners('notification')
      destroy(next)
      if (isClosed()) return
      if (listened) counts.drops += 1
      else counts.failedConnects += 1
      report(error)
      failures += 1
      setState('reconnecting', error)
      arm(() => void connect(), backoffDelay(failures, { baseMs: baseDelay, maxMs: MAX_BACKOFF_MS, jitter: 'none' }))
    }
    /** Resolves `work`, or drops the connection with `timeout()` once `ms` passed. */
    const bounded = async <T>(work: Promise<T>, ms: number, timeout: () => PgRunListenerError): Promise<T> => {
      let deadline: ReturnType<typeof setTimeout> | undefined
      try {
        return await Promise.race([
          work,
          new Promise<never>((_, reject) => {
            deadline = setTimeout(() => reject(timeout()), ms)
            deadline.unref()
          }),
        ])
      } finally {
        clearTimeout(deadline)
      }
    }
    next.on('error', (error) => drop(new PgRunListenerError('dropped', `the LISTEN connection failed: ${error.message}`, { cause: error })))
    next.on('end', () => drop(new PgRunListenerError('dropped', 'the LISTEN connection was closed by the server or the network')))
    next.on('notification', (message) => {
      if (message.channel === checkChannel) {
        // A pooler may run the check's NOTIFY on this very backend and hand it back: only a
        // notification from another backend proves that other sessions' notifications arrive.
        if (check && message.payload === check.token && message.processId !== backendPid) check.arrived()
        return
      }
      if (message.channel !== channel || message.payload === undefined) return
      const { runId, version } = parsePayload(message.payload)
      sink?.change(runId, version)
    })

    /** Sends a check notification from a second connection and waits for it here. */
    const verify = async (): Promise<void> => {
      // A re-check stays `unverified` until it succeeds: the process polls throughout.
      if (state !== 'unverified') setState('checking')
      const token = randomUUID()
      const arrived = new Promise<void>((resolve) => {
        check = { token, arrived: resolve }
      })
      let failure: PgRunListenerError | undefined
      const sender = new pg.Client({
        connectionString: options.connectionString,
        connectionTimeoutMillis: connectTimeoutMs,
        application_name: CHECK_APPLICATION_NAME,
      })
      sender.on('error', () => undefined)
      try {
        await bounded(
          (async () => {
            await sender.connect()
            await sender.query('SELECT pg_notify($1, $2)', [checkChannel, token])
          })(),
          connectTimeoutMs,
          () => new PgRunListenerError('not-delivered', `the delivery check could not send its notification within ${connectTimeoutMs} ms`),
        )
        await bounded(arrived, checkTimeoutMs, () => notDelivered(checkTimeoutMs, where, announced))
      } catch (error) {
        failure =
          error instanceof PgRunListenerError
            ? error
            : new PgRunListenerError('not-delivered', `the delivery check could not send its notification: ${errorMessage(error)}`, {
                cause: error,
              })
      } finally {
        check = undefined
        void closeGently(sender, connectTimeoutMs)
      }
      if (dropped || isClosed()) return
      if (failure) {
        counts.failedDeliveryChecks += 1
        setState('unverified', failure)
        report(failure)
        return
      }
      failures = 0
      checks = 0
      setState('listening')
      reported = false
      sink?.connected()
    }

    const probe = (): void => {
      arm(() => {
        void (async () => {
          if (dropped || isClosed()) return
          try {
            await bounded(
              next.query('SELECT 1'),
              probeTimeoutMs,
              () =>
                new PgRunListenerError(
                  'probe',
                  `the LISTEN connection did not answer its liveness probe (SELECT 1) within ${probeTimeoutMs} ms: the path to the database is dead or half-open (a proxy, load balancer or NAT dropped it without closing it)`,
                ),
            )
          } catch (error) {
            if (dropped || isClosed()) return
            counts.failedProbes += 1
            drop(error instanceof PgRunListenerError ? error : new PgRunListenerError('probe', `the liveness probe failed: ${errorMessage(error)}`, { cause: error }))
            return
          }
          if (state === 'unverified' && Date.now() >= recheckAt) {
            await verify()
            if (state === 'unverified') {
              checks += 1
              recheckAt = Date.now() + backoffDelay(checks + 1, { baseMs: probeIntervalMs, maxMs: MAX_RECHECK_MS, jitter: 'none' })
            }
          }
          if (!dropped) probe()
        })()
      }, probeIntervalMs)
    }

    try {
      await bounded(next.connect(), connectTimeoutMs, () => new PgRunListenerError('connect', `connecting the LISTEN connection to ${where} took longer than ${connectTimeoutMs} ms. ${connectFix}`))
      const result = await bounded(
        next.query(`LISTEN ${quoteIdentifier(channel)}; LISTEN ${quoteIdentifier(checkChannel)}; SELECT pg_backend_pid() AS pid`),
        connectTimeoutMs,
        () => new PgRunListenerError('connect', `LISTEN took longer than ${connectTimeoutMs} ms`),
      )
      if (isClosed() || dropped) return
      const results = (Array.isArray(result) ? result : [result]) as Array<pg.QueryResult<{ pid: number }>>
      backendPid = results.at(-1)?.rows[0]?.pid
      // Read now, free: said in the delivery warning as evidence of a pooler in between.
      announced = { pooled: announcesOtherProcess(next, backendPid), pid: (next as { processID?: unknown }).processID }
      listened = true
    } catch (error) {
      if (isClosed()) return destroy(next)
      drop(
        error instanceof PgRunListenerError
          ? error
          : new PgRunListenerError('connect', `the LISTEN connection to ${where} could not be opened: ${errorMessage(error)}. ${connectFix}`, { cause: error }),
      )
      return
    }
    await verify()
    if (state === 'unverified') recheckAt = Date.now() + probeIntervalMs
    if (!dropped && state !== 'closed') probe()
  }

  return {
    get connected() {
      return state === 'listening'
    },
    get state() {
      return state
    },
    get backendPid() {
      return backendPid
    },
    get counts() {
      return { ...counts }
    },
    start(target) {
      sink = target
      void connect()
    },
    async close() {
      setState('closed')
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      const current = client
      client = undefined
      backendPid = undefined
      if (current) await closeGently(current, connectTimeoutMs)
    },
  }
}

function notDelivered(ms: number, where: string, announced: { pooled: boolean | undefined; pid: unknown }): PgRunListenerError {
  const evidence =
    announced.pooled === true
      ? ` A pooler does sit in between: the connection announced server process ${String(announced.pid)} at start-up, but pg_backend_pid() is another.`
      : ''
  return new PgRunListenerError(
    'not-delivered',
    `LISTEN succeeded but a notification sent from another session did not arrive within ${ms} ms. ` +
      `The connection string (${where}) most likely points at a transaction pooler (PgBouncer in transaction mode, Supavisor, ` +
      `a serverless pooler), which hands a session its own notifications but never other sessions'.${evidence} ` +
      'Give it a direct, non-pooled URL: set DIRECT_DATABASE_URL (createPgConnections\' directConnectionString, or ' +
      "createPgRunListener's connectionString) to the database's own host and port (e.g. 5432) or a pooler in session mode; " +
      "or use version polling: createPgConnections({ live: 'poll' }), or leave live.listen unset when wiring createPgRunListener yourself",
  )
}

/** Ends a connection politely, but never waits past `ms`: a half-open path never answers the goodbye. */
async function closeGently(client: pg.Client, ms: number): Promise<void> {
  let deadline: ReturnType<typeof setTimeout> | undefined
  await Promise.race([
    client.end().catch(() => undefined),
    new Promise<void>((resolve) => {
      deadline = setTimeout(resolve, ms)
      deadline.unref()
    }),
  ])
  clearTimeout(deadline)
  destroy(client)
}

/** Closes the socket at once: no Terminate message, no waiting on a path that may be dead. */
function destroy(client: pg.Client): void {
  ;(client as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream?.destroy?.()
}

function duration(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value <= 0) throw new ServerConfigurationError(`createPgRunListener: ${name} must be a positive number of milliseconds, got ${value}`)
  return value
}

/** `runId:version` (run ids may hold colons: the version is after the last one); a bare run id has no version. */
function parsePayload(payload: string): { runId: string; version: number | undefined } {
  const at = payload.lastIndexOf(':')
  const tail = at < 0 ? '' : payload.slice(at + 1)
  if (/^\d+$/.test(tail)) return { runId: payload.slice(0, at), version: Number(tail) }
  return { runId: payload, version: undefined }
}
