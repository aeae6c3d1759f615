import type { OnRunCompleted, OnRunEnded } from '../core/hooks.js'
import type { StageCatalogue } from '../contract/stages.js'
import type { RunScope } from '../contract/run-list.js'
import type { Store } from '../core/store.js'
import type { ServerConfigurationError } from './configuration-error.js'
import type { CorsOptions } from './http/cors.js'
// `createPipelineStatusHandlers` is linked below by name, not imported: an import of handlers.ts
// would close an import circle. typedoc resolves the name within the server entry.
import type { RunChangeSource } from './live/run-watcher.js'
import type { Logger } from '../internal/logger.js'
import type { PrismaStoreClient, PrismaTransactionClientOf } from './storage/prisma-client.js'
import type { HttpProblemError } from './http/problem-response.js'
import type { WebhookSigningOptions } from './auth/webhook-auth.js'
import type { PipelineStatusInstrumentation } from './instrumentation.js'
import type { PrismaStorePool } from './storage/adapters/pool-executor.js'

/** 1 MiB, the default of {@link PipelineStatusHandlersSettings.maxBodyBytes}. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024

/** The default of {@link PipelineStatusHandlersSettings.retryAfterSeconds}. */
export const DEFAULT_RETRY_AFTER_SECONDS = 5

/**
 * What a caller asks, as the `authorize` hook sees it: of one run, `'read'` is `GET /status`,
 * `'stream'` the live status stream (`GET /events`), `'cancel'` is `POST /cancel`, `'tag'` is
 * `POST /tags` and `'metadata'` is `POST /metadata`; of the collection, `'list'` is `GET /runs`,
 * `GET /runs/counts`, `GET /runs/stats` and the set streams (then `runId` is `undefined` and
 * `listScope` narrows what the caller sees); `'dashboard'` is any read the dashboard page makes
 * (it marks its requests; with the `dashboard` option on): its lists and stats (`runId`
 * `undefined`) and a run's status and stream (`runId` set), each narrowed by `listScope` too
 * (docs/dashboard.md). Later releases may add more; a hook that switches on it should refuse what it
 * does not know.
 */
export type AuthorizeAction = 'read' | 'stream' | 'cancel' | 'tag' | 'metadata' | 'list' | 'dashboard'

/** The actions on one run: those whose {@link AuthorizeInput} always names a `runId`. */
export type RunAuthorizeAction = Exclude<AuthorizeAction, 'list' | 'dashboard'>

/** Options of the dashboard (the handlers' `dashboard` option, and `createDashboardHandler`). */
export interface DashboardOptions {
  /**
   * The page's title, shown in its header and the browser's tab (text; never HTML).
   * @default 'Pipeline runs'
   */
  title?: string | undefined
  /**
   * How often the page reads the counts and the stage-duration chart again, in milliseconds, as
   * a backstop: the list and an open run follow their live streams (no polling), and the counts
   * are also read again after each change of the live list (at most once a second). At least 500.
   * @default 30_000
   */
  refreshIntervalMs?: number | undefined
  /**
   * Lets the page's own reads (lists, counts, stats, a run's status; never a write, never any
   * other request) through without a credential. For `pipeline-status mock` on a loopback
   * interface, where only this machine reaches it; never turn it on where others can connect.
   * @default false
   */
  open?: boolean | undefined
}

/**
 * Where the handlers' replica reads go ({@link PipelineStatusHandlersSettings.readReplica}), one of:
 * - `{ pool }`: a `pg` pool (or anything with its `query`) on the replica, e.g.
 *   `createPgConnections({ replicaConnectionString }).replicaPool` from `pipeline-status-sdk/pg`;
 *   the store's own SQL runs on it, with table names from the handlers' `prisma` client or
 *   `PrismaStore` (any other store throws {@link ServerConfigurationError}).
 * - `{ prisma }`: a second `PrismaClient` whose adapter connects to the replica (or
 *   `prisma.$replica()` of Prisma's read-replica extension).
 * - `{ store }`: any {@link Store} that reads the replica (its `getRun`, `listRuns`, `countRuns`).
 */
export type ReadReplicaOptions = ReadReplicaSettings &
  (
    | { pool: PrismaStorePool; prisma?: undefined; store?: undefined }
    | { prisma: PrismaStoreClient; pool?: undefined; store?: undefined }
    | { store: Store<unknown>; pool?: undefined; prisma?: undefined }
  )

