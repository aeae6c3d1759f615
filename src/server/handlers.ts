import type { z } from 'zod'
import { CompleteRun, CreateRun } from '../contract/complete.js'
import { HEADERS } from '../contract/headers.js'
import { describeFieldErrors, toFieldErrors } from '../contract/parse.js'
import {
  type CancelRunResponse,
  type CatalogueEntry,
  catalogueOf,
  type CompleteRunResponse,
  type CreateRunResponse,
  type HeartbeatResponse,
  type RunStatusResponse,
  type StageUpdateResponse,
} from '../contract/records.js'
import { CancelRun, heartbeatSchemaFor } from '../contract/runner-control.js'
import {
  allowedMethods,
  DEFAULT_BASE_PATH,
  MAX_REQUEST_TARGET_LENGTH,
  matchRoute,
  normalizeBasePath,
  type RouteName,
} from '../contract/routes.js'
import { isRunId } from '../contract/run-id.js'
import { stageUpdateSchemaFor } from '../contract/stage-update.js'
import { assertStageCatalogue, DEFAULT_STAGES, type StageCatalogue } from '../contract/stages.js'
import type { OnRunCompleted, OnRunEnded } from '../core/hooks.js'
import { applyStageUpdate, cancelRun, completeRun, createRun, getRunSnapshot, recordHeartbeat } from '../internal/operations.js'
import { toRunRecord, toStageWriteResponse, toStatusResponse } from '../internal/state-to-records.js'
import type { RunSnapshot } from '../core/state.js'
import { ifNoneMatchMatches, statusETag } from '../core/run-version.js'
import { type ClampedInstant, type ConflictCode, DEFAULT_CLOCK_SKEW_TOLERANCE_MS, describeClampedInstant } from '../internal/state-machine.js'
import { OncePerKey } from '../internal/once-per-key.js'
import { CONFLICT_CAUSE_AND_FIX } from '../internal/conflict-cause.js'
import { isStoreUnavailableError } from '../core/store.js'
import { describeDatabaseCause } from './database-errors.js'
import { HandlerConfigurationError } from './configuration-error.js'
import { parseJsonBody } from './json-body.js'
import { consoleLogger, oneLine, safeLogger } from './logger.js'
import { isJsonMediaType } from './media-type.js'
import type { PrismaStoreClient } from './storage/prisma-client.js'
import { HttpProblemError, isHttpProblemError, jsonResponse, jsonTextResponse, problemResponse } from './problem-response.js'
import { readBodyLimited } from './read-body.js'
import { positiveInteger, resolveStore } from './storage/store-option.js'
import { unstorableFields } from './storable-text.js'
import { createWebhookAuthenticator, secretRefused } from './webhook-auth.js'
import {
  type AuthorizeAction,
  type AuthorizeHook,
  LIVE_DEFAULTS,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_RETRY_AFTER_SECONDS,
  type PipelineStatusHandlersOptions,
  type PrismaHandlersOptions,
  type StoreHandlersOptions,
} from './handler-options.js'
import { askAuthorize, authenticateWrite, readTokenAllows, resolveReadTokenSecrets, verifySignature } from './request-auth.js'
import { isOpenApiDocumentPath } from '../contract/route-registry.js'
import { openApiDocumentResponse } from './openapi-route.js'
import { Cors } from './cors.js'
import { EventStreams, type LiveStreamStats, OUTPUTS_PARAMETER } from './live/event-stream.js'
import { RunWatcher } from './live/run-watcher.js'
import { describeReceived } from '../internal/received-value.js'

/**
 * A handler for one route; the run id comes from the argument or else from the request's path.
 * `native` is the framework's own request, handed to `authorize` (default: `request`).
 */
export type RunRouteHandler = (request: Request, runId?: string, native?: unknown) => Promise<Response>

