/**
 * Next.js App Router route handlers: a thin layer over the Web-standard handlers of
 * `pipeline-status-sdk/server`, which Next.js calls with real `Request` objects. Nothing here
 * imports `next`.
 *
 * @example
 * ```ts
 * // app/api/pipeline/[...path]/route.ts
 * import { createNextRouteHandlers } from 'pipeline-status-sdk/next'
 * import { prisma } from '@/lib/prisma'
 *
 * export const { GET, POST } = createNextRouteHandlers({ prisma })
 * ```
 *
 * @module pipeline-status-sdk/next
 */
import { ROUTE_METHODS, type RouteName, type RouteParamName, routeSpec } from '../contract/routes.js'
import { createPipelineStatusHandlers, type PipelineStatusHandlers } from '../server/handlers.js'
import type { PipelineStatusHandlersOptions, PrismaHandlersOptions, StoreHandlersOptions } from '../server/handler-options.js'
import { type ServerConfigurationError, isServerConfigurationError } from '../server/configuration-error.js'
import { consoleLogger, safeLogger } from '../internal/logger.js'
import type { PrismaStoreClient } from '../server/storage/prisma-client.js'
import { problemResponse } from '../server/http/problem-response.js'
import type { LiveStreamStats } from '../server/live/event-stream.js'
import { emptyReadStats, type ReadStats } from '../server/storage/read-source.js'

/** A dynamic segment's value as Next.js passes it. */
export type NextParamValue = string | string[] | undefined

/**
 * The second argument Next.js passes to a route handler: `params` is a Promise since Next 15
 * (a plain object before; both are accepted).
 */
export interface NextRouteContext {
  /** The route's dynamic segments, e.g. `{ runId: 'run_1' }`. */
  params: Promise<Record<string, NextParamValue>> | Record<string, NextParamValue>
}

/** A route handler of one file per route, for a segment such as `app/api/pipeline/[runId]/…`. */
export type NextRunRouteHandler = (request: Request, context: NextRouteContext) => Promise<Response>

/** Options of {@link createNextRouteHandlers}, beyond those of the server handlers. */
export interface NextRouteHandlersSettings {
  /**
   * The name of the dynamic segment that holds the run id in one-file-per-route apps
   * (`app/api/pipeline/[runId]/stage-update/route.ts` → `'runId'`).
   * @default 'runId'
   */
  runIdParam?: string | undefined
}

/**
 * Options of {@link createNextRouteHandlers}: those of `createPipelineStatusHandlers` plus
 * {@link NextRouteHandlersSettings}. The `authorize` hook gets the request Next.js passed to the
 * route as `native`: annotate it as `NextRequest` (`Native`) to use `native.cookies` and
 * `native.nextUrl`.
 */
export type NextRouteHandlersOptions<Tx = unknown, Native extends Request = Request> = PipelineStatusHandlersOptions<
  Tx,
  Native
> &
  NextRouteHandlersSettings

