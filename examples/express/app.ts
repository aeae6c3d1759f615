/**
 * The Express example as a function, so that the command line (`server.ts`), the demo and the
 * tests can all start it in-process.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { createExpressRouter, loadPipelinesFile, type PipelineCatalogues } from 'pipeline-status-sdk/express'
import type { PgRunListener } from 'pipeline-status-sdk/pg'
import { createPrismaStore, createStaleRunSweeper, type RunState, type StaleRunSweeperSettings } from 'pipeline-status-sdk/server'
import type { PipelineStatusInstrumentation } from 'pipeline-status-sdk/server'
import { openDatabase } from '../shared/database.js'

/** How long a client may take to send its request headers, in milliseconds (Node's default is 60 s). */
export const HEADERS_TIMEOUT_MS = 10_000
/** How long a client may take to send its whole request, in milliseconds (Node's default is 300 s). */
export const REQUEST_TIMEOUT_MS = 30_000
/** How long `close()` lets requests in flight finish before it cuts their connections, in milliseconds. */
export const CLOSE_GRACE_MS = 10_000

/** Options of {@link startExpressExample}. */
export interface ExpressExampleOptions {
  /** The port to listen on; `0` picks a free one. */
  port: number
  /** The host to bind. @default '127.0.0.1' */
  host?: string | undefined
  /** A PostgreSQL URL for requests (`DATABASE_URL`; a transaction pooler's is fine). Without it, embedded PGlite is used. */
  databaseUrl?: string | undefined
  /**
   * A direct session URL (`DIRECT_DATABASE_URL`) for the migrations and the LISTEN connection,
   * when `databaseUrl` is a transaction pooler's. Ignored without `databaseUrl`.
   * @default `databaseUrl`
   */
  directDatabaseUrl?: string | undefined
  /** PGlite's data folder when there is no `databaseUrl`; without it PGlite keeps data in memory. */
  dataDir?: string | undefined
  /** The webhook secret(s) the runner sends in `X-Webhook-Secret`. */
  secret: string | string[]
  /**
   * How live streams learn of changes written by other instances: `'poll'` reads the versions of
   * the streamed runs every `pollIntervalMs`; `'listen'` holds a LISTEN connection (PostgreSQL
   * only) on `directDatabaseUrl`, else on `databaseUrl`, and the store sends each write's
   * notification after commit, in batches, on a connection of its own. With only a pooled
   * `databaseUrl` (one that looks pooled, or a pooler that refuses startup parameters) it logs one
   * line with the cause and the fix and polls.
   * @default the rule of `createPgConnections`: `'listen'` when `directDatabaseUrl` is given, else
   *   `'poll'` (one line at start says which, and why)
   */
  liveMode?: 'poll' | 'listen' | undefined
  /** The version-polling interval in milliseconds. @default 250 */
  pollIntervalMs?: number | undefined
  /** Where the example reports what it does. @default console */
  log?: Pick<Console, 'info' | 'warn' | 'error'> | undefined
  /**
   * Fails runs that stopped reporting (`createStaleRunSweeper` on the example's store): swept
   * every `intervalMs`, and on demand with {@link ExpressExample.sweepStaleRuns}.
   * @default none
   */
  staleRunSweeper?: StaleRunSweeperSettings | undefined
  /**
   * Named stage catalogues (the handlers' `pipelines`), e.g. from {@link collectionFromEnv}.
   * Runs created without a pipeline stay in `default` (the five stages; a `"default"` key in the
   * file replaces them).
   * @default none: only `default`
   */
  pipelines?: PipelineCatalogues | undefined
  /**
   * The read-token secret(s) (the handlers' `readTokens.secret`): at least 32 characters, not a
   * webhook secret.
   * @default none: read tokens are refused
   */
  readTokenSecret?: string | string[] | undefined

  // Observability (docs/tracing.md; `startTelemetry` in telemetry.ts).
  /** Stage spans and metrics of the handlers and the sweeper. @default none */
  instrumentation?: PipelineStatusInstrumentation | undefined
}

