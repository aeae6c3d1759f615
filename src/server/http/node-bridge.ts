/**
 * The bridge between Node's `http` objects and the Fetch API, for the Express adapter and the
 * mock server: the one module that touches Node streams. Not exported from
 * `pipeline-status-sdk/server`, which must stay free of Node imports for edge runtimes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { EventSink, EventStreamBody } from '../live/event-sink.js'
import { directEventsOf, markDirectEvents } from './direct-events.js'
import { documentTextOf } from './problem-response.js'

/** Options of {@link toWebRequest}. */
export interface ToWebRequestOptions {
  /**
   * The path and query to put after the origin.
   * @default req.url
   */
  path?: string | undefined
  /**
   * The body to send instead of the request's own stream, e.g. when a body parser already
   * read it. Content-Length, Transfer-Encoding and Content-Encoding are dropped then, as they
   * describe the original bytes.
   */
  body?: Uint8Array | undefined
  /** Aborts the `Request` (e.g. when the client went away). */
  signal?: AbortSignal | undefined
  /**
   * The request's own body, already read whole by {@link readSmallBody}: sent as it came, with
   * its Content-Length and Content-Encoding kept.
   */
  received?: Uint8Array | undefined
  /**
   * The caller writes the answer with {@link writeWebResponse} and nothing else reads it: a live
   * stream's answer then carries the stream for `writeWebResponse` to write straight to the Node
   * response, instead of a Web stream body (less memory per idle stream; bench/README.md, "Idle
   * streams"). Leave it off when something else may read or rebuild the `Response`.
   * @default false
   */
  directEvents?: boolean | undefined
}

/**
 * Bodies that declare a Content-Length up to this many bytes are read whole before the handlers
 * run (stage updates are a few KiB); longer or chunked ones stream to the handlers, which stop
 * reading at their limit.
 */
export const SMALL_BODY_BYTES = 64 * 1024

/**
 * The whole body of a request that declares a Content-Length of at most {@link SMALL_BODY_BYTES}
 * (Node's parser never delivers more than declared), or `undefined` for any other request, whose
 * body then streams. A body read whole gives the handlers a plain byte array instead of a Web
 * stream bridged from a Node stream, which costs less CPU and leaves less to the garbage
 * collector (bench/README.md, "The p99 tail"); a refused request's body is then read to its end,
 * so its connection stays usable.
 *
 * @throws when the client aborts the upload.
 */
export function readSmallBody(req: IncomingMessage): Promise<Uint8Array | undefined> | undefined {
  if (req.method === 'GET' || req.method === 'HEAD' || req.headers['transfer-encoding'] !== undefined) return undefined
  const declared = req.headers['content-length']
  if (declared === undefined || !/^\d{1,9}$/.test(declared) || Number(declared) > SMALL_BODY_BYTES) return undefined
  // Listeners, not `for await`: an async iterator per request costs more than the read itself.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      chunks.push(bytes)
      size += bytes.byteLength
    }
    const onEnd = () => {
      done()
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size))
    }
    const onError = (error: unknown) => {
      done()
      reject(error instanceof Error ? error : new Error('The request was aborted'))
    }
    const onClose = () => {
      if (!req.complete) onError(new Error('The request was aborted'))
    }
    const done = () => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
    }
    req.on('data', onData)
    req.once('end', onEnd)
    req.once('error', onError)
    req.once('close', onClose)
  })
}

/**
 * A `Request` for a Node request: its method, headers (as sent, repeated ones included) and a
 * body that streams the raw bytes as the handler reads them. Reading stops when the handler
 * cancels (a body over the limit) without destroying the socket the answer still has to use.
 */
