/**
 * `PrismaAPIClient`'s options, and their checks, run once by its constructor: every option that
 * cannot work throws a `ConfigurationError` naming the option and the fix. The resolver is
 * internal; the option types are exported from the client's entry.
 */
import { ENV_WEBHOOK_SECRET, ENV_WEBHOOK_URL } from '../contract/headers.js'
import { suggestScheme } from '../internal/missing-scheme.js'
import { MAX_HEARTBEAT_INTERVAL_MS, MIN_HEARTBEAT_INTERVAL_MS } from '../contract/runner-control.js'
import { parseSecretList } from '../contract/secrets.js'
import { assertStageCatalogue, DEFAULT_STAGES, type StageCatalogue } from '../contract/stages.js'
import { isPositive } from '../internal/is-positive.js'
import { createWebhookSignatureHeaders, decodeWebhookSecret, webhookMessageId } from '../signing/webhook-signature.js'
import { DEFAULT_BASE_PATH, normalizeBasePath } from '../contract/routes.js'
import type { CompleteRun } from '../contract/complete.js'
import type { QueuedCompletionEvent, UndeliveredUpdates } from './delivery.js'
import { ConfigurationError } from './errors.js'
import type { Logger } from './logger.js'
import type { FlushResult, OutboxOptions } from './outbox/entry.js'
import { type ResolvedRetryPolicy, type RetryPolicy, resolveRetryPolicy } from './retry-policy.js'
import type { AttemptSigner } from './transport.js'
import type { RunFinishedEvent } from './run-finished.js'

/**
 * Standard Webhooks signing of every request, status reads included (optional; with it the
 * plain `secret` may be left out, for a server that only has the signing secret).
 *
 * The `webhook-id` is `<METHOD> <route> <unique>` (see docs/security.md): the method, the path
 * after the base path (`run_1/stage-update`) and the update's `Idempotency-Key` (a random id per
 * status read), so the signature binds the body to its run and route, and every attempt of one
 * update has the same id. Each attempt is signed again with a fresh `webhook-timestamp`, so a
 * redelivery from the outbox hours later is still inside the server's timestamp tolerance.
 */
export interface SigningOptions {
  /** The signing secret: `whsec_<base64>` as Standard Webhooks defines it, or a plain string. */
  secret: string
}

/**
 * Options of {@link PrismaAPIClient}.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient({
 *   baseUrl: 'https://app.example.com',
 *   secret: process.env.WEBHOOK_SECRET,
 *   timeoutMs: 10_000,
 *   retry: { limit: 5 },
 *   outbox: { dir: './.pipeline-outbox' },
 * })
 * ```
 */
