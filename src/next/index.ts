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
import type {
  PipelineStatusHandlersOptions,
  PipelineStatusHandlersSettings,
  PrismaHandlersOptions,
  StoreHandlersOptions,
} from '../server/handler-options.js'
import { isServerConfigurationError, ServerConfigurationError } from '../server/configuration-error.js'
import type { Store } from '../core/store.js'
import { errorMessage } from '../internal/error-message.js'
import { consoleLogger, oneLine, safeLogger } from '../internal/logger.js'
import type { PrismaStoreClient, PrismaTransactionClientOf } from '../server/storage/prisma-client.js'
import { problemResponse } from '../server/http/problem-response.js'
import { emptyLiveStats, type LiveStreamStats } from '../server/live/event-stream.js'
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

/**
 * The options the function form of {@link createNextRouteHandlers} returns: those of
 * {@link NextRouteHandlersOptions}, either form (`prisma` or `store`), with the `tx` of
 * `onRunCompleted` and `onRunEnded` inferred from the one given: the interactive transaction
 * client of `prisma` (`Client`), or the transaction type of `store` (`Tx`). The type parameters
 * are inferred from the function's return value; nobody needs to write them.
 */
export type NextRouteHandlersLazyOptions<
  Client extends PrismaStoreClient = never,
  Tx = never,
  Native extends Request = Request,
> = PipelineStatusHandlersSettings<[Client] extends [never] ? Tx : PrismaTransactionClientOf<Client>, Native> &
  NextRouteHandlersSettings &
  ({ prisma: Client; store?: undefined } | { store: Store<Tx>; prisma?: undefined })

/** The name of every option: those of the server handlers, `runIdParam`, `prisma` and `store`. */
type NextRouteHandlersOptionName = keyof PipelineStatusHandlersSettings | keyof NextRouteHandlersSettings | 'prisma' | 'store'

/** `Options` with each property that is not an option typed as a message naming it. */
type OnlyOptions<Options> = Options extends unknown
  ? {
      [Name in keyof Options]: Name extends NextRouteHandlersOptionName
        ? Options[Name]
        : `'${Name & string}' is not an option of createNextRouteHandlers`
    }
  : never

/**
 * The options function `Fn` (the argument's own type) as the function form of
 * {@link createNextRouteHandlers} accepts it: returning, or resolving to, options without a
 * property that is not an option. TypeScript checks no excess properties in what a function
 * returns, so without it a misspelt `secert:` would compile and be ignored; with it the compiler
 * says `Type 'string' is not assignable to type '"'secert' is not an option of createNextRouteHandlers"'`.
 * `unknown` (nothing inferred yet) checks nothing, so the options' callbacks still take their
 * parameter types from the options' type; anything but a function is `never`.
 */
type OnlyOptionsFunction<Fn> = unknown extends Fn
  ? unknown
  : Fn extends () => infer Returned
    ? () => OnlyOptions<Awaited<Returned>> | PromiseLike<OnlyOptions<Awaited<Returned>>>
    : never

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
   * Resolves once the handlers are created, so that `handlers` can be read: for a readiness
   * probe, a start-up check or a test. With options given as an object it settles at once. With
   * options given as a function it waits for the function's call, and makes that call now if no
   * request has made it yet (as a first request would); requests made meanwhile wait for the same
   * call. It sends no request and answers none.
   *
   * Rejects with the {@link ServerConfigurationError} behind the requests' `500`
   * `configuration_error`:
   * - options that cannot work (no webhook secret, say): the error naming what is missing, the
   *   same each time, since such options are kept until a restart;
   * - an options function that threw or rejected: an error saying so, with its message, and what
   *   it threw as `cause`. Nothing is kept: the next call of `ready()`, like the next request,
   *   calls the function again.
   *
   * @example
   * ```ts
   * // app/api/ready/route.ts: a readiness probe, 503 until the pipeline routes can answer
   * import { pipelineRoutes } from '@/lib/pipeline-routes'
   *
   * export async function GET() {
   *   try {
   *     await pipelineRoutes().ready()
   *     return new Response('ok')
   *   } catch {
   *     return new Response('pipeline-status routes not configured', { status: 503 })
   *   }
   * }
   * ```
   */
  ready: () => Promise<void>
  /**
   * What the live streams have done so far ({@link PipelineStatusHandlers.liveStats}):
   * `{ openStreams, slowStreamsClosed, closedStreams }`, counts; zeros before the first stream, and while the
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
   * `configuration_error`. With options given as a function: reading it creates the handlers
   * as a first request would (calling the function if no request has yet); it throws what the
   * function threw, and an `Error` while a promise the function returned has not settled:
   * `await ready()` first.
   */
  handlers: PipelineStatusHandlers
}

