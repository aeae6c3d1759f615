import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { toWebRequest, writeWebResponse } from '../src/server/node-bridge.js'
import { type PipelineMock, type PipelineMockOptions, createPipelineMock } from './pipeline-mock.js'

/** Options of {@link startMockServer}: the mock's options plus where to listen. */
export interface MockServerOptions extends Omit<PipelineMockOptions, 'baseUrl'> {
  /** The TCP port; `0` picks a free one. @default 0 */
  port?: number | undefined
  /** The interface to listen on. @default '127.0.0.1' */
  host?: string | undefined
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
  const { port = 0, host = '127.0.0.1', ...mockOptions } = options
  let mock: PipelineMock | undefined
  const httpServer: Server = createServer((req, res) => {
    void (async () => {
      if (!mock) return void res.destroy()
      // The mock matches by origin: requests get the one it was created for, whatever Host said.
      const local = toWebRequest(req, origin)
      // The entry point the msw handlers call, without msw's own copy of the request (msw reads a
      // clone of every body to its end, which would drain an upload the handlers refused early).
      // Outside the base path the real handlers answer route_not_found.
      const response = (await mock.fetch(local)) ?? (await mock.server.fetch(local))
      // A dropped connection, as a fault asked.
      if (response.type === 'error') return void res.destroy()
      await writeWebResponse(res, response)
    })().catch(() => res.destroy())
  })
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject)
    httpServer.listen(port, host, () => resolve())
  })
  const address = httpServer.address() as AddressInfo
  const origin = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
  mock = createPipelineMock({ ...mockOptions, baseUrl: origin })
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
