import { CompleteRun } from '../contract/complete.js'
import { PayloadValidationError, parseRunId } from '../contract/parse.js'
import {
  CompleteRunResponse,
  CreateRunResponse,
  type CatalogueEntry,
  HeartbeatResponse,
  PipelineRunRecord,
  RunStatusResponse,
  StageUpdateResponse,
} from '../contract/records.js'
import { MAX_HEARTBEAT_INTERVAL_MS, MIN_HEARTBEAT_INTERVAL_MS, StageProgress } from '../contract/runner-control.js'
import { DEFAULT_BASE_PATH, type RouteName, normalizeBasePath, routePath } from '../contract/routes.js'
import { StageUpdate, stageUpdateSchemaFor } from '../contract/stage-update.js'
import { type StageCatalogue, lastStageNumber } from '../contract/stages.js'
import { type FinalStatus, type RunStatus, type StageUpdateStatus, isFinalStatus } from '../contract/status.js'
import { toStorableText } from '../contract/storable-text.js'
import { createWebhookSignatureHeaders, webhookMessageId } from '../signing/webhook-signature.js'
import { CONFLICT_CAUSE_AND_FIX } from '../internal/conflict-cause.js'
import {
  ClientClosedError,
  ConfigurationError,
  PipelineStatusError,
  RunFinishedError,
  type StatusHttpError,
  isStatusHttpError,
} from './errors.js'
import { type Logger, consoleLogger } from './logger.js'
import { resolveClientOptions } from './client-options.js'
import {
  type DeadLetter,
  type DeliveryResult,
  type FlushResult,
  Outbox,
  type OutboxEntry,
  type OutboxOptions,
  type OutboxRoute,
  describeEntry,
} from './outbox.js'
import { type RetryPolicy, isRetriableError, parseRetryAfter } from './retry-policy.js'
import { type OutputAlteration, fitStageUpdate, serialiseOutput, statedBodyLimit, utf8Bytes } from './stage-output.js'
import { failureReason } from './failure-reason.js'
import { type AttemptSigner, Transport } from './transport.js'

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
 *   timeout: 10_000,
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
   * attempt: with retries, one call can take up to `(retry.limit + 1) * timeout` plus the
   * backoff waits.
   * @default 30_000
   */
  timeout?: number | undefined
  /** How failed requests are retried (network errors, timeouts, 408, 429, 5xx). See {@link RetryPolicy}. */
  retry?: RetryPolicy | undefined
  /** Standard Webhooks signatures on every request. Off unless set. See {@link SigningOptions}. */
  signing?: SigningOptions | undefined
  /**
   * Where the client reports failed and queued updates.
   * @default consoleLogger (warnings and errors to the console)
   */
  logger?: Logger | undefined
  /**
   * The stage catalogue: stage numbers 1..N and the names sent as `stageName`. Must match the
   * server's, whose last stage completes the run.
   * @default DEFAULT_STAGES (the original five stages)
   */
  stages?: StageCatalogue | undefined
  /**
   * The `fetch` used for every attempt, e.g. an instrumented one.
   * @default globalThis.fetch, looked up per request (so a test's interceptor applies)
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
  heartbeatInterval?: number | undefined
  /**
   * Called once per run when an answer of the server (a stage update, a heartbeat, a
   * completion, a status read, or a 409 `run_finished` refusal) shows that the run was finished
   * by someone else: cancelled by the web app, failed by the stale-run sweeper, completed by a
   * `/complete` call not made by this client. Not called when this client's own update
   * finished the run. Exceptions it throws are logged and ignored. `runPipeline` listens too and
   * aborts the running stage.
   */
  onRunFinished?: ((event: RunFinishedEvent) => void) | undefined
}

/** What {@link PrismaAPIClientOptions.onRunFinished} gets: the run was finished by someone else. */
export interface RunFinishedEvent {
  /** The run. */
  runId: string
  /** How it ended, as stored. */
  status: FinalStatus
  /** The run's stored `error`: the cancel reason, the sweeper's "no heartbeat for 45 s", ...; `null` when none. */
  reason: string | null
  /** The run as the server answered it. */
  run: PipelineRunRecord
  /** Which answer told the client. */
  learnedFrom: 'stage-update' | 'heartbeat' | 'completion' | 'status' | 'refusal'
}

/**
 * Progress within a running stage, for {@link PrismaAPIClient.reportProgress}: the contract's
 * `StageProgress` without `seq`, which the client assigns.
 */
export interface ProgressReport {
  /** Units done so far (a non-negative number, at most `total`). */
  current?: number | undefined
  /** Units in all (a non-negative number). */
  total?: number | undefined
  /** Percent done, 0 to 100. */
  percent?: number | undefined
  /** A short status line (at most 500 characters). */
  message?: string | undefined
}

/**
 * An update that could not be delivered yet and waits in the outbox; it will be delivered in
 * order with the run's other updates. Only returned when the `outbox` option is set.
 */
export interface QueuedDelivery {
  /** Always `true`: tells this apart from the server's answer (see {@link isQueuedDelivery}). */
  readonly queued: true
  /** The run the update belongs to. */
  readonly runId: string
  /** The idempotency key it will be delivered with. */
  readonly idempotencyKey: string
}

/**
 * Whether a `completeRun` result is a {@link QueuedDelivery} rather than the server's answer.
 *
 * @example
 * ```ts
 * import { isQueuedDelivery, PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient({ outbox: { dir: '.pipeline-outbox' } })
 * const result = await client.completeRun('run_1', { status: 'COMPLETED' })
 * if (isQueuedDelivery(result)) console.log('the completion waits in the outbox')
 * ```
 */
export function isQueuedDelivery(value: unknown): value is QueuedDelivery {
  return typeof value === 'object' && value !== null && (value as { queued?: unknown }).queued === true
}

