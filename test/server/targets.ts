/**
 * Targets the contract scenarios run against: the Web handlers in memory and the Next.js
 * route handlers (catch-all and one file per route). The Express target lives with its test,
 * as it needs PostgreSQL.
 */
import { matchRoute } from 'pipeline-status-sdk'
import { createNextRouteHandlers } from 'pipeline-status-sdk/next'
import {
  createPipelineStatusHandlers,
  MemoryStore,
  type Store,
  StoreUnavailableError,
  type StoreHandlersOptions,
} from 'pipeline-status-sdk/server'
import { buildRequest, type ContractTarget, SECRET, type TargetOptions } from './contract-scenarios.js'

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

/** Handler options for a scenario on a given store. */
export function handlerOptions(options: TargetOptions, store: Store<unknown>): StoreHandlersOptions<unknown> {
  const { store: kind, ...rest } = options
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
    const handlers = createPipelineStatusHandlers(handlerOptions(options, new MemoryStore()))
    return { send: (spec) => handlers.fetch(buildRequest(BASE_URL, spec)), close: async () => {} }
  },
}

/** The Next.js catch-all route: `export const { GET, POST } = createNextRouteHandlers(...)`. */
export const nextCatchAllTarget: ContractTarget = {
  async start(options) {
    // As a route file would export them; Next.js calls the export named like the method.
    const route: Record<string, (request: Request) => Promise<Response>> = createNextRouteHandlers(
      handlerOptions(options, new MemoryStore()),
    ) as never
    const { GET, POST, PUT, PATCH, DELETE } = route
    const exported: Record<string, ((request: Request) => Promise<Response>) | undefined> = { GET, POST, PUT, PATCH, DELETE }
    return {
      send: (spec) => {
        const request = buildRequest(BASE_URL, spec)
        const handler = exported[request.method]
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
export const nextPerRouteTarget: ContractTarget = {
  async start(options) {
    const next = createNextRouteHandlers(handlerOptions(options, new MemoryStore()))
    const files = {
      stageUpdate: { POST: next.stageUpdate },
      status: { GET: next.status },
      complete: { POST: next.complete },
    } as const
    return {
      send: async (spec) => {
        const request = buildRequest(BASE_URL, spec)
        const match = matchRoute(new URL(request.url).pathname)
        if (match?.route === 'createRun' && request.method === 'POST') return next.createRun(request)
        if (match && match.route !== 'createRun') {
          const handler = (files[match.route] as Record<string, typeof next.status | undefined>)[request.method]
          // Next.js decodes the segment before passing it.
          if (handler) return handler(request, { params: Promise.resolve({ runId: match.runId }) })
        }
        return request.method === 'GET' ? next.GET(request) : next.POST(request)
      },
      close: async () => {},
    }
  },
}