export function toWebRequest(req: IncomingMessage, origin: string, options: ToWebRequestOptions = {}): Request {
  const headers = new Headers()
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    try {
      headers.append(req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string)
    } catch {
      // A header the Fetch API refuses cannot matter to these routes.
    }
  }
  const method = req.method ?? 'GET'
  const carried = FETCH_FORBIDDEN_METHODS.has(method.toUpperCase()) ? 'GET' : method
  const init: RequestInit & { duplex?: 'half' } = { method: carried, headers }
  if (options.signal) init.signal = options.signal
  if (carried !== 'GET' && carried !== 'HEAD') {
    if (options.received) {
      init.body = options.received as Uint8Array<ArrayBuffer>
    } else if (options.body) {
      headers.delete('content-length')
      headers.delete('transfer-encoding')
      headers.delete('content-encoding')
      init.body = new Uint8Array(options.body)
    } else {
      init.body = nodeStreamToWeb(req)
      init.duplex = 'half'
    }
  }
  const url = requestUrl(origin, options.path ?? req.url ?? '/')
  if (carried === method) {
    const request = new Request(url, init)
    if (options.directEvents) markDirectEvents(request)
    return request
  }
  // Fetch refuses to build a TRACE or TRACK request (a TypeError), yet the handlers must see the
  // method to refuse it with 405: the request is built bodiless and reports the method it came with.
  return new (class extends Request {
    override get method(): string {
      return method
    }
  })(url, init)
}

/** Methods the Fetch standard forbids in a `Request` (CONNECT never reaches a request handler). */
const FETCH_FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK'])

/**
 * Writes a `Response` to a Node response: status, headers (each `Set-Cookie` apart) and the
 * body, streamed with backpressure. No body for `HEAD`.
 *
 * When the request's body has not been read to its end (an early 413, or a 401 that never
 * read it), the response says `Connection: close` and the connection closes after it: the rest of
 * the upload is discarded instead of being taken for the next request on a keep-alive connection,
 * which would otherwise wait for a body nobody reads.
 *
 * Resolves when the answer is written, except for a live stream written straight to `res` (a
 * `Request` built with `directEvents`): then once the stream is attached; `res` emits `close`
 * when it ends.
 */
export async function writeWebResponse(res: ServerResponse, response: Response): Promise<void> {
  const req = res.req as IncomingMessage | undefined
  const body = req && bodies.get(req)
  if (req && (!req.complete || (body && !body.ended))) closeAfter(req, res)
  const events = directEventsOf(response)
  if (events) return writeEvents(events, response, res)
  res.statusCode = response.status
  copyHeaders(response, res, (name, value) => res.setHeader(name, value))
  if (response.body === null || res.req?.method === 'HEAD') {
    res.end()
    return
  }
  const text = documentTextOf(response)
  if (text !== undefined) {
    // A document the handlers built from text: written as that text, its stream never read.
    res.setHeader('content-length', Buffer.byteLength(text))
    res.end(text)
    return
  }
  if (isDocument(response)) {
    // A JSON document is small and complete: one write with its length costs far less than
    // bridging a web stream into a Node stream (measured in bench/README.md).
    const body = new Uint8Array(await response.arrayBuffer())
    res.setHeader('content-length', body.byteLength)
    res.end(body)
    return
  }
  await pump(response.body, res)
}

/**
 * Writes a streamed body (a live status stream) to `res` chunk by chunk, waiting for `drain`
 * when the socket is behind, so the unsent bytes stay in the Web stream's queue, where the
 * stream's own bound sees them. A reader and one pending read per stream, not
 * `pipeline(Readable.fromWeb(body), res)`, which costs a Node `Readable`, its buffer and the
 * pipeline's listeners per open stream (bench/README.md, "Idle streams"). The client going away
 * cancels the body; a body that errors destroys the response and rejects.
 */