/** Per run, the updates a client did not deliver; see {@link CloseResult}. */
export interface UndeliveredUpdates {
  /** Still waiting in the outbox (delivered later, by a flush or the next process). */
  queued: number
  /**
   * Refused for good or expired, kept as dead letters (see {@link PrismaAPIClient.deadLetters});
   * not those superseded because the run ended elsewhere.
   */
  deadLettered: number
  /** Neither delivered nor kept: no outbox, refused before sending, or the outbox could not be written. */
  failed: number
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

/** Options of {@link PrismaAPIClient.close}. */
export interface CloseOptions {
  /**
   * Milliseconds to wait for updates in flight and to flush the outbox before giving up.
   * What is left stays in the outbox directory for the next process.
   * @default 10_000
   */
  timeout?: number | undefined
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
   * When it ended, as a `Date` or ISO 8601 string.
   * @default now
   */
  completedAt?: string | Date | null | undefined
  /** How long the run took, in seconds. */
  duration?: number | null | undefined
  /** Why it failed, for `FAILED`. */
  error?: string | null | undefined
  /** App-specific results, handed to the web app's `onRunCompleted` hook. */
  [field: string]: unknown
}

/**
 * An HTTP client of the web app's pipeline-status API; it touches no Prisma and no database.
 * The runner uses it to report stage changes of a pipeline run to the web app's handlers, which
 * store them. The name is the one the original Python runner's class has, so users of that
 * system recognise it.
 *
 * - `initializePipelineStages`, `markStage*` and `sendStageUpdate` never throw by default:
 *   they resolve `true` when the update was delivered (or durably queued in the outbox) and
 *   `false` otherwise, logging why, so a pipeline keeps running when reporting fails. With
 *   `throwOnError: true` they throw {@link StatusHttpError}, {@link StatusNetworkError} or
 *   {@link StatusTimeoutError} instead.
 * - `completeRun`, `getStatus` and `createRun` return the server's data and throw those errors,
 *   since their callers need the answer. `completeRun` resolves a {@link QueuedDelivery} when it
 *   went to the outbox.
 * - Retries (network errors, timeouts, 408, 429, 5xx) reuse one `Idempotency-Key` per update;
 *   other 4xx are never retried. Updates of one run are sent one after another, in call order.
 *   Each retry is logged as a warning with its cause (`ECONNREFUSED`, `HTTP 503
 *   database_unavailable`, a timeout) and its wait; with a `debug` method the logger also gets
 *   one line per attempt (method, URL, status, milliseconds).
 * - A stage's status is never lost because of its output: unstorable characters are replaced
 *   and an output over the server's body limit is cut to fit (see {@link markStageComplete}).
 * - With `outbox`, an update still undelivered after its retries is written to disk and resolves
 *   `true` (logged as a warning): it will be delivered, in order with the run's other updates,
 *   by a background flush, by `flush()` or `close()`, or by the next process on the same dir.
 *   While a run has queued updates, its new ones queue behind them. An update refused with
 *   401 or 403 (a secret that does not match) is queued too and retried slowly, with an error
 *   logged each time, so fixing the secret delivers it. An update no retry can fix (400, 404,
 *   409, 413 after truncation, 415, 422, ...) or older than `outbox.maxAge` becomes a dead
 *   letter: kept on disk, logged, readable with {@link deadLetters}; the run's later updates go on.
 *   One refused because its run ended elsewhere while it waited (409 `run_finished` or
 *   `stage_finished`, or answered `stale`) is superseded instead: `onRunFinished` once, kept with
 *   `kind: 'superseded'`, one warning per run, not counted as undelivered. The run's other
 *   queued updates are still sent (a late `COMPLETED` is stored).
 * - `close()` resolves and logs what stays undelivered, per run.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient({ outbox: { dir: './.pipeline-outbox' } }) // FRONTEND_WEBHOOK_URL, WEBHOOK_SECRET
 * await client.initializePipelineStages('run_1')
 * await client.markStageComplete('run_1', 1, { signals: 12 })
 * await client.markStageProcessing('run_1', 2)
 * ```
 */
export class PrismaAPIClient {
  /** The resolved origin, without a trailing slash. */
  readonly baseUrl: string
  /** The resolved base path of the routes. */
  readonly basePath: string
  /** The stage catalogue in use. */
  readonly stages: StageCatalogue
  readonly #logger: Logger
  readonly #throwOnError: boolean
  readonly #transport: Transport
  readonly #outbox: Outbox | undefined
  /** The tail of each run's chain of updates, so they go out one by one in call order. */
  readonly #lanes = new Map<string, Promise<unknown>>()
  /** Per run, updates that left this client undelivered (for the report of `close`). */
  readonly #undelivered = new Map<string, { deadLettered: number; failed: number }>()
  #closed = false
  /** Set when `close` aborted the requests still in flight at its deadline. */
  #abortedInFlight = false
  readonly #heartbeatInterval: number
  readonly #onRunFinished: ((event: RunFinishedEvent) => void) | undefined
  /** Per run: finished by this client's own update (no event), or the event that was emitted. */
  readonly #finished = new Map<string, RunFinishedEvent | 'self'>()
  /** Per run, who waits to hear that it was finished elsewhere (`runPipeline`). */
  readonly #finishListeners = new Map<string, Set<(event: RunFinishedEvent) => void>>()
  /** The heartbeat of each run whose stage `runPipeline` is running. */
  readonly #heartbeats = new Map<string, HeartbeatLoop>()
  /** Per run and stage, the last progress `seq` assigned. */
  readonly #progressSeq = new Map<string, number>()
  /** Per run and stage, a progress report waiting in the run's lane (not yet sent): newer reports replace its body. */
  readonly #progressWaiting = new Map<string, { update: PendingUpdate; result: Promise<UpdateOutcome> }>()
  /** The server's catalogue from `createRun`'s answer, per run, until `runPipeline` reads it. */
  readonly #catalogues = new Map<string, CatalogueEntry[]>()
  /** Per run, the causes of lost updates already logged as errors (at most LOGGED_CAUSE_RUNS runs). */
  readonly #loggedCauses = new Map<string, Set<string>>()

