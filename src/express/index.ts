/**
 * An Express 5 router over the Web-standard handlers of `pipeline-status-sdk/server`. Through
 * the package's Node bridge it turns the Node request into a `Request` whose body streams the
 * raw bytes (so signatures are checked over exactly what was sent and `maxBodyBytes` holds while
 * reading), and streams the `Response` back.
 *
 * Frameworks that serve `fetch(request)` (Hono, Bun, Deno, Cloudflare Workers) need no adapter:
 * use `createPipelineStatusHandlers(options).fetch`.
 *
 * @example
 * ```ts
 * import express from 'express'
 * import { createExpressRouter } from 'pipeline-status-sdk/express'
 *
 * const app = express()
 * app.use('/api/pipeline', createExpressRouter({ prisma }))
 * app.listen(3000)
 * ```
 *
 * @module pipeline-status-sdk/express
 */
import { type NextFunction, type Request as ExpressRequest, type Response as ExpressResponse, Router } from 'express'
import { findRoute, type FoundRoute, routeSpec } from '../contract/routes.js'
import { createHandlerCore, type HandlerCore, type PipelineStatusHandlers } from '../server/handlers.js'
import type { PipelineStatusHandlersOptions, PrismaHandlersOptions, StoreHandlersOptions } from '../server/handler-options.js'
import { directEventsOf } from '../server/http/direct-events.js'
import { ConnectionDrain, readSmallBody, toWebRequest, writeWebResponse } from '../server/http/node-bridge.js'
import { markRebuiltBody } from '../server/http/rebuilt-body.js'
import { problemResponse } from '../server/http/problem-response.js'
import type { PrismaStoreClient } from '../server/storage/prisma-client.js'
import type { LiveStreamStats } from '../server/live/event-stream.js'
import type { ReadStats } from '../server/storage/read-source.js'

// The pipelines file of the mock CLI and the Express example (Node only, so here, not in /server).
export { loadPipelinesFile, parsePipelines, type PipelineCatalogues } from '../server/pipelines-file.js'

/** Options of {@link createExpressRouter}, beyond those of the server handlers. */
export interface ExpressRouterSettings {
  /**
   * What to do with a path under the mount point that is none of the contract's routes: answer 404
   * `route_not_found` as problem+json (`false`), or pass it on to the app's next handlers (`true`),
   * e.g. when the app serves its own routes under the same prefix.
   * @default false
   */
  passUnmatched?: boolean | undefined
}

/**
 * Options of {@link createExpressRouter}: those of `createPipelineStatusHandlers` except
 * `basePath` (the router serves the routes wherever it is mounted) plus {@link ExpressRouterSettings}.
 * The `authorize` hook gets Express's own `req` as `native` (with `req.session`, `req.user`).
 */
export type ExpressRouterOptions<Tx = unknown> = DistributiveOmit<PipelineStatusHandlersOptions<Tx, ExpressRequest>, 'basePath'> &
  ExpressRouterSettings

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never
type WithoutBasePath<T> = Omit<T, 'basePath'>

/** A request whose body a body parser may already have read, keeping the raw bytes or not. */
interface MaybeParsedRequest extends ExpressRequest {
  /** The raw body, as apps commonly keep it with `express.json({ verify })`. */
  rawBody?: unknown
}

/**
 * Creates an Express 5 router serving the contract's routes relative to where it is mounted:
 * `app.use('/api/pipeline', createExpressRouter(options))` serves
 * `POST /api/pipeline/{runId}/stage-update` and the rest.
 *
 * The router reads the raw body itself. If a body parser already read it (`express.json()`
 * mounted before the router), it uses `req.rawBody` when the app keeps it
 * (`express.json({ verify: (req, _res, buf) => { req.rawBody = buf } })`). Without it, unsigned
 * requests are served from `req.body` (the same JSON value), but a signed request is answered
 * `500 body_already_consumed` whatever its content (the bytes that were signed are gone; the
 * runner retries), and the fix is logged once: mount the router before the parser, or keep
 * `req.rawBody`. Such a parser also applies its own limit (100 kB by default) and answers its
 * own errors.
 *
 * The live status stream (`GET {runId}/events`) is piped to the response event by event, with
 * no buffering in the router; keep compression middleware off that path (the stream says
 * `Cache-Control: no-transform`). Call the router's `close()` before `server.close()` so open
 * streams end and the server can stop.
 *
 * @example
 * ```ts
 * import express from 'express'
 * import { createExpressRouter } from 'pipeline-status-sdk/express'
 * import { prisma } from './prisma.js' // your app's PrismaClient
 *
 * const app = express()
 * app.use('/api/pipeline', createExpressRouter({ prisma, secret: ['new', 'old'] }))
 * app.use(express.json()) // after the router, or with `verify` keeping req.rawBody
 * ```
 */