/**
 * The same route handlers with their options made lazily: `options` is a function that returns
 * them (either form, `prisma` or `store`, with the same types as the object forms) or a promise
 * of them. Next.js evaluates route modules at build time and at cold start; an app whose options
 * read environment variables, open a Prisma client or fetch a secret makes them here, at the
 * first request, instead of when the module is loaded.
 *
 * - **When**: `options` is called at the first request to any of the route handlers (or the
 *   first read of `handlers`), never at creation, so `next build` never calls it.
 * - **Once**: its result is kept for the life of the route handlers. Requests that arrive while
 *   a returned promise is pending wait for that same call.
 * - **Errors**: if it throws or its promise rejects, the requests waiting for that call are
 *   answered `500` `application/problem+json`, `code: 'configuration_error'`, whose `detail`
 *   says that the options function failed (and the error's name; the message, which may hold
 *   a connection string, goes only to the log, through `console.error`, since the options and
 *   their `logger` are what failed). Nothing is kept: the next request calls it again. Options
 *   it returns that cannot work (no webhook secret, say) are kept and answered like the object
 *   forms': logged once through the options' `logger`, then every request gets the 500.
 * - **Ready**: the returned object's `ready()` makes the call as a first request would and
 *   settles with it ({@link NextRouteHandlers.ready}); reading its `handlers` while the call is
 *   pending throws.
 * - **Types**: a property of the returned options that is not an option (a misspelt `secert:`)
 *   is a compile error, as in an object literal passed directly, sync or async:
 *   `Type 'string' is not assignable to type '"'secert' is not an option of createNextRouteHandlers"'`.
 *
 * @example
 * ```ts
 * // app/api/pipeline/[...path]/route.ts
 * import { createNextRouteHandlers } from 'pipeline-status-sdk/next'
 * import { getPrisma } from '@/lib/prisma'
 *
 * // Called at the first request, not when Next.js loads the module.
 * export const { GET, POST } = createNextRouteHandlers(() => ({
 *   prisma: getPrisma(),
 *   secret: process.env.PIPELINE_WEBHOOK_SECRET,
 *   onRunCompleted: async (tx, run, payload) => {
 *     // tx is the PrismaClient's transaction client, as with the object form.
 *   },
 * }))
 * ```
 */
export function createNextRouteHandlers<
  Client extends PrismaStoreClient = never,
  Tx = never,
  Native extends Request = Request,
  Fn = unknown,
>(
  options: (() => NextRouteHandlersLazyOptions<Client, Tx, Native> | PromiseLike<NextRouteHandlersLazyOptions<Client, Tx, Native>>) &
    Fn &
    OnlyOptionsFunction<Fn>,
): NextRouteHandlers
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
 * For options typed as either form (`prisma` or `store`), such as options chosen at run time,
 * given as an object or by a function (called at the first request, once, as above).
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
 *
 * @example
 * ```ts
 * // app/api/pipeline/[...path]/route.ts
 * import { createNextRouteHandlers, type NextRouteHandlersOptions } from 'pipeline-status-sdk/next'
 * import { MemoryStore } from 'pipeline-status-sdk/server'
 *
 * async function pipelineOptions(): Promise<NextRouteHandlersOptions> {
 *   if (!process.env.DATABASE_URL) return { store: new MemoryStore() }
 *   const { getPrisma } = await import('@/lib/prisma')
 *   return { prisma: getPrisma() }
 * }
 * export const { GET, POST } = createNextRouteHandlers(pipelineOptions)
 * ```
 */