  constructor(options: PrismaAPIClientOptions = {}) {
    const { url, secret, timeout, heartbeatInterval, stages, retry, signingSecret } = resolveClientOptions(options)
    this.#heartbeatInterval = heartbeatInterval
    this.#onRunFinished = options.onRunFinished
    let signer: AttemptSigner | undefined
    if (signingSecret !== undefined) {
      signer = async ({ method, url: target, body, unique }) => {
        // The path after the base path, with the run id decoded: what the server compares.
        const routesAt = `${this.baseUrl}${this.basePath}/`
        if (!target.startsWith(routesAt)) throw new TypeError(`Cannot sign ${target}: it is not under ${routesAt}`)
        const route = decodeURIComponent(target.slice(routesAt.length))
        const id = webhookMessageId({ method, route, unique })
        return { ...(await createWebhookSignatureHeaders({ secret: signingSecret, body, id })) }
      }
    }

    this.basePath = normalizeBasePath(options.basePath ?? DEFAULT_BASE_PATH)
    this.baseUrl = withoutBasePath(url, this.basePath)
    this.stages = stages
    this.#logger = options.logger ?? consoleLogger
    this.#throwOnError = options.throwOnError ?? false
    this.#transport = new Transport({
      secret,
      timeout,
      retry,
      userAgent: options.userAgent ?? 'pipeline-status-sdk',
      fetch: options.fetch,
      signer,
      logger: this.#logger,
    })
    try {
      this.#outbox = options.outbox
        ? new Outbox({
            ...options.outbox,
            logger: this.#logger,
            deliver: (entry, signal) => this.#redeliver(entry, signal),
            onDeadLetter: (letter) => this.#count(letter.runId, 'deadLettered'),
          })
        : undefined
    } catch (error) {
      if (error instanceof RangeError) throw new ConfigurationError(error.message, { cause: error })
      throw error
    }
    internals.set(this, {
      stageUpdate: (runId, stageNumber, status, output) => this.#stageUpdate(runId, stageNumber, status, output),
      reportProgress: (runId, stageNumber, progress) =>
        this.#reportProgress(runId, stageNumber, progress).catch(
          (error: unknown): UpdateOutcome => ({
            state: error instanceof PayloadValidationError ? 'invalid' : 'failed',
            reason: describe(error),
            alterations: [],
          }),
        ),
      startHeartbeat: (runId, stageNumber) => this.#startHeartbeat(runId, stageNumber),
      onRunFinished: (runId, listener) => {
        const listeners = this.#finishListeners.get(runId) ?? new Set()
        listeners.add(listener)
        this.#finishListeners.set(runId, listeners)
        return () => {
          listeners.delete(listener)
          if (listeners.size === 0 && this.#finishListeners.get(runId) === listeners) this.#finishListeners.delete(runId)
        }
      },
      runFinished: (runId) => this.runFinished(runId),
      serverCatalogue: async (runId) => {
        const known = this.#catalogues.get(runId)
        this.#catalogues.delete(runId)
        return known ?? (await this.getStatus(runId)).catalogue
      },
    })
  }

  /**
   * Starts a run's reporting: stage 1 PROCESSING (the server then marks the run PROCESSING).
   * Resolves `true` when delivered or queued in the outbox, `false` when not (logged).
   */
  initializePipelineStages(runId: string): Promise<boolean> {
    return this.markStageProcessing(runId, 1)
  }

  /** Marks stage `stageNumber` PROCESSING. Resolves `true`/`false`; see the class notes. */
  markStageProcessing(runId: string, stageNumber: number): Promise<boolean> {
    return reported(this.#stageUpdate(runId, stageNumber, 'PROCESSING', undefined))
  }

  /**
   * Marks stage `stageNumber` COMPLETED with its output: a string is sent as it is (JSON or
   * markdown), anything else as `JSON.stringify(output, outputJsonReplacer)` (a `BigInt`
   * becomes its decimal string); `undefined` sends no output (the server keeps what
   * PROCESSING stored). `completedAt` is now.
   *
   * The status is never lost because of the output: an output that cannot become JSON (a
   * circular object, a throwing `toJSON`) is sent as the placeholder
   * `[output not serialisable as JSON: <reason>]` (`UNSERIALISABLE_OUTPUT_PREFIX`); NUL characters and lone UTF-16 surrogates
   * (which PostgreSQL cannot store) are replaced with U+FFFD before sending, and an output the
   * server refuses as too large (413) is cut to the limit its problem states and ended with
   * {@link TRUNCATION_MARKER}, then sent as a new update (new `Idempotency-Key`). Both are
   * logged as warnings; `runPipeline` lists them in its summary ({@link OutputAlteration}).
   */
  markStageComplete(runId: string, stageNumber: number, output?: unknown): Promise<boolean> {
    return reported(this.#stageUpdate(runId, stageNumber, 'COMPLETED', output))
  }

  /** Marks stage `stageNumber` FAILED; `errorMessage` is sent as its output and becomes the run's error. */
  markStageFailed(runId: string, stageNumber: number, errorMessage: string): Promise<boolean> {
    return reported(this.#stageUpdate(runId, stageNumber, 'FAILED', errorMessage))
  }

  /** Marks stage `stageNumber` CANCELLED (the server then marks the run CANCELLED). */
  markStageCancelled(runId: string, stageNumber: number): Promise<boolean> {
    return reported(this.#stageUpdate(runId, stageNumber, 'CANCELLED', undefined))
  }

  /**
   * Sends a stage-update body as given (validated against the contract and the catalogue
   * first). The `mark*` methods build it for you. Resolves `true`/`false`; see the class notes.
   * Its `output` is made storable and cut to fit like {@link markStageComplete}'s.
   */
  sendStageUpdate(runId: string, update: StageUpdate): Promise<boolean> {
    const parsed = stageUpdateSchemaFor(this.stages).safeParse(update)
    if (!parsed.success) return reported(this.#refuse(runId, new PayloadValidationError('stage update', parsed.error.issues)))
    return reported(this.#submitStageUpdate(runId, parsed.data))
  }

  /**
   * Ends a run explicitly (`POST /complete`) with its results: `status`, `duration` (seconds),
   * `error` and any app-specific fields, handed to the app's `onRunCompleted` hook.
   * `completedAt` defaults to now. Resolves the server's answer, or a {@link QueuedDelivery}
   * when the outbox took it (server unreachable, or the run's earlier updates still queued).
   * Throws {@link PayloadValidationError} for an invalid body, and the transport errors when
   * it could not be delivered and there is no outbox (or the server refused it with a 4xx).
   *
   * @example
   * ```ts
   * import { isQueuedDelivery, PrismaAPIClient } from 'pipeline-status-sdk/client'
   * const client = new PrismaAPIClient()
   * const result = await client.completeRun('run_1', { status: 'COMPLETED', duration: 409.5, fullReportMarkdown: '# Report' })
   * if (!isQueuedDelivery(result)) console.log(result.outcome) // 'applied' the first time, then 'duplicate'
   * ```
   */
  async completeRun(runId: string, body: CompleteRunInput): Promise<CompleteRunResponse | QueuedDelivery> {
    const completedAt = body.completedAt instanceof Date ? body.completedAt.toISOString() : (body.completedAt ?? new Date().toISOString())
    const parsed = CompleteRun.safeParse({ ...body, completedAt })
    if (!parsed.success) throw new PayloadValidationError('completion', parsed.error.issues)
    assertRunId(runId)
    if (this.#closed) throw new ClientClosedError()
    const data = parsed.data
    // The run's error is stored like an output: make it storable rather than lose the completion.
    if (typeof data.error === 'string') data.error = toStorableText(data.error).text
    const idempotencyKey = crypto.randomUUID()
    const outcome = await this.#deliver({ runId, route: 'complete', json: JSON.stringify(data), id: idempotencyKey, what: 'completion', finishing: true })
    switch (outcome.state) {
      case 'delivered':
        return parseResponse(CompleteRunResponse, outcome.text, 'completion')
      case 'run-finished':
        throw outcome.error
      case 'queued':
        return { queued: true, runId, idempotencyKey: outcome.id }
      default:
        throw outcome.error
    }
  }

  /**
   * Reads a run and its stages (`GET /status`), retried like updates. Throws the typed
   * errors; a 404 is a {@link StatusHttpError} with `problem.code === 'run_not_found'`.
   */
  async getStatus(runId: string): Promise<RunStatusResponse> {
    assertRunId(runId)
    if (this.#closed) throw new ClientClosedError()
    const response = await this.#transport.send({ method: 'GET', url: this.#url('status', runId) }, { retry: true })
    const status = parseResponse(RunStatusResponse, response.text, 'status')
    this.#observe(runId, status.run, 'status', false)
    return status
  }

  /**
   * Creates a run (`POST /runs`). Idempotent: an existing id answers `created: false` with the
   * stored run. Without `id` the client picks a random UUID before the first attempt, so a retry
   * after a lost response finds the same run instead of creating a second one. Throws the typed
   * errors.
   */
  async createRun(id: string = crypto.randomUUID()): Promise<CreateRunResponse> {
    if (this.#closed) throw new ClientClosedError()
    assertRunId(id)
    const body = JSON.stringify({ id })
    const response = await this.#transport.send(
      { method: 'POST', url: this.#url('createRun'), body, idempotencyKey: crypto.randomUUID() },
      { retry: true },
    )
    const created = parseResponse(CreateRunResponse, response.text, 'run creation')
    if (created.catalogue !== undefined) this.#catalogues.set(created.run.id, created.catalogue)
    return created
  }

  /**
   * Reports progress within a running stage (`PROCESSING`): sent as a `PROCESSING` stage update
   * with `progress`, in order with the run's other updates, and kept in the outbox like them
   * when the server cannot be reached. The client assigns `progress.seq`: per run and stage,
   * increasing, never below the current time in milliseconds, so a report delayed by retries
   * or redelivered from the outbox (also by a later process) never overwrites a newer one on the
   * server, which keeps the highest `seq`.
   *
   * Reports are coalesced, never their status changes: while one report of a stage waits
   * behind the update in flight, a newer report replaces it (both calls resolve with its
   * result), and the outbox keeps only the newest pending report per stage. Resolves like the
   * `mark*` methods (`true` when delivered or queued); a report the contract refuses (`percent`
   * over 100, `current` over `total`, a message over 500 characters) is not sent: `false`, or
   * `PayloadValidationError` with `throwOnError`.
   *
   * @example
   * ```ts
   * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
   * const client = new PrismaAPIClient()
   * const batches = [['Guten Tag'], ['Danke'], ['Tschüss']]
   * const translate = async (lines: string[]) => lines.map((line) => line.toUpperCase()) // your own work
   * await client.markStageProcessing('run_1', 2)
   * for (const [i, batch] of batches.entries()) {
   *   await translate(batch)
   *   void client.reportProgress('run_1', 2, { current: i + 1, total: batches.length, message: `batch ${i + 1}` })
   * }
   * ```
   */
  reportProgress(runId: string, stageNumber: number, progress: ProgressReport): Promise<boolean> {
    return reported(this.#reportProgress(runId, stageNumber, progress))
  }

  /**
   * Sends one heartbeat now (`POST {base}/{runId}/heartbeat` with `stageNumber` and the
   * client's `intervalMs`): one attempt, no retry, never queued. `runPipeline` sends them by
   * itself while a stage runs; call this from a runner of your own. Resolves the server's
   * answer (whose `run` shows whether the run was finished elsewhere; `onRunFinished` is called
   * then), or `undefined` when it got none (logged at debug level).
   */
  async heartbeat(runId: string, stageNumber?: number): Promise<HeartbeatResponse | undefined> {
    assertRunId(runId)
    if (this.#closed) throw new ClientClosedError()
    return this.#sendHeartbeat(runId, stageNumber, undefined)
  }

  /**
   * How the run was finished by someone else, when this client learned it (see
   * {@link PrismaAPIClientOptions.onRunFinished}); `undefined` while it has not, or when this
   * client's own update finished the run.
   */
  runFinished(runId: string): RunFinishedEvent | undefined {
    const finished = this.#finished.get(runId)
    return finished === 'self' ? undefined : finished
  }

  /**
   * Delivers what waits in the outbox now, in order per run, without waiting out the
   * background backoff. Resolves what it did and what is left; all zeros without an outbox.
   */
  flush(): Promise<FlushResult> {
    return this.#outbox?.flush() ?? Promise.resolve({ delivered: 0, rejected: 0, pending: 0 })
  }

  /** Updates waiting in the outbox, for one run or for all; `0` without an outbox. */
  pendingCount(runId?: string): number {
    return this.#outbox?.pendingCount(runId) ?? 0
  }

  /**
   * The updates that left the outbox undelivered because no retry could fix them (refused with
   * 400, 404, 409, 413 after truncation, 415, 422, ..., or older than `outbox.maxAge`), oldest
   * first, also those of earlier processes on the same directory: for one run or all. They are
   * kept in `dead-letters.jsonl` in the outbox directory. Resolves `[]` without an outbox.
   * Updates refused because their run ended elsewhere while they waited (cancelled, swept,
   * completed elsewhere) are kept there too with `kind: 'superseded'`; they are not undelivered
   * and `close()` does not count them.
   *
   * @example
   * ```ts
   * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
   * const client = new PrismaAPIClient({ outbox: { dir: '.pipeline-outbox' } })
   * for (const letter of await client.deadLetters('run_1')) console.warn(letter.status, letter.code, letter.reason)
   * ```
   */
  deadLetters(runId?: string): Promise<DeadLetter[]> {
    return this.#outbox?.deadLetters(runId) ?? Promise.resolve([])
  }

  /**
   * Waits (up to `timeout`) for updates in flight, flushes the outbox, then stops its timer
   * and releases its directory. Updates still in flight at the deadline are moved to the
   * outbox, not dropped. Later calls reject with {@link ClientClosedError} (or resolve `false`).
   *
   * Resolves, and logs as a warning, what stays undelivered, per run (see {@link CloseResult}).
   *
   * @example
   * ```ts
   * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
   * const client = new PrismaAPIClient({ outbox: { dir: '.pipeline-outbox' } })
   * await client.markStageComplete('run_1', 1, { pages: 12 })
   * const { pending, undelivered } = await client.close({ timeout: 5_000 })
   * if (pending > 0) console.warn(`${pending} update(s) wait in the outbox for the next run`, undelivered)
   * ```
   */
  async close(options: CloseOptions = {}): Promise<CloseResult> {
    if (this.#closed) return { delivered: 0, rejected: 0, pending: this.pendingCount(), undelivered: this.#undeliveredReport() }
    this.#closed = true
    for (const loop of [...this.#heartbeats.values()]) loop.stop()
    const deadline = Date.now() + (options.timeout ?? 10_000)
    await settleWithin([...this.#lanes.values()], deadline - Date.now())
    // Abort what is still in flight; each lane then moves its update to the outbox.
    this.#abortedInFlight = true
    this.#transport.abortInFlight(new Error('The client was closed before this request finished'))
    await Promise.allSettled([...this.#lanes.values()])
    const pendingByRun = this.#outbox?.pendingByRun() ?? {}
    const flushed = this.#outbox ? await this.#outbox.close(Math.max(0, deadline - Date.now())) : { delivered: 0, rejected: 0, pending: 0 }
    // What is still queued after the last flush (it may have delivered some of them).
    for (const runId of Object.keys(pendingByRun)) pendingByRun[runId] = this.#outbox?.pendingCount(runId) ?? 0
    const undelivered = this.#undeliveredReport(pendingByRun)
    const runs = Object.entries(undelivered)
    if (runs.length > 0) {
      const total = runs.reduce((sum, [, u]) => sum + u.queued + u.deadLettered + u.failed, 0)
      const where = this.#outbox ? ` (outbox ${this.#outbox.dir})` : ''
      this.#logger.warn(
        `Closed with ${total} update(s) undelivered${where}: ${runs.map(([runId, u]) => `run ${runId}: ${describeUndelivered(u)}`).join('; ')}`,
        { undelivered },
      )
    }
    return { ...flushed, undelivered }
  }

  #undeliveredReport(pendingByRun: Record<string, number> = this.#outbox?.pendingByRun() ?? {}): Record<string, UndeliveredUpdates> {
    const report: Record<string, UndeliveredUpdates> = {}
    for (const [runId, queued] of Object.entries(pendingByRun)) {
      if (queued > 0) report[runId] = { queued, deadLettered: 0, failed: 0 }
    }
    for (const [runId, counts] of this.#undelivered) {
      report[runId] = { queued: report[runId]?.queued ?? 0, ...counts }
    }
    return report
  }

  #count(runId: string, what: 'deadLettered' | 'failed'): void {
    const counts = this.#undelivered.get(runId) ?? { deadLettered: 0, failed: 0 }
    counts[what]++
    this.#undelivered.set(runId, counts)
  }

  #stageUpdate(runId: string, stageNumber: number, status: StageUpdateStatus, output: unknown): Promise<UpdateOutcome> {
    const stage = this.stages[stageNumber - 1]
    if (!stage || stage.number !== stageNumber) {
      return this.#refuse(
        runId,
        new RangeError(`Stage ${stageNumber} is not in the catalogue (1..${this.stages.length})`),
      )
    }
    // An output JSON cannot hold must not cost the stage its status: send a placeholder instead.
    const { text, unserialisable } = serialiseOutput(output)
    const alterations: OutputAlteration[] = []
    if (unserialisable !== undefined) {
      alterations.push({ runId, stageNumber, kind: 'unserialisable', reason: unserialisable })
      this.#logger.warn(`Run ${runId}: stage ${stageNumber} ${status}: the output cannot be serialised as JSON (${unserialisable}); a placeholder was sent instead`, {
        runId,
        stageNumber,
        reason: unserialisable,
      })
    }
    // Built field by field in the contract's order; completedAt is fixed now, so a redelivery
    // from the outbox tells the server when the stage really finished.
    const body: StageUpdate = { stageNumber, stageName: stage.name, status }
    if (text !== undefined) body.output = text
    if (status !== 'PROCESSING') body.completedAt = new Date().toISOString()
    return this.#submitStageUpdate(runId, body, alterations)
  }

  /** Makes the output storable, then delivers the update; see `markStageComplete`. */
  async #submitStageUpdate(runId: string, body: StageUpdate, alterations: OutputAlteration[] = []): Promise<UpdateOutcome> {
    try {
      assertRunId(runId)
    } catch (error) {
      return this.#refuse(runId, error as Error)
    }
    if (this.#closed) return this.#refuse(runId, new ClientClosedError())
    const what = `stage ${body.stageNumber} ${body.status}`
    if (typeof body.output === 'string') {
      const storable = toStorableText(body.output)
      if (storable.replaced > 0) {
        body = { ...body, output: storable.text }
        alterations.push({ runId, stageNumber: body.stageNumber, kind: 'replaced', replacedCharacters: storable.replaced })
        this.#logger.warn(
          `Run ${runId}: ${what}: replaced ${storable.replaced} character(s) PostgreSQL cannot store (NUL, lone UTF-16 surrogates) in the output with U+FFFD`,
          { runId, stageNumber: body.stageNumber, replacedCharacters: storable.replaced },
        )
      }
    }
    const finishing = body.status !== 'PROCESSING' && (body.status !== 'COMPLETED' || body.stageNumber === lastStageNumber(this.stages))
    const outcome = await this.#deliver({ runId, route: 'stageUpdate', json: JSON.stringify(body), id: crypto.randomUUID(), what, finishing })
    return this.#settle(runId, outcome, alterations)
  }

  /** What a stage update came to, for the `mark*` methods: throws with `throwOnError`. */
  #settle(runId: string, outcome: Delivery, alterations: OutputAlteration[]): UpdateOutcome {
    const all = [...alterations, ...outcome.alterations]
    if (outcome.state === 'failed' || outcome.state === 'dead-lettered' || outcome.state === 'run-finished') {
      if (this.#throwOnError) throw outcome.error
      return { state: outcome.state, reason: describe(outcome.error), alterations: all }
    }
    if (outcome.state === 'delivered' && outcome.conflict) return { state: outcome.state, alterations: all, conflict: outcome.conflict }
    return { state: outcome.state, alterations: all }
  }

  /** Builds, coalesces and delivers a progress report; see `reportProgress`. */
  #reportProgress(runId: string, stageNumber: number, report: ProgressReport): Promise<UpdateOutcome> {
    try {
      assertRunId(runId)
    } catch (error) {
      return this.#refuse(runId, error as Error)
    }
    if (this.#closed) return this.#refuse(runId, new ClientClosedError())
    const stage = this.stages[stageNumber - 1]
    if (!stage || stage.number !== stageNumber) {
      return this.#refuse(runId, new RangeError(`Stage ${stageNumber} is not in the catalogue (1..${this.stages.length})`))
    }
    const key = `${runId}\u0000${stageNumber}`
    // Never below now: a later process redelivering or reporting the same stage still wins.
    const seq = Math.max((this.#progressSeq.get(key) ?? -1) + 1, Date.now())
    const parsed = StageProgress.safeParse({ ...withoutUndefined(report), seq })
    // The caller's mistake, not an undelivered update: not counted by `close()`.
    if (!parsed.success) return this.#refuse(runId, new PayloadValidationError('progress', parsed.error.issues), 'invalid')
    this.#progressSeq.set(key, seq)
    const body: StageUpdate = { stageNumber, stageName: stage.name, status: 'PROCESSING', progress: parsed.data }
    const json = JSON.stringify(body)
    const waiting = this.#progressWaiting.get(key)
    if (waiting) {
      // Not sent yet: the newer report takes its place, with the same idempotency key.
      waiting.update.json = json
      return waiting.result
    }
    const update: PendingUpdate = {
      runId,
      route: 'stageUpdate',
      json,
      id: crypto.randomUUID(),
      what: `stage ${stageNumber} progress`,
      finishing: false,
      progressStage: stageNumber,
      onStart: () => {
        if (this.#progressWaiting.get(key)?.update === update) this.#progressWaiting.delete(key)
      },
    }
    // In the map before #deliver: with an idle lane it starts at once and takes it out again.
    const waitingEntry: { update: PendingUpdate; result: Promise<UpdateOutcome> } = { update, result: Promise.resolve({ state: 'failed', alterations: [] }) }
    this.#progressWaiting.set(key, waitingEntry)
    waitingEntry.result = this.#deliver(update).then((outcome) => this.#settle(runId, outcome, []))
    return waitingEntry.result
  }

  /**
   * Reads the run out of an answer; emits `onRunFinished` the first time an answer shows it
   * finished by someone else. `self`: the answer is to this client's own finishing update.
   */
  #observe(runId: string, run: PipelineRunRecord, learnedFrom: RunFinishedEvent['learnedFrom'], self: boolean): RunFinishedEvent | undefined {
    const status = run.status
    if (!isFinalStatus(status)) return undefined
    const known = this.#finished.get(runId)
    if (known !== undefined) return known === 'self' ? undefined : known
    if (self) {
      this.#finished.set(runId, 'self')
      return undefined
    }
    const event: RunFinishedEvent = { runId, status, reason: run.error, run, learnedFrom }
    this.#finished.set(runId, event)
    this.#heartbeats.get(runId)?.stop()
    // A status read is how a reader learns anything: no warning for it.
    const log = learnedFrom === 'status' ? this.#logger.info?.bind(this.#logger) : this.#logger.warn.bind(this.#logger)
    log?.(`Run ${runId} was finished by someone else: ${status}${run.error ? ` (${run.error})` : ''}`, { runId, status, reason: run.error })
    const listeners = [this.#onRunFinished, ...(this.#finishListeners.get(runId) ?? [])]
    for (const listener of listeners) {
      try {
        listener?.(event)
      } catch (error) {
        this.#logger.error(`Run ${runId}: an onRunFinished listener threw: ${describe(error)}`, { runId })
      }
    }
    return event
  }

  /**
   * Learns from a delivered update's answer: `finished` when it is `stale` to a run finished
   * elsewhere (refused); `conflict` when the stage was already final with another output (logged
   * as a warning here, for a first send and a redelivery alike).
   */
  #learnFromAnswer(update: PendingUpdate, text: string): { finished?: RunFinishedEvent; conflict?: StageConflictAnswer } {
    const answer = safeJson(text)
    const conflict = update.route === 'stageUpdate' ? conflictOf(answer, update.json) : undefined
    if (conflict) {
      this.#logger.warn(
        `Run ${update.runId}: ${update.what}: the server already had stage ${conflict.stageNumber} ${conflict.status} ` +
          `with another output and kept it (outcome "conflict"); this output was not stored. ${CONFLICT_CAUSE_AND_FIX}`,
        { runId: update.runId, stageNumber: conflict.stageNumber, status: conflict.status, outcome: 'conflict', idempotencyKey: update.id },
      )
    }
    const learned = conflict ? { conflict } : {}
    // Only a finished run teaches anything, so the answers to a running run's updates (almost
    // every answer) are not validated: that would cost more than the rest of the client's work.
    const status = runStatusOf(answer)
    if (status === undefined || !isFinalStatus(status as RunStatus)) return learned
    if (update.route === 'complete') {
      const parsed = CompleteRunResponse.safeParse(answer)
      if (parsed.success) this.#observe(update.runId, parsed.data.run, 'completion', true)
      return learned
    }
    const parsed = StageUpdateResponse.safeParse(answer)
    if (!parsed.success) return learned
    const { outcome, run } = parsed.data
    const event = this.#observe(update.runId, run, 'stage-update', update.finishing && outcome !== 'stale')
    return outcome === 'stale' && event ? { ...learned, finished: event } : learned
  }

  /**
   * A 409 `run_finished` or `stage_finished`: the run as the problem carries it, or else as
   * `GET /status` reads it.
   * Resolves the event when the run was finished by someone else.
   */
  async #learnFromRefusal(runId: string, error: unknown, self: boolean): Promise<RunFinishedEvent | undefined> {
    // `stage_finished` too: a stage the runner still runs was finished by a cancel or the sweeper.
    if (!isRunEndedRefusal(error)) return undefined
    const known = this.#finished.get(runId)
    if (known !== undefined) return known === 'self' ? undefined : known
    const carried = PipelineRunRecord.safeParse((error.problem as { run?: unknown }).run)
    if (carried.success) return this.#observe(runId, carried.data, 'refusal', self)
    try {
      const response = await this.#transport.send({ method: 'GET', url: this.#url('status', runId) }, { retry: false })
      const status = RunStatusResponse.safeParse(safeJson(response.text))
      return status.success ? this.#observe(runId, status.data.run, 'refusal', self) : undefined
    } catch {
      return undefined
    }
  }

  /** Starts the heartbeat of a run's running stage: one now, then one per interval. */
  #startHeartbeat(runId: string, stageNumber: number): () => void {
    this.#heartbeats.get(runId)?.stop()
    if (this.#closed || this.runFinished(runId)) return noop
    let inFlight: AbortController | undefined
    const beat = () => {
      if (inFlight) return // the previous one has not answered: one at a time
      const controller = new AbortController()
      inFlight = controller
      // No heartbeat may outlive its interval: the next one replaces it.
      const deadline = setTimeout(() => controller.abort(new Error('heartbeat interval elapsed')), this.#heartbeatInterval)
      void this.#sendHeartbeat(runId, stageNumber, controller.signal).finally(() => {
        clearTimeout(deadline)
        if (inFlight === controller) inFlight = undefined
      })
    }
    const timer = setInterval(beat, this.#heartbeatInterval)
    // A heartbeat must never keep a finished runner's process alive.
    timer.unref()
    const loop: HeartbeatLoop = {
      stop: () => {
        clearInterval(timer)
        inFlight?.abort(new Error('heartbeat stopped'))
        inFlight = undefined
        if (this.#heartbeats.get(runId) === loop) this.#heartbeats.delete(runId)
      },
    }
    this.#heartbeats.set(runId, loop)
    beat()
    return loop.stop
  }

  /** One heartbeat, one attempt; `undefined` when it got no usable answer (logged at debug). */
  async #sendHeartbeat(runId: string, stageNumber: number | undefined, signal: AbortSignal | undefined): Promise<HeartbeatResponse | undefined> {
    const body = JSON.stringify({ ...(stageNumber === undefined ? {} : { stageNumber }), intervalMs: this.#heartbeatInterval })
    try {
      const response = await this.#transport.send(
        { method: 'POST', url: this.#url('heartbeat', runId), body, idempotencyKey: crypto.randomUUID(), what: `Run ${runId}: heartbeat` },
        { retry: false, signal },
      )
      const parsed = HeartbeatResponse.safeParse(safeJson(response.text))
      if (!parsed.success) return undefined
      this.#observe(runId, parsed.data.run, 'heartbeat', false)
      return parsed.data
    } catch (error) {
      if (await this.#learnFromRefusal(runId, error, false)) return undefined
      // A missed heartbeat is not worth replaying: the next one follows an interval later.
      this.#logger.debug?.(`Run ${runId}: heartbeat not delivered: ${describe(error)}`, { runId })
      return undefined
    }
  }

  /**
   * The one lane body of every update: behind the run's queued updates, or sent with retries;
   * a 413 on a stage update is answered by cutting its output to fit; what may succeed later
   * (network errors, timeouts, 408, 429, 5xx, and 401/403 until the secret is fixed) goes to
   * the outbox; what no retry can fix is dead-lettered (with an outbox) or logged.
   */
  #deliver(update: PendingUpdate): Promise<Delivery> {
    const { runId } = update
    return this.#inLane(runId, async (): Promise<Delivery> => {
      update.onStart?.()
      const outbox = this.#outbox
      const alterations: OutputAlteration[] = []
      let current = update
      // A number, made a string only when the update is kept (the hot path allocates less).
      const started = Date.now()
      try {
        if (outbox && outbox.pendingCount(runId) > 0) {
          await this.#enqueue(current, undefined, 'queued behind earlier updates')
          return { state: 'queued', id: current.id, alterations }
        }
        for (;;) {
          try {
            const response = await this.#transport.send(
              { method: 'POST', url: this.#url(current.route, runId), body: current.json, idempotencyKey: current.id, what: `Run ${runId}: ${current.what}` },
              { retry: true },
            )
            outbox?.nudge()
            const { finished, conflict } = this.#learnFromAnswer(current, response.text)
            if (finished) {
              const error = new RunFinishedError(runId, finished.status, finished.reason)
              this.#logger.warn(`Run ${runId}: ${current.what} was not stored: ${error.message}`, { runId, idempotencyKey: current.id })
              return { state: 'run-finished', id: current.id, error, alterations }
            }
            return { state: 'delivered', id: current.id, text: response.text, alterations, ...(conflict ? { conflict } : {}) }
          } catch (error) {
            // A refusal is never this update finishing the run: the run ended elsewhere. The one
            // classification of every route: superseded, not undelivered, on the first send as on
            // a redelivery from the outbox (a /complete included).
            const finished = await this.#learnFromRefusal(runId, error, false)
            if (finished) {
              const refused = new RunFinishedError(runId, finished.status, finished.reason, { cause: error })
              this.#logger.warn(`Run ${runId}: ${current.what} was refused: ${refused.message}`, { runId, idempotencyKey: current.id })
              return { state: 'run-finished', id: current.id, error: refused, alterations }
            }
            const fitted = current.route === 'stageUpdate' && isPayloadTooLarge(error) ? this.#fit(runId, current.json, error) : undefined
            if (fitted) {
              alterations.push(fitted.alteration)
              current = { ...current, json: fitted.json, id: crypto.randomUUID() }
              continue
            }
            if (outbox && (this.#queueable(error) || isAuthRefusal(error))) {
              await this.#enqueue(current, new Date(started).toISOString(), describe(error), isAuthRefusal(error))
              return { state: 'queued', id: current.id, alterations }
            }
            if (outbox && isStatusHttpError(error)) {
              const firstAttemptAt = new Date(started).toISOString()
              await outbox.deadLetter(
                { v: 1, id: current.id, runId, route: current.route, body: current.json, queuedAt: firstAttemptAt, firstAttemptAt },
                { status: error.status, code: error.problem?.code, reason: describe(error) },
              )
              return { state: 'dead-lettered', id: current.id, error, alterations }
            }
            throw error
          }
        }
      } catch (error) {
        this.#count(runId, 'failed')
        this.#logUndelivered(runId, current, error)
        return { state: 'failed', id: current.id, error, alterations }
      }
    })
  }

  /**
   * An update lost for good (no outbox): one error line per run and cause, so a wrong secret
   * reads as one line, not one per update; the same cause again in that run is a debug line.
   * `close()` counts every one of them.
   */
  #logUndelivered(runId: string, update: PendingUpdate, error: unknown): void {
    const reason = describe(error)
    const details = {
      runId,
      idempotencyKey: update.id,
      ...(isStatusHttpError(error) ? { status: error.status, code: error.problem?.code } : {}),
    }
    const logged = this.#loggedCauses.get(runId) ?? new Set<string>()
    if (logged.has(reason)) {
      this.#logger.debug?.(`Run ${runId}: ${update.what} was not delivered either: ${reason}`, details)
      return
    }
    logged.add(reason)
    this.#loggedCauses.delete(runId)
    this.#loggedCauses.set(runId, logged)
    // Bounded: the runs most recently failing keep their record.
    for (const oldest of this.#loggedCauses.keys()) {
      if (this.#loggedCauses.size <= LOGGED_CAUSE_RUNS) break
      this.#loggedCauses.delete(oldest)
    }
    const fix = isAuthRefusal(error) ? "; check that the runner's secret (WEBHOOK_SECRET) matches the web app's" : ''
    this.#logger.error(
      `Run ${runId}: ${update.what} was not delivered: ${reason}${fix}. Later updates of this run failing the same way are logged at debug level`,
      details,
    )
  }

  /** The update's body with its output cut to the limit a 413 states; logged. `undefined` when it cannot fit. */
  #fit(runId: string, json: string, error: StatusHttpError): { json: string; alteration: OutputAlteration } | undefined {
    const body = JSON.parse(json) as StageUpdate
    const { limit, stated } = statedBodyLimit(error, utf8Bytes(json))
    const fitted = fitStageUpdate(body, limit)
    if (!fitted) return undefined
    const alteration: OutputAlteration = {
      runId,
      stageNumber: body.stageNumber,
      kind: 'truncated',
      originalBytes: fitted.originalBytes,
      sentBytes: fitted.sentBytes,
      ...(stated ? { maxBodyBytes: limit } : {}),
    }
    this.#logger.warn(
      `Run ${runId}: stage ${body.stageNumber} ${body.status}: the server refused the body as too large (413${stated ? `, limit ${limit} bytes` : ''}); ` +
        `sending it again with the output cut from ${fitted.originalBytes} to ${fitted.sentBytes} bytes, ending with the truncation marker`,
      { ...alteration },
    )
    return { json: fitted.json, alteration }
  }

  /** Queues an update durably; logs where it went. Throws when the disk write fails. */
  async #enqueue(update: PendingUpdate, firstAttemptAt: string | undefined, why: string, unauthorized = false): Promise<void> {
    const outbox = this.#outbox as Outbox
    const entry: OutboxEntry = {
      v: 1,
      id: update.id,
      runId: update.runId,
      route: update.route,
      body: update.json,
      queuedAt: new Date().toISOString(),
      ...(firstAttemptAt === undefined ? {} : { firstAttemptAt }),
    }
    try {
      await outbox.append(entry, { slow: unauthorized })
    } catch (error) {
      throw new PipelineStatusError(`Run ${update.runId}: ${update.what} could not be written to the outbox ${outbox.dir}`, { cause: error })
    }
    const details = { runId: update.runId, idempotencyKey: update.id, pending: outbox.pendingCount(update.runId) }
    if (unauthorized) {
      this.#logger.error(
        `Run ${update.runId}: ${update.what} refused (${why}); check that the runner's secret matches the web app's. ` +
          'Queued in the outbox and retried slowly, so it is delivered once the secret is fixed',
        details,
      )
    } else if (firstAttemptAt === undefined) {
      this.#logger.info?.(`Run ${update.runId}: ${update.what} queued in the outbox (${why}); it will be delivered in order`, details)
    } else {
      this.#logger.warn(`Run ${update.runId}: ${update.what} queued in the outbox (${why}); it will be delivered in order`, details)
    }
  }

  /** Whether a failed send belongs in the outbox: it may succeed later, or the client is closing. */
  #queueable(error: unknown): boolean {
    if (this.#abortedInFlight) return true
    return error instanceof PipelineStatusError && isRetriableError(error)
  }

  /** The outbox's delivery of one queued update: one attempt; the outbox does the backoff. */
  async #redeliver(entry: OutboxEntry, signal: AbortSignal): Promise<DeliveryResult> {
    try {
      const response = await this.#transport.send(
        {
          method: 'POST',
          url: this.#url(entry.route, entry.runId),
          body: entry.body,
          idempotencyKey: entry.id,
          what: `Run ${entry.runId}: ${describeEntry(entry)} (from the outbox)`,
        },
        { retry: false, signal },
      )
      const { finished: stale } = this.#learnFromAnswer(
        { runId: entry.runId, route: entry.route, json: entry.body, id: entry.id, what: `${describeEntry(entry)} (from the outbox)`, finishing: isFinishing(entry, this.stages) },
        response.text,
      )
      // Answered but not stored: the run had ended elsewhere.
      if (stale) return { result: 'superseded', reason: `not stored: the run ended elsewhere (${stale.status})` }
      return { result: 'delivered' }
    } catch (error) {
      // A refusal never comes from the update itself finishing the run (an idempotent replay
      // answers as the first time): the run ended elsewhere, even for a finishing update.
      const finished = await this.#learnFromRefusal(entry.runId, error, false)
      if (isStatusHttpError(error)) {
        const refusal = { status: error.status, code: error.problem?.code, reason: describe(error) }
        // Only a run ended elsewhere: a runner contradicting its own finished run is a dead letter.
        if (finished) return { result: 'superseded', ...refusal, reason: `${refusal.reason}; the run ended elsewhere (${finished.status})` }
        if (isPayloadTooLarge(error)) {
          const fitted = entry.route === 'stageUpdate' ? this.#fit(entry.runId, entry.body, error) : undefined
          if (fitted) return { result: 'replace', entry: { ...entry, id: crypto.randomUUID(), body: fitted.json }, reason: refusal.reason }
          return { result: 'rejected', ...refusal, reason: `${refusal.reason}; it cannot be cut to fit` }
        }
        if (isAuthRefusal(error)) return { result: 'retry', reason: refusal.reason, slow: true }
        if (!isRetriableError(error)) return { result: 'rejected', ...refusal }
      }
      return {
        result: 'retry',
        reason: describe(error),
        retryAfterMs: isStatusHttpError(error) ? parseRetryAfter(error.response.headers.get('Retry-After')) : undefined,
      }
    }
  }

  /** Refuses an update before sending it; `invalid`: the caller's input, not counted as undelivered. */
  #refuse(runId: string, error: Error, state: 'failed' | 'invalid' = 'failed'): Promise<UpdateOutcome> {
    if (state === 'failed' && typeof runId === 'string' && runId !== '') this.#count(runId, 'failed')
    this.#logger.error(`Run ${String(runId)}: update not sent: ${error.message}`, { runId })
    return this.#throwOnError ? Promise.reject(error) : Promise.resolve({ state, reason: error.message, alterations: [] })
  }
  #inLane<T>(runId: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#lanes.get(runId)
    const result = previous ? previous.then(task, task) : task()
    const tail = result.then(noop, noop)
    this.#lanes.set(runId, tail)
    void tail.then(() => {
      if (this.#lanes.get(runId) === tail) this.#lanes.delete(runId)
    })
    return result
  }

  #url(route: RouteName, runId?: string): string {
    return this.baseUrl + routePath(route, runId, this.basePath)
  }
}