export function createExpressRouter<Client extends PrismaStoreClient>(
  options: WithoutBasePath<PrismaHandlersOptions<Client, ExpressRequest>> & ExpressRouterSettings,
): PipelineStatusRouter
/**
 * The same router on a `Store` of your own instead of a PrismaClient (a `MemoryStore` for tests
 * and demos, a `PrismaStore` you configured, any other `Store`).
 *
 * @example
 * ```ts
 * import express from 'express'
 * import { createExpressRouter } from 'pipeline-status-sdk/express'
 * import { MemoryStore } from 'pipeline-status-sdk/server'
 *
 * const app = express()
 * app.use('/api/pipeline', createExpressRouter({ store: new MemoryStore(), secret: ['dev-secret'] }))
 * ```
 */
export function createExpressRouter<Tx>(
  options: WithoutBasePath<StoreHandlersOptions<Tx, ExpressRequest>> & ExpressRouterSettings,
): PipelineStatusRouter
/**
 * For options typed as either form (`prisma` or `store`), such as options chosen at run time.
 *
 * @example
 * ```ts
 * import express from 'express'
 * import { createExpressRouter, type ExpressRouterOptions } from 'pipeline-status-sdk/express'
 * import { MemoryStore } from 'pipeline-status-sdk/server'
 * import { prisma } from './prisma.js' // your app's PrismaClient
 *
 * const options: ExpressRouterOptions = process.env.DATABASE_URL ? { prisma } : { store: new MemoryStore() }
 * express().use('/api/pipeline', createExpressRouter(options))
 * ```
 */
export function createExpressRouter(options: ExpressRouterOptions<unknown>): PipelineStatusRouter
export function createExpressRouter(options: ExpressRouterOptions<unknown>): PipelineStatusRouter {
  const { passUnmatched = false, ...rest } = options as ExpressRouterOptions<unknown> & { basePath?: unknown }
  // Routes are matched relative to the mount point, so the handlers' own base is the root.
  const core = createHandlerCore({ ...rest, basePath: '' } as unknown as PipelineStatusHandlersOptions<unknown>)
  const { handlers } = core
  const router = Router()
  const connections = new ConnectionDrain()
  router.use((req: ExpressRequest, res: ExpressResponse, next: NextFunction) => {
    // Matched once: the same match decides passing on, the stream's signal and the dispatch.
    const found = findRoute(req.method, req.path, '')
    if (passUnmatched && !found) {
      next()
      return
    }
    void serve(core, found, connections, req, res)
  })
  const close = async (): Promise<void> => {
    // First, so that the reconnects of the streams ended below are answered Connection: close.
    connections.drain()
    await handlers.close()
  }
  return Object.assign(router, { close, liveStats: () => handlers.liveStats(), readStats: () => handlers.readStats() })
}

/** The router of {@link createExpressRouter}: an Express `Router` that can end its live streams. */
export type PipelineStatusRouter = Router & {
  /**
   * Ends every open live stream cleanly and stops the run watcher (and its LISTEN connection);
   * call it before `server.close()`, which otherwise waits for the streams. From then on the
   * router answers with `Connection: close` and ends the connections it served once their
   * answers are written (idle ones at once), so `server.close()` is not held up by clients that
   * reconnect on kept-alive sockets; new stream requests get `503 too_many_streams`.
   */
  close(): Promise<void>
  /**
   * What the router's live streams have done so far ({@link PipelineStatusHandlers.liveStats}):
   * `{ openStreams, slowStreamsClosed, closedStreams }`, counts; zeros before the first stream. For metrics.
   */
  liveStats(): LiveStreamStats
  /**
   * With `readReplica`: reads served by the replica and fallbacks to the primary
   * ({@link PipelineStatusHandlers.readStats}). For metrics.
   */
  readStats(): ReadStats
}

/**
 * Answers one request the router matched (or, without `passUnmatched`, did not): the handlers'
 * Response written to `res`, the connection counted open until then so that `close()` can drain it.
 */
