import type { z } from 'zod'
import { CompleteRun, CreateRun } from '../contract/complete.js'
import { HEADERS } from '../contract/headers.js'
import { toFieldErrors } from '../contract/parse.js'
import type { CompleteRunResponse, CreateRunResponse, StageUpdateResponse } from '../contract/records.js'
import { DEFAULT_BASE_PATH, matchRoute, normalizeBasePath, ROUTE_METHODS, type RouteName } from '../contract/routes.js'
import { stageUpdateSchemaFor } from '../contract/stage-update.js'
import { assertStageCatalogue, DEFAULT_STAGES, type StageCatalogue } from '../contract/stages.js'
import {
  applyStageUpdate,
  completeRun,
  createRun,
  getRunSnapshot,
  type OnRunCompleted,
} from '../core/operations.js'
import { toRunRecord, toStageRecord, toStatusResponse } from '../core/records.js'
import { ifNoneMatchMatches, statusETag } from '../core/run-version.js'
import type { ConflictCode } from '../core/state-machine.js'
import { isStoreUnavailableError, type Store } from '../core/store.js'
import { HandlerConfigurationError } from './configuration-error.js'
import { parseJsonBody } from './json-body.js'
import { consoleLogger, type HandlerLogger, safeLogger } from './logger.js'
import { isJsonMediaType } from './media-type.js'
import type { PrismaStoreClient, PrismaTransactionClientOf } from './prisma-store.js'
import { HttpProblemError, isHttpProblemError, jsonResponse, problemResponse } from './problem-response.js'
import { readBodyLimited } from './read-body.js'
import { positiveInteger, resolveStore } from './store-option.js'
import { isStorableText, unstorableFields } from './storable-text.js'
import { createWebhookAuthenticator, type VerifiedMessage, type WebhookSigningOptions } from './webhook-auth.js'

/** 1 MiB, the default of {@link PipelineStatusHandlersSettings.maxBodyBytes}. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024

/** The default of {@link PipelineStatusHandlersSettings.retryAfterSeconds}. */
export const DEFAULT_RETRY_AFTER_SECONDS = 5

/**
 * Options of {@link createPipelineStatusHandlers} other than the store.
 *
 * @typeParam Tx - the store's transaction handle, handed to `onRunCompleted`.
 */
export interface PipelineStatusHandlersSettings<Tx = unknown> {
  /**
   * The shared secret the runner sends in `X-Webhook-Secret`; a list accepts each of them, so a
   * secret can be rotated without downtime (add the new one, move the runners, drop the old one).
   * Compared in constant time. Writes are never accepted without a secret: when neither this, the
   * environment variable nor `signing.secret` gives one, creating the handlers throws
   * {@link HandlerConfigurationError}. Runtimes without `process.env` (Cloudflare Workers) must
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
   * The path the four routes live under; `fetch` answers 404 for anything else.
   * @default '/api/pipeline'
   */
  basePath?: string | undefined
  /**
   * The stage catalogue: stage numbers outside 1..N are refused with 400, and completing stage N
   * completes the run.
   * @default DEFAULT_STAGES, the original five stages
   */
  stages?: StageCatalogue | undefined
  /**
   * Decides whether a request without the webhook secret may read a run (`GET /status`), e.g.
   * with the app's session and run ownership. `false` answers 403. Without this hook, reads need
   * the webhook secret (or a valid signature): status is never public by default. Writes always
   * need the secret. To answer with another problem (say 401 for a missing session), throw an
   * {@link HttpProblemError}; any other throw is a 500.
   * @default none
   */
  authorize?: ((request: Request, runId: string) => boolean | Promise<boolean>) | undefined
  /**
   * The app's hook that stores the run's results (the `/complete` payload's app-specific fields).
   * It runs inside the transaction of the first accepted `POST /complete`, exactly once per run,
   * also when the last stage had already completed the run. When it throws, the completion is
   * rolled back and answered with 500, so the runner can retry it.
   * @default none
   */
  onRunCompleted?: OnRunCompleted<Tx> | undefined
  /**
   * Receives unexpected errors (behind a 500, with the error), an unreachable database (503, a
   * warning), a database without the package's tables or columns (503 `database_not_migrated`,
   * one error per distinct problem, not per request) and refused credentials (401, never the
   * secret itself).
   * @default warnings to `console.warn`, errors to `console.error`
   */
  logger?: HandlerLogger | undefined
  /**
   * The largest body accepted, in bytes. Checked against `Content-Length` first and counted
   * while the body streams, so a larger body is never buffered; it is answered with 413.
   * @default 1048576 (1 MiB)
   */
  maxBodyBytes?: number | undefined
  /**
   * The `Retry-After` of a 503 when the database is unreachable, in seconds.
   * @default 5
   */
  retryAfterSeconds?: number | undefined
  /**
   * The current time, for tests.
   * @default () => new Date()
   */
  clock?: (() => Date) | undefined
}

