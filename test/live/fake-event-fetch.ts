/**
 * A `fetch` that answers from the test, with no server: each request is recorded, and the test
 * answers it with an event stream it writes to (or any other Response). What the set-stream
 * subscribers read is exactly this, so their tests assert on the wire (URL, query, headers) and
 * script every byte.
 */

/** One request the fake fetch received, and the test's handle on its answer. */
export interface FakeRequest {
  readonly url: URL
  readonly headers: Headers
  readonly credentials: RequestCredentials | undefined
  readonly signal: AbortSignal | undefined
  /** Answers with `200 text/event-stream`; returns the stream to write to. */
  stream(): FakeStream
  /** Answers with any Response. */
  respond(response: Response): void
  /** Fails the request as a network error would. */
  fail(error?: Error): void
}

/** An open event stream, written by the test. */
export interface FakeStream {
  /** Writes raw text. */
  write(text: string): void
  /** Writes one event. */
  event(name: string, data: unknown, id?: string): void
  /** Ends the body cleanly (the server closed the stream). */
  end(): void
  /** Whether the client closed (aborted or cancelled) it. */
  readonly closed: boolean
}

/** The fake fetch and what it received. */
export interface FakeFetch {
  readonly fetch: typeof globalThis.fetch
  readonly requests: FakeRequest[]
  /** Resolves with the `index`-th request (0-based) once it arrived; rejects after 5 s. */
  request(index: number): Promise<FakeRequest>
}

export function fakeEventFetch(): FakeFetch {
  const requests: FakeRequest[] = []
  const waiting: (() => void)[] = []
  const fetch = ((input: RequestInfo | URL, init: RequestInit = {}) =>
    new Promise<Response>((resolve, reject) => {
      const signal = init.signal ?? undefined
      const abortError = () => new DOMException('The operation was aborted.', 'AbortError')
      if (signal?.aborted) return reject(abortError())
      signal?.addEventListener('abort', () => reject(abortError()), { once: true })
      const request: FakeRequest = {
        url: new URL(String(input)),
        headers: new Headers(init.headers),
        credentials: init.credentials,
        signal,
        respond: resolve,
        fail: (error = new TypeError('fetch failed')) => reject(error),
        stream() {
          const encoder = new TextEncoder()
          let controller!: ReadableStreamDefaultController<Uint8Array>
          let closed = false
          const body = new ReadableStream<Uint8Array>({
            start: (c) => void (controller = c),
            cancel: () => void (closed = true),
          })
          signal?.addEventListener('abort', () => {
            if (closed) return
            closed = true
            controller.error(abortError())
          })
          resolve(new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }))
          const write = (text: string) => {
            if (!closed) controller.enqueue(encoder.encode(text))
          }
          return {
            write,
            event: (name, data, id) => write(`event: ${name}\n${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`),
            end: () => {
              if (closed) return
              closed = true
              controller.close()
            },
            get closed() {
              return closed
            },
          }
        },
      }
      requests.push(request)
      for (const wake of waiting.splice(0)) wake()
    })) as typeof globalThis.fetch
  return {
    fetch,
    requests,
    async request(index) {
      const deadline = Date.now() + 5000
      while (requests.length <= index) {
        if (Date.now() > deadline) throw new Error(`Request ${index} did not arrive within 5 s (got ${requests.length})`)
        await new Promise<void>((resolve) => {
          waiting.push(resolve)
          setTimeout(resolve, 50)
        })
      }
      return requests[index]!
    },
  }
}

/** A problem+json answer, with extension members (`runId`, say). */
export function problemResponse(status: number, code: string, detail?: string, extensions: Record<string, unknown> = {}): Response {
  return new Response(JSON.stringify({ type: `urn:x:${code}`, title: code, status, code, ...(detail === undefined ? {} : { detail }), ...extensions }), {
    status,
    headers: { 'content-type': 'application/problem+json' },
  })
}

/** Resolves once `condition` holds, checking every 5 ms; rejects after 5 s saying what it waited for. */
export async function until(condition: () => boolean, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + 5000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Waited 5 s for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
