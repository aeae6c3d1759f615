/**
 * The handlers: the options resolved once into settings, the routes built from their modules
 * (writes, reads, live) into one record keyed by the route table's names, and the dispatch that
 * matches a request once (`findRoute`) and calls the route's handler. A route of the table
 * without a handler here does not compile.
 */
import { findRoute, type FoundRoute, type ServedRouteName } from '../contract/routes.js'
import { createRequestAuth } from './auth/authenticate.js'
import type { PipelineStatusHandlersOptions, PrismaHandlersOptions, StoreHandlersOptions } from './handler-options.js'
import { createPlumbing, type RouteHandler } from './http/exchange.js'
import { HttpProblemError } from './http/problem-response.js'
import type { LiveStreamStats } from './live/event-stream.js'
import type { ReadStats } from './storage/read-source.js'
import type { PrismaStoreClient } from './storage/prisma-client.js'
import { createDashboardRoutes } from './routes/dashboard.js'
import { createLabelRoutes } from './routes/labels.js'
import { createLiveRoutes } from './routes/live.js'
import { createListRoutes } from './routes/lists.js'
import { createOutputRoutes } from './routes/output.js'
import { createReadRoutes } from './routes/reads.js'
import { createWriteRoutes } from './routes/writes.js'
import { resolveSettings } from './settings.js'

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
  /**
   * `GET {basePath}/runs`: a page of runs, newest first, filtered (docs/listing-runs.md);
   * `native` is the framework's request, for the authorization of the list.
   */
  listRuns: (request: Request, native?: unknown) => Promise<Response>
  /** `GET {basePath}/runs/counts`: runs per status or per pipeline, filtered like the list. */
  runCounts: (request: Request, native?: unknown) => Promise<Response>
  /**
   * `GET {basePath}/events`: one live stream (Server-Sent Events) for a set of runs, by the
   * list's filters or by `run=` ids (docs/live-status.md, "Set streams"); `native` is the
   * framework's request, for the authorization.
   */
  runSetEvents: (request: Request, native?: unknown) => Promise<Response>
  /** `GET {basePath}/runs/stats`: stage durations (p50, p95) and failures per pipeline and stage over the last days, authorized like the list. */
  runStats: (request: Request, native?: unknown) => Promise<Response>
  /** `POST {basePath}/{runId}/heartbeat`. */
  heartbeat: RunRouteHandler
  /** `POST {basePath}/{runId}/cancel`. */
  cancel: RunRouteHandler
  /** `POST {basePath}/{runId}/tags`: change a run's tags. */
  runTags: RunRouteHandler
  /** `POST {basePath}/{runId}/metadata`: merge a JSON Merge Patch into a run's metadata. */
  runMetadata: RunRouteHandler
  /**
   * `POST {basePath}/{runId}/stages/{stageNumber}/output`: one chunk of a stage's streamed
   * output; the stage number is read from the request's path.
   */
  stageOutput: RunRouteHandler
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
   * What the live streams have done so far: `openStreams` now, `slowStreamsClosed`, the
   * streams closed because their reader fell behind by more than `live.maxBufferedBytes`
   * (each is also logged once), and `closedStreams`, the streams ended with `: closed <cause>`,
   * by cause (the first of each cause is logged). Zeros before the first stream.
   */
  liveStats: () => LiveStreamStats
  /**
   * With `readReplica`: the reads the replica answered and those that went to the primary, by
   * reason (`behind`, `missing`, `replica_error`), and how many runs' versions the process
   * remembers (docs/read-replicas.md). Zeros, and `replica: false`, without a replica.
   */
  readStats: () => ReadStats
  /** The normalized base path. */
  readonly basePath: string
}

/**
 * Creates the Web-standard handlers of the contract's routes (stage-update, heartbeat, complete,
 * cancel, status, events, runs, runs/counts, tags, metadata, openapi.json). Every framework adapter wraps these;
 * anything that serves `fetch(request)` uses `handlers.fetch` directly.
 *
 * Creation throws {@link ServerConfigurationError} when no secret is configured (or another
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
 * including the {@link ServerConfigurationError} thrown at creation.
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
  return createHandlerCore(options).handlers
}

/** The handlers and their dispatch by an already matched route, for adapters that match once (Express). Internal. */
export interface HandlerCore {
  /** The public handlers. */
  readonly handlers: PipelineStatusHandlers
  /** Answers a request matched with `findRoute` (`undefined`: no route, 404) without matching it again. */
  dispatch(request: Request, found: FoundRoute | undefined, native?: unknown): Promise<Response>
}

/** Creates the handlers; throws `ServerConfigurationError` for options that cannot work. Internal. */
export function createHandlerCore(options: PipelineStatusHandlersOptions<unknown>): HandlerCore {
  const settings = resolveSettings(options)
  const plumbing = createPlumbing(settings)
  const auth = createRequestAuth(settings)
  const live = createLiveRoutes(settings, plumbing, auth)
  const routes: { readonly [R in ServedRouteName]: RouteHandler } = {
    ...createWriteRoutes(settings, plumbing, auth),
    ...createReadRoutes(settings, plumbing, auth),
    ...createListRoutes(settings, plumbing),
    ...createLabelRoutes(settings, plumbing, auth),
    ...createOutputRoutes(settings, plumbing, auth),
    ...createDashboardRoutes(settings, plumbing),
    events: live.events,
    runSetEvents: live.runSetEvents,
  }
  const { basePath } = settings

  const dispatch = (request: Request, found: FoundRoute | undefined, native?: unknown): Promise<Response> =>
    found
      ? routes[found.route](request, found.params, native)
      : plumbing.respond(request, native, () => Promise.reject(new HttpProblemError('route_not_found', { detail: 'No pipeline-status route at this path' })))

  const handle = (request: Request, pathname: string, native?: unknown): Promise<Response> =>
    dispatch(request, findRoute(request.method, pathname, basePath), native)

  const fetch = (request: Request, native?: unknown): Promise<Response> => {
    let pathname: string
    try {
      pathname = new URL(request.url).pathname
    } catch {
      return Promise.resolve(plumbing.errorResponse(new HttpProblemError('route_not_found', { detail: 'The request URL cannot be parsed' }), { request }))
    }
    return handle(request, pathname, native)
  }

  /** A route of one run, called with the run id from the app's own router (or from the path). */
  const runRoute =
    (route: ServedRouteName): RunRouteHandler =>
    (request, runId, native) =>
      routes[route](request, { runId }, native)

  const handlers: PipelineStatusHandlers = {
    stageUpdate: runRoute('stageUpdate'),
    status: runRoute('status'),
    complete: runRoute('complete'),
    createRun: (request, native) => routes.createRun(request, {}, native),
    listRuns: (request, native) => routes.listRuns(request, {}, native),
    runCounts: (request, native) => routes.runCounts(request, {}, native),
    runStats: (request, native) => routes.runStats(request, {}, native),
    heartbeat: runRoute('heartbeat'),
    cancel: runRoute('cancel'),
    runTags: runRoute('runTags'),
    runMetadata: runRoute('runMetadata'),
    stageOutput: runRoute('stageOutput'),
    events: runRoute('events'),
    runSetEvents: (request, native) => routes.runSetEvents(request, {}, native),
    close: async () => {
      settings.reads.close()
      await live.close()
    },
    liveStats: live.liveStats,
    readStats: settings.reads.stats,
    fetch,
    handle,
    basePath,
  }
  return { handlers, dispatch }
}