/** The route handlers for Next.js. */
export interface NextRouteHandlers {
  /** For a catch-all `app/api/pipeline/[...path]/route.ts`: `GET /{runId}/status`. */
  GET: (request: Request) => Promise<Response>
  /** For a catch-all `app/api/pipeline/[...path]/route.ts`: the three writes. */
  POST: (request: Request) => Promise<Response>
  /**
   * Optional exports of a catch-all route: with them, these methods get the contract's
   * problem+json 405 (with `Allow`) instead of Next.js's own empty 405.
   */
  PUT: (request: Request) => Promise<Response>
  /** See {@link NextRouteHandlers.PUT}. */
  PATCH: (request: Request) => Promise<Response>
  /** See {@link NextRouteHandlers.PUT}. */
  DELETE: (request: Request) => Promise<Response>
  /**
   * For the `cors` option: the preflight of `GET /status` and `GET /events` from an allowed
   * origin (without `cors`, a 405 like the other methods a route does not take).
   */
  OPTIONS: (request: Request) => Promise<Response>
  /** `export const POST = handlers.stageUpdate` in `app/api/pipeline/[runId]/stage-update/route.ts`. */
  stageUpdate: NextRunRouteHandler
  /** `export const GET = handlers.status` in `app/api/pipeline/[runId]/status/route.ts`. */
  status: NextRunRouteHandler
  /** `export const POST = handlers.complete` in `app/api/pipeline/[runId]/complete/route.ts`. */
  complete: NextRunRouteHandler
  /**
   * `export const GET = handlers.events` in `app/api/pipeline/[runId]/events/route.ts`: the live
   * status stream, a streaming `Response` on the Node.js runtime. With `cacheComponents` (the
   * `create-next-app` default since Next.js 16) export nothing else: Next.js refuses `dynamic`
   * and `runtime` then. Without it, add `export const dynamic = 'force-dynamic'`
   * (docs/nextjs.md). At a serverless time limit the stream is cut and the client resumes with
   * `Last-Event-ID`.
   */
  events: NextRunRouteHandler
  /** Ends open live streams and stops the run watcher ({@link PipelineStatusHandlers.close}). */
  close: () => Promise<void>
  /**
   * What the live streams have done so far ({@link PipelineStatusHandlers.liveStats}):
   * `{ openStreams, slowStreamsClosed }`, counts; zeros before the first stream, and while the
   * handlers are not created (during `next build`, or misconfigured). For metrics.
   */
  liveStats: () => LiveStreamStats
  /**
   * With `readReplica`: reads served by the replica and fallbacks to the primary
   * ({@link PipelineStatusHandlers.readStats}); zeros while the handlers are not created. For metrics.
   */
  readStats: () => ReadStats
  /** `export const POST = handlers.heartbeat` in `app/api/pipeline/[runId]/heartbeat/route.ts`. */
  heartbeat: NextRunRouteHandler
  /** `export const POST = handlers.cancel` in `app/api/pipeline/[runId]/cancel/route.ts`. */
  cancel: NextRunRouteHandler
  /** `export const POST = handlers.createRun` in `app/api/pipeline/runs/route.ts`. */
  createRun: (request: Request) => Promise<Response>
  /** `export const GET = handlers.listRuns` in `app/api/pipeline/runs/route.ts` (beside `POST = handlers.createRun`). */
  listRuns: (request: Request) => Promise<Response>
  /** `export const GET = handlers.runCounts` in `app/api/pipeline/runs/counts/route.ts`. */
  runCounts: (request: Request) => Promise<Response>
  /**
   * `export const GET = handlers.runSetEvents` in `app/api/pipeline/events/route.ts`: one live
   * stream for a set of runs (the list's filters or `run=` ids); like `events`, a streaming route
   * (`export const dynamic = 'force-dynamic'`).
   */
  runSetEvents: (request: Request) => Promise<Response>
  /** `export const GET = handlers.runStats` in `app/api/pipeline/runs/stats/route.ts`. */
  runStats: (request: Request) => Promise<Response>
  /** `export const POST = handlers.runTags` in `app/api/pipeline/[runId]/tags/route.ts`. */
  runTags: NextRunRouteHandler
  /** `export const POST = handlers.runMetadata` in `app/api/pipeline/[runId]/metadata/route.ts`. */
  runMetadata: NextRunRouteHandler
  /**
   * `export const POST = handlers.stageOutput` in
   * `app/api/pipeline/[runId]/stages/[stageNumber]/output/route.ts`: one chunk of a stage's
   * streamed output (the stage number is read from the request's path).
   */
  stageOutput: NextRunRouteHandler
  /**
   * The underlying Web-standard handlers. Throws the `ServerConfigurationError` when the
   * options cannot work (no webhook secret, say), where the route handlers answer 500
   * `configuration_error`.
   */
  handlers: PipelineStatusHandlers
}

/**
 * Creates the App Router route handlers. With a catch-all route, `basePath` (default
 * `/api/pipeline`) must be the folder that holds `[...path]`. Apps with one file per route use
 * the per-route handlers, which take the run id from the `[runId]` segment.
 *
 * Create them once per module (not per request): the replay cache of signed messages lives in
 * the instance. Without a webhook secret (or with other options that cannot work) nothing
 * throws: the log says once what is missing, and every request gets a problem+json 500 with
 * `code: 'configuration_error'`. `next build` (`NEXT_PHASE=phase-production-build`) needs no
 * secret: the handlers are created at run time.
 *
 * @example
 * ```ts
 * // app/api/pipeline/[runId]/stage-update/route.ts
 * import { createNextRouteHandlers } from 'pipeline-status-sdk/next'
 * import { prisma } from '@/lib/prisma'
 *
 * export const POST = createNextRouteHandlers({ prisma }).stageUpdate
 * ```
 */
export function createNextRouteHandlers<Client extends PrismaStoreClient, Native extends Request = Request>(
  options: PrismaHandlersOptions<Client, Native> & NextRouteHandlersSettings,
): NextRouteHandlers
/**
 * The same route handlers on a `Store` of your own instead of a PrismaClient (a `MemoryStore`
 * for demos, any other `Store`).
 *
 * @example
 * ```ts
 * // app/api/pipeline/[...path]/route.ts
 * import { createNextRouteHandlers } from 'pipeline-status-sdk/next'
 * import { MemoryStore } from 'pipeline-status-sdk/server'
 *
 * export const { GET, POST } = createNextRouteHandlers({ store: new MemoryStore() })
 * ```
 */
