import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readSmallBody, toWebRequest, writeWebResponse } from '../src/server/http/node-bridge.js'
import { createDashboardHandler, type DashboardHandler } from '../src/server/dashboard/dashboard-page.js'
import { DEFAULT_BASE_PATH, normalizeBasePath } from '../src/contract/routes.js'
import { type PipelineMock, type PipelineMockOptions, createPipelineMock } from './pipeline-mock.js'

/**
 * Options of {@link startMockServer}: the mock's options plus where to listen. With the handlers'
 * `dashboard` option on, the server also serves the dashboard page at `/` (its files beside it,
 * `/dashboard.js`), reading the routes under the base path.
 */
export interface MockServerOptions extends Omit<PipelineMockOptions, 'baseUrl'> {
  /**
   * The TCP port; `0` picks a free one.
   * @default 0
   */
  port?: number | undefined
  /**
   * The interface to listen on.
   * @default '127.0.0.1'
   */
  host?: string | undefined
  /**
   * Called once per request after it was answered (or dropped), e.g. to log it:
   * `pipeline-status mock` prints one line per request with it. A hook that throws is ignored.
   * @default undefined: nothing is called
   */
  onRequest?: ((entry: MockServerRequestEntry) => void) | undefined
}

/** One answered request of a {@link MockServer}, as {@link MockServerOptions.onRequest} gets it. */
export interface MockServerRequestEntry {
  /** The request method, e.g. `'POST'`. */
  method: string
  /** The request path with its query, e.g. `/api/pipeline/run_1/stage-update`. */
  path: string
  /** The response status, or `undefined` when the connection was dropped (a fault, or an error). */
  status: number | undefined
  /** For problem responses (`application/problem+json`): the problem's `code` and `detail`. */
  problem?: { code: string; detail: string | undefined } | undefined
  /** From the request's arrival to the end of the response, in milliseconds. */
  durationMs: number
}

/** A running mock server. */
export interface MockServer {
  /** The origin it serves, e.g. `http://127.0.0.1:4010`; point `FRONTEND_WEBHOOK_URL` at it. */
  readonly url: string
  /** The mock behind it, to arrange runs and faults and read what arrived. */
  readonly mock: PipelineMock
  /** Stops accepting connections and closes open ones. */
  close(): Promise<void>
}

/**
 * Serves the MSW mock over real HTTP, so a runner in any language can use it. The requests go
 * through `mock.fetch`, the one entry point the mock's msw handlers call in-process too (faults,
 * recording and the real handlers).
 *
 * @example
 * ```ts
 * import { startMockServer } from 'pipeline-status-sdk/msw'
 * const server = await startMockServer({ port: 4010, secret: 'dev-secret', autoCreateRuns: true })
 * console.log(server.url) // http://127.0.0.1:4010
 * ```
 */
export async function startMockServer(options: MockServerOptions = {}): Promise<MockServer> {
  const { port = 0, host = '127.0.0.1', onRequest, ...mockOptions } = options
  let mock: PipelineMock | undefined
  // With the `dashboard` option the page is also served at the root, over the routes of the base path.
  const dashboard: DashboardHandler | undefined = mockOptions.dashboard
    ? createDashboardHandler({
        ...(mockOptions.dashboard === true ? {} : mockOptions.dashboard),
        path: '/',
        apiBasePath: normalizeBasePath(mockOptions.basePath ?? DEFAULT_BASE_PATH),
      })
    : undefined
  const report = (entry: MockServerRequestEntry) => {
    try {
      onRequest?.(entry)
    } catch {
      // A failing hook must not change the answer.
    }
  }
  const httpServer: Server = createServer((req, res) => {
    const started = performance.now()
    const entry = (status: number | undefined, problem?: MockServerRequestEntry['problem']): MockServerRequestEntry => ({
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      status,
      ...(problem ? { problem } : {}),
      durationMs: Math.round(performance.now() - started),
    })
    void (async () => {
      if (!mock) return void res.destroy()
      // The mock matches by origin: requests get the one it was created for, whatever Host said.
      const local = toWebRequest(req, origin, { received: await readSmallBody(req) })
      // The entry point the msw handlers call, without msw's own copy of the request (msw reads a
      // clone of every body to its end, which would drain an upload the handlers refused early).
      // Outside the base path the real handlers answer route_not_found.
      const response = (dashboard && isDashboardPath(req.url) ? await dashboard(local) : undefined) ?? (await mock.fetch(local)) ?? (await mock.server.fetch(local))
      // A dropped connection, as a fault asked.
      if (response.type === 'error') {
        res.destroy()
        return report(entry(undefined))
      }
      const problem = onRequest ? await problemOf(response) : undefined
      await writeWebResponse(res, response)
      report(entry(response.status, problem))
    })().catch(() => {
      res.destroy()
      report(entry(undefined))
    })
  })
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject)
    httpServer.listen(port, host, () => resolve())
  })
  const address = httpServer.address() as AddressInfo
  const origin = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
  try {
    mock = createPipelineMock({ ...mockOptions, baseUrl: origin })
  } catch (error) {
    // Options that cannot work (no usable secret): stop listening, or the process never exits.
    httpServer.close()
    throw error
  }
  return {
    url: origin,
    mock,
    close: () =>
      new Promise<void>((resolve, reject) => {
        httpServer.close((error) => (error ? reject(error) : resolve()))
        httpServer.closeAllConnections()
      }),
  }
}

/** The root and the dashboard's files beside it (`/dashboard.js`): what the page at `/` loads. */
function isDashboardPath(url: string | undefined): boolean {
  const path = (url ?? '/').split('?')[0] as string
  return path === '/' || /^\/[A-Za-z0-9_-]+\.(js|css)$/.test(path)
}

/** The `code` and `detail` of a problem response, read from a copy of it. */
async function problemOf(response: Response): Promise<MockServerRequestEntry['problem']> {
  if (!response.headers.get('content-type')?.startsWith('application/problem+json')) return undefined
  try {
    const body = (await response.clone().json()) as { code?: unknown; detail?: unknown }
    if (typeof body.code !== 'string') return undefined
    return { code: body.code, detail: typeof body.detail === 'string' ? body.detail : undefined }
  } catch {
    return undefined
  }
}