/** Handlers on any {@link Store}, e.g. `MemoryStore` or a `PrismaStore` with options. */
export type StoreHandlersOptions<Tx = unknown> = PipelineStatusHandlersSettings<Tx> & {
  /** Where runs and stages are kept. */
  store: Store<Tx>
  prisma?: undefined
}

/** Handlers on the app's own `PrismaClient`, through a `PrismaStore` with default options. */
export type PrismaHandlersOptions<Client extends PrismaStoreClient = PrismaStoreClient> =
  PipelineStatusHandlersSettings<PrismaTransactionClientOf<Client>> & {
    /** The app's `PrismaClient`, generated from a schema holding the SDK's models. */
    prisma: Client
    store?: undefined
  }

/**
 * Options of {@link createPipelineStatusHandlers}: a `store` or a `prisma` client, plus
 * {@link PipelineStatusHandlersSettings}.
 */
export type PipelineStatusHandlersOptions<Tx = unknown> = StoreHandlersOptions<Tx> | PrismaHandlersOptions

/** A handler for one route; the run id comes from the argument or else from the request's path. */
export type RunRouteHandler = (request: Request, runId?: string) => Promise<Response>

/**
 * The Web-standard (`Request` → `Response`) handlers. None of them ever throws: every failure
 * is an `application/problem+json` response.
 *
 * @example
 * ```ts
 * const response = await handlers.fetch(new Request('https://app.example.com/api/pipeline/run_1/status', {
 *   headers: { 'X-Webhook-Secret': process.env.WEBHOOK_SECRET! },
 * }))
 * // Or one route, with the run id from your own router:
 * await handlers.stageUpdate(request, 'run_1')
 * ```
 */
export interface PipelineStatusHandlers {
  /** `POST {basePath}/{runId}/stage-update`. */
  stageUpdate: RunRouteHandler
  /** `GET {basePath}/{runId}/status`. */
  status: RunRouteHandler
  /** `POST {basePath}/{runId}/complete`. */
  complete: RunRouteHandler
  /** `POST {basePath}/runs`. */
  createRun: (request: Request) => Promise<Response>
  /**
   * Routes a request by its URL to the four routes under `basePath`: 404 `route_not_found` for
   * other paths, 405 with `Allow` for a wrong method. Anything that serves `fetch(request)`
   * (Hono, Bun, Deno, Cloudflare Workers) can use it as it is.
   */
  fetch: (request: Request) => Promise<Response>
  /**
   * Like `fetch`, but routes by `pathname` (relative to `basePath`) instead of the request's
   * URL, for adapters that strip a mount prefix themselves (the Express router does).
   */
  handle: (request: Request, pathname: string) => Promise<Response>
  /** The normalized base path. */
  readonly basePath: string
}

/**
 * Creates the Web-standard handlers of the four routes. Every framework adapter wraps these;
 * anything that serves `fetch(request)` uses `handlers.fetch` directly.
 *
 * Creation throws {@link HandlerConfigurationError} when no secret is configured (or another
 * option cannot work), so a misconfigured app fails at start-up, not with a 500 per request.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
 * import { prisma } from './db.js'
 *
 * const handlers = createPipelineStatusHandlers({
 *   prisma,
 *   secret: process.env.WEBHOOK_SECRET?.split(','),
 *   onRunCompleted: async (tx, run, payload) => {
 *     await tx.report.create({ data: { runId: run.id, markdown: String(payload.fullReportMarkdown ?? '') } })
 *   },
 * })
 *
 * // Bun, Deno, Cloudflare Workers, Hono:
 * export default { fetch: handlers.fetch }
 * ```
 */