function pump(body: ReadableStream<Uint8Array>, res: ServerResponse): Promise<void> {
  // Callbacks, not an async loop: a suspended async function keeps its last chunk (a snapshot of
  // kilobytes) alive in its saved registers for as long as the stream stays idle.
  const reader = body.getReader()
  const onClose = (): void => {
    if (!res.writableFinished) reader.cancel().catch(() => {})
  }
  res.once('close', onClose)
  return new Promise<void>((resolve, reject) => {
    const next = (): void => void reader.read().then(onRead, onError)
    const onRead = (result: ReadableStreamReadResult<Uint8Array>): void => {
      if (result.done) {
        res.off('close', onClose)
        res.end()
        return resolve()
      }
      if (res.write(result.value)) next()
      else drained(res, next)
    }
    const onError = (error: unknown): void => {
      res.off('close', onClose)
      res.destroy()
      reject(error instanceof Error ? error : new Error(String(error)))
    }
    next()
  })
}

/**
 * Writes a live stream straight to `res` (a `Request` built with `directEvents`): each event is
 * one `res.write`, and the stream's bound counts what the response and its socket have not sent
 * yet (`writableLength`). The client going away (`close`) closes the stream. Returns once the
 * stream is attached, leaving nothing pending per open stream: the response ends with the stream
 * (`res` emits `close`).
 *
 * What stays per idle stream is kept small (bench/README.md, "Idle streams"): the headers go
 * through `writeHead`, which keeps no header map on `res` unless something set one already (an
 * app's middleware, Express's `X-Powered-By`); the sink is one small object; the `close` listener
 * is added with `on` (a response closes once; `once` adds a wrapper).
 */
function writeEvents(events: EventStreamBody, response: Response, res: ServerResponse): void {
  const headers: string[] = []
  copyHeaders(response, res, (name, value) => headers.push(name, value))
  res.writeHead(response.status, headers)
  flattenHeaderBlock(res)
  const gone = events.attach(new ResponseSink(res))
  // A client that left before the stream was attached: 'close' was already emitted.
  if (res.destroyed) gone()
  else res.on('close', gone)
}

/**
 * The one copy of a `Response`'s headers for a Node response: every header but `Set-Cookie`
 * goes to `put` (the Fetch API has joined each one's values already), then each `Set-Cookie`
 * apart, set on `res` as one list, since cookies cannot be joined into one line.
 * {@link writeWebResponse} puts the headers on `res` (its body may add a Content-Length);
 * {@link writeEvents} collects them for one `writeHead`.
 */
function copyHeaders(response: Response, res: ServerResponse, put: (name: string, value: string) => void): void {
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') put(name, value)
  })
  const cookies = response.headers.getSetCookie()
  if (cookies.length > 0) res.setHeader('set-cookie', cookies)
}

/**
 * Node keeps the header block it built for a response (`res._header`, internal) for the
 * response's life, as a rope of about 30 concatenated pieces (~1 KB of heap per stream, against
 * ~0.3 KB as one string). Searching a string flattens it in place (V8), so the pieces become
 * garbage. Read-only: where Node keeps no such string, nothing happens.
 */
function flattenHeaderBlock(res: ServerResponse): void {
  const block = (res as { _header?: unknown })._header
  if (typeof block === 'string') block.indexOf('\n')
}

/** The {@link EventSink} of a live stream written straight to a Node response. */
class ResponseSink implements EventSink {
  readonly #res: ServerResponse

  constructor(res: ServerResponse) {
    this.#res = res
  }

  get bufferedBytes(): number {
    return this.#res.writableLength
  }

  write(text: string): number {
    const res = this.#res
    if (res.writableEnded || res.destroyed) throw new Error('The response is closed')
    res.write(text)
    return Buffer.byteLength(text)
  }

  end(): void {
    this.#res.end()
  }

  abort(): void {
    this.#res.destroy()
  }
}

/** Calls `then` once `res` can take more (`drain`) or is gone (`close`, after which reads end). */
function drained(res: ServerResponse, then: () => void): void {
  const done = (): void => {
    res.off('drain', done)
    res.off('close', done)
    then()
  }
  res.once('drain', done)
  res.once('close', done)
}

type NodeSocket = IncomingMessage['socket']
/**
 * How long a kept-alive connection whose answer ended during a drain waits for its client's
 * next request (answered with `Connection: close`) before it is ended, in milliseconds.
 */