/** The settings every form of {@link ReadReplicaOptions} takes. */
export interface ReadReplicaSettings {
  /**
   * How many runs' newest versions the process remembers (a least-recently-used map, about 100
   * bytes a run). A run it forgot is read from the replica checked only against the version the
   * client presents; keep it above the runs read or written within the replica's usual lag.
   * @default 10_000
   */
  maxKnownRuns?: number | undefined
  /**
   * After a replica read fails, how long reads skip the replica and go to the primary, in
   * milliseconds; then the next read tries it again.
   * @default 5_000
   */
  retryAfterMs?: number | undefined
  /**
   * With `pool` or `prisma`: how long one replica statement may take, in milliseconds, before the
   * read goes to the primary (counted as `replica_error`). Short, so that a hung replica costs
   * little.
   * @default 2_000
   */
  queryTimeoutMs?: number | undefined
}

/**
 * 1,000 chunks: the default of {@link LiveStatusOptions.maxReplayedChunks}, the most streamed
 * output chunks (rows of `StageOutputChunk`, each one `output` event) a live stream replays to
 * catch up: a reconnect with `Last-Event-ID`, or a stream the run watcher found behind. Past it
 * the stream sends a fresh `snapshot` with the text so far instead. Why a count and not bytes:
 * what a replay costs beyond the text is per row (a row read, an object, an event's framing),
 * while its text is never more than the streamed text a snapshot carries anyway (bounded per
 * stage by `maxStreamedOutputBytes`); a snapshot reads that text as one string per stage, so
 * past about a thousand rows it is the cheaper way. A runner's `write` batches its chunks, so a
 * reconnect after seconds replays far fewer (DESIGN.md "Streamed output": up to 1 MiB per stage
 * in chunks of up to 64 KiB, so a run of many stages could otherwise replay a million rows).
 */
export const DEFAULT_MAX_REPLAYED_OUTPUT_CHUNKS = 1_000

/** The defaults of {@link LiveStatusOptions}, one place for all of them (internal: no entry exports them). */
export const LIVE_DEFAULTS = {
  /** 250 ms between version reads. */
  pollIntervalMs: 250,
  /** 5 s between safety polls while LISTEN delivers. */
  safetyPollIntervalMs: 5_000,
  /** 15 s between keep-alive comments. */
  keepAliveMs: 15_000,
  /** 2 s: the `retry:` a stream tells the browser. */
  retryMs: 2_000,
  /** 10,000 open streams per handlers instance. */
  maxStreams: 10_000,
  /** 1 MiB unsent per stream, beyond its snapshot. */
  maxBufferedBytes: 1024 * 1024,
  /** 1,000 chunks replayed at most per catch-up ({@link DEFAULT_MAX_REPLAYED_OUTPUT_CHUNKS}). */
  maxReplayedChunks: DEFAULT_MAX_REPLAYED_OUTPUT_CHUNKS,
} as const satisfies Required<Pick<LiveStatusOptions, 'pollIntervalMs' | 'safetyPollIntervalMs' | 'keepAliveMs' | 'retryMs' | 'maxStreams' | 'maxBufferedBytes' | 'maxReplayedChunks'>>

/**
 * Settings of the live status stream, `GET {basePath}/{runId}/events` (docs/live-status.md).
 */
