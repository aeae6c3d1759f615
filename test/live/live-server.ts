/**
 * The real handlers on a MemoryStore over a real port (node:http and the package's own Node
 * bridge), with the live options a test chooses. Imported in-process, and run as a child process
 * by live-server-child.ts so that its memory can be measured apart from the test runner's.
 * Relative imports (not the package name), so the child can run it with tsx alone.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createPipelineStatusHandlers } from '../../src/server/handlers.js'
import type { LiveStatusOptions } from '../../src/server/handler-options.js'
import type { PipelineStatusHandlers } from '../../src/server/handlers.js'
import { MemoryStore } from '../../src/core/memory-store.js'
import type { Store } from '../../src/core/store.js'
import { readSmallBody, toWebRequest, writeWebResponse } from '../../src/server/http/node-bridge.js'

/** The secret of every live test server. */
export const LIVE_SECRET = 'live-test-secret'

/** A running server. */
export interface LiveServer {
  /** The base of the routes, e.g. `http://127.0.0.1:1234/api/pipeline`. */
  url: string
  port: number
  handlers: PipelineStatusHandlers
  /** Warnings the handlers logged, in order. */
  warnings: string[]
  close(): Promise<void>
}

/**
 * Starts the handlers with `live` options on a free port of 127.0.0.1. `directEvents`: the bridge
 * writes live streams straight to the Node response, as the Express adapter does, instead of
 * through their Web stream body; `readTokens`: the handlers' read-token option, when given;
 * `store`: the store (a fresh MemoryStore by default), e.g. one that counts its reads.
 */
export async function startLiveServer(
  live: Omit<LiveStatusOptions, 'listen'> = {},
  { directEvents = false, store = new MemoryStore(), ...more }: { directEvents?: boolean; readTokens?: { secret: string }; store?: Store<unknown> } = {},
): Promise<LiveServer> {
  const warnings: string[] = []
  const handlers = createPipelineStatusHandlers({
    store,
    secret: LIVE_SECRET,
    ...more,
    live,
    logger: { info: () => {}, warn: (message: string) => void warnings.push(message), error: (message: string) => void warnings.push(message) },
  })
  let origin = ''
  const server: Server = createServer((req, res) => {
    void (async () => {
      // The stream learns that its client went away from the request's signal.
      const gone = new AbortController()
      res.once('close', () => gone.abort())
      const request = toWebRequest(req, origin, { received: await readSmallBody(req), signal: gone.signal, directEvents })
      await writeWebResponse(res, await handlers.fetch(request))
    })().catch(() => res.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  origin = `http://127.0.0.1:${port}`
  return {
    url: `${origin}/api/pipeline`,
    port,
    handlers,
    warnings,
    async close() {
      await handlers.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** POSTs JSON to `{url}{path}` with the secret; throws on anything but 2xx. */
export async function postJson(url: string, path: string, body: unknown): Promise<unknown> {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'X-Webhook-Secret': LIVE_SECRET, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`POST ${path} answered ${response.status}: ${text}`)
  return JSON.parse(text)
}