export const DRAIN_IDLE_MS = 500
const IN_FLIGHT = Symbol('pipeline-status-sdk.inFlight')
type CountedSocket = NodeSocket & { [IN_FLIGHT]?: number }

/**
 * Lets a server stop promptly while clients keep their connections alive. Once {@link drain}
 * is called, every answer says `Connection: close` (so a client that reconnects on a kept-alive
 * socket, say a live subscriber whose stream was ended, gets its 503 and the socket closes after
 * it), a connection whose last answer is written is ended, and the connections that are idle at
 * that moment are ended at once. Without it a server's `close()` waits for each kept-alive socket
 * to time out (Node's `keepAliveTimeout`, 5 s, renewed by every reconnect).
 *
 * Costs one counter on the socket per request. Its `close` listeners are functions made once per
 * instance, called with the socket or response as `this`, so a connection (or a live stream that
 * stays open for hours) keeps no closure of its own (bench/README.md, "Idle streams").
 * Not importable outside this package.
 */
export class ConnectionDrain {
  #draining = false
  readonly #sockets = new Set<CountedSocket>()
  /** The `close` listener of every socket {@link begin} saw: forgets it. */
  readonly #forgetSocket: (this: CountedSocket) => void
  /** The `close` listener of every response {@link endOnClose} was given: its answer is over. */
  readonly #responseClosed: (this: ServerResponse) => void