export interface LiveStatusOptions {
  /**
   * How often the process reads the versions of every run it streams (one batched query,
   * `Store.getRunVersions`, whatever the number of streams), in milliseconds. This is how a
   * change written by another instance reaches this one when no `listen` connection is up.
   * @default 250
   */
  pollIntervalMs?: number | undefined
  /**
   * While `listen` delivers, how often the process still reads the versions of every run it
   * streams (the same one batched query; nothing when no stream is open), in milliseconds. It
   * catches up a change no notification announced: one written by an instance whose store lacks
   * `notifyChannel`, or whose notification was lost (the writer crashed between commit and its
   * notification batch, its batch failed, or its queue was full); the first such change is logged once per process (a warning naming both causes).
   * So a missed notification makes streams at most this late, never stale for good.
   * @default 5000
   */
  safetyPollIntervalMs?: number | undefined
  /**
   * LISTEN mode: a source of change notifications, `createPgRunListener({ connectionString })`
   * from `pipeline-status-sdk/pg` (Node only; the store needs `notifyChannel` on the same channel).
   * `createPgConnections(…).handlerOptions({ prisma })` sets both whenever the app gives a direct
   * URL (`DIRECT_DATABASE_URL`; the rule of issue 31 item 1, DESIGN.md "Live status").
   * While it delivers (for `createPgRunListener`: connected, passing its liveness probes, and
   * shown to receive other sessions' notifications) the process polls only every
   * `safetyPollIntervalMs`; otherwise it
   * polls and logs one warning with the cause; when it delivers again every streamed run is read again.
   * @default none: version polling (with `db.handlerOptions()`: the listener when a direct URL is given)
   */
  listen?: RunChangeSource | undefined
  /**
   * Milliseconds between keep-alive comment lines (`: keep-alive`), which keep proxies from
   * closing an idle stream. Each stream announces it first (`: keep-alive-ms 15000`), and
   * `subscribeToRun` takes about three intervals without a byte as a lost connection.
   * @default 15000
   */
  keepAliveMs?: number | undefined
  /**
   * The `retry:` field sent first on every stream: how long a client waits before it reconnects
   * after a drop, in milliseconds.
   * @default 2000
   */
  retryMs?: number | undefined
  /**
   * The most streams this handlers instance keeps open at once; one more is answered 503
   * `too_many_streams` with `Retry-After` (the client retries, possibly on another instance).
   * @default 10000
   */
  maxStreams?: number | undefined
  /**
   * The bound of each stream's send buffer, in bytes: what its reader has not taken yet, beyond
   * the snapshot it started with. A subscriber that falls further behind (it stopped reading, or
   * its link is slower than the run's changes) is closed when the next event or keep-alive is
   * due, logged once (a warning) and counted in `liveStats().slowStreamsClosed`; it reconnects
   * and starts again from a fresh snapshot. A stream thus holds at most this plus its snapshot
   * plus one event (and what the adapter and the kernel's socket buffer hold).
   * @default 1048576 (1 MiB)
   */
  maxBufferedBytes?: number | undefined
  /**
   * The most streamed output chunks a live stream replays to catch up, a whole number from 1: a
   * reconnect with `Last-Event-ID` whose run has more chunks after that version, or a stream (or
   * a full-view set stream's run) that the run watcher finds this far behind, gets a fresh
   * `snapshot` with the text so far instead of the chunks. Each stream reads at most one chunk
   * more than this to know. The first such fallback of each kind is logged (a warning naming the
   * run, the cause and this option).
   * @default 1000 (`DEFAULT_MAX_REPLAYED_OUTPUT_CHUNKS`)
   */
  maxReplayedChunks?: number | undefined
}

/**
 * The one argument of the `authorize` hook; later releases may add members, never remove them.
 * For `action: 'list'` (the collection, no one run) `runId` is `undefined`: check `action`
 * before using it.
 *
 * @typeParam Native - the framework's own request: Express's `Request` in the Express router,
 * the `NextRequest` (a `Request`) in the Next.js handlers, the Fetch `Request` itself otherwise.
 */
export type AuthorizeInput<Native = Request> =
  | {
      /** The request as a Fetch `Request` (headers, cookies, URL). */
      request: Request
      /** The run asked for, as decoded from the path. */
      runId: string
      /** What is asked of the run; see {@link AuthorizeAction}. */
      action: RunAuthorizeAction
      /** The framework's own request, e.g. Express's `req` with `req.session` and `req.user`. */
      native: Native
    }
  | {
      /** The request as a Fetch `Request` (headers, cookies, URL). */
      request: Request
      /** No one run: the request is about the collection. */
      runId: undefined
      /** A list, a count or a set stream; what it may show is `listScope`'s answer. */
      action: 'list'
      /** The framework's own request. */
      native: Native
    }
  | {
      /** The request as a Fetch `Request` (headers, cookies, URL). */
      request: Request
      /** The run of a status read or stream; `undefined` for the dashboard's lists, counts and stats. */
      runId: string | undefined
      /** A read by the dashboard page; what it may show is `listScope`'s answer. */
      action: 'dashboard'
      /** The framework's own request. */
      native: Native
    }

/** The one argument of the `listScope` hook; later releases may add members, never remove them. */
export interface ListScopeInput<Native = Request> {
  /** The request as a Fetch `Request` (headers, cookies, URL). */
  request: Request
  /** The framework's own request, e.g. Express's `req` with `req.session` and `req.user`. */
  native: Native
}