/**
 * The example's collection settings from the environment, as `npm run example:express` reads
 * them: `PIPELINES_FILE` (a JSON file `{ "report": ["Fetch", "Summarise"] }`, read by the same
 * `loadPipelinesFile` as `pipeline-status mock --pipelines`) and `READ_TOKEN_SECRET`
 * (comma-separated for several). Throws the file's `ServerConfigurationError`, naming it.
 */
export function collectionFromEnv(env: NodeJS.ProcessEnv = process.env): Pick<ExpressExampleOptions, 'pipelines' | 'readTokenSecret'> {
  const file = env['PIPELINES_FILE']?.trim()
  const readTokenSecret = (env['READ_TOKEN_SECRET'] ?? '').split(',').map((part) => part.trim()).filter((part) => part !== '')
  return {
    ...(file ? { pipelines: loadPipelinesFile(file) } : {}),
    ...(readTokenSecret.length > 0 ? { readTokenSecret } : {}),
  }
}

/**
 * The example's live settings from the environment, as `npm run example:express` reads them:
 * `LIVE_MODE` (`poll` or `listen`; unset: the rule of `createPgConnections`, LISTEN when
 * `DIRECT_DATABASE_URL` is set, else polling) and `DIRECT_DATABASE_URL`. Throws an `Error`
 * naming `LIVE_MODE` and the accepted values for any other value.
 */
export function liveFromEnv(env: NodeJS.ProcessEnv = process.env): Pick<ExpressExampleOptions, 'liveMode' | 'directDatabaseUrl'> {
  const mode = env['LIVE_MODE']?.trim() || undefined
  if (mode !== undefined && mode !== 'poll' && mode !== 'listen') throw new Error(`LIVE_MODE must be poll or listen, got ${JSON.stringify(mode)}`)
  const direct = env['DIRECT_DATABASE_URL']?.trim()
  return { ...(mode ? { liveMode: mode } : {}), ...(direct ? { directDatabaseUrl: direct } : {}) }
}

/** A running example. */
export interface ExpressExample {
  /** The routes' base URL, e.g. `http://127.0.0.1:3000/api/pipeline`. */
  url: string
  port: number
  /** Which database it uses. */
  database: 'postgres' | 'pglite'
  /**
   * How its streams learn of other instances' writes: `'listen'` only when LISTEN mode was asked
   * for and a direct connection is at hand (`listener` is then its LISTEN connection).
   */
  live: { mode: 'poll' | 'listen'; listener: PgRunListener | undefined }
  /** Sweeps stale runs now; resolves the runs it failed (`[]` without `staleRunSweeper`). */
  sweepStaleRuns(): Promise<RunState[]>
  /** Stops accepting requests, waits for open ones, closes the database. */
  close(): Promise<void>
}

/**
 * Starts the example: an Express app serving the contract's routes under `/api/pipeline`
 * (`POST runs`, `{id}/stage-update`, `{id}/heartbeat`, `{id}/complete`, `{id}/cancel`;
 * `GET {id}/status`, `{id}/events`, `openapi.json`), on
 * PostgreSQL or embedded PGlite with the migrations applied.
 *
 * @example
 * ```ts
 * const example = await startExpressExample({ port: 3000, secret: process.env.WEBHOOK_SECRET! })
 * console.log(example.url)
 * await example.close()
 * ```
 */