export interface PrismaAPIClientOptions {
  /**
   * The web app's origin (scheme, host, port; a path prefix is kept), e.g.
   * `https://app.example.com`. The routes live under it at `basePath`. A URL that already ends
   * with `basePath` (`https://app.example.com/api/pipeline`, what the demo and the Express
   * example print) means the same: the base path is not doubled.
   * @default process.env.FRONTEND_WEBHOOK_URL
   */
  baseUrl?: string | undefined
  /**
   * The path the handlers are mounted at, joined to `baseUrl`.
   * @default '/api/pipeline'
   */
  basePath?: string | undefined
  /**
   * The shared secret sent as `X-Webhook-Secret` with every request. Required unless `signing`
   * is set; with `signing` and no secret (none given, `WEBHOOK_SECRET` unset), requests are
   * only signed.
   *
   * Read the way the server reads `WEBHOOK_SECRET`: a comma-separated list whose entries are
   * trimmed, so one `.env` serves both during a rotation. The client sends the first entry:
   * with `WEBHOOK_SECRET='new,old'` it sends `new`, which the server (accepting both) takes. A
   * secret that holds a comma cannot be written this way (the server needs it as an array).
   * @default process.env.WEBHOOK_SECRET
   */
  secret?: string | undefined
  /**
   * Milliseconds one attempt may take, from sending to the last byte of the answer: one
   * deadline over connecting, the headers and the body, so a server that sends the headers and
   * then stalls, or trickles the body, ends the attempt as a timeout (retried, same
   * `Idempotency-Key`; {@link StatusTimeoutError} once the retries are spent). Applies per
   * attempt: with retries, one call can take up to `(retry.limit + 1) * timeoutMs` plus the
   * backoff waits.
   * @default 30_000
   */
  timeoutMs?: number | undefined
  /** How failed requests are retried (network errors, timeouts, 408, 429, 5xx). See {@link RetryPolicy}. */
  retry?: RetryPolicy | undefined
  /** Standard Webhooks signatures on every request. Off unless set. See {@link SigningOptions}. */
  signing?: SigningOptions | undefined
  /**
   * Where the client reports failed and queued updates; the default writes warnings and errors
   * to the console.
   * @default consoleLogger
   */
  logger?: Logger | undefined
  /**
   * The stage catalogue: stage numbers 1..N and the names sent as `stageName`. Must match the
   * server's, whose last stage completes the run. The default is the original five stages.
   * @default DEFAULT_STAGES
   */
  stages?: StageCatalogue | undefined
  /**
   * The `fetch` used for every attempt, e.g. an instrumented one. The default is looked up per
   * request, so a test's interceptor applies.
   * @default globalThis.fetch
   */
  fetch?: ((input: string, init: RequestInit) => Promise<Response>) | undefined
  /**
   * When `true`, the `mark*` methods, `initializePipelineStages` and `sendStageUpdate` throw
   * typed errors instead of resolving `false`. An update queued in the outbox still resolves
   * `true`: it is not lost.
   * @default false
   */
  throwOnError?: boolean | undefined
  /**
   * Keep updates that could not be delivered (after their retries) on disk and deliver them
   * later, in order per run, also after a restart. Off unless set. See {@link OutboxOptions}.
   */
  outbox?: OutboxOptions | undefined
  /**
   * The `User-Agent` header.
   * @default 'pipeline-status-sdk'
   */
  userAgent?: string | undefined
  /**
   * How often, in milliseconds, the client sends `POST {base}/{runId}/heartbeat` while
   * `runPipeline` runs a stage (one at the stage's start, then one per interval), announced to
   * the server as `intervalMs` so that the stale-run sweeper judges the run by it. Between
   * 1 000 and 3 600 000 (the contract's `MIN_HEARTBEAT_INTERVAL_MS`..`MAX_HEARTBEAT_INTERVAL_MS`).
   * Heartbeats are never queued in the outbox nor retried: a missed one is not worth replaying,
   * the next one follows an interval later. The runner learns that its run was finished
   * elsewhere within one interval.
   * @default 10_000
   */
  heartbeatIntervalMs?: number | undefined
  /**
   * Whether `runPipeline` follows its run's live stream (`GET {base}/events?run={runId}&view=summary`,
   * the set stream's summary view that sends the run's end but no stage outputs or streamed
   * chunks; `GET {base}/{runId}/events` on a server without that route; an outbound connection with the webhook secret, one per run, shared by its stages, closed when
   * the pipeline ends) so that a running stage's `signal` aborts within a second of the run
   * ending elsewhere (a cancel from the web app, the stale-run sweeper, another runner).
   * Heartbeats go on either way: with `false`, or while the stream is unavailable (a server
   * without the route answers 404 or 405; network errors are retried with backoff, 1 s to 30 s;
   * each logged once with its cause and fix), the stage learns at its next heartbeat. The stream
   * waits `timeoutMs` for its answer's headers, then takes three of the server's keep-alive
   * intervals (15 s until it announces its own) of silence as a lost connection.
   * @default true
   */
  followRunStream?: boolean | undefined
  /**
   * Called once per run when an answer of the server (a stage update, a heartbeat, a
   * completion, a status read, or a 409 `run_finished` refusal), or the run's live stream that
   * `runPipeline` follows while a stage runs ({@link followRunStream}), shows that the run was finished
   * by someone else: cancelled by the web app, failed by the stale-run sweeper, completed by a
   * `/complete` call not made by this client. Not called when this client's own update
   * finished the run. Exceptions it throws are logged and ignored. `runPipeline` listens too and
   * aborts the running stage. "Once" holds while the client remembers the run: it remembers the
   * 1,000 runs it most recently learned finished (`client.runFinished` too), so a long-lived client
   * does not keep every run it ever saw.
   */
  onRunFinished?: ((event: RunFinishedEvent) => void) | undefined
  /**
   * Called when a `/complete` that waited in the outbox leaves it, with how it came out:
   * `applied` (its results reached the app's `onRunCompleted` hook), `duplicate` (another
   * completion had already been received: these results did not reach the hook; also logged at
   * warn; with `unansweredAttempt` when an attempt of this one got no definite answer, which the
   * server may have received: then the hook may have run with these results), `dead-lettered` (refused for good or expired), `superseded` (the run ended
   * elsewhere) or `unknown` (accepted, but its answer could not be read: applied or duplicate
   * cannot be told), and the server's answer or the reason ({@link QueuedCompletionEvent}). That is
   * the later outcome of a `completeRun` that resolved a `QueuedDelivery` (and of `runPipeline`'s
   * `summary.completion` when it is one), delivered by a flush, `close()`, the background
   * redelivery, or, for an earlier process's completion, by this client when it opens the same
   * directory (`earlierProcess: true`). A completion still queued when the client closes stays on
   * disk and is told to whichever client delivers it. Not called for a completion delivered or
   * refused on its first send: `completeRun` resolves or throws that. Exceptions it throws are
   * logged and ignored.
   */
  onQueuedCompletion?: ((event: QueuedCompletionEvent) => void) | undefined
}

