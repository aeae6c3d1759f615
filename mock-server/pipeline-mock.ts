import { http, type HttpHandler, HttpResponse } from 'msw'
import { ENV_WEBHOOK_SECRET } from '../src/contract/headers.js'
import type { PipelineRunRecord, RunStatusResponse } from '../src/contract/records.js'
import { findRoute, isRouteName, type RouteName, routeSpec } from '../src/contract/routes.js'
import { DEFAULT_PIPELINE } from '../src/contract/stages.js'
import type { OnRunEnded } from '../src/core/hooks.js'
import { createRun, failStaleRuns } from '../src/core/operations.js'
import { MemoryStore } from '../src/core/memory-store.js'
import type { Store } from '../src/core/store.js'
import { toRunRecord } from '../src/core/state-to-records.js'
import { resolvePipelines, runCatalogues } from '../src/server/pipelines.js'
import { type CreateRunOptions, createRun as createRunWithRules } from '../src/server/run-api.js'
import { type PipelineStatusHandlers, createPipelineStatusHandlers } from '../src/server/handlers.js'
import { DEFAULT_MAX_BODY_BYTES, type PipelineStatusHandlersSettings } from '../src/server/handler-options.js'
import { resolveWebhookSecrets } from '../src/server/auth/webhook-auth.js'
import { type Fault, FaultRegistry, faultResponse } from './faults.js'

/** The secret the mock accepts when none is configured and `WEBHOOK_SECRET` is unset. */
export const MOCK_DEFAULT_SECRET = 'mock-webhook-secret'

/** Options of {@link createPipelineMock}: the real handlers' settings, plus where the mock lives. */
export interface PipelineMockOptions extends Omit<PipelineStatusHandlersSettings<unknown>, 'secret'> {
  /**
   * The origin the mock answers for; requests to any other origin are left to msw's
   * `onUnhandledFrame`, so `'error'` keeps working.
   * @default 'http://localhost:3000'
   */
  baseUrl?: string | undefined
  /**
   * The accepted secret(s), read exactly as the real handlers read them (a string is a
   * comma-separated list; see `resolveWebhookSecrets`).
   * @default process.env.WEBHOOK_SECRET (comma-separated), else {@link MOCK_DEFAULT_SECRET}
   */
  secret?: string | readonly string[] | undefined
  /**
   * Create a run on its first stage update or completion instead of answering 404, for runners
   * that never call `POST /runs` (the original Python runner does not).
   * @default false
   */
  autoCreateRuns?: boolean | undefined
  /**
   * The store to keep runs in: pass a `MemoryStore` to share it between mocks, or any `Store`
   * (for example one that fails, to see the real 503 and 500 answers).
   * @default a new MemoryStore
   */
  store?: Store<unknown> | undefined
}

/** One request the mock received, for assertions on the wire. */
export interface RecordedRequest {
  /** The HTTP method. */
  method: string
  /** The full URL, as sent. */
  url: string
  /** The route it matched, if any. */
  route: RouteName | undefined
  /** The run id from the path (decoded), for the routes that have one. */
  runId: string | undefined
  /** The request's headers, names in lower case. */
  headers: Record<string, string>
  /** The raw body text as sent ('' for none), cut after the mock's `maxBodyBytes` (1 MiB by default). */
  body: string
  /** The status the mock answered, `0` for a dropped connection. */
  status: number
}

/** The mock: msw handlers plus what a test needs to arrange and inspect state. */
export interface PipelineMock {
  /** Request handlers for `setupServer(...mock.handlers)` or `server.use(...)`. */
  readonly handlers: HttpHandler[]
  /** The store behind the handlers. */
  readonly store: Store<unknown>
  /** The real handlers the mock runs, on its store. */
  readonly server: PipelineStatusHandlers
  /** Every request received, oldest first, until {@link PipelineMock.reset}. */
  readonly requests: RecordedRequest[]
  /** Handles one request like the msw handlers do (faults included); `undefined` for another origin or path. */
  fetch(request: Request): Promise<Response | undefined>
  /**
   * Creates a run (idempotent by id) and returns it as the server would: an id, or the body of
   * `POST /runs` (`{ id?, pipeline?, tags?, metadata? }`, checked by the same rules: a
   * `PayloadValidationError` naming the field for a wrong one).
   */
  createRun(run?: string | Omit<CreateRunOptions, 'stages' | 'pipelines' | 'now'>): Promise<PipelineRunRecord>
  /** Reads a run with its stages as `GET /status` would, or `undefined` for an unknown run. */
  getRun(runId: string): Promise<RunStatusResponse | undefined>
  /**
   * Fails every unfinished run silent for too long (on the mock's `clock`): no update or
   * heartbeat for more than `staleAfterMs` milliseconds, or 3 missed intervals for a run that
   * announced a heartbeat interval, as a stale-run sweeper on the real server would (with the
   * mock's `onRunEnded`), and returns them as the server would send them. For tests of how an app
   * or a runner deals with such runs.
   */
  sweepStaleRuns(staleAfterMs: number): Promise<PipelineRunRecord[]>
  /** Makes calls of a route (or `'*'`, every route) fail; see {@link Fault}. */
  fail(route: RouteName | '*', fault: Fault): void
  /** Removes the faults of a route, or all of them. */
  clearFaults(route?: RouteName | '*'): void
  /** Removes every fault and recorded request, and every run when the store is a `MemoryStore`. */
  reset(): void
}