  constructor() {
    const sockets = this.#sockets
    this.#forgetSocket = function (this: CountedSocket) {
      sockets.delete(this)
    }
    const end = (req: IncomingMessage): void => this.end(req)
    this.#responseClosed = function (this: ServerResponse) {
      end(this.req)
    }
  }

  /** Whether {@link drain} was called. */
  get draining(): boolean {
    return this.#draining
  }

  /** A request starts on `req`'s connection. */
  begin(req: IncomingMessage): void {
    const socket = req.socket as CountedSocket | null
    if (!socket) return
    const count = socket[IN_FLIGHT]
    if (count === undefined) {
      this.#sockets.add(socket)
      // `on`, not `once` (a socket closes once; `once` adds a wrapper per socket).
      socket.on('close', this.#forgetSocket)
    }
    socket[IN_FLIGHT] = (count ?? 0) + 1
  }

  /** Before an answer is written: `Connection: close` while draining. */
  prepare(res: ServerResponse): void {
    if (this.#draining && !res.headersSent) res.setHeader('Connection', 'close')
  }

  /** The answer to a request of `req`'s connection is written (or abandoned). */
  end(req: IncomingMessage): void {
    const socket = req.socket as CountedSocket | null
    if (!socket) return
    const count = Math.max((socket[IN_FLIGHT] ?? 1) - 1, 0)
    socket[IN_FLIGHT] = count
    if (!this.#draining || count !== 0 || socket.destroyed) return
    // An answer whose headers promised keep-alive before the drain began (a live stream that
    // close() ended). Its client may reconnect on this socket at once: that request gets its
    // answer with `Connection: close`. Ending the socket now would race it into a hang-up; a
    // client that does not come back is let go after a short wait.
    const timer = setTimeout(() => {
      if ((socket[IN_FLIGHT] ?? 0) === 0) socket.end()
    }, DRAIN_IDLE_MS)
    timer.unref()
    socket.once('close', () => clearTimeout(timer))
  }

  /**
   * The answer to `res`'s request (a live stream, written after its handler returned) stays in
   * flight until `res` emits `close`, then {@link end} is called for it. Call it only while `res`
   * is not destroyed yet (a destroyed response has emitted `close` already, or will without it).
   */
  endOnClose(res: ServerResponse): void {
    // `on`, not `once`: a response closes once.
    res.on('close', this.#responseClosed)
  }

  /** From now on, close connections as soon as their answers are written; idle ones now. */
  drain(): void {
    this.#draining = true
    for (const socket of this.#sockets) if ((socket[IN_FLIGHT] ?? 0) === 0) socket.end()
  }
}

/** How long a closing connection keeps discarding an upload before it is cut, in milliseconds. */
const LINGER_MS = 2000

function closeAfter(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('Connection', 'close')
  bodies.get(req)?.detach()
  // Read and drop what is still coming.
  req.on('data', () => {})
  req.resume()
  const socket = req.socket as IncomingMessage['socket'] | null
  if (typeof socket?.destroySoon !== 'function') return
  // Node ends a `Connection: close` answer with socket.destroySoon(), which destroys the socket
  // once the answer is written: a client still uploading (Python's requests sends the whole body
  // before it reads) then gets a reset that can hide the answer. A lingering close instead: send
  // FIN after the answer, keep dropping the upload until the client closes, and cut it off after
  // LINGER_MS at the latest.
  socket.destroySoon = function lingeringClose(this: typeof socket) {
    this.end()
    const timer = setTimeout(() => this.destroy(), LINGER_MS)
    timer.unref()
    this.once('close', () => clearTimeout(timer))
    this.once('end', () => this.destroy())
  }
}

/** JSON and problem+json answers, which the handlers always build whole; anything else may stream. */
function isDocument(response: Response): boolean {
  const type = response.headers.get('content-type') ?? ''
  return /^application\/(problem\+)?json\b/i.test(type)
}

function requestUrl(origin: string, path: string): string {
  try {
    return new URL(path, origin).toString()
  } catch {
    // A Host header that makes no URL: keep the path, which is what routing needs.
    return new URL(path.replace(/^\/*/, '/'), 'http://localhost').toString()
  }
}

/**
 * The Web body stream of a request: whether Node delivered it to its end, and how to stop feeding
 * it once nobody will read it any more. Kept on the request under a symbol, not in a `WeakMap`:
 * V8's minor garbage collections treat a `WeakMap` entry of a young key as live, so every
 * request (and its body) would survive into the old generation and make each collection longer,
 * which showed as the stage-update path's p99 latency (bench/README.md, "The p99 tail").
 */
interface BodyState {
  ended: boolean
  detach(): void
}
const BODY_STATE = Symbol('pipeline-status-sdk.body')
type WithBodyState = IncomingMessage & { [BODY_STATE]?: BodyState }
const bodies = {
  get: (req: IncomingMessage): BodyState | undefined => (req as WithBodyState)[BODY_STATE],
  set: (req: IncomingMessage, state: BodyState): void => {
    ;(req as WithBodyState)[BODY_STATE] = state
  },
}

function nodeStreamToWeb(req: IncomingMessage): ReadableStream<Uint8Array> {
  let cleanup = (): void => {}
  return new ReadableStream<Uint8Array>({
    start(controller) {
      const onData = (chunk: Buffer | string) => {
        controller.enqueue(typeof chunk === 'string' ? new TextEncoder().encode(chunk) : new Uint8Array(chunk))
        if ((controller.desiredSize ?? 0) <= 0) req.pause()
      }
      const onEnd = () => {
        cleanup()
        controller.close()
        body.ended = true
      }
      const onError = (error: Error) => {
        cleanup()
        controller.error(error)
      }
      const onAborted = () => onError(new Error('The request was aborted'))
      cleanup = () => {
        req.off('data', onData)
        req.off('end', onEnd)
        req.off('error', onError)
        req.off('aborted', onAborted)
      }
      const body = {
        ended: false,
        detach() {
          cleanup()
          try {
            controller.error(new Error('The response was sent before the body was read'))
          } catch {
            // Already closed or cancelled.
          }
        },
      }
      bodies.set(req, body)
      req.on('data', onData)
      req.once('end', onEnd)
      req.once('error', onError)
      req.once('aborted', onAborted)
      req.pause()
    },
    pull() {
      req.resume()
    },
    cancel() {
      cleanup()
      // Let Node discard the rest of the upload; destroying the request would also close the socket.
      req.resume()
    },
  })
}