// Last: when no overload matches, the compiler shows only the last one's error, and this one's
// names a misspelt option, in an object (TypeScript's own excess-property check) or in what a
// function returns (OnlyOptionsFunction).
export function createNextRouteHandlers<
  Client extends PrismaStoreClient = never,
  Tx = never,
  Native extends Request = Request,
  Fn = unknown,
>(
  options:
    | NextRouteHandlersOptions<unknown>
    | ((() => NextRouteHandlersLazyOptions<Client, Tx, Native> | PromiseLike<NextRouteHandlersLazyOptions<Client, Tx, Native>>) &
        Fn &
        OnlyOptionsFunction<Fn>),
): NextRouteHandlers
export function createNextRouteHandlers(options: NextRouteHandlersOptions<unknown> | (() => unknown)): NextRouteHandlers {
  // Next.js has no start-up to refuse: it loads a route module on the first request to it, and
  // a module that throws turns every request into an empty 500 with nothing useful in the log.
  // So a configuration error (no WEBHOOK_SECRET, say) is logged once, naming what is missing,
  // and each request gets a problem+json 500 `configuration_error`. `next build` loads every
  // route module too, usually without the server's secrets: during the build the handlers are
  // not created at all, so the build neither fails nor logs.
  let created: Created | undefined
  // The options once known: given as an object, or returned by the options function.
  let resolved = typeof options === 'function' ? undefined : options
  // The options function's call while its promise is pending, shared by the requests that wait.
  let pending: Promise<Created | OptionsFailed> | undefined

  const create = ({ runIdParam = 'runId', ...rest }: NextRouteHandlersOptions<unknown>): Created => {
    try {
      return { handlers: createPipelineStatusHandlers(rest as PipelineStatusHandlersOptions<unknown>), runIdParam }
    } catch (error) {
      if (!isServerConfigurationError(error)) throw error
      // One line: the message names what is missing; a stack would only bury it.
      safeLogger(rest.logger ?? consoleLogger).error(
        `pipeline-status: the route handlers are misconfigured and answer 500 configuration_error: ${error.message}`,
      )
      return { error }
    }
  }

  /** The options function threw or rejected: logged, answered, and not kept (the next request calls it again). */
  const optionsFailed = (error: unknown): OptionsFailed => {
    // The options' logger is part of what failed: the console it is.
    safeLogger(consoleLogger).error(
      `pipeline-status: the options function of createNextRouteHandlers failed, so the requests waiting for it are answered 500 configuration_error ` +
        `(ready() rejects) and the next request, or ready(), calls it again: ${oneLine(errorMessage(error))}`,
      { error },
    )
    return { failed: error }
  }

  /** What the options function returned, kept and used (the handlers' settings check the options themselves). */
  const accept = (value: unknown): Created | OptionsFailed => {
    if (typeof value !== 'object' || value === null) {
      return optionsFailed(new TypeError(`it returned ${value === null ? 'null' : typeof value}, not an options object`))
    }
    resolved = value as NextRouteHandlersOptions<unknown>
    return (created = create(resolved))
  }

  /** The handlers (or why there are none), at once when known, else the pending options call's. */
  const load = (): Created | OptionsFailed | Promise<Created | OptionsFailed> => {
    if (created) return created
    if (resolved) return (created = create(resolved))
    if (pending) return pending
    let returned: unknown
    try {
      returned = (options as () => unknown)()
    } catch (error) {
      return optionsFailed(error)
    }
    if (!isPromiseLike(returned)) return accept(returned)
    const call = Promise.resolve(returned).then(accept, optionsFailed)
    pending = call
    const done = () => {
      pending = undefined
    }
    void call.then(done, done)
    return call
  }
  if (typeof options !== 'function' && globalThis.process?.env?.['NEXT_PHASE'] !== 'phase-production-build') load()

  const respondTo = (loaded: Created | OptionsFailed, respond: (ready: Ready) => Promise<Response>): Promise<Response> => {
    if ('handlers' in loaded) return respond(loaded)
    if ('error' in loaded) {
      return Promise.resolve(
        problemResponse('configuration_error', { detail: 'The pipeline-status route handlers are not configured; the server log says what is missing' }),
      )
    }
    const name = loaded.failed instanceof Error ? ` (${loaded.failed.name})` : ''
    return Promise.resolve(
      problemResponse('configuration_error', {
        detail: `The options function of the pipeline-status route handlers failed${name}; the server log has its message, and the next request calls it again`,
      }),
    )
  }
  const answer = (respond: (ready: Ready) => Promise<Response>): Promise<Response> => {
    const loaded = load()
    return loaded instanceof Promise ? loaded.then((settled) => respondTo(settled, respond)) : respondTo(loaded, respond)
  }

  /** A per-route handler that takes the run id from the `[runId]` segment (a route of one run). */
  const byParam =
    (route: RunRouteName): NextRunRouteHandler =>
    async (request, context) => {
      let params: Record<string, NextParamValue> | undefined
      try {
        params = await context?.params
      } catch {
        params = undefined
      }
      // Without the segment, the handler falls back to the request path under basePath.
      return answer(({ handlers, runIdParam }) => {
        const value = params?.[runIdParam]
        return handlers[route](request, typeof value === 'string' ? value : undefined)
      })
    }
  // One per-route handler for each route of the table: a route of one run takes its id from the
  // segment; a route without parameters takes just the request.
  const perRoute = Object.fromEntries(
    (Object.keys(ROUTE_METHODS) as RouteName[]).map((route) => [
      route,
      isRunRoute(route) ? byParam(route) : (request: Request) => answer(({ handlers }) => handlers[route](request)),
    ]),
  ) as { [R in RouteName]: NextRouteHandlers[R] }

  const fetch = (request: Request) => answer(({ handlers }) => handlers.fetch(request))
  const createdHandlers = () => (created && 'handlers' in created ? created.handlers : undefined)
  return {
    GET: fetch,
    POST: fetch,
    PUT: fetch,
    PATCH: fetch,
    DELETE: fetch,
    OPTIONS: fetch,
    ...perRoute,
    close: async () => {
      // Handlers a pending options call is about to create are closed too.
      if (pending) await pending.catch(() => undefined)
      await createdHandlers()?.close()
    },
    ready: async () => {
      const loaded = await load()
      if ('error' in loaded) throw loaded.error
      if ('failed' in loaded) {
        throw new ServerConfigurationError(
          `The options function of createNextRouteHandlers failed, and the next request (or ready()) calls it again: ${oneLine(errorMessage(loaded.failed))}`,
          { cause: loaded.failed },
        )
      }
    },
    liveStats: () => createdHandlers()?.liveStats() ?? emptyLiveStats(),
    readStats: () => createdHandlers()?.readStats() ?? emptyReadStats(),
    get handlers() {
      const loaded = load()
      if (loaded instanceof Promise) {
        throw new Error(
          'pipeline-status: the route handlers are not created yet: the promise their options function returned has not settled (they are created at the first request); `await ready()` waits for them',
        )
      }
      if ('error' in loaded) throw loaded.error
      if ('failed' in loaded) throw loaded.failed
      return loaded.handlers
    },
  }
}

/** The created handlers and the segment that names the run, or the configuration error that stopped them. */
type Created = Ready | { error: ServerConfigurationError }

/** Created handlers, with the name of the `[runId]` segment of one-file-per-route apps. */
interface Ready {
  handlers: PipelineStatusHandlers
  runIdParam: string
}

/** A call of the options function that threw or rejected (with what it threw). */
interface OptionsFailed {
  failed: unknown
}

/** Whether `value` is a promise or another thenable. */
function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/** The routes whose handlers take a run id: every route with `{runId}` in its path. */
type RunRouteName = { [R in RouteName]: 'runId' extends RouteParamName<R> ? R : never }[RouteName]

function isRunRoute(route: RouteName): route is RunRouteName {
  return routeSpec(route).path.includes('{runId}')
}