function noop(): void {}

/** How many runs' logged causes of lost updates the client remembers. */
const LOGGED_CAUSE_RUNS = 1000

/** The contract's run-id rule, checked before anything is sent: throws `PayloadValidationError`. */
function assertRunId(runId: string): void {
  parseRunId(runId)
}

function describe(error: unknown): string {
  return failureReason(error)
}

function parseResponse<T>(schema: { safeParse(input: unknown): { success: true; data: T } | { success: false } }, text: string, what: string): T {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new PipelineStatusError(`The ${what} response is not JSON`)
  }
  const parsed = schema.safeParse(json)
  if (!parsed.success) throw new PipelineStatusError(`The ${what} response does not match the contract`)
  return parsed.data
}

async function settleWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    Promise.allSettled(promises),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, ms))
    }),
  ])
  clearTimeout(timer)
}

/** How one update went; what `runPipeline` reads beyond `true`/`false`. Internal. */
export interface UpdateOutcome {
  /**
   * `queued`: waits in the outbox; `dead-lettered`: refused for good, kept on disk; `failed`:
   * lost; `run-finished`: not stored because the run was finished by someone else; `invalid`:
   * refused before sending because the caller's input breaks the contract (not undelivered).
   */
  state: 'delivered' | 'queued' | 'dead-lettered' | 'failed' | 'run-finished' | 'invalid'
  /** Why it was not delivered, for `dead-lettered` and `failed`. */
  reason?: string
  /** What was changed in its output to make it deliverable. */
  alterations: OutputAlteration[]
  /**
   * Set when the server answered `conflict`: the stage was already final with another output,
   * which it kept; this update's output was not stored.
   */
  conflict?: StageConflictAnswer
}

