import { CompleteRun } from '../contract/complete.js'
import { ENV_WEBHOOK_SECRET, ENV_WEBHOOK_URL } from '../contract/headers.js'
import { PayloadValidationError, parseRunId } from '../contract/parse.js'
import {
  CompleteRunResponse,
  CreateRunResponse,
  RunStatusResponse,
} from '../contract/records.js'
import { DEFAULT_BASE_PATH, type RouteName, normalizeBasePath, routePath } from '../contract/routes.js'
import { StageUpdate, stageUpdateSchemaFor } from '../contract/stage-update.js'
import { DEFAULT_STAGES, type StageCatalogue, assertStageCatalogue } from '../contract/stages.js'
import type { StageUpdateStatus } from '../contract/status.js'
import { createWebhookSignatureHeaders, decodeWebhookSecret } from '../core/webhook-signature.js'
import {
  ClientClosedError,
  ConfigurationError,
  PipelineStatusError,
  isStatusHttpError,
} from './errors.js'
import { type Logger, consoleLogger } from './logger.js'
import { type DeliveryResult, type FlushResult, Outbox, type OutboxEntry, type OutboxOptions, type OutboxRoute } from './outbox.js'
import { type RetryPolicy, isRetriableError, parseRetryAfter, resolveRetryPolicy } from './retry-policy.js'
import { type AttemptSigner, Transport } from './transport.js'

/**
 * Standard Webhooks signing of every request (optional, on top of `X-Webhook-Secret`).
 *
 * Each attempt is signed again with a fresh `webhook-id` and `webhook-timestamp`, so a retry
 * after a lost response is never refused as a replay and a redelivery from the outbox hours
 * later is still inside the server's timestamp tolerance. The `Idempotency-Key` header is what
 * identifies one update across its attempts.
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
   * `https://app.example.com`. The routes live under it at `basePath`.
   * @default process.env.FRONTEND_WEBHOOK_URL
   */
  baseUrl?: string | undefined
  /**
   * The path the handlers are mounted at, joined to `baseUrl`.
   * @default '/api/pipeline'
   */
  basePath?: string | undefined
  /**
   * The shared secret sent as `X-Webhook-Secret` with every request.
   * @default process.env.WEBHOOK_SECRET
   */
  secret?: string | undefined
  /**
   * Milliseconds one attempt may take to get a response. Applies per attempt: with retries,
   * one call can take up to `(retry.limit + 1) * timeout` plus the backoff waits.
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
 * import { isQueuedDelivery } from 'pipeline-status-sdk/client'
 * const result = await client.completeRun('run_1', { status: 'COMPLETED' })
 * if (isQueuedDelivery(result)) console.log('the completion waits in the outbox')
 * ```
 */
export function isQueuedDelivery(value: unknown): value is QueuedDelivery {
  return typeof value === 'object' && value !== null && (value as { queued?: unknown }).queued === true
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
  /** When it ended, as a `Date` or ISO 8601 string. @default now */
  completedAt?: string | Date | null | undefined
  /** How long the run took, in seconds. */
  duration?: number | null | undefined
  /** Why it failed, for `FAILED`. */
  error?: string | null | undefined
  /** App-specific results, handed to the web app's `onRunCompleted` hook. */
  [field: string]: unknown
}