/**
 * Creates MSW handlers that behave exactly like the real handlers, because they are the real
 * handlers (`createPipelineStatusHandlers`) on an in-memory store, behind a fault-injection layer.
 *
 * @example
 * ```ts
 * import { setupServer } from 'msw/node'
 * import { createPipelineMock } from 'pipeline-status-sdk/msw'
 *
 * const mock = createPipelineMock({ baseUrl: 'http://app.test', secret: 'test-secret' })
 * const server = setupServer(...mock.handlers)
 * server.listen({ onUnhandledFrame: 'error' })
 *
 * const run = await mock.createRun('run_1')
 * mock.fail('stageUpdate', { status: 503, retryAfterSeconds: 1, times: 2 })
 * ```
 */
export function createPipelineMock(options: PipelineMockOptions = {}): PipelineMock {
  const { baseUrl = 'http://localhost:3000', autoCreateRuns = false, store = new MemoryStore(), ...settings } = options
  const origin = new URL(baseUrl).origin
  // Options are read by the real handlers' own code; the mock adds only its default secret.
  const configured = settings.secret !== undefined || process.env[ENV_WEBHOOK_SECRET] !== undefined
  const secret = configured ? resolveWebhookSecrets(settings.secret) : [MOCK_DEFAULT_SECRET]
  const server = createPipelineStatusHandlers({ ...settings, secret, store })
  // The handlers' own resolution (they threw above for pipelines that cannot work).
  const pipelines = resolvePipelines(settings)
  const catalogues = runCatalogues(pipelines)
  const basePath = server.basePath
  const clock = settings.clock ?? (() => new Date())
  const faults = new FaultRegistry()
  const requests: RecordedRequest[] = []

  function isMockRequest(href: string): boolean {
    const url = new URL(href)
    return url.origin === origin && (url.pathname === basePath || url.pathname.startsWith(`${basePath}/`))
  }

  async function respond(request: Request): Promise<Response | undefined> {
    if (!isMockRequest(request.url)) return undefined
    const url = new URL(request.url)
    // By method and path: GET /runs (the list) and POST /runs (create) are two routes on one path.
    const found = findRoute(request.method, url.pathname, basePath)
    const route: RouteName | undefined = found && isRouteName(found.route) ? found.route : undefined
    const runId = route === undefined ? undefined : found?.params['runId']
    const body = await recordedBody(request, settings.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES)
    const record = (status: number) =>
      void requests.push({
        method: request.method,
        url: request.url,
        route,
        runId,
        headers: Object.fromEntries(request.headers),
        body,
        status,
      })

    const action = faults.take(route)
    if (action.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, action.latencyMs))
    if (action.kind === 'drop') {
      record(0)
      return Response.error()
    }
    if (action.kind === 'respond') {
      record(action.status)
      return faultResponse(action)
    }
    // The runner's routes of one run (the table's `caller: 'runner'`): a runner that never calls POST /runs.
    if (autoCreateRuns && runId !== undefined && route !== undefined && routeSpec(route).caller === 'runner') {
      // Of the pipeline `default`, as a run created without a pipeline is.
      await createRun(store, { id: runId, pipeline: DEFAULT_PIPELINE, catalogue: pipelines.get(DEFAULT_PIPELINE), now: clock() })
    }
    const response = await server.fetch(request)
    record(response.status)
    return response
  }

  return {
    // A predicate instead of a URL pattern: msw's pattern matching throws (a 500) for URLs over
    // 8192 characters, which the real handlers answer with 414.
    handlers: [http.all(({ request }) => isMockRequest(request.url), async ({ request }) => (await respond(request)) ?? HttpResponse.error())],
    store,
    server,
    requests,
    fetch: respond,
    async createRun(run) {
      const body = typeof run === 'string' ? { id: run } : (run ?? {})
      return (await createRunWithRules(store, { ...body, stages: settings.stages, pipelines: settings.pipelines, now: clock() })).run
    },
    async getRun(runId) {
      const snapshot = await store.getRun(runId)
      return snapshot ? catalogues.statusDocument(snapshot) : undefined
    },
    async sweepStaleRuns(staleAfterMs) {
      const failed = await failStaleRuns(store, {
        staleAfterMs,
        now: clock(),
        limit: Number.MAX_SAFE_INTEGER,
        onRunEnded: settings.onRunEnded as OnRunEnded<unknown> | undefined,
      })
      return failed.map(toRunRecord)
    },
    fail: (route, fault) => faults.set(route, fault),
    clearFaults: (route) => faults.clear(route),
    reset() {
      if (store instanceof MemoryStore) store.reset()
      faults.clear()
      requests.length = 0
    },
  }
}

/**
 * The body for the record, read from a clone no further than the handlers may read the request
 * (one byte past `maxBytes`), so that a body over the limit is refused early exactly as the real
 * handlers refuse it, and the mock server closes that connection as a real server does.
 */
async function recordedBody(request: Request, maxBytes: number): Promise<string> {
  const clone = request.clone()
  if (clone.body === null) return ''
  const reader = clone.body.getReader()
  const decoder = new TextDecoder()
  let text = ''
  let total = 0
  try {
    while (total <= maxBytes) {
      const { done, value } = await reader.read()
      if (done) return text + decoder.decode()
      total += value.byteLength
      text += decoder.decode(value.subarray(0, Math.max(0, value.byteLength - (total - maxBytes))), { stream: true })
    }
    // A tee'd branch's cancel settles only once the other branch (the handlers') ends too.
    void reader.cancel().catch(() => undefined)
  } catch {
    // A body that breaks off is the handlers' to answer; record what arrived.
  }
  return text + decoder.decode()
}
