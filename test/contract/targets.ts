/**
 * Every target the contract suite runs against: the Web handlers in memory, the Next.js route
 * handlers (catch-all and one file per route), the MSW mock in-process, the mock server over
 * HTTP, and the Express router over a real port on a Prisma store.
 */
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { setupServer } from 'msw/node'
import { matchRoute, type RouteName } from 'pipeline-status-sdk'
import { createExpressRouter } from 'pipeline-status-sdk/express'
import { createPipelineMock, startMockServer } from 'pipeline-status-sdk/msw'
import { createNextRouteHandlers } from 'pipeline-status-sdk/next'
import {
  createPipelineStatusHandlers,
  MemoryStore,
  type Store,
  StoreUnavailableError,
  type StoreHandlersOptions,
} from 'pipeline-status-sdk/server'
import { buildRequest, type ContractTarget, SECRET, type TargetClient, type TargetOptions } from './suite/harness.js'

export const BASE_URL = 'http://app.test/api/pipeline'

/** A store that fails every call the way the scenario asks. */
export function failingStore(kind: 'unavailable' | 'throwing'): Store<unknown> {
  const fail = async (): Promise<never> => {
    throw kind === 'unavailable'
      ? new StoreUnavailableError('connect ECONNREFUSED 127.0.0.1:5432')
      : new Error('connect postgres://admin:hunter2@db.internal:5432/app failed')
  }
  return { transaction: fail, insertRun: fail, getRun: fail }
}

/** The in-memory stores of scenarios that restart their handlers (`storeKey`), by key. */
const sharedStores = new Map<string, MemoryStore>()

/** The in-memory store of a scenario: its shared one when it names a key, else a new one. */
export function memoryStoreFor(options: TargetOptions): MemoryStore {
  if (options.storeKey === undefined) return new MemoryStore()
  let store = sharedStores.get(options.storeKey)
  if (!store) {
    store = new MemoryStore()
    sharedStores.set(options.storeKey, store)
  }
  return store
}

/** {@link handlerOptions} on a store the scenario's `seed` has written to first. */
export async function seededOptions(options: TargetOptions, store: Store<unknown>): Promise<StoreHandlersOptions<unknown, unknown>> {
  for (const run of options.runs ?? []) await store.insertRun(run)
  await options.seed?.(store)
  return handlerOptions(options, store)
}

/** Handler options for a scenario on a given store. */
export function handlerOptions(options: TargetOptions, store: Store<unknown>): StoreHandlersOptions<unknown, unknown> {
  const { store: kind, bodyParser: _bodyParser, runs: _runs, storeKey: _storeKey, seed: _seed, ...rest } = options
  return {
    ...rest,
    store: kind ? failingStore(kind) : store,
    secret: options.secret ?? SECRET,
    logger: options.logger ?? { warn: () => {}, error: () => {} },
    onRunCompleted: options.onRunCompleted as StoreHandlersOptions<unknown>['onRunCompleted'],
  }
}

/** The Web handlers called in memory with `handlers.fetch`. */
export const memoryTarget: ContractTarget = {
  async start(options) {
    const handlers = createPipelineStatusHandlers(await seededOptions(options, memoryStoreFor(options)))
    return { send: (spec) => handlers.fetch(buildRequest(BASE_URL, spec)), close: async () => {} }
  },
}

/** The Next.js catch-all route: `export const { GET, POST } = createNextRouteHandlers(...)`. */
export const nextCatchAllTarget: ContractTarget = {
  transport: 'next',
  async start(options) {
    // As a route file would export them; Next.js calls the export named like the method.
    const route: Record<string, (request: Request) => Promise<Response>> = createNextRouteHandlers(
      await seededOptions(options, memoryStoreFor(options)),
    ) as never
    const { GET, POST, PUT, PATCH, DELETE, OPTIONS } = route
    const exported: Record<string, ((request: Request) => Promise<Response>) | undefined> = { GET, POST, PUT, PATCH, DELETE, OPTIONS }
    return {
      send: (spec) => {
        const request = buildRequest(BASE_URL, spec)
        // Next.js answers HEAD with the GET export when there is no HEAD one.
        const handler = exported[request.method] ?? (request.method === 'HEAD' ? GET : undefined)
        if (!handler) throw new Error(`The catch-all exports no ${request.method}`)
        return handler(request)
      },
      close: async () => {},
    }
  },
}

/**
 * One file per route, as the original app has them: Next.js calls the handler exported by
 * `app/api/pipeline/[runId]/<route>/route.ts` with `{ params: Promise<{ runId }> }`. Paths that
 * have no such file fall back to the catch-all, as a Next.js app with both would.
 */