export function createPipelineStatusHandlers<Client extends PrismaStoreClient>(
  options: PrismaHandlersOptions<Client>,
): PipelineStatusHandlers
export function createPipelineStatusHandlers<Tx>(options: StoreHandlersOptions<Tx>): PipelineStatusHandlers
export function createPipelineStatusHandlers(options: PipelineStatusHandlersOptions<unknown>): PipelineStatusHandlers
export function createPipelineStatusHandlers(options: PipelineStatusHandlersOptions<unknown>): PipelineStatusHandlers {
  const store = resolveStore(options)
  const stages = resolveStages(options.stages)
  const basePath = normalizeBasePath(options.basePath ?? DEFAULT_BASE_PATH)
  const maxBodyBytes = positiveInteger('maxBodyBytes', options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES)
  const retryAfter = String(positiveInteger('retryAfterSeconds', options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS))
  const clock = options.clock ?? (() => new Date())
  const logger = safeLogger(options.logger ?? consoleLogger)
  const auth = createWebhookAuthenticator({ secret: options.secret, signing: options.signing, clock })
  const stageUpdateSchema = stageUpdateSchemaFor(stages)
  const { authorize } = options
  // Each overload ties the hook's transaction type to its store; here the store is opaque.
  const onRunCompleted = options.onRunCompleted as OnRunCompleted<unknown> | undefined
  // A database without migrations fails every request alike: its error is logged once.
  const loggedSchemaProblems = new Set<string>()

  /** Per-request state the error path needs. */
  interface Exchange {
    request: Request
    message?: VerifiedMessage
  }

  async function respond(request: Request, route: string, work: (exchange: Exchange) => Promise<Response>) {
    const exchange: Exchange = { request }
    let response: Response
    try {
      response = await work(exchange)
    } catch (error) {
      response = errorResponse(error, route)
    }
    // A message answered with 5xx was not processed; let the sender's retry through.
    if (response.status >= 500 && exchange.message) {
      await exchange.message.release().catch((error: unknown) => logger.warn('pipeline-status: replay store release failed', { error }))
    }
    return response
  }

  function errorResponse(error: unknown, route: string): Response {
    if (isHttpProblemError(error)) {
      if (error.code === 'unauthorized' || error.code === 'invalid_signature') {
        logger.warn(`pipeline-status: refused ${route}: ${error.code}`, { detail: error.extras.detail })
      }
      return error.getResponse()
    }
    if (isStoreUnavailableError(error)) {
      const retry = { [HEADERS.retryAfter]: retryAfter }
      if (error.code === 'database_not_migrated') {
        // The message names the missing table or column and the command; no secrets, no SQL.
        if (!loggedSchemaProblems.has(error.message)) {
          loggedSchemaProblems.add(error.message)
          logger.error(`pipeline-status: ${error.message}`)
        }
        return problemResponse('database_not_migrated', { detail: error.message }, retry)
      }
      logger.warn(`pipeline-status: database unavailable during ${route}: ${error.message}`, { error })
      return problemResponse('database_unavailable', { detail: 'The database cannot be reached right now; retry later' }, retry)
    }
    logger.error(`pipeline-status: unexpected error during ${route}`, { error })
    // Never the error's message: it may hold SQL, connection strings or secrets.
    return problemResponse('internal_error', { detail: 'The request could not be processed' })
  }

  function requireMethod(request: Request, route: RouteName): void {
    const method = ROUTE_METHODS[route]
    if (request.method !== method) {
      throw new HttpProblemError('method_not_allowed', { detail: `This route accepts ${method} only` }, { Allow: method })
    }
  }

  function resolveRunId(request: Request, route: RouteName, runId: string | undefined): string {
    let id = runId
    if (id === undefined || id === '') {
      const match = matchRoute(new URL(request.url).pathname, basePath)
      if (!match || match.route === 'createRun' || match.route !== route) {
        throw new HttpProblemError('route_not_found', { detail: 'No run id in the request path' })
      }
      id = match.runId
    }
    // No store can hold such an id, so no run has it.
    if (!isStorableText(id)) throw runNotFound()
    return id
  }

  async function authenticateWrite(exchange: Exchange): Promise<{ signed: boolean }> {
    const { request } = exchange
    if (auth.isSigned(request)) return { signed: true }
    if (auth.signatureRequired) {
      throw new HttpProblemError('invalid_signature', {
        detail: 'Writes must be signed (webhook-id, webhook-timestamp, webhook-signature)',
      })
    }
    if (!(await auth.secretMatches(request))) {
      throw new HttpProblemError('unauthorized', {
        detail: request.headers.has(HEADERS.webhookSecret)
          ? `${HEADERS.webhookSecret} does not match`
          : `${HEADERS.webhookSecret} is missing`,
      })
    }
    return { signed: false }
  }

  async function authenticateRead(exchange: Exchange, runId: string): Promise<void> {
    const { request } = exchange
    if (await auth.secretMatches(request)) return
    if (auth.isSigned(request)) {
      exchange.message = await auth.verify(request, await readBodyLimited(request, maxBodyBytes))
      return
    }
    if (authorize) {
      if ((await authorize(request, runId)) === true) return
      throw new HttpProblemError('forbidden', { detail: 'Not allowed to read this run' })
    }
    throw new HttpProblemError('unauthorized', {
      detail: request.headers.has(HEADERS.webhookSecret)
        ? `${HEADERS.webhookSecret} does not match`
        : `${HEADERS.webhookSecret} is missing`,
    })
  }

  /** Authenticates a write, then reads and parses its JSON body within the limits. */
  async function readWrite(exchange: Exchange, options: { allowEmpty: boolean }): Promise<unknown> {
    const { request } = exchange
    const { signed } = await authenticateWrite(exchange)
    const contentType = request.headers.get('content-type')
    // Run creation may come without a body, and then without a Content-Type.
    const typeless = contentType === null && options.allowEmpty
    if (!typeless && !isJsonMediaType(contentType)) throw unsupportedMediaType()
    const body = await readBodyLimited(request, maxBodyBytes)
    if (signed) exchange.message = await auth.verify(request, body)
    if (typeless && body.length > 0) throw unsupportedMediaType()
    return parseJsonBody(body, options)
  }

  const stageUpdate: RunRouteHandler = (request, runId) =>
    respond(request, 'stage-update', async (exchange) => {
      requireMethod(request, 'stageUpdate')
      const id = resolveRunId(request, 'stageUpdate', runId)
      const update = validate(stageUpdateSchema, await readWrite(exchange, { allowEmpty: false }))
      assertStorable({ stageName: update.stageName, output: update.output })
      const result = accepted(await applyStageUpdate(store, id, update, { stages, now: clock() }))
      const body: StageUpdateResponse = {
        outcome: result.outcome,
        stage: result.stage ? toStageRecord(result.stage) : null,
        run: toRunRecord(result.run),
      }
      return jsonResponse(body)
    })

  const complete: RunRouteHandler = (request, runId) =>
    respond(request, 'complete', async (exchange) => {
      requireMethod(request, 'complete')
      const id = resolveRunId(request, 'complete', runId)
      const payload = validate(CompleteRun, await readWrite(exchange, { allowEmpty: false }))
      assertStorable({ error: payload.error })
      const result = accepted(await completeRun(store, id, payload, { now: clock(), onRunCompleted }))
      const body: CompleteRunResponse = { outcome: result.outcome, run: toRunRecord(result.run) }
      return jsonResponse(body)
    })

  const createRunHandler = (request: Request): Promise<Response> =>
    respond(request, 'runs', async (exchange) => {
      requireMethod(request, 'createRun')
      // Only an empty body means "no options"; a JSON `null` is a body, and not an object.
      const json = await readWrite(exchange, { allowEmpty: true })
      const input = validate(CreateRun, json === undefined ? {} : json)
      const result = await createRun(store, { id: input.id, now: clock() })
      const body: CreateRunResponse = { created: result.created, run: toRunRecord(result.run) }
      return jsonResponse(body, result.created ? 201 : 200)
    })

  const status: RunRouteHandler = (request, runId) =>
    respond(request, 'status', async (exchange) => {
      requireMethod(request, 'status')
      const id = resolveRunId(request, 'status', runId)
      await authenticateRead(exchange, id)
      const snapshot = await getRunSnapshot(store, id)
      if (!snapshot) throw runNotFound()
      if (snapshot.version === undefined) return jsonResponse(toStatusResponse(snapshot))
      // The version is the ETag: a poller that sends it back gets 304 until the run changes.
      const etag = statusETag({ version: snapshot.version })
      const headers = { ETag: etag, 'Cache-Control': 'private, no-cache' }
      if (ifNoneMatchMatches(request.headers.get('if-none-match'), etag)) return new Response(null, { status: 304, headers })
      const response = jsonResponse(toStatusResponse(snapshot))
      for (const [name, value] of Object.entries(headers)) response.headers.set(name, value)
      return response
    })

  const handle = (request: Request, pathname: string): Promise<Response> => {
    const match = matchRoute(pathname, basePath)
    if (!match) {
      return Promise.resolve(problemResponse('route_not_found', { detail: 'No pipeline-status route at this path' }))
    }
    switch (match.route) {
      case 'createRun':
        return createRunHandler(request)
      case 'stageUpdate':
        return stageUpdate(request, match.runId)
      case 'status':
        return status(request, match.runId)
      case 'complete':
        return complete(request, match.runId)
    }
  }

  const fetch = (request: Request): Promise<Response> => {
    let pathname: string
    try {
      pathname = new URL(request.url).pathname
    } catch {
      return Promise.resolve(problemResponse('route_not_found', { detail: 'The request URL cannot be parsed' }))
    }
    return handle(request, pathname)
  }

  return { stageUpdate, status, complete, createRun: createRunHandler, fetch, handle, basePath }
}