/**
 * The Web-standard (`Request` → `Response`) handlers. None of them ever throws: every failure
 * is an `application/problem+json` response.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
 * import { prisma } from './prisma.js'
 *
 * const handlers = createPipelineStatusHandlers({ prisma })
 * const response = await handlers.fetch(new Request('https://app.example.com/api/pipeline/run_1/status', {
 *   headers: { 'X-Webhook-Secret': process.env.WEBHOOK_SECRET! },
 * }))
 * // Or one route, with the run id from your own router:
 * const request = new Request('https://app.example.com/api/pipeline/run_1/stage-update', {
 *   method: 'POST',
 *   headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': process.env.WEBHOOK_SECRET! },
 *   body: JSON.stringify({ stageNumber: 1, stageName: 'Extraction', status: 'PROCESSING' }),
 * })
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
  createRun: (request: Request, native?: unknown) => Promise<Response>
  /** `POST {basePath}/{runId}/heartbeat`. */
  heartbeat: RunRouteHandler
  /** `POST {basePath}/{runId}/cancel`. */
  cancel: RunRouteHandler
  /**
   * Routes a request by its URL to the contract's routes under `basePath`: 404 `route_not_found` for
   * other paths, 405 with `Allow` for a wrong method. Anything that serves `fetch(request)`
   * (Hono, Bun, Deno, Cloudflare Workers) can use it as it is.
   */
  fetch: (request: Request, native?: unknown) => Promise<Response>
  /**
   * Like `fetch`, but routes by `pathname` (relative to `basePath`) instead of the request's
   * URL, for adapters that strip a mount prefix themselves (the Express router does).
   */
  handle: (request: Request, pathname: string, native?: unknown) => Promise<Response>
  /**
   * `GET {basePath}/{runId}/events`: the live status stream (`text/event-stream`).
   */
  events: RunRouteHandler
  /**
   * Ends every open live stream cleanly (clients reconnect, elsewhere once this server is gone)
   * and stops the run watcher and its LISTEN connection. Call it before closing the HTTP server,
   * which otherwise waits for the streams. Later stream requests are answered 503.
   */
  close: () => Promise<void>
  /**
   * What the live streams have done so far: `openStreams` now, and `slowStreamsClosed`, the
   * streams closed because their reader fell behind by more than `live.maxBufferedBytes`
   * (each is also logged once). Zeros before the first stream.
   */
  liveStats: () => LiveStreamStats
  /** The normalized base path. */
  readonly basePath: string
}

/**
 * Creates the Web-standard handlers of the contract's routes (stage-update, heartbeat, complete,
 * cancel, status, events, runs, openapi.json). Every framework adapter wraps these;
 * anything that serves `fetch(request)` uses `handlers.fetch` directly.
 *
 * Creation throws {@link HandlerConfigurationError} when no secret is configured (or another
 * option cannot work), so a misconfigured app fails at start-up, not with a 500 per request.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
 * import { prisma } from './prisma.js' // your app's PrismaClient
 *
 * const handlers = createPipelineStatusHandlers({
 *   prisma,
 *   secret: process.env.WEBHOOK_SECRET?.split(','),
 *   // In the completion's transaction; `tx` is your app's transaction client, so your own
 *   // models are there too (tx.report.create(...) with a Report model in your schema).
 *   onRunCompleted: async (tx, run, payload) => {
 *     const stages = await tx.stageOutput.count({ where: { runId: run.id } })
 *     console.log(`run ${run.id} ${run.status} after ${stages} stages`, payload.fullReportMarkdown ?? '(no report)')
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
/**
 * The same handlers on a {@link Store} of your own instead of a PrismaClient: a
 * {@link MemoryStore} (tests, demos) or any other `Store`. Everything else is as with `prisma`,
 * including the {@link HandlerConfigurationError} thrown at creation.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers, MemoryStore } from 'pipeline-status-sdk/server'
 *
 * const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: ['dev-secret'] })
 * const response = await handlers.fetch(
 *   new Request('http://localhost/api/pipeline/runs', { method: 'POST', headers: { 'X-Webhook-Secret': 'dev-secret' } }),
 * )
 * console.log(response.status, await response.json())
 * ```
 */
export function createPipelineStatusHandlers<Tx>(options: StoreHandlersOptions<Tx>): PipelineStatusHandlers
/**
 * For options typed as either form (`prisma` or `store`), such as options chosen at run time.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers, MemoryStore, type PipelineStatusHandlersOptions } from 'pipeline-status-sdk/server'
 * import { prisma } from './prisma.js' // your app's PrismaClient
 *
 * const options: PipelineStatusHandlersOptions = process.env.DATABASE_URL ? { prisma } : { store: new MemoryStore() }
 * const handlers = createPipelineStatusHandlers(options)
 * ```
 */
