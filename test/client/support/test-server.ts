/**
 * A real HTTP server for the client's tests: it records every request as it arrived (method,
 * URL, headers, body, arrival time) and answers per a script of faults, then by delegating to a
 * Web-standard handler (the real `createPipelineStatusHandlers(...).fetch` by default).
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { MemoryStore, createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { afterEach, beforeEach } from 'vitest'

/** One request as the server saw it. */
export interface RecordedRequest {
  method: string
  /** Path and query. */
  url: string
  /** Header names in lower case. */
  headers: Record<string, string>
  body: string
  /** `performance.now()` when the request's headers arrived. */
  arrivedAt: number
  /**
   * `performance.now()` when the handler had answered it (the update applied and stored), before
   * the answer is written; unset until then, and for a scripted answer that skips the handler.
   */
  answeredAt?: number
}

/** A scripted answer for one request, used before the handler is asked. */
export type Fault =
  | { status: number; headers?: Record<string, string>; body?: string }
  /** Never answer (until the server stops). */
  | { hang: true }
  /** Close the connection without answering. */
  | { drop: true }
  /**
   * The handler answers (the request is processed), but only the headers go out (with the
   * body's `content-length`); the body never comes, until the server stops.
   */
  | { stallBody: true }
  /** The handler answers; its headers go out at once, then its body one byte every `trickleBodyMs`. */
  | { trickleBodyMs: number }
  /** Answered by the handler as usual: a place holder in a script of faults. */
  | { pass: true }
  /**
   * The handler answers (the request is processed and stored), but the client gets this instead:
   * the connection closed without an answer (`drop`), or a gateway's status (a 502 or 504 whose
   * server behind took the request). The answer was lost, not the request.
   */
  | { handledThen: { drop: true } | { status: number } }

/** What the server hands a request to when no fault is scripted. */
export type TestHandler = (request: Request) => Response | Promise<Response>

export interface TestServer {
  /** `http://127.0.0.1:<port>`. */
  readonly origin: string
  readonly port: number
  /** Every request so far, in arrival order. */
  readonly requests: RecordedRequest[]
  /** The store behind the default handler. */
  readonly store: MemoryStore
  /** Live streams (`text/event-stream` answers) open now: sent as they come, not buffered. */
  readonly openStreams: number
  /** Answers the next requests with these, in order, before delegating again. */
  inject(...faults: Fault[]): void
  /** Answers the next requests whose path ends with `suffix` (e.g. `/complete`) with these, in order, before the faults of {@link inject}. */
  injectFor(suffix: string, ...faults: Fault[]): void
  /** Answers every request with this fault (after the injected ones) until cleared with `undefined`. */
  setFault(fault: Fault | undefined): void
  /** Replaces the handler. */
  setHandler(handler: TestHandler): void
  /** Requests to one route kind, e.g. `stage-update`. */
  requestsTo(suffix: string): RecordedRequest[]
  /** `POST /{runId}/cancel` with `reason`, as the web app sends it (the secret); the answer. */
  cancel(runId: string, reason: string): Promise<Response>
  /** Stops listening and cuts every connection (hanging ones included); the port is kept. */
  stop(): Promise<void>
  /** Listens again on the same port. */
  start(): Promise<void>
}

export const TEST_SECRET = 'test-secret'

const HOP_BY_HOP = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive'])

/** How {@link startTestServer} starts a server. */
export interface TestServerOptions {
  /** Answers instead of the real handlers on a fresh MemoryStore. */
  handler?: TestHandler
  /** @default a free port */
  port?: number
  signingSecret?: string
  maxBodyBytes?: number
}