/** The stage as a `conflict` answer carries it: already final, with another output. Internal. */
export interface StageConflictAnswer {
  stageNumber: number
  /** The stage's stored final status (the status sent: a conflict repeats a final status). */
  status: FinalStatus
  /** The output this update sent (after serialising and fitting), `null` when it sent none. Not truncated. */
  sentOutput: string | null
  /** The output the server kept, `null` when it has none. Not truncated. */
  storedOutput: string | null
}

/**
 * The stored stage of a `conflict` answer, without validating the rest of it, with the output
 * the update sent (read back from its JSON body: only on a conflict, which is rare).
 */
function conflictOf(answer: unknown, sentJson: string): StageConflictAnswer | undefined {
  if (typeof answer !== 'object' || answer === null || (answer as { outcome?: unknown }).outcome !== 'conflict') return undefined
  const stage = (answer as { stage?: { stageNumber?: unknown; status?: unknown; output?: unknown } | null }).stage
  if (typeof stage?.stageNumber !== 'number' || typeof stage.status !== 'string' || !isFinalStatus(stage.status as RunStatus)) return undefined
  const sent = safeJson(sentJson) as { output?: unknown } | undefined
  return {
    stageNumber: stage.stageNumber,
    status: stage.status as FinalStatus,
    sentOutput: typeof sent?.output === 'string' ? sent.output : null,
    storedOutput: typeof stage.output === 'string' ? stage.output : null,
  }
}