export function createPipelineStatusHandlers(options: PipelineStatusHandlersOptions<unknown>): PipelineStatusHandlers
export function createPipelineStatusHandlers(options: PipelineStatusHandlersOptions<unknown>): PipelineStatusHandlers {
  const logger = safeLogger(options.logger ?? consoleLogger)
  const store = resolveStore(options, logger)
  const stages = resolveStages(options.stages)
  const basePath = normalizeBasePath(options.basePath ?? DEFAULT_BASE_PATH)
  const maxBodyBytes = positiveInteger('maxBodyBytes', options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES)
  const retryAfter = String(positiveInteger('retryAfterSeconds', options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS))
  const clock = options.clock ?? (() => new Date())
  const clockSkewToleranceMs = resolveClockSkewTolerance(options.clockSkewToleranceMs)
  // One warning per run for each kind of degradation, whatever the number of updates; bounded.
  const warnedSkew = new OncePerKey()
  const warnedConflict = new OncePerKey()
  const auth = createWebhookAuthenticator({ secret: options.secret, signing: options.signing, clock })
  const stageUpdateSchema = stageUpdateSchemaFor(stages)
  const readTokenSecrets = resolveReadTokenSecrets(options)
  // Each adapter types `native` as its framework's request; here it is opaque.
  const authorize = options.authorize as AuthorizeHook<unknown> | undefined
  // Each overload ties the hook's transaction type to its store; here the store is opaque.
  const onRunCompleted = options.onRunCompleted as OnRunCompleted<unknown> | undefined
  const onRunEnded = options.onRunEnded as OnRunEnded<unknown> | undefined
  const heartbeatSchema = heartbeatSchemaFor(stages)
  const catalogue: CatalogueEntry[] = catalogueOf(stages)
  /** The status document, as `GET /status` answers it and the stream's `snapshot` sends it. */
  const statusDocument = (snapshot: RunSnapshot): RunStatusResponse => ({ ...toStatusResponse(snapshot), catalogue })
  // The catalogue is the same in every status answer: serialised once, not per read.
  const catalogueJson = JSON.stringify(catalogue)
  /** `statusDocument(snapshot)` as JSON text, members in the same order. */
  const statusJson = (snapshot: RunSnapshot): string =>
    `${JSON.stringify(toStatusResponse(snapshot)).slice(0, -1)},"catalogue":${catalogueJson}}`
  // A database without migrations fails every request alike: its error is logged once.
  const loggedSchemaProblems = new Set<string>()
  const live = options.live ?? {}
  const maxStreams = positiveInteger('live.maxStreams', live.maxStreams ?? LIVE_DEFAULTS.maxStreams)
  const maxBufferedBytes = positiveInteger('live.maxBufferedBytes', live.maxBufferedBytes ?? LIVE_DEFAULTS.maxBufferedBytes)
  const cors = options.cors ? new Cors(options.cors) : undefined
  // Created on the first stream, so handlers that never stream poll nothing and hold no connection.
  let streams: EventStreams | undefined
  let watcher: RunWatcher | undefined
  let closed = false
  const openStreams = (): EventStreams => {
    if (streams) return streams
    watcher = new RunWatcher({
      store,
      pollIntervalMs: positiveInteger('live.pollIntervalMs', live.pollIntervalMs ?? LIVE_DEFAULTS.pollIntervalMs),
      safetyPollIntervalMs: positiveInteger('live.safetyPollIntervalMs', live.safetyPollIntervalMs ?? LIVE_DEFAULTS.safetyPollIntervalMs),
      source: live.listen,
      logger,
    })
    streams = new EventStreams(watcher, {
      keepAliveMs: positiveInteger('live.keepAliveMs', live.keepAliveMs ?? LIVE_DEFAULTS.keepAliveMs),
      retryMs: positiveInteger('live.retryMs', live.retryMs ?? LIVE_DEFAULTS.retryMs),
      maxBufferedBytes,
      onSlowStream: ({ runId, bufferedBytes }) =>
        logger.warn(
          `pipeline-status: closed a live stream of run ${runId} whose reader fell ${bufferedBytes} bytes behind (limit live.maxBufferedBytes = ${maxBufferedBytes} beyond its snapshot); it reconnects with a fresh snapshot. A client that stops reading, or a link slower than the run's changes, does this; raise live.maxBufferedBytes if the link is just slow`,
          { runId, bufferedBytes, maxBufferedBytes },
        ),
      statusDocument,
    })
    return streams
  }

  /** Per-request state the error path needs. */
  interface Exchange {
    request: Request
    native: unknown
    runId?: string
  }

  async function respond(
    request: Request,
    native: unknown,
    work: (exchange: Exchange) => Promise<Response>,
  ): Promise<Response> {
    const exchange: Exchange = { request, native: native ?? request }
    let response: Response
    try {
      assertTargetLength(request)
      response = await work(exchange)
    } catch (error) {
      response = errorResponse(error, exchange)
    }
    return forMethod(request, response)
  }

  let bodyConsumedLogged = false

  /** The answer to a failure, and one log line that says which request failed and why. */
  function errorResponse(error: unknown, exchange: Pick<Exchange, 'request' | 'runId'>): Response {
    const { request, runId } = exchange
    const path = pathOf(request)
    // A decoded run id may hold line breaks; a log line must stay one line.
    const where = `${request.method} ${path}${runId === undefined ? '' : ` (run ${escapeControls(runId)})`}`
    const fields = { method: request.method, path, runId }
    if (isHttpProblemError(error)) {
      const response = error.getResponse()
      const detail = typeof error.extras.detail === 'string' ? error.extras.detail : undefined
      if (error.code === 'body_already_consumed' && !bodyConsumedLogged) {
        bodyConsumedLogged = true
        logger.error(BODY_CONSUMED_HELP, fields)
      }
      const line = `pipeline-status: refused ${where}: ${response.status} ${error.code}${detail ? `: ${detail}` : ''}`
      logger.warn(line, { ...fields, status: response.status, code: error.code, detail })
      return response
    }
    if (isStoreUnavailableError(error)) {
      const retry = { [HEADERS.retryAfter]: retryAfter }
      if (error.code === 'database_not_migrated') {
        // The message names the missing table or column and the command; no secrets, no SQL.
        // Logged once per distinct problem: every request says the same until it is fixed.
        if (!loggedSchemaProblems.has(error.message)) {
          loggedSchemaProblems.add(error.message)
          logger.error(`pipeline-status: ${error.message}`, { ...fields, status: 503, code: 'database_not_migrated' })
        }
        return problemResponse('database_not_migrated', { detail: error.message }, retry)
      }
      if (error.code === 'configuration_error') {
        // Not a 500 with a stack: the message names the cause and the fix (a missing
        // DATABASE_URL, a wrong password). Logged once per distinct problem, like the above.
        if (!loggedSchemaProblems.has(error.message)) {
          loggedSchemaProblems.add(error.message)
          logger.error(`pipeline-status: ${oneLine(error.message)}`, { ...fields, status: 500, code: 'configuration_error' })
        }
        return problemResponse('configuration_error', { detail: 'The server cannot connect to its database as configured; the server log says why' })
      }
      // The driver's cause in one line (code, host and port, message): a stack per request says
      // nothing more while the database is down.
      const cause = unavailableCause(error)
      logger.warn(`pipeline-status: ${where}: 503 database_unavailable: ${cause}`, { ...fields, status: 503, code: 'database_unavailable', cause })
      return problemResponse('database_unavailable', { detail: 'The database cannot be reached right now; retry later' }, retry)
    }
    logger.error(`pipeline-status: ${where}: 500 internal_error`, { ...fields, status: 500, code: 'internal_error', error })
    // Never the error's message: it may hold SQL, connection strings or secrets.
    return problemResponse('internal_error', { detail: 'The request could not be processed' })
  }

  /** `connect ECONNREFUSED 127.0.0.1:5432`; a bound's own words first (`No connection within 2000 ms: P2028 …`). */
  function unavailableCause(error: Error): string {
    if (error.cause === undefined) return oneLine(error.message)
    const driver = describeDatabaseCause(error.cause)
    return error.message.startsWith('The database is unreachable') ? driver : `${oneLine(error.message)}: ${driver}`
  }

  function requireMethod(request: Request, route: RouteName): void {
    const allowed = allowedMethods(route)
    if (!allowed.includes(request.method)) {
      const allow = allowed.join(', ')
      throw new HttpProblemError('method_not_allowed', { detail: `This route accepts ${allow} only` }, { Allow: allow })
    }
  }

  function resolveRunId(exchange: Exchange, route: RouteName, runId: string | undefined): string {
    const { request } = exchange
    let id = runId
    if (id === undefined || id === '') {
      const match = matchRoute(new URL(request.url).pathname, basePath)
      if (!match || match.route === 'createRun' || match.route !== route) {
        throw new HttpProblemError('route_not_found', { detail: 'No run id in the request path' })
      }
      id = match.runId
    }
    exchange.runId = id
    // POST /runs creates no run with such an id, so none has it.
    if (!isRunId(id)) throw runNotFound()
    return id
  }

  async function authenticateRead(exchange: Exchange, route: RouteName, runId: string, action: AuthorizeAction = 'read'): Promise<void> {
    const { request } = exchange
    if (await auth.secretMatches(request)) return
    if (await readTokenAllows(request, runId, readTokenSecrets, clock)) return
    if (auth.isSigned(request)) {
      await verifySignature(auth, request, await readBodyLimited(request, maxBodyBytes), route, runId)
      return
    }
    if (authorize) return askAuthorize(authorize, exchange, runId, action)
    throw secretRefused(request, readTokenSecrets.length > 0, auth.plainSecrets)
  }

  /** Authenticates a write, then reads and parses its JSON body within the limits. */
  async function readWrite(
    exchange: Exchange,
    route: RouteName,
    options: { allowEmpty: boolean },
  ): Promise<unknown> {
    const { request } = exchange
    const { signed } = await authenticateWrite(auth, request)
    const contentType = request.headers.get('content-type')
    // Run creation may come without a body, and then without a Content-Type.
    const typeless = contentType === null && options.allowEmpty
    if (!typeless && !isJsonMediaType(contentType)) throw unsupportedMediaType()
    const body = await readBodyLimited(request, maxBodyBytes)
    if (signed) await verifySignature(auth, request, body, route, exchange.runId)
    if (typeless && body.length > 0) throw unsupportedMediaType()
    return parseJsonBody(body, options)
  }

  /**
   * A write route of one run: the method, the run id, the body read (authenticated, parsed,
   * validated, its text checked storable) by `read`, then the operation `act`, answered as JSON.
   */
  const runWrite =
    <Input>(
      route: 'stageUpdate' | 'complete' | 'heartbeat' | 'cancel',
      read: (exchange: Exchange, runId: string) => Promise<Input>,
      act: (runId: string, input: Input) => Promise<object>,
    ): RunRouteHandler =>
    (request, runId, native) =>
      respond(request, native, async (exchange) => {
        requireMethod(request, route)
        const id = resolveRunId(exchange, route, runId)
        return jsonResponse(await act(id, await read(exchange, id)))
      })

  const stageUpdate = runWrite(
    'stageUpdate',
    async (exchange) => {
      const update = validate(stageUpdateSchema, await readWrite(exchange, 'stageUpdate', { allowEmpty: false }))
      assertStorable({ stageName: update.stageName, output: update.output, 'progress.message': update.progress?.message })
      return update
    },
    async (id, update): Promise<StageUpdateResponse> => {
      const result = accepted(await applyStageUpdate(store, id, update, { stages, now: clock(), onRunEnded, clockSkewToleranceMs }))
      if (result.outcome === 'applied' && result.clamped) warnClamped(id, result.clamped, `stage ${update.stageNumber}`)
      if (result.outcome === 'conflict' && warnedConflict.first(id)) {
        logger.warn(
          `pipeline-status: run ${escapeControls(id)}: stage ${update.stageNumber} is already ${result.stage.status} with another output; ` +
            `the stored output stays and the update was answered 200 outcome "conflict" (logged once per run). ${CONFLICT_CAUSE_AND_FIX}`,
          { runId: id, stageNumber: update.stageNumber, status: result.stage.status, outcome: 'conflict' },
        )
      }
      return toStageWriteResponse(result)
    },
  )

  /** Logs a runner-sent instant stored clamped, once per run. */
  function warnClamped(runId: string, clamped: ClampedInstant, where: string): void {
    if (!warnedSkew.first(runId)) return
    logger.warn(`pipeline-status: ${describeClampedInstant(escapeControls(runId), clamped)} (${where}; logged once per run)`, {
      runId,
      field: clamped.field,
      sent: clamped.sent.toISOString(),
      stored: clamped.stored.toISOString(),
      bound: clamped.bound,
      skewMs: clamped.skewMs,
      toleranceMs: clamped.toleranceMs,
    })
  }

  const complete = runWrite(
    'complete',
    async (exchange) => {
      const payload = validate(CompleteRun, await readWrite(exchange, 'complete', { allowEmpty: false }))
      assertStorable({ error: payload.error })
      return payload
    },
    async (id, payload): Promise<CompleteRunResponse> => {
      const result = accepted(await completeRun(store, id, payload, { now: clock(), onRunCompleted, onRunEnded, clockSkewToleranceMs }))
      if (result.outcome === 'applied' && result.clamped) warnClamped(id, result.clamped, 'completion')
      return { outcome: result.outcome, run: toRunRecord(result.run) }
    },
  )

  const createRunHandler = (request: Request, native?: unknown): Promise<Response> =>
    respond(request, native, async (exchange) => {
      requireMethod(request, 'createRun')
      // Only an empty body means "no options"; a JSON `null` is a body, and not an object.
      const json = await readWrite(exchange, 'createRun', { allowEmpty: true })
      const input = validate(CreateRun, json === undefined ? {} : json)
      const result = await createRun(store, { id: input.id, now: clock() })
      const body: CreateRunResponse = { created: result.created, run: toRunRecord(result.run), catalogue }
      return jsonResponse(body, result.created ? 201 : 200)
    })

  /** The read routes answer the preflight and carry the grant when `cors` allows the origin. */
  const withCors =
    (route: 'status' | 'events', handler: RunRouteHandler): RunRouteHandler =>
    async (request, runId, native) => {
      if (!cors) return handler(request, runId, native)
      if (request.method === 'OPTIONS') return cors.preflight(request, allowedMethods(route))
      return cors.apply(request, await handler(request, runId, native))
    }

  const heartbeat = runWrite(
    'heartbeat',
    async (exchange) => {
      // The body is optional: an empty one (with or without Content-Type) is a bare "still alive".
      const json = await readWrite(exchange, 'heartbeat', { allowEmpty: true })
      const input = validate(heartbeatSchema, json === undefined ? {} : json)
      assertStorable({ 'progress.message': input.progress?.message })
      return input
    },
    async (id, input): Promise<HeartbeatResponse> => toStageWriteResponse(accepted(await recordHeartbeat(store, id, input, { now: clock() }))),
  )

  const cancel = runWrite(
    'cancel',
    async (exchange, id) => {
      const input = validate(CancelRun, await readCancel(exchange, id))
      assertStorable({ reason: input.reason })
      return input
    },
    async (id, input): Promise<CancelRunResponse> => {
      const result = accepted(await cancelRun(store, id, input, { now: clock(), stages, onRunEnded }))
      return { outcome: result.outcome, run: toRunRecord(result.run) }
    },
  )

  /**
   * A cancel's body, authorized by the webhook secret or signature, else by the app's `authorize`
   * hook (`action: 'cancel'`). JSON only, checked before the hook: a cross-site form can send
   * the app's session cookie, but never `application/json` without a CORS preflight.
   */
  async function readCancel(exchange: Exchange, runId: string): Promise<unknown> {
    const { request } = exchange
    if (!authorize || auth.isSigned(request) || (await auth.secretMatches(request))) {
      return readWrite(exchange, 'cancel', { allowEmpty: false })
    }
    if (!isJsonMediaType(request.headers.get('content-type'))) throw unsupportedMediaType()
    await askAuthorize(authorize, exchange, runId, 'cancel')
    return parseJsonBody(await readBodyLimited(request, maxBodyBytes), { allowEmpty: false })
  }

  const status: RunRouteHandler = withCors('status', (request, runId, native) =>
    respond(request, native, async (exchange) => {
      requireMethod(request, 'status')
      const id = resolveRunId(exchange, 'status', runId)
      await authenticateRead(exchange, 'status', id)
      const snapshot = await getRunSnapshot(store, id)
      if (!snapshot) throw runNotFound()
      if (snapshot.version === undefined) return jsonTextResponse(statusJson(snapshot), { 'Cache-Control': 'no-store' })
      // The version is the ETag: a poller that sends it back gets 304 until the run changes.
      const etag = statusETag({ version: snapshot.version })
      const headers = { ETag: etag, 'Cache-Control': 'private, no-cache' }
      if (ifNoneMatchMatches(request.headers.get('if-none-match'), etag)) return new Response(null, { status: 304, headers })
      return jsonTextResponse(statusJson(snapshot), headers)
    }),
  )

  const events: RunRouteHandler = withCors('events', (request, runId, native) =>
    respond(request, native, async (exchange) => {
      requireMethod(request, 'events')
      const id = resolveRunId(exchange, 'events', runId)
      await authenticateRead(exchange, 'events', id, 'stream')
      if (closed) throw streamsUnavailable('The server is shutting down; reconnect shortly')
      const registry = openStreams()
      if (registry.size >= maxStreams) {
        throw streamsUnavailable(`This server holds its limit of ${maxStreams} open streams; retry later`)
      }
      // Last-Event-ID needs nothing more: every connection starts with a fresh snapshot.
      const omitUnchangedOutputs = new URL(request.url).searchParams.get(OUTPUTS_PARAMETER) === 'changed'
      const body = await registry.open(id, () => getRunSnapshot(store, id), request.signal, omitUnchangedOutputs)
      if (!body) throw runNotFound()
      return new Response(body, {
        status: 200,
        headers: {
          'Content-Type': 'text/event-stream; charset=utf-8',
          // no-transform: a compressing proxy or middleware must not buffer the events.
          'Cache-Control': 'no-cache, no-transform',
          // nginx buffers proxied responses unless told otherwise.
          'X-Accel-Buffering': 'no',
        },
      })
    }),
  )

  function streamsUnavailable(detail: string): HttpProblemError {
    return new HttpProblemError('too_many_streams', { detail }, { [HEADERS.retryAfter]: retryAfter })
  }

  const close = async (): Promise<void> => {
    closed = true
    streams?.close()
    await watcher?.close()
  }

  const routeNotFound = (request: Request, detail: string): Promise<Response> =>
    Promise.resolve(errorResponse(new HttpProblemError('route_not_found', { detail }), { request }))

  const handle = (request: Request, pathname: string, native?: unknown): Promise<Response> => {
    if (isOpenApiDocumentPath(pathname, basePath)) return respond(request, native, async () => openApiDocumentResponse(request, basePath))
    const match = matchRoute(pathname, basePath)
    if (!match) {
      return respond(request, native, () =>
        Promise.reject(new HttpProblemError('route_not_found', { detail: 'No pipeline-status route at this path' })),
      )
    }
    switch (match.route) {
      case 'createRun':
        return createRunHandler(request, native)
      case 'stageUpdate':
        return stageUpdate(request, match.runId, native)
      case 'status':
        return status(request, match.runId, native)
      case 'complete':
        return complete(request, match.runId, native)
      case 'events':
        return events(request, match.runId, native)
      case 'heartbeat':
        return heartbeat(request, match.runId, native)
      case 'cancel':
        return cancel(request, match.runId, native)
    }
  }

  const fetch = (request: Request, native?: unknown): Promise<Response> => {
    let pathname: string
    try {
      pathname = new URL(request.url).pathname
    } catch {
      return routeNotFound(request, 'The request URL cannot be parsed')
    }
    return handle(request, pathname, native)
  }

  const liveStats = (): LiveStreamStats => streams?.stats() ?? { openStreams: 0, slowStreamsClosed: 0 }

  return { stageUpdate, status, complete, createRun: createRunHandler, heartbeat, cancel, events, close, liveStats, fetch, handle, basePath }
}