/** Starts a server on 127.0.0.1 (a free port unless `port` is given). */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const store = new MemoryStore()
  let handler: TestHandler =
    options.handler ??
    createPipelineStatusHandlers({
      store,
      secret: TEST_SECRET,
      logger: { error: () => undefined, warn: () => undefined },
      ...(options.signingSecret ? { signing: { secret: options.signingSecret } } : {}),
      ...(options.maxBodyBytes ? { maxBodyBytes: options.maxBodyBytes } : {}),
    }).fetch
  const requests: RecordedRequest[] = []
  const faults: Fault[] = []
  const faultsFor: Array<{ suffix: string; fault: Fault }> = []
  let standing: Fault | undefined
  const sockets = new Set<Socket>()
  let server: Server | undefined
  let port = options.port ?? 0
  let openStreams = 0

  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const arrivedAt = performance.now()
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks).toString('utf8')
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value
    }
    const recorded: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers, body, arrivedAt }
    requests.push(recorded)
    const routed = faultsFor.findIndex(({ suffix }) => (req.url ?? '').endsWith(suffix))
    const scripted = (routed === -1 ? undefined : faultsFor.splice(routed, 1)[0]?.fault) ?? faults.shift() ?? standing
    const fault = scripted && 'pass' in scripted ? undefined : scripted
    if (fault && 'hang' in fault) return
    if (fault && 'drop' in fault) {
      req.socket.destroy()
      return
    }
    if (fault && 'status' in fault) {
      res.writeHead(fault.status, fault.headers ?? {})
      res.end(fault.body ?? '')
      return
    }
    const forwarded = Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name))
    const request = new Request(`http://127.0.0.1:${port}${req.url ?? '/'}`, {
      method: req.method ?? 'GET',
      headers: forwarded,
      ...(req.method === 'GET' || req.method === 'HEAD' ? {} : { body }),
    })
    const response = await handler(request)
    recorded.answeredAt = performance.now()
    if (fault && 'handledThen' in fault) {
      await response.arrayBuffer()
      if ('drop' in fault.handledThen) {
        req.socket.destroy()
        return
      }
      res.writeHead(fault.handledThen.status, { 'content-type': 'text/html' })
      res.end(`<html><body>${fault.handledThen.status} from the gateway</body></html>`)
      return
    }
    if (!fault && response.body && /^text\/event-stream/.test(response.headers.get('content-type') ?? '')) return pipeStream(response, res)
    const bytes = Buffer.from(await response.arrayBuffer())
    if (fault && ('stallBody' in fault || 'trickleBodyMs' in fault)) {
      res.writeHead(response.status, { ...Object.fromEntries(response.headers), 'content-length': String(bytes.length) })
      res.flushHeaders()
      if ('stallBody' in fault) return
      let sent = 0
      const timer = setInterval(() => {
        if (sent < bytes.length) res.write(bytes.subarray(sent, ++sent))
        if (sent >= bytes.length) {
          clearInterval(timer)
          res.end()
        }
      }, fault.trickleBodyMs)
      res.socket?.once('close', () => clearInterval(timer))
      return
    }
    res.writeHead(response.status, Object.fromEntries(response.headers))
    res.end(bytes)
  }

  /** A live stream goes out as it comes, counted in `openStreams` until either side closes it. */
  const pipeStream = async (response: Response, res: ServerResponse) => {
    res.writeHead(response.status, Object.fromEntries(response.headers))
    res.flushHeaders()
    openStreams += 1
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    let closed = false
    res.once('close', () => {
      closed = true
      void reader.cancel().catch(() => undefined)
    })
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done || closed) break
        res.write(value)
      }
    } catch {
      // The client went away.
    } finally {
      openStreams -= 1
      res.end()
    }
  }

  const start = async () => {
    server = createServer((req, res) => {
      onRequest(req, res).catch((error: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' })
        res.end(String(error))
      })
    })
    server.on('connection', (socket) => {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
    })
    await new Promise<void>((resolve, reject) => {
      server?.once('error', reject)
      server?.listen(port, '127.0.0.1', () => resolve())
    })
    port = (server.address() as AddressInfo).port
  }

  await start()
  return {
    get origin() {
      return `http://127.0.0.1:${port}`
    },
    get port() {
      return port
    },
    requests,
    store,
    get openStreams() {
      return openStreams
    },
    inject: (...more) => void faults.push(...more),
    injectFor: (suffix, ...more) => void faultsFor.push(...more.map((fault) => ({ suffix, fault }))),
    setFault: (fault) => {
      standing = fault
    },
    setHandler: (next) => {
      handler = next
    },
    requestsTo: (suffix) => requests.filter((r) => r.url.endsWith(suffix)),
    cancel: (runId, reason) =>
      fetch(`http://127.0.0.1:${port}/api/pipeline/${encodeURIComponent(runId)}/cancel`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-webhook-secret': TEST_SECRET },
        body: JSON.stringify({ reason }),
      }),
    stop: async () => {
      const current = server
      server = undefined
      if (!current) return
      const closed = new Promise<void>((resolve) => current.close(() => resolve()))
      for (const socket of sockets) socket.destroy()
      current.closeAllConnections()
      await closed
    },
    start,
  }
}

/**
 * The test server of each test in a file: a fresh one started before each test and stopped after
 * it. Call it at the top level, before `clientFactory`, so that a test's clients close before its
 * server stops (vitest runs `afterEach` hooks last-registered first). Returns the current test's
 * server; read it inside a test or a helper a test calls.
 */
export function useTestServer(options: TestServerOptions = {}): () => TestServer {
  let server: TestServer | undefined
  beforeEach(async () => {
    server = await startTestServer(options)
  })
  afterEach(async () => {
    await server?.stop()
    server = undefined
  })
  return () => {
    if (!server) throw new Error('useTestServer: the server runs only while a test does')
    return server
  }
}