/** What the package's own modules (`runPipeline`) may call beyond the public API. Internal. */
export interface ClientInternals {
  stageUpdate(runId: string, stageNumber: number, status: StageUpdateStatus, output: unknown): Promise<UpdateOutcome>
  /** `reportProgress`, telling an invalid report from an undelivered one. Never rejects. */
  reportProgress(runId: string, stageNumber: number, progress: ProgressReport): Promise<UpdateOutcome>
  /** Starts the stage's heartbeat; returns its stop. */
  startHeartbeat(runId: string, stageNumber: number): () => void
  /** Listens for the run being finished elsewhere; returns the unsubscribe. */
  onRunFinished(runId: string, listener: (event: RunFinishedEvent) => void): () => void
  runFinished(runId: string): RunFinishedEvent | undefined
  /** The server's catalogue (from `createRun`'s answer, else `GET /status`); `undefined` from an older server. */
  serverCatalogue(runId: string): Promise<CatalogueEntry[] | undefined>
}

const internals = new WeakMap<PrismaAPIClient, ClientInternals>()

/**
 * The internals of a client, for `runPipeline`. Internal: not exported from the package.
 * A client from another copy of the package (a CommonJS and an ES module build side by side)
 * has none here: it is driven through its public methods, which tell delivered from failed only.
 */
