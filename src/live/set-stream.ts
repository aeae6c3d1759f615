/**
 * The reconnect loop of one set stream (`GET {base}/events?…`), shared by `subscribeToRuns` and the
 * page's shared connections (`shared-streams.ts`): open, read through the package's one stream
 * reader, and after a drop or a retriable failure wait (the server's `retry:`, doubled per failure
 * in a row, with jitter; a longer `Retry-After` wins) and open again. A set stream has no resume: a
 * reconnect gets fresh snapshots, so the subscriber starts each attempt anew (`onOpen`). Internal.
 */
import type { EventSourceMessage } from 'eventsource-parser/stream'
import { routeUrl } from '../contract/routes.js'
import { sleep } from '../internal/sleep.js'
import { createReconnect } from './reconnect.js'
import { streamOnce } from './stream-attempt.js'

/** What one set stream needs from its subscriber. */
export interface SetStreamLoop {
  /** The stream's absolute URL, query included. */
  readonly url: string
  readonly fetch: typeof globalThis.fetch
  /** The request's headers (`Accept` is set here). */
  readonly headers: Headers
  /** The fetch `credentials` mode; `undefined` for fetch's default. */
  readonly credentials: RequestCredentials | undefined
  /** Aborting it stops the loop, whatever it is doing. */
  readonly signal: AbortSignal
  /** The first reconnection delay, in milliseconds, until the server's `retry:` replaces it. */
  readonly reconnectDelayMs: number
  /** The longest wait between two attempts, in milliseconds. */
  readonly maxReconnectDelayMs: number
  /** An attempt got an event stream: fresh snapshots follow. */
  onOpen(): void
  /** Applies one event (throws for a malformed one); `true` once the stream is complete (a `run=` stream whose every run ended). */
  onEvent(message: EventSourceMessage): boolean
  /** Whether the stream is complete, so that the server's close is the end, not a drop. */
  complete(): boolean
  /** An attempt failed or dropped (`error` is `undefined` for a clean drop); the next one waits. */
  onReconnecting(error: Error | undefined): void
}

/**
 * How the loop ended: `closed` (complete), `no-stream` (the server has no set-stream route: 404
 * `route_not_found`, a 404 that is no problem, or 405), `aborted`.
 *
 * @throws the failure that retrying cannot fix ({@link isRetriableFailure}): a refusal (401, 403,
 * 400 naming a parameter), a malformed event, an event over the size bound, a final
 * `RunStreamClosedError` (the server ended the stream for a cause a reconnect cannot help: its
 * `runId` names the member run where the server named one).
 */
export async function followSetStream(loop: SetStreamLoop): Promise<'closed' | 'no-stream' | 'aborted'> {
  const { signal } = loop
  const reconnect = createReconnect(loop.reconnectDelayMs, loop.maxReconnectDelayMs)
  loop.headers.set('Accept', 'text/event-stream')
  while (!signal.aborted) {
    let failure: Error | undefined
    try {
      const outcome = await streamOnce({
        url: loop.url,
        fetch: loop.fetch,
        signal,
        headers: loop.headers,
        credentials: loop.credentials,
        ...reconnect.hooks,
        onOpen: () => loop.onOpen(),
        onEvent: (message) => {
          // A connection that delivers events is healthy again: the next drop waits the base delay.
          reconnect.healthy()
          return loop.onEvent(message)
        },
      })
      if (outcome === 'no-stream') return 'no-stream'
      if (outcome === 'ended' || loop.complete()) return 'closed'
    } catch (error) {
      if (signal.aborted) return 'aborted'
      failure = error as Error
    }
    // The server's `: closed` cause, when it said why it ended the stream, is the failure.
    failure = reconnect.failureOf(failure, loop.headers.get('Authorization'))
    const wait = reconnect.nextWait(failure)
    if (wait === undefined) throw failure
    loop.onReconnecting(failure)
    await sleep(wait, signal)
  }
  return 'aborted'
}

/** The path (or URL) of the set stream under a base path (or URL): the route table's `runSetEvents`. */
export function setEventsPath(base: string): string {
  return routeUrl(base, 'runSetEvents', {})
}

/** The request's headers: the caller's, then `Authorization` from `token`. */
export function requestHeaders(options: { headers?: Record<string, string> | undefined; token?: string | undefined }): Headers {
  const headers = new Headers(options.headers)
  if (options.token !== undefined) headers.set('Authorization', `Bearer ${options.token}`)
  return headers
}