/** Refuses a request target (path and query) longer than the contract's limit with 414. */
function assertTargetLength(request: Request): void {
  const url = new URL(request.url)
  const length = url.pathname.length + url.search.length
  if (length > MAX_REQUEST_TARGET_LENGTH) {
    throw new HttpProblemError('uri_too_long', {
      detail: `The URL's path and query are ${length} characters long; the limit is ${MAX_REQUEST_TARGET_LENGTH}`,
      maxLength: MAX_REQUEST_TARGET_LENGTH,
    })
  }
}

/** A `HEAD` is answered like the `GET` it stands for, without the body (RFC 9110 §9.3.2). */
function forMethod(request: Request, response: Response): Response {
  if (request.method !== 'HEAD' || response.body === null) return response
  void response.body.cancel().catch(() => undefined)
  return new Response(null, { status: response.status, statusText: response.statusText, headers: response.headers })
}

function validate<T>(schema: z.ZodType<T>, input: unknown): T {
  const result = schema.safeParse(input)
  if (result.success) return result.data
  const errors = toFieldErrors(result.error.issues)
  throw new HttpProblemError('validation_failed', {
    detail: describeFieldErrors(errors),
    errors,
  })
}

function assertStorable(values: Record<string, string | null | undefined>): void {
  const errors = unstorableFields(values)
  if (errors.length > 0) {
    throw new HttpProblemError('validation_failed', {
      detail: describeFieldErrors(errors),
      errors,
    })
  }
}