/**
 * The app's rule for what a caller sees of the collection (see
 * {@link PipelineStatusHandlersSettings.listScope}): a {@link RunScope} (`{ tags?, pipeline? }`,
 * runs carrying all of `tags` and of `pipeline`) or `undefined` for no restriction.
 */
export type ListScopeHook<Native = Request> = (input: ListScopeInput<Native>) => RunScope | undefined | Promise<RunScope | undefined>

/**
 * The object form of the `authorize` hook's answer ({@link AuthorizeResult}): a permission that
 * holds until a given instant, such as the app's session's expiry.
 */
export interface AuthorizeGrant {
  /** `true` allows the request; `false` answers 403 `forbidden`, like the hook's `false`. */
  allow: boolean
  /**
   * Until when the permission holds: a `Date`, or milliseconds since the epoch (`Date.getTime()`,
   * not seconds). A live stream (`'stream'`, a set stream's `'list'`, the dashboard's stream)
   * opened under it ends at that instant, judged by the handlers' `clock`, after the comment
   * `: closed credential-expired <runId>` (`: closed credential-expired` on a set stream), as a
   * stream opened with a read token ends at the token's expiry; the subscriber reconnects, and
   * the hook is asked again. An instant already past refuses the request as the app's session
   * having ended: 401 `authentication_required`. Not a valid `Date`, or not a number a `Date` can
   * hold (finite, within ±8.64e15 ms): a 500 (logged). Requests that end with their answer (`'read'`, `'cancel'`, lists) need it only to be
   * in the future.
   * @default undefined: the permission holds for as long as the request (a stream stays open until its run ends or the client goes away)
   */
  expiresAt?: Date | number | undefined
}

/**
 * What the `authorize` hook answers: `true` (allowed, for as long as the request lasts), `false`
 * (403 `forbidden`), or an {@link AuthorizeGrant} `{ allow, expiresAt }` for a permission that
 * ends at a known instant (the session's expiry), where a live stream opened under it ends then.
 */
export type AuthorizeResult = boolean | AuthorizeGrant

/**
 * Decides whether a caller without the webhook secret may do `action` on `runId`: `true`
 * allows it, `false` answers 403 `forbidden`, `{ allow: true, expiresAt }` allows it until
 * `expiresAt` (a `Date` or ms since the epoch; a live stream opened under it ends then, see
 * {@link AuthorizeGrant}). Throw `HttpProblemError('authentication_required')` for a caller that
 * is not signed in (401); any other throw is a 500. Any other answer is a refusal (403).
 * @example
 * ```ts
 * import type { AuthorizeHook } from 'pipeline-status-sdk/server'
 *
 * declare function findSession(request: Request): Promise<{ userId: string; expiresAt: Date } | null> // the app's own
 * declare function userOwnsRun(userId: string, runId: string): Promise<boolean> // the app's own
 *
 * export const authorize: AuthorizeHook = async ({ request, runId }) => {
 *   const session = await findSession(request)
 *   if (!session) return false
 *   // A live stream opened with this session ends when the session does.
 *   return { allow: runId === undefined || (await userOwnsRun(session.userId, runId)), expiresAt: session.expiresAt }
 * }
 * ```
 */
export type AuthorizeHook<Native = Request> = (input: AuthorizeInput<Native>) => AuthorizeResult | Promise<AuthorizeResult>

/**
 * Options of {@link createPipelineStatusHandlers} other than the store.
 *
 * @typeParam Tx - the store's transaction handle, handed to `onRunCompleted`.
 * @typeParam Native - the framework's request handed to `authorize` as `native`.
 */