function validate<T>(schema: z.ZodType<T>, input: unknown): T {
  const result = schema.safeParse(input)
  if (result.success) return result.data
  const errors = toFieldErrors(result.error.issues)
  throw new HttpProblemError('validation_failed', {
    detail: errors.map((error) => `${error.field || '(body)'}: ${error.message}`).join('; '),
    errors,
  })
}

function assertStorable(values: Record<string, string | null | undefined>): void {
  const errors = unstorableFields(values)
  if (errors.length > 0) {
    throw new HttpProblemError('validation_failed', {
      detail: errors.map((error) => `${error.field}: ${error.message}`).join('; '),
      errors,
    })
  }
}

/** A store result that was not refused: an unknown run is a 404, a conflict a 409 with its reason. */
function accepted<R extends { outcome: string }>(
  result: R | { outcome: 'not_found' } | { outcome: 'conflict'; code: ConflictCode; detail: string },
): Exclude<R, { outcome: 'not_found' | 'conflict' }> {
  if (result.outcome === 'not_found') throw runNotFound()
  if (result.outcome === 'conflict' && 'code' in result) throw new HttpProblemError(result.code, { detail: result.detail })
  return result as Exclude<R, { outcome: 'not_found' | 'conflict' }>
}

function runNotFound(): HttpProblemError {
  return new HttpProblemError('run_not_found', { detail: 'No pipeline run has this id' })
}

function unsupportedMediaType(): HttpProblemError {
  return new HttpProblemError('unsupported_media_type', {
    detail: 'Send the body as JSON with Content-Type: application/json',
  })
}

function resolveStages(stages: StageCatalogue | undefined): StageCatalogue {
  if (stages === undefined) return DEFAULT_STAGES
  try {
    return assertStageCatalogue(stages)
  } catch (error) {
    throw new HandlerConfigurationError(`Invalid stages: ${(error as Error).message}`)
  }
}