/**
 * The runner's client: reports stage changes of a pipeline run to the web app's handlers.
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
 * - With `outbox`, an update still undelivered after its retries is written to disk and resolves
 *   `true` (logged as a warning): it will be delivered, in order with the run's other updates,
 *   by a background flush, by `flush()` or `close()`, or by the next process on the same dir.
 *   While a run has queued updates, its new ones queue behind them. A 4xx is never queued.
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
  #closed = false
  /** Set when `close` aborted the requests still in flight at its deadline. */
  #abortedInFlight = false

  constructor(options: PrismaAPIClientOptions = {}) {
    const env = globalThis.process?.env ?? {}
    const baseUrl = options.baseUrl ?? env[ENV_WEBHOOK_URL]
    const secret = options.secret ?? env[ENV_WEBHOOK_SECRET]
    if (baseUrl === undefined || baseUrl.trim() === '') {
      throw new ConfigurationError(
        `No base URL: pass { baseUrl: 'https://your-app.example.com' } or set ${ENV_WEBHOOK_URL}`,
      )
    }
    let url: URL
    try {
      url = new URL(baseUrl.trim())
    } catch {
      throw new ConfigurationError(`The base URL ${JSON.stringify(baseUrl)} is not an absolute URL`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigurationError(`The base URL must be http or https, not ${url.protocol}`)
    }
    if (url.search !== '' || url.hash !== '') {
      throw new ConfigurationError('The base URL must not have a query or a fragment')
    }
    if (secret === undefined || secret === '') {
      throw new ConfigurationError(
        `No webhook secret: pass { secret } or set ${ENV_WEBHOOK_SECRET} (the same value as the web app's)`,
      )
    }
    const timeout = options.timeout ?? 30_000
    if (!Number.isFinite(timeout) || timeout <= 0 || timeout > 2_147_483_647) {
      throw new ConfigurationError('timeout must be a positive number of milliseconds')
    }
    let stages: StageCatalogue
    let retry: ReturnType<typeof resolveRetryPolicy>
    try {
      stages = assertStageCatalogue(options.stages ?? DEFAULT_STAGES)
      retry = resolveRetryPolicy(options.retry)
    } catch (error) {
      throw new ConfigurationError((error as Error).message, { cause: error })
    }
    let signer: AttemptSigner | undefined
    if (options.signing) {
      const signingSecret = options.signing.secret
      if (typeof signingSecret !== 'string' || signingSecret === '') {
        throw new ConfigurationError('signing.secret must be a non-empty string')
      }
      try {
        // A malformed whsec_ secret fails here, not on the first request.
        decodeWebhookSecret(signingSecret)
      } catch (error) {
        throw new ConfigurationError((error as Error).message, { cause: error })
      }
      signer = async (body) => ({ ...(await createWebhookSignatureHeaders({ secret: signingSecret, body })) })
    }

    this.baseUrl = url.href.replace(/\/+$/, '')
    this.basePath = normalizeBasePath(options.basePath ?? DEFAULT_BASE_PATH)
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
    })
    try {
      this.#outbox = options.outbox
        ? new Outbox({ ...options.outbox, logger: this.#logger, deliver: (entry, signal) => this.#redeliver(entry, signal) })
        : undefined
    } catch (error) {
      if (error instanceof RangeError) throw new ConfigurationError(error.message, { cause: error })
      throw error
    }
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
    return this.#stageUpdate(runId, stageNumber, 'PROCESSING', undefined)
  }

  /**
   * Marks stage `stageNumber` COMPLETED with its output: a string is sent as it is (JSON or
   * markdown), anything else as `JSON.stringify(output)`; `undefined` sends no output (the
   * server keeps what PROCESSING stored). `completedAt` is now.
   */
  markStageComplete(runId: string, stageNumber: number, output?: unknown): Promise<boolean> {
    return this.#stageUpdate(runId, stageNumber, 'COMPLETED', output)
  }

  /** Marks stage `stageNumber` FAILED; `errorMessage` is sent as its output and becomes the run's error. */
  markStageFailed(runId: string, stageNumber: number, errorMessage: string): Promise<boolean> {
    return this.#stageUpdate(runId, stageNumber, 'FAILED', errorMessage)
  }

  /** Marks stage `stageNumber` CANCELLED (the server then marks the run CANCELLED). */
  markStageCancelled(runId: string, stageNumber: number): Promise<boolean> {
    return this.#stageUpdate(runId, stageNumber, 'CANCELLED', undefined)
  }

  /**
   * Sends a stage-update body as given (validated against the contract and the catalogue
   * first). The `mark*` methods build it for you. Resolves `true`/`false`; see the class notes.
   */
  sendStageUpdate(runId: string, update: StageUpdate): Promise<boolean> {
    const parsed = stageUpdateSchemaFor(this.stages).safeParse(update)
    if (!parsed.success) return this.#refuse(runId, new PayloadValidationError('stage update', parsed.error.issues))
    return this.#submit(runId, 'stageUpdate', JSON.stringify(parsed.data), `stage ${update.stageNumber} ${update.status}`)
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
    const idempotencyKey = crypto.randomUUID()
    const json = JSON.stringify(parsed.data)
    return this.#inLane(runId, async () => {
      const outbox = this.#outbox
      if (outbox && outbox.pendingCount(runId) > 0) {
        await this.#enqueue({ runId, route: 'complete', body: json, id: idempotencyKey }, 'completion', 'queued behind earlier updates')
        return { queued: true, runId, idempotencyKey } as const
      }
      try {
        const response = await this.#transport.send(
          { method: 'POST', url: this.#url('complete', runId), body: json, idempotencyKey },
          { retry: true },
        )
        outbox?.nudge()
        return parseResponse(CompleteRunResponse, response.text, 'completion')
      } catch (error) {
        if (outbox && this.#queueable(error)) {
          await this.#enqueue({ runId, route: 'complete', body: json, id: idempotencyKey }, 'completion', describe(error))
          return { queued: true, runId, idempotencyKey } as const
        }
        throw error
      }
    })
  }

  /**
   * Reads a run and its stages (`GET /status`), retried like updates. Throws the typed
   * errors; a 404 is a {@link StatusHttpError} with `problem.code === 'run_not_found'`.
   */
  async getStatus(runId: string): Promise<RunStatusResponse> {
    assertRunId(runId)
    if (this.#closed) throw new ClientClosedError()
    const response = await this.#transport.send({ method: 'GET', url: this.#url('status', runId) }, { retry: true })
    return parseResponse(RunStatusResponse, response.text, 'status')
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
    return parseResponse(CreateRunResponse, response.text, 'run creation')
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
   * Waits (up to `timeout`) for updates in flight, flushes the outbox, then stops its timer
   * and releases its directory. Updates still in flight at the deadline are moved to the
   * outbox, not dropped. Later calls reject with {@link ClientClosedError} (or resolve `false`).
   *
   * @example
   * ```ts
   * const { pending } = await client.close({ timeout: 5_000 })
   * if (pending > 0) console.warn(`${pending} update(s) wait in the outbox for the next run`)
   * ```
   */
  async close(options: CloseOptions = {}): Promise<FlushResult> {
    if (this.#closed) return { delivered: 0, rejected: 0, pending: this.pendingCount() }
    this.#closed = true
    const deadline = Date.now() + (options.timeout ?? 10_000)
    await settleWithin([...this.#lanes.values()], deadline - Date.now())
    // Abort what is still in flight; each lane then moves its update to the outbox.
    this.#abortedInFlight = true
    this.#transport.abortInFlight(new Error('The client was closed before this request finished'))
    await Promise.allSettled([...this.#lanes.values()])
    return this.#outbox ? this.#outbox.close(Math.max(0, deadline - Date.now())) : { delivered: 0, rejected: 0, pending: 0 }
  }

  #stageUpdate(runId: string, stageNumber: number, status: StageUpdateStatus, output: unknown): Promise<boolean> {
    const stage = this.stages[stageNumber - 1]
    if (!stage || stage.number !== stageNumber) {
      return this.#refuse(
        runId,
        new RangeError(`Stage ${stageNumber} is not in the catalogue (1..${this.stages.length})`),
      )
    }
    let text: string | undefined
    try {
      text = output === undefined || typeof output === 'string' ? output : JSON.stringify(output)
    } catch (error) {
      return this.#refuse(runId, new TypeError(`The output of stage ${stageNumber} cannot be serialised as JSON`, { cause: error }))
    }
    // Built field by field in the contract's order; completedAt is fixed now, so a redelivery
    // from the outbox tells the server when the stage really finished.
    const body: StageUpdate = { stageNumber, stageName: stage.name, status }
    if (text !== undefined) body.output = text
    if (status !== 'PROCESSING') body.completedAt = new Date().toISOString()
    return this.#submit(runId, 'stageUpdate', JSON.stringify(body), `stage ${stageNumber} ${status}`)
  }

  /** Delivers one stage update within its run's lane: directly, or behind the run's queued ones. */
  #submit(runId: string, route: OutboxRoute, json: string, what: string): Promise<boolean> {
    try {
      assertRunId(runId)
    } catch (error) {
      return this.#refuse(runId, error as Error)
    }
    if (this.#closed) return this.#refuse(runId, new ClientClosedError())
    const idempotencyKey = crypto.randomUUID()
    return this.#inLane(runId, async () => {
      try {
        const outbox = this.#outbox
        if (outbox && outbox.pendingCount(runId) > 0) {
          await this.#enqueue({ runId, route, body: json, id: idempotencyKey }, what, 'queued behind earlier updates')
          return true
        }
        try {
          await this.#transport.send(
            { method: 'POST', url: this.#url(route, runId), body: json, idempotencyKey },
            { retry: true },
          )
          if (outbox && outbox.pendingCount() > 0) outbox.nudge()
          return true
        } catch (error) {
          if (outbox && this.#queueable(error)) {
            await this.#enqueue({ runId, route, body: json, id: idempotencyKey }, what, describe(error))
            return true
          }
          throw error
        }
      } catch (error) {
        this.#logger.error(`Run ${runId}: ${what} was not delivered: ${describe(error)}`, {
          runId,
          idempotencyKey,
          ...(isStatusHttpError(error) ? { status: error.status, code: error.problem?.code } : {}),
        })
        if (this.#throwOnError) throw error
        return false
      }
    })
  }

  /** Queues an update durably; logs where it went. Throws when the disk write fails. */
  async #enqueue(
    update: { runId: string; route: OutboxRoute; body: string; id: string },
    what: string,
    why: string,
  ): Promise<void> {
    const outbox = this.#outbox as Outbox
    const entry: OutboxEntry = {
      v: 1,
      id: update.id,
      runId: update.runId,
      route: update.route,
      body: update.body,
      queuedAt: new Date().toISOString(),
    }
    try {
      await outbox.append(entry)
    } catch (error) {
      throw new PipelineStatusError(`Run ${update.runId}: ${what} could not be written to the outbox ${outbox.dir}`, { cause: error })
    }
    const log = why.startsWith('queued behind') ? this.#logger.info?.bind(this.#logger) : this.#logger.warn.bind(this.#logger)
    log?.(`Run ${update.runId}: ${what} queued in the outbox (${why}); it will be delivered in order`, {
      runId: update.runId,
      idempotencyKey: update.id,
      pending: outbox.pendingCount(update.runId),
    })
  }

  /** Whether a failed send belongs in the outbox: it may succeed later, or the client is closing. */
  #queueable(error: unknown): boolean {
    if (this.#abortedInFlight) return true
    return error instanceof PipelineStatusError && isRetriableError(error)
  }

  /** The outbox's delivery of one queued update: one attempt; the outbox does the backoff. */
  async #redeliver(entry: OutboxEntry, signal: AbortSignal): Promise<DeliveryResult> {
    try {
      await this.#transport.send(
        { method: 'POST', url: this.#url(entry.route, entry.runId), body: entry.body, idempotencyKey: entry.id },
        { retry: false, signal },
      )
      return { result: 'delivered' }
    } catch (error) {
      if (isStatusHttpError(error) && !isRetriableError(error)) {
        return { result: 'rejected', status: error.status, reason: describe(error) }
      }
      return {
        result: 'retry',
        reason: describe(error),
        retryAfterMs: isStatusHttpError(error) ? parseRetryAfter(error.response.headers.get('Retry-After')) : undefined,
      }
    }
  }

  #refuse(runId: string, error: Error): Promise<boolean> {
    this.#logger.error(`Run ${String(runId)}: update not sent: ${error.message}`, { runId })
    return this.#throwOnError ? Promise.reject(error) : Promise.resolve(false)
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

/** The contract's run-id rule, checked before anything is sent: throws `PayloadValidationError`. */
function assertRunId(runId: string): void {
  parseRunId(runId)
}

function describe(error: unknown): string {
  if (isStatusHttpError(error)) return `HTTP ${error.status}${error.problem ? ` ${error.problem.code}` : ''}${error.problem?.detail ? `: ${error.problem.detail}` : ''}`
  return error instanceof Error ? error.message : String(error)
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