/** Options of {@link PrismaAPIClient.close}. */
export interface CloseOptions {
  /**
   * Milliseconds to wait for updates in flight and to flush the outbox before giving up.
   * What is left stays in the outbox directory for the next process.
   * @default 10_000
   */
  timeoutMs?: number | undefined
}


/** What {@link PrismaAPIClient.close} did, and what stays undelivered. */
export interface CloseResult extends FlushResult {
  /**
   * Updates delivered from the outbox by the final flush that `close` runs; `0` without an
   * outbox or with an empty one. It does not count the updates delivered before `close` (most
   * updates are delivered when they are sent), so it is not a measure of success: check
   * `pending` and `undelivered` (`{}` when every update of this client arrived).
   */
  delivered: number
  /**
   * Per run, the updates this client did not deliver over its life; runs whose every update
   * was delivered are absent, so `{}` means everything arrived.
   */
  undelivered: Record<string, UndeliveredUpdates>
}

/**
 * The body of a `/complete` call; `completedAt` defaults to now. App-specific fields (the
 * original sends `opportunities`, `fullReportMarkdown`, `stageOutputs`) are sent as they are.
 * The named fields are typed as the contract's `CompleteRun` (spelled out because `Omit` over
 * its index signature would erase them).
 */
export interface CompleteRunInput {
  /** How the run ended. */
  status: CompleteRun['status']
  /**
   * When it ended, as a `Date` or ISO 8601 string; the default is the time of the call.
   * @default new Date()
   */
  completedAt?: string | Date | null | undefined
  /** How long the run took, in seconds. */
  duration?: number | null | undefined
  /** Why it failed, for `FAILED`. */
  error?: string | null | undefined
  /** App-specific results, handed to the web app's `onRunCompleted` hook. */
  [field: string]: unknown
}

/** The options after their checks, with the environment's fallbacks applied. */
export interface ResolvedClientOptions {
  /** The origin (a path prefix kept), without a trailing slash nor the base path. */
  baseUrl: string
  /** The routes' base path, normalised. */
  basePath: string
  /** The shared secret (the first entry of a `new,old` list), `undefined` when only signing is used. */
  secret: string | undefined
  /** Per-attempt timeout, in milliseconds. */
  timeoutMs: number
  /** Milliseconds between heartbeats while `runPipeline` runs a stage. */
  heartbeatIntervalMs: number
  stages: StageCatalogue
  retry: ResolvedRetryPolicy
  /** Signs each attempt (Standard Webhooks), when `signing` is set. */
  signer: AttemptSigner | undefined
}