export function clientInternals(client: PrismaAPIClient): ClientInternals {
  return (
    internals.get(client) ?? {
      stageUpdate: async (runId, stageNumber, status, output) => {
        const sent =
          status === 'PROCESSING'
            ? client.markStageProcessing(runId, stageNumber)
            : status === 'COMPLETED'
              ? client.markStageComplete(runId, stageNumber, output)
              : status === 'FAILED'
                ? client.markStageFailed(runId, stageNumber, String(output))
                : client.markStageCancelled(runId, stageNumber)
        return (await sent) ? { state: 'delivered', alterations: [] } : { state: 'failed', reason: 'see the client log', alterations: [] }
      },
      reportProgress: async (runId, stageNumber, progress) =>
        (await client.reportProgress(runId, stageNumber, progress).catch(() => false))
          ? { state: 'delivered', alterations: [] }
          : { state: 'failed', reason: 'see the client log', alterations: [] },
      startHeartbeat: () => noop,
      onRunFinished: () => noop,
      runFinished: (runId) => client.runFinished(runId),
      serverCatalogue: async (runId) => (await client.getStatus(runId)).catalogue,
    }
  )
}

/** One update on its way: its body and idempotency key (a new one whenever the body changes). */
interface PendingUpdate {
  runId: string
  route: OutboxRoute
  json: string
  id: string
  /** `stage 2 COMPLETED` or `completion`, for the logs. */
  what: string
  /** Whether it may finish the run (a FAILED or CANCELLED stage, the last stage COMPLETED, `/complete`). */
  finishing: boolean
  /** For a progress report: its stage (the outbox keeps only the newest pending one per stage). */
  progressStage?: number
  /** Called when the lane starts on it: a waiting progress report is replaced no more. */
  onStart?: () => void
}