export interface PipelineStatusHandlersSettings<Tx = unknown, Native = Request> {
  /**
   * The shared secret the runner sends in `X-Webhook-Secret`; a list accepts each of them, so a
   * secret can be rotated without downtime (add the new one, move the runners, drop the old one).
   * A string is read as a comma-separated list, like the environment variable; pass an array for
   * a secret that holds a comma.
   * Compared in constant time. Writes are never accepted without a secret: when neither this, the
   * environment variable nor `signing.secret` gives one, creating the handlers throws
   * {@link ServerConfigurationError}. Runtimes without `process.env` (Cloudflare Workers) must
   * pass it here, e.g. from their `env` bindings.
   * @default the `WEBHOOK_SECRET` environment variable, split at commas
   */
  secret?: string | readonly string[] | undefined
  /**
   * Standard Webhooks verification (`webhook-id`, `webhook-timestamp`, `webhook-signature`,
   * HMAC-SHA256 over the raw body). Works beside `secret`; see {@link WebhookSigningOptions.required}.
   * @default no signature verification
   */
  signing?: WebhookSigningOptions | undefined
  /**
   * The path the contract's routes (stage-update, heartbeat, complete, cancel, status, events,
   * runs, tags, metadata, openapi.json) live under; `fetch` answers 404 for anything else.
   * @default '/api/pipeline'
   */
  basePath?: string | undefined
  /**
   * The stage catalogue of the pipeline `default`, the one of every run created without a
   * `pipeline` (the original Python runner's): stage numbers outside 1..N are refused with 400,
   * and completing stage N completes the run. Giving it together with `pipelines.default` throws
   * {@link ServerConfigurationError}.
   * @default DEFAULT_STAGES, the original five stages
   */
  stages?: StageCatalogue | undefined
  /**
   * Several named pipelines, each a stage catalogue: `POST /runs` with `{ "pipeline": "report" }`
   * creates a run of `report`, and the run keeps a snapshot of that catalogue, so every later rule
   * (stage numbers, which stage completes the run, the status document's `catalogue`) uses the
   * run's own stages, and changing a pipeline here never rewrites old runs. A run without a
   * snapshot (an old row, one made with Prisma directly) follows its pipeline's catalogue here
   * and stores it with its first applied update; if its pipeline is not here, its stage updates
   * are refused with 409 `unknown_pipeline`. `default` is always configured (from `stages`, else
   * `pipelines.default`, else the original five stages). Names are 1 to 128 characters; an invalid
   * catalogue throws {@link ServerConfigurationError}.
   * @default `{ default: stages }`
   * @example
   * ```ts
   * import { createPipelineStatusHandlers, MemoryStore } from 'pipeline-status-sdk/server'
   * import { defineStages } from 'pipeline-status-sdk'
   * const handlers = createPipelineStatusHandlers({
   *   store: new MemoryStore(),
   *   secret: 'dev-secret',
   *   pipelines: { report: defineStages(['Fetch', 'Summarise', 'Publish']), ingest: defineStages(['Download', 'Load']) },
   * })
   * ```
   */
  pipelines?: Readonly<Record<string, StageCatalogue>> | undefined
  /**
   * Decides whether a request without the webhook secret may read a run (`GET /status`), e.g.
   * with the app's session and run ownership: called with one object,
   * `{ request, runId, action, native }` ({@link AuthorizeInput}). `false` answers 403
   * `forbidden`. Without this hook, reads need the webhook secret (or a valid signature): status
   * is never public by default. Writes always need the secret. For a caller that is not signed
   * in, throw `new HttpProblemError('authentication_required')` (401); another
   * {@link HttpProblemError} answers its own problem, any other throw is a 500. Lists and counts
   * ask it with `action: 'list'` and no `runId`, then ask `listScope` what the caller sees.
   * It may answer `{ allow: true, expiresAt }` instead of `true` (a `Date` or ms since the
   * epoch, e.g. the session's expiry; {@link AuthorizeGrant}): a live stream opened under it
   * ends then, with `: closed credential-expired`, as one opened with a read token does.
   * @default none
   */
  authorize?: AuthorizeHook<Native> | undefined
  /**
   * Accept run read tokens (`createRunReadToken` from `pipeline-status-sdk/server`) as
   * `Authorization: Bearer psrt1.…` for reads of the one run each was made for. `secret` is the read-token secret (or a rotation
   * list: tokens signed with any of them are accepted); it must be at least 32 characters and
   * differ from every webhook and signing secret, or creating the handlers throws
   * {@link ServerConfigurationError}: a read token must never be worth anything for writes.
   * A bearer token that is not a read token (no `psrt1.` prefix) goes on to `authorize`; one
   * that is, but is malformed, expired or for another run, is answered 401 `invalid_read_token`.
   * A tag token (`createRunReadToken({ tag })`) reads each run carrying its tag when asked and
   * lists exactly those runs; for a run without the tag, or no such run, it is answered 401
   * `invalid_read_token` like a run token used on another run's path.
   * @default none: read tokens are refused like any missing secret
   */
  readTokens?: { secret: string | readonly string[] } | undefined
  /**
   * What a caller authorized by the app (not by the webhook secret, not by a read token) sees
   * of the collection: called after `authorize` allowed `action: 'list'`, once per `GET /runs`,
   * `GET /runs/counts` and set stream, with `{ request, native }` ({@link ListScopeInput}). It
   * returns a {@link RunScope} `{ tags?, pipeline? }` (runs carrying every one of `tags`, of
   * `pipeline` when given), ANDed into the request's own filters: a query parameter or cursor
   * can narrow it, never widen it (a `pipeline=` other than the scope's answers an empty list).
   * `undefined` (or `{}`) means no restriction, so a rule that computes tags must not return
   * `{ tags: [] }` for a user with none: refuse in `authorize` instead.
   * The precedence (docs/security.md): the webhook secret sees every run and never calls this;
   * a tag read token sees its tag's runs and never calls this; otherwise `authorize`, then this.
   * A throw answers 500 `internal_error` without its message (logged), as does a value that is
   * not a scope; throw an {@link HttpProblemError} to answer that problem instead.
   * @default none: whoever `authorize` lets list sees every run
   */
  listScope?: ListScopeHook<Native> | undefined
  /**
   * The app's hook that stores the run's results (the `/complete` payload's app-specific fields).
   * It runs inside the transaction of the first accepted `POST /complete`, exactly once per run,
   * also when the last stage had already completed the run. When it throws, the completion is
   * rolled back and answered with 500, so the runner can retry it.
   * @default none
   */
  onRunCompleted?: OnRunCompleted<Tx> | undefined
  /**
   * The app's hook for the end of a run, however it ended: `({ tx, run, how })` with `how` one of
   * `last_stage_completed`, `stage_failed`, `stage_cancelled`, `cancelled` (`POST /cancel`),
   * `completed_explicitly` (`POST /complete`); the stale-run sweeper takes the same hook for
   * `swept_as_stale`. It runs exactly once per run, inside the transaction of the write that ended
   * it (such a write then takes the locking transaction instead of the hot path's conditional
   * write). When it throws, that write is rolled back and answered with 500, so it can be retried.
   * @default none
   */
  onRunEnded?: OnRunEnded<Tx> | undefined
  /**
   * Receives unexpected errors (behind a 500, with the error), an unreachable database (503, a
   * warning), a database without the package's tables or columns (503 `database_not_migrated`,
   * one error per distinct problem, not per request) and refused credentials (401, never the
   * secret itself). Also the store's warnings when it is a `PrismaStore` without its own
   * `logger` (the one built from `prisma`, or one passed as `store`): the pool path's turn to
   * unnamed statements behind a transaction pooler.
   * @default warnings to `console.warn`, errors to `console.error`
   */
  logger?: Logger | undefined
  /**
   * The largest body accepted, in bytes. Checked against `Content-Length` first and counted
   * while the body streams, so a larger body is never buffered; it is answered with 413.
   * @default 1_048_576 (1 MiB)
   */
  maxBodyBytes?: number | undefined
  /**
   * The most UTF-8 bytes one stage attempt's streamed output may hold
   * (`POST {base}/{runId}/stages/{stageNumber}/output`). A chunk that would take a stage past it
   * is answered 413 `output_too_large` with `maxBytes` and stores nothing; a higher attempt
   * starts again from 0. Each chunk is also bounded by `maxBodyBytes` and by 64 KiB of `text`.
   * @default 1_048_576 (1 MiB, `DEFAULT_MAX_STREAMED_OUTPUT_BYTES`)
   */
  maxStreamedOutputBytes?: number | undefined
  /**
   * The `Retry-After` of a 503 when the database is unreachable, in seconds.
   * @default 5
   */
  retryAfterSeconds?: number | undefined
  /**
   * How far ahead of the server's clock a runner-sent instant (a stage's `completedAt`, the
   * `completedAt` of `/complete`) may be, in milliseconds. An instant later than the server's now
   * plus this, or earlier than the run's creation, is stored clamped to that window, never
   * refused, and logged as one warning per run naming the skew and its fix. A whole number of 0 or
   * more; anything else throws {@link ServerConfigurationError} at creation.
   * @default 300_000 (5 minutes)
   */
  clockSkewToleranceMs?: number | undefined
  /**
   * The current time, for tests.
   * @default () => new Date()
   */
  clock?: (() => Date) | undefined
  /**
   * Settings of the live status stream, `GET {basePath}/{runId}/events`.
   * @default version polling every 250 ms, keep-alive every 15 s, at most 10,000 streams (with
   *   `createPgConnections(…).handlerOptions()` from `pipeline-status-sdk/pg`: LISTEN when a direct URL is given)
   */
  live?: LiveStatusOptions | undefined
  /**
   * Opt-in: read `GET /status`, live streams' snapshots, `GET /runs` and `GET /runs/counts` from
   * a read replica, without stale reads (docs/read-replicas.md). A read of one run goes to the
   * primary instead when the replica's copy is older than the newest version this process knows
   * (its own writes, LISTEN notifications and version polls of its live streams, runs it listed or
   * read) or than the client presents (`If-None-Match`, `Last-Event-ID`), when the replica lacks
   * the run, or when the replica fails (logged once per outage). Lists and counts may lag by the
   * replica's lag; a run opened from a list is never older than the list showed it. Writes, the
   * streams' updates and version polls stay on the primary. Counted in `readStats()` and the
   * instrumentation's `readServed`.
   * @default none: every read goes to the primary
   * @example
   * ```ts
   * import { createPgConnections } from 'pipeline-status-sdk/pg'
   * import { createPipelineStatusHandlers, createPrismaStore } from 'pipeline-status-sdk/server'
   * import { prisma } from './prisma.js' // your app's PrismaClient on the primary
   *
   * const db = createPgConnections({
   *   connectionString: process.env.DATABASE_URL ?? '',
   *   replicaConnectionString: process.env.REPLICA_DATABASE_URL, // the replica's host
   * })
   * const handlers = createPipelineStatusHandlers({
   *   store: createPrismaStore({ prisma, pool: db.pool }),
   *   readReplica: db.readReplica, // { pool: db.replicaPool }, or undefined without the URL
   * })
   * ```
   */
  readReplica?: ReadReplicaOptions | undefined
  /**
   * The read-only dashboard at `GET {basePath}/dashboard` (docs/dashboard.md): `true` or
   * {@link DashboardOptions} serves its page shell there and its script and stylesheet under
   * `{basePath}/dashboard/`, from the package (no CDN). The shell holds no data and needs no
   * credential; its data requests are authorized like lists: the webhook secret or a tag read
   * token the page asks for and keeps in `sessionStorage`, or the app's session through
   * `authorize` with `action: 'dashboard'` (then `listScope`). Every answer carries
   * `Content-Security-Policy: default-src 'self'; script-src 'self'; frame-ancestors 'none'` and
   * `X-Content-Type-Options: nosniff`. Off, those paths are 404 `route_not_found`.
   * @default false
   */
  dashboard?: boolean | DashboardOptions | undefined
  /**
   * Lets pages on other origins read status and stream runs: the allowed origins, and the
   * preflight `OPTIONS` of `GET /status` and `GET /events` answered for them. Writes never get
   * CORS headers (runners are not browsers).
   * @default none: same-origin only, no CORS headers
   */
  cors?: CorsOptions | undefined