/** Checks the options and applies `FRONTEND_WEBHOOK_URL` and `WEBHOOK_SECRET`; throws {@link ConfigurationError}. */
export function resolveClientOptions(options: PrismaAPIClientOptions): ResolvedClientOptions {
  const env = globalThis.process?.env ?? {}
  const baseUrl = options.baseUrl ?? env[ENV_WEBHOOK_URL]
  // Read like the server reads it: during a rotation (`new,old`) the first entry is current.
  const secret = parseSecretList(options.secret ?? env[ENV_WEBHOOK_SECRET])[0]
  if (baseUrl === undefined || baseUrl.trim() === '') {
    throw new ConfigurationError(
      `No base URL: pass { baseUrl: 'https://your-app.example.com' } or set ${ENV_WEBHOOK_URL}`,
    )
  }
  const named = options.baseUrl === undefined ? `${ENV_WEBHOOK_URL}=${baseUrl.trim()}` : `The base URL ${JSON.stringify(baseUrl)}`
  // `localhost:5120` parses as a URL whose scheme is `localhost:`: say what was meant instead.
  const meant = suggestScheme(baseUrl)
  if (meant !== undefined) throw new ConfigurationError(`${named} has no http:// or https://; did you mean ${meant}?`)
  let url: URL
  try {
    url = new URL(baseUrl.trim())
  } catch {
    throw new ConfigurationError(`${named} is not an absolute URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigurationError(`The base URL must be http or https, not ${url.protocol}`)
  }
  if (url.search !== '' || url.hash !== '') {
    throw new ConfigurationError('The base URL must not have a query or a fragment')
  }
  if (secret === undefined && !options.signing) {
    throw new ConfigurationError(
      `No webhook secret: pass { secret } or set ${ENV_WEBHOOK_SECRET} (the same value as the web app's)`,
    )
  }
  const timeoutMs = options.timeoutMs ?? 30_000
  if (!isPositive(timeoutMs, { max: 2_147_483_647 })) {
    throw new ConfigurationError('timeoutMs must be a positive number of milliseconds')
  }
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 10_000
  if (!Number.isInteger(heartbeatIntervalMs) || heartbeatIntervalMs < MIN_HEARTBEAT_INTERVAL_MS || heartbeatIntervalMs > MAX_HEARTBEAT_INTERVAL_MS) {
    throw new ConfigurationError(
      `heartbeatIntervalMs must be a whole number of milliseconds from ${MIN_HEARTBEAT_INTERVAL_MS} to ${MAX_HEARTBEAT_INTERVAL_MS}, got ${String(heartbeatIntervalMs)}`,
    )
  }
  let stages: StageCatalogue
  let retry: ReturnType<typeof resolveRetryPolicy>
  try {
    stages = assertStageCatalogue(options.stages ?? DEFAULT_STAGES)
    retry = resolveRetryPolicy(options.retry)
  } catch (error) {
    throw new ConfigurationError((error as Error).message, { cause: error })
  }
  let signingSecret: string | undefined
  if (options.signing) {
    const given = options.signing.secret
    if (typeof given !== 'string' || given === '') {
      throw new ConfigurationError('signing.secret must be a non-empty string')
    }
    try {
      // A malformed whsec_ secret fails here, not on the first request.
      decodeWebhookSecret(given)
    } catch (error) {
      throw new ConfigurationError((error as Error).message, { cause: error })
    }
    signingSecret = given
  }
  const basePath = normalizeBasePath(options.basePath ?? DEFAULT_BASE_PATH)
  const origin = withoutBasePath(url, basePath)
  const signer = signingSecret === undefined ? undefined : signerFor(signingSecret, `${origin}${basePath}/`)
  return { baseUrl: origin, basePath, secret, timeoutMs, heartbeatIntervalMs, stages, retry, signer }
}

/** Signs an attempt: the webhook-id names the path after the base path, with the run id decoded (what the server compares). */
function signerFor(signingSecret: string, routesAt: string): AttemptSigner {
  return async ({ method, url, body, unique }) => {
    if (!url.startsWith(routesAt)) throw new TypeError(`Cannot sign ${url}: it is not under ${routesAt}`)
    // The route is the path alone: a list's query string is not part of it.
    const route = decodeURIComponent(url.slice(routesAt.length).split('?', 1)[0] ?? '')
    const id = webhookMessageId({ method, route, unique })
    return { ...(await createWebhookSignatureHeaders({ secret: signingSecret, body, id })) }
  }
}

/**
 * The base URL without a trailing slash, and without the routes' base path when it already
 * ends with it: `FRONTEND_WEBHOOK_URL=http://host:3000/api/pipeline` (what the demo and the
 * Express example print) means the same as `http://host:3000`.
 */
function withoutBasePath(url: URL, basePath: string): string {
  const path = url.pathname.replace(/\/+$/, '')
  if (basePath !== '' && path.endsWith(basePath)) url.pathname = path.slice(0, -basePath.length) || '/'
  return url.href.replace(/\/+$/, '')
}