/**
 * A store result that was not refused: an unknown run is a 404, a refusal (`conflict` with a
 * `code`) a 409 with its reason. A `conflict` without a code (a final stage repeated with another
 * output) is an answer, 200.
 */
function accepted<R extends { outcome: string }>(
  result: R | { outcome: 'not_found' } | { outcome: 'conflict'; code: ConflictCode; detail: string },
): Exclude<R, { outcome: 'not_found' } | { code: ConflictCode }> {
  if (result.outcome === 'not_found') throw runNotFound()
  if (result.outcome === 'conflict' && 'code' in result) throw new HttpProblemError(result.code, { detail: result.detail })
  return result as Exclude<R, { outcome: 'not_found' } | { code: ConflictCode }>
}

function runNotFound(): HttpProblemError {
  return new HttpProblemError('run_not_found', { detail: 'No pipeline run has this id' })
}

/** Logged once per handlers instance, the first time a request body was found already read. */
const BODY_CONSUMED_HELP =
  'pipeline-status: something read the request body before the pipeline-status handlers (a body parser such as ' +
  'express.json() mounted before the router, or code that called request.json()), so signed requests cannot be ' +
  'checked over the bytes that were sent and are answered 500 body_already_consumed (the runner retries). Fix: mount ' +
  "the router before the body parser (app.use('/api/pipeline', createExpressRouter(...)) first), or keep the raw " +
  'bytes: express.json({ verify: (req, _res, buf) => { req.rawBody = buf } }); in a fetch handler, pass the request unread.'

function escapeControls(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/** The request's path for logs; never the query, which may carry tokens. */
function pathOf(request: Request): string {
  try {
    return new URL(request.url).pathname
  } catch {
    return '(unparsable URL)'
  }
}

function unsupportedMediaType(): HttpProblemError {
  return new HttpProblemError('unsupported_media_type', {
    detail: 'Send the body as JSON with Content-Type: application/json',
  })
}

function resolveClockSkewTolerance(value: number | undefined): number {
  if (value === undefined) return DEFAULT_CLOCK_SKEW_TOLERANCE_MS
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new HandlerConfigurationError(`clockSkewToleranceMs must be a whole number of milliseconds, 0 or more, got ${describeReceived(value)}`)
  }
  return value
}

function resolveStages(stages: StageCatalogue | undefined): StageCatalogue {
  if (stages === undefined) return DEFAULT_STAGES
  try {
    return assertStageCatalogue(stages)
  } catch (error) {
    throw new HandlerConfigurationError(`Invalid stages: ${(error as Error).message}`)
  }
}