  // Observability (DESIGN.md "Observability").
  /**
   * Where the handlers report stage spans and metrics: `pipelineStatusInstrumentation()` of
   * `pipeline-status-sdk/otel` for OpenTelemetry, or an object of your own. Called after each
   * write committed; a throw is logged as a warning and never fails the request.
   * @default none: nothing is recorded
   */
  instrumentation?: PipelineStatusInstrumentation | undefined
}

/** Handlers on any {@link Store}, e.g. `MemoryStore` or a `PrismaStore` with options. */
export type StoreHandlersOptions<Tx = unknown, Native = Request> = PipelineStatusHandlersSettings<Tx, Native> & {
  /** Where runs and stages are kept. */
  store: Store<Tx>
  prisma?: undefined
}

/** Handlers on the app's own `PrismaClient`, through a `PrismaStore` with default options. */
export type PrismaHandlersOptions<Client extends PrismaStoreClient = PrismaStoreClient, Native = Request> =
  PipelineStatusHandlersSettings<PrismaTransactionClientOf<Client>, Native> & {
    /** The app's `PrismaClient`, generated from a schema holding the SDK's models. */
    prisma: Client
    store?: undefined
  }

/**
 * Options of {@link createPipelineStatusHandlers}: a `store` or a `prisma` client, plus
 * {@link PipelineStatusHandlersSettings}.
 */
export type PipelineStatusHandlersOptions<Tx = unknown, Native = Request> =
  | StoreHandlersOptions<Tx, Native>
  | PrismaHandlersOptions<PrismaStoreClient, Native>