export async function startExpressExample(options: ExpressExampleOptions): Promise<ExpressExample> {
  const log = options.log ?? console
  if (options.liveMode === 'listen' && !options.databaseUrl) throw new Error("liveMode 'listen' needs a PostgreSQL databaseUrl")
  const db = await openDatabase({ url: options.databaseUrl, directUrl: options.directDatabaseUrl, dataDir: options.dataDir, live: options.liveMode, logger: log })
  const app = express()
  app.disable('x-powered-by')
  // Every database call is bounded (503 + Retry-After past it); these are the defaults, in ms.
  const bounds = { queryTimeoutMs: 5_000, maxWaitMs: 5_000, timeoutMs: 15_000 }
  const live = { pollIntervalMs: options.pollIntervalMs }
  // On PostgreSQL the connections wire the store and the live streams together: the store on the
  // pool under Prisma's adapter (the fast path; behind a transaction pooler it turns to unnamed
  // prepared statements by itself) and, with a direct URL, LISTEN (the store notifies after
  // commit on its own connection, the handlers listen on the direct URL). PGlite polls.
  const wired = db.connections
    ? db.connections.handlerOptions({ prisma: db.prisma, store: bounds, live })
    : { store: createPrismaStore({ prisma: db.prisma, ...bounds }), live }
  const { store } = wired
  const sweeper = options.staleRunSweeper
    ? createStaleRunSweeper({
        logger: { warn: (message) => log.warn(message), error: (message) => log.error(message) },
        ...options.staleRunSweeper,
        store,
        instrumentation: options.instrumentation,
      })
    : undefined
  const listener = 'listen' in wired.live ? wired.live.listen : undefined
  const router = createExpressRouter({
    ...wired,
    secret: options.secret,
    ...collectionSettings(options),
    logger: { warn: (message) => log.warn(message), error: (message, details) => log.error(message, details) },
    instrumentation: options.instrumentation,
    // The read-only dashboard at /api/pipeline/dashboard: the page asks for the secret (or a tag
    // read token), keeps it in the tab's sessionStorage and sends it as a header (docs/dashboard.md).
    dashboard: { title: 'Pipeline runs (Express example)' },
    // Where an app stores the run's results; here the example only reports them.
    onRunCompleted: (_tx, run, payload) => {
      const extra = Object.keys(payload).filter((key) => !['status', 'completedAt', 'duration', 'error'].includes(key))
      log.info(`[express-example] run ${run.id} ${run.status}${extra.length ? ` with ${extra.join(', ')}` : ''}`)
    },
  })
  app.use('/api/pipeline', router)
  app.get('/healthz', (_req, res) => void res.json({ ok: true, database: db.kind }))

  const host = options.host ?? '127.0.0.1'
  let server: Server
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const listening = app.listen(options.port, host, (error?: Error) => (error ? reject(error) : resolve(listening)))
    })
  } catch (error) {
    await db.close()
    throw error
  }
  // A client that sends its headers or body slowly (slowloris) is cut off: 408 after these.
  server.headersTimeout = HEADERS_TIMEOUT_MS
  server.requestTimeout = REQUEST_TIMEOUT_MS
  const { port } = server.address() as AddressInfo
  sweeper?.start()
  let closing: Promise<void> | undefined
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/api/pipeline`,
    port,
    database: db.kind,
    live: { mode: listener ? 'listen' : 'poll', listener },
    sweepStaleRuns: () => sweeper?.sweep() ?? Promise.resolve([]),
    close: () =>
      (closing ??= (async () => {
        await sweeper?.stop()
        // Open live streams end first (their clients reconnect elsewhere), or close() would wait for them.
        await router.close()
        await new Promise<void>((resolve) => {
          server.close(() => resolve())
          server.closeIdleConnections()
          // A deadline for requests still in flight (a slow upload, a client that stopped reading).
          const cut = setTimeout(() => {
            log.warn(`[express-example] connections still open ${CLOSE_GRACE_MS} ms after close(): cutting them`)
            server.closeAllConnections()
          }, CLOSE_GRACE_MS)
          cut.unref()
          server.once('close', () => clearTimeout(cut))
        })
        // Sends the LISTEN notifications still queued (bounded: 2 s), before the database closes.
        await store.close()
        await db.close()
      })()),
  }
}

/** The handlers' `pipelines` and `readTokens` from the example's options (only those given). */
function collectionSettings(options: ExpressExampleOptions): { pipelines?: PipelineCatalogues; readTokens?: { secret: string | string[] } } {
  return {
    ...(options.pipelines ? { pipelines: options.pipelines } : {}),
    ...(options.readTokenSecret ? { readTokens: { secret: options.readTokenSecret } } : {}),
  }
}