export const nextPerRouteTarget: ContractTarget = nextPerRoute({ lazy: false })

/**
 * {@link nextPerRouteTarget} with its options from an async function, which seeds the store and
 * is called at the first request: the function form answers exactly like the object form.
 */
export const nextPerRouteLazyTarget: ContractTarget = nextPerRoute({ lazy: true })

function nextPerRoute({ lazy }: { lazy: boolean }): ContractTarget {
  return {
    transport: 'next',
    async start(options) {
      const next = lazy
        ? createNextRouteHandlers(() => seededOptions(options, memoryStoreFor(options)))
        : createNextRouteHandlers(await seededOptions(options, memoryStoreFor(options)))
      const files: Partial<Record<RouteName, Record<string, typeof next.status | undefined>>> = {
        stageUpdate: { POST: next.stageUpdate },
        status: { GET: next.status },
        complete: { POST: next.complete },
        heartbeat: { POST: next.heartbeat },
        cancel: { POST: next.cancel },
        events: { GET: next.events },
        runTags: { POST: next.runTags },
        runMetadata: { POST: next.runMetadata },
      } as const
      return {
        send: async (spec) => {
          const request = buildRequest(BASE_URL, spec)
          const match = matchRoute(new URL(request.url).pathname)
          if (match?.route === 'createRun' && request.method === 'POST') return next.createRun(request)
          if (match && 'runId' in match) {
            const exports = files[match.route] ?? {}
            // Next.js answers HEAD with the GET export when there is no HEAD one.
            const handler = exports[request.method] ?? (request.method === 'HEAD' ? exports['GET'] : undefined)
            // Next.js decodes the segment before passing it.
            if (handler) return handler(request, { params: Promise.resolve({ runId: match.runId }) })
          }
          return request.method === 'GET' || request.method === 'HEAD' ? next.GET(request) : next.POST(request)
        },
        close: async () => {},
      }
    },
  }
}

/**
 * The MSW mock in-process: `setupServer(...mock.handlers)` intercepts the global `fetch`, with
 * `onUnhandledFrame: 'error'` so a request the mock does not match fails the scenario.
 */
export const mswTarget: ContractTarget = {
  async start(options) {
    const mock = createPipelineMock({ baseUrl: new URL(BASE_URL).origin, ...(await seededOptions(options, memoryStoreFor(options))) })
    const server = setupServer(...mock.handlers)
    server.listen({ onUnhandledFrame: 'error' })
    return {
      send: (spec) => fetch(buildRequest(BASE_URL, spec)),
      close: async () => server.close(),
    }
  },
}

/** The mock served over real HTTP by `startMockServer`, the same server `pipeline-status mock` runs. */
export const mockServerTarget: ContractTarget = {
  transport: 'socket',
  async start(options) {
    const server = await startMockServer({ port: 0, ...(await seededOptions(options, memoryStoreFor(options))) })
    return httpClient(`${server.url}/api/pipeline`, () => server.close())
  },
}

/** A client that sends the scenario requests over HTTP to `base` (ending in the mount path). */
export function httpClient(base: string, close: () => Promise<void>): TargetClient {
  return { send: (spec) => fetch(buildRequest(base, spec)), close, baseUrl: base }
}

/** Serves an app on a free port of 127.0.0.1. */
export async function listen(app: express.Express): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()))
        server.closeAllConnections()
      }),
  }
}

/**
 * The Express router mounted at `/api/pipeline` over a real port, on the store `store()` gives.
 * A scenario that needs an unreachable database gets `unavailable()`: a real Prisma store whose
 * client points at a closed port.
 */
export function expressTarget(stores: { store: () => Store<unknown>; unavailable: () => Store<unknown> }): ContractTarget {
  return {
    expressApp: true,
    transport: 'socket',
    async start(options) {
      const { store: kind, bodyParser, ...rest } = options
      const store = kind === 'unavailable' ? stores.unavailable() : kind === 'throwing' ? failingStore(kind) : stores.store()
      const app = express()
      if (bodyParser === 'json') app.use(express.json())
      if (bodyParser === 'json-keeping-raw') {
        app.use(express.json({ verify: (req, _res, buf) => void ((req as { rawBody?: Buffer }).rawBody = buf) }))
      }
      app.use('/api/pipeline', createExpressRouter(await seededOptions(rest, store)))
      const server = await listen(app)
      return httpClient(`${server.url}/api/pipeline`, server.close)
    },
  }
}
