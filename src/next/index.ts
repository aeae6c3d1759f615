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
import {
  createPipelineStatusHandlers,
  type PipelineStatusHandlers,
  type PipelineStatusHandlersOptions,
  type PrismaHandlersOptions,
  type StoreHandlersOptions,
} from '../server/handlers.js'
import type { PrismaStoreClient } from '../server/prisma-store.js'

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
  /** `export const POST = handlers.stageUpdate` in `app/api/pipeline/[runId]/stage-update/route.ts`. */
  stageUpdate: NextRunRouteHandler
  /** `export const GET = handlers.status` in `app/api/pipeline/[runId]/status/route.ts`. */
  status: NextRunRouteHandler
  /** `export const POST = handlers.complete` in `app/api/pipeline/[runId]/complete/route.ts`. */
  complete: NextRunRouteHandler
  /** `export const POST = handlers.createRun` in `app/api/pipeline/runs/route.ts`. */
  createRun: (request: Request) => Promise<Response>
  /** The underlying Web-standard handlers. */
  handlers: PipelineStatusHandlers
}

/**
 * Creates the App Router route handlers. With a catch-all route, `basePath` (default
 * `/api/pipeline`) must be the folder that holds `[...path]`. Apps with one file per route use
 * the per-route handlers, which take the run id from the `[runId]` segment.
 *
 * Create them once per module (not per request): the replay cache of signed messages lives in
 * the instance.
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
export function createNextRouteHandlers<Tx, Native extends Request = Request>(
  options: StoreHandlersOptions<Tx, Native> & NextRouteHandlersSettings,
): NextRouteHandlers
export function createNextRouteHandlers(options: NextRouteHandlersOptions<unknown>): NextRouteHandlers
export function createNextRouteHandlers(options: NextRouteHandlersOptions<unknown>): NextRouteHandlers {
  const { runIdParam = 'runId', ...rest } = options
  const create = () => createPipelineStatusHandlers(rest as PipelineStatusHandlersOptions<unknown>)
  // `next build` imports every route module to collect its configuration, usually without the
  // server's secrets: creating the handlers then would throw for a missing WEBHOOK_SECRET. So
  // during the build they are created on first use; at run time at once, so a misconfigured
  // server fails when the route loads, not with an error per request.
  let instance = globalThis.process?.env?.['NEXT_PHASE'] === 'phase-production-build' ? undefined : create()
  const current = () => (instance ??= create())

  const byParam =
    (handler: (handlers: PipelineStatusHandlers) => PipelineStatusHandlers['stageUpdate']): NextRunRouteHandler =>
    async (request, context) => {
      let value: NextParamValue
      try {
        value = (await context?.params)?.[runIdParam]
      } catch {
        value = undefined
      }
      // Without the segment, the handler falls back to the request path under basePath.
      return handler(current())(request, typeof value === 'string' ? value : undefined)
    }

  const fetch = (request: Request) => current().fetch(request)
  return {
    GET: fetch,
    POST: fetch,
    PUT: fetch,
    PATCH: fetch,
    DELETE: fetch,
    stageUpdate: byParam((h) => h.stageUpdate),
    status: byParam((h) => h.status),
    complete: byParam((h) => h.complete),
    createRun: (request) => current().createRun(request),
    get handlers() {
      return current()
    },
  }
}