function serve(
  core: HandlerCore,
  found: FoundRoute | undefined,
  connections: ConnectionDrain,
  req: MaybeParsedRequest,
  res: ExpressResponse,
): Promise<void> {
  connections.begin(req)
  const gone = clientGone(found, req, res)
  let streaming = false
  // Promise callbacks, not one async function, and nothing left pending while a live stream is
  // open (for hours, maybe): a suspended function or a pending chain would keep its Request,
  // Response and closures alive that long. Nor any closure of this function: its context holds
  // `gone` (the client-gone controller and its listeners); the stream's own `close` listener is
  // one shared function of `connections` ({@link ConnectionDrain.endOnClose}).
  return answer(core, found, req, res, gone?.signal)
    .then((response) => {
      connections.prepare(res)
      if (directEventsOf(response)) {
        streaming = true
        // From here the stream ends itself when the client goes away (writeWebResponse), and
        // this request is answered for good: neither the client-gone signal nor Express's
        // routing closures need to live as long as the stream (a few KB per idle stream).
        gone?.release()
        ;(req as { next?: unknown }).next = undefined
        // In flight until the response closes (ConnectionDrain), without a pending promise.
        if (res.destroyed) streaming = false
        else connections.endOnClose(res)
      }
      return writeWebResponse(res, response)
    })
    .catch(async () => {
      // Only the adapter itself can get here (the handlers never throw): answer if still possible.
      if (res.headersSent) return void res.destroy()
      await writeWebResponse(res, problemResponse('internal_error', { detail: 'The request could not be processed' })).catch(() => res.destroy())
    })
    .finally(() => {
      if (!streaming) connections.end(req)
    })
}

/** The handlers' answer to `req`. */
async function answer(core: HandlerCore, found: FoundRoute | undefined, req: MaybeParsedRequest, res: ExpressResponse, signal: AbortSignal | undefined): Promise<Response> {
  const read = alreadyReadBody(req)
  const request = toWebRequest(req, `${req.protocol}://${req.get('host') ?? 'localhost'}`, {
    // The full URL, as the app sees it (for `authorize`); routing uses the mount-relative path.
    path: req.originalUrl,
    body: read?.bytes,
    received: read ? undefined : await readSmallBody(req),
    signal,
    // writeWebResponse below writes a live stream straight to `res`.
    directEvents: true,
  })
  if (read?.rebuilt) markRebuiltBody(request)
  return core.dispatch(request, found, req)
}

/**
 * A signal that aborts when the client goes away before the answer is written, for a route whose
 * answer is a stream (the table's `stream`: `GET …/events`, which reads it to stop streaming);
 * `undefined` for every other route, whose answers are written whole. A `Request` built with a signal registers it with a
 * `FinalizationRegistry` and a `WeakRef` (undici), which keeps the request alive until a full
 * garbage collection: on the stage-update and status paths that raised the server's CPU and p99
 * latency (bench/README.md, "The p99 tail").
 */
function clientGone(found: FoundRoute | undefined, req: ExpressRequest, res: ExpressResponse): { signal: AbortSignal; release(): void } | undefined {
  if (req.method !== 'GET' || found === undefined || routeSpec(found.route).stream !== true) return undefined
  const controller = new AbortController()
  const onClose = (): void => {
    if (!res.writableFinished) controller.abort()
  }
  res.on('close', onClose)
  // `release`: stop watching (the answer now watches the client itself).
  return { signal: controller.signal, release: () => void res.off('close', onClose) }
}

/**
 * The body when a body parser already consumed the stream: the raw bytes it kept (`rebuilt:
 * false`), or bytes rebuilt from the parsed value (`rebuilt: true`, never checked against a
 * signature). `undefined` when the stream is still unread and can be passed on as it is.
 */
function alreadyReadBody(req: MaybeParsedRequest): { bytes: Uint8Array; rebuilt: boolean } | undefined {
  // What body-parser itself checks (on-finished's isFinished) to skip a request already read.
  const consumed = req.readableEnded || (req.complete && !req.readable)
  if (!consumed || req.method === 'GET' || req.method === 'HEAD') return undefined
  const raw = req.rawBody
  if (raw instanceof Uint8Array) return { bytes: raw, rebuilt: false }
  // `express.raw()` keeps the bytes as they came.
  if (req.body instanceof Uint8Array) return { bytes: req.body, rebuilt: false }
  const body: unknown = typeof raw === 'string' ? raw : req.body
  if (body === undefined) return { bytes: new Uint8Array(0), rebuilt: true }
  // A string was decoded by its parser, so even it may differ from the bytes that were sent.
  return { bytes: new TextEncoder().encode(typeof body === 'string' ? body : JSON.stringify(body)), rebuilt: true }
}