export function createNextRouteHandlers<Tx, Native extends Request = Request>(
  options: StoreHandlersOptions<Tx, Native> & NextRouteHandlersSettings,
): NextRouteHandlers
/**
 * For options typed as either form (`prisma` or `store`), such as options chosen at run time.
 *
 * @example
 * ```ts
 * // app/api/pipeline/[...path]/route.ts
 * import { createNextRouteHandlers, type NextRouteHandlersOptions } from 'pipeline-status-sdk/next'
 * import { MemoryStore } from 'pipeline-status-sdk/server'
 * import { prisma } from '@/lib/prisma'
 *
 * const options: NextRouteHandlersOptions = process.env.DATABASE_URL ? { prisma } : { store: new MemoryStore() }
 * export const { GET, POST } = createNextRouteHandlers(options)
 * ```
 */
export function createNextRouteHandlers(options: NextRouteHandlersOptions<unknown>): NextRouteHandlers
export function createNextRouteHandlers(options: NextRouteHandlersOptions<unknown>): NextRouteHandlers {
  const { runIdParam = 'runId', ...rest } = options
  const logger = safeLogger(rest.logger ?? consoleLogger)
  // Next.js has no start-up to refuse: it loads a route module on the first request to it, and
  // a module that throws turns every request into an empty 500 with nothing useful in the log.
  // So a configuration error (no WEBHOOK_SECRET, say) is logged once, naming what is missing,
  // and each request gets a problem+json 500 `configuration_error`. `next build` loads every
  // route module too, usually without the server's secrets: during the build the handlers are
  // not created at all, so the build neither fails nor logs.
  let state: { handlers: PipelineStatusHandlers } | { error: ServerConfigurationError } | undefined
  const load = () => {
    if (state) return state
    try {
      state = { handlers: createPipelineStatusHandlers(rest as PipelineStatusHandlersOptions<unknown>) }
    } catch (error) {
      if (!isServerConfigurationError(error)) throw error
      // One line: the message names what is missing; a stack would only bury it.
      logger.error(`pipeline-status: the route handlers are misconfigured and answer 500 configuration_error: ${error.message}`)
      state = { error }
    }
    return state
  }
  if (globalThis.process?.env?.['NEXT_PHASE'] !== 'phase-production-build') load()

  const answer = (respond: (handlers: PipelineStatusHandlers) => Promise<Response>): Promise<Response> => {
    const loaded = load()
    if ('handlers' in loaded) return respond(loaded.handlers)
    return Promise.resolve(
      problemResponse('configuration_error', { detail: 'The pipeline-status route handlers are not configured; the server log says what is missing' }),
    )
  }

  /** A per-route handler that takes the run id from the `[runId]` segment (a route of one run). */
  const byParam =
    (route: RunRouteName): NextRunRouteHandler =>
    async (request, context) => {
      let value: NextParamValue
      try {
        value = (await context?.params)?.[runIdParam]
      } catch {
        value = undefined
      }
      // Without the segment, the handler falls back to the request path under basePath.
      return answer((handlers) => handlers[route](request, typeof value === 'string' ? value : undefined))
    }
  // One per-route handler for each route of the table: a route of one run takes its id from the
  // segment; a route without parameters takes just the request.
  const perRoute = Object.fromEntries(
    (Object.keys(ROUTE_METHODS) as RouteName[]).map((route) => [
      route,
      isRunRoute(route) ? byParam(route) : (request: Request) => answer((handlers) => handlers[route](request)),
    ]),
  ) as { [R in RouteName]: NextRouteHandlers[R] }

  const fetch = (request: Request) => answer((handlers) => handlers.fetch(request))
  return {
    GET: fetch,
    POST: fetch,
    PUT: fetch,
    PATCH: fetch,
    DELETE: fetch,
    OPTIONS: fetch,
    ...perRoute,
    close: async () => {
      if (state && 'handlers' in state) await state.handlers.close()
    },
    liveStats: () => (state && 'handlers' in state ? state.handlers.liveStats() : { openStreams: 0, slowStreamsClosed: 0 }),
    readStats: () => (state && 'handlers' in state ? state.handlers.readStats() : emptyReadStats()),
    get handlers() {
      const loaded = load()
      if ('error' in loaded) throw loaded.error
      return loaded.handlers
    },
  }
}

/** The routes whose handlers take a run id: every route with `{runId}` in its path. */
type RunRouteName = { [R in RouteName]: 'runId' extends RouteParamName<R> ? R : never }[RouteName]

function isRunRoute(route: RouteName): route is RunRouteName {
  return routeSpec(route).path.includes('{runId}')
}