/** A running heartbeat. */
interface HeartbeatLoop {
  stop(): void
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** `answer.run.status` when the answer has one, without validating the rest of it. */
function runStatusOf(answer: unknown): string | undefined {
  if (typeof answer !== 'object' || answer === null) return undefined
  const run = (answer as { run?: unknown }).run
  if (typeof run !== 'object' || run === null) return undefined
  const status = (run as { status?: unknown }).status
  return typeof status === 'string' ? status : undefined
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}

/** Whether a queued update may finish its run; see {@link PendingUpdate.finishing}. */
function isFinishing(entry: Pick<OutboxEntry, 'route' | 'body'>, stages: StageCatalogue): boolean {
  if (entry.route === 'complete') return true
  const body = safeJson(entry.body) as { status?: unknown; stageNumber?: unknown } | undefined
  if (body?.status === 'FAILED' || body?.status === 'CANCELLED') return true
  return body?.status === 'COMPLETED' && body.stageNumber === lastStageNumber(stages)
}

/** How the lane body ended for one update. */
type Delivery =
  | { state: 'delivered'; id: string; text: string; alterations: OutputAlteration[]; conflict?: StageConflictAnswer }
  | { state: 'queued'; id: string; alterations: OutputAlteration[] }
  | { state: 'dead-lettered' | 'failed'; id: string; error: unknown; alterations: OutputAlteration[] }
  | { state: 'run-finished'; id: string; error: RunFinishedError; alterations: OutputAlteration[] }

/** `true` when delivered or kept in the outbox, as the `mark*` methods resolve. */
async function reported(outcome: Promise<UpdateOutcome>): Promise<boolean> {
  const { state } = await outcome
  return state === 'delivered' || state === 'queued'
}

/** 401 or 403: the secret (or the app's authorization) is wrong, which a person can fix. */
function isAuthRefusal(error: unknown): error is StatusHttpError {
  return isStatusHttpError(error) && (error.status === 401 || error.status === 403)
}

/** A 409 `run_finished` or `stage_finished`: the run (or the stage) was finished, by a cancel, the sweeper or a completion. */
function isRunEndedRefusal(error: unknown): error is StatusHttpError {
  return isStatusHttpError(error) && error.status === 409 && (error.problem?.code === 'run_finished' || error.problem?.code === 'stage_finished')
}

function isPayloadTooLarge(error: unknown): error is StatusHttpError {
  return isStatusHttpError(error) && error.status === 413
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

function describeUndelivered(u: UndeliveredUpdates): string {
  const parts: string[] = []
  if (u.queued > 0) parts.push(`${u.queued} queued in the outbox`)
  if (u.deadLettered > 0) parts.push(`${u.deadLettered} dead-lettered`)
  if (u.failed > 0) parts.push(`${u.failed} failed`)
  return parts.join(', ')
}
