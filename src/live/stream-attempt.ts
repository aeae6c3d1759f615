/**
 * One attempt at the live stream (`GET {url}/{runId}/events`): open it, read it through
 * `EventSourceParserStream` until it ends, drops or goes silent. Every failure is thrown; what to
 * do about it is decided by the subscription, in one place.
 */
import { EventSourceParserStream, type EventSourceMessage } from 'eventsource-parser/stream'
import { AttemptDeadline, announcedKeepAliveMs, SILENT_KEEP_ALIVES } from './attempt-deadline.js'
import { readProblem, refusal, RunStreamSilentError, RunSubscriptionError } from './subscription-errors.js'

/** How a stream attempt ended without an error: `end` received, the connection closed before it, or no stream route on this server. */
export type StreamOutcome = 'ended' | 'dropped' | 'no-stream'

/** What one stream attempt needs from its subscription, and what it tells it. */
export interface StreamAttempt {
  /** The stream's absolute URL. */
  readonly url: string
  readonly fetch: typeof globalThis.fetch
  /** The subscription's signal: aborting it aborts the attempt. */
  readonly signal: AbortSignal
  /** The request's headers (`Accept`, `Authorization`, `Last-Event-ID`). */
  readonly headers: Headers
  /** The keep-alive interval in force, in milliseconds. */
  keepAliveMs(): number
  /** The server announced its keep-alive interval (`: keep-alive-ms N`). */
  onKeepAlive(ms: number): void
  /** The server's `retry:` field, in milliseconds. */
  onRetry(ms: number): void
  /** The answer is an event stream: the subscription is live. */
  onOpen(): void
  /** Applies one event; `true` once it was `end`. Throws for a malformed one. */
  onEvent(message: EventSourceMessage): boolean
}

/**
 * Opens the stream once and reads it to its end. One deadline, pushed back by every byte: a
 * connection quiet for {@link SILENT_KEEP_ALIVES} keep-alive intervals, headers included, is
 * aborted with a {@link RunStreamSilentError}.
 */
export async function streamOnce(attempt: StreamAttempt): Promise<StreamOutcome> {
  const deadline = new AttemptDeadline(attempt.signal)
  const heard = () => {
    const keepAliveMs = attempt.keepAliveMs()
    const silentMs = SILENT_KEEP_ALIVES * keepAliveMs
    deadline.arm(silentMs, () => new RunStreamSilentError(silentMs, keepAliveMs))
  }
  heard()
  try {
    return await readStream(attempt, deadline.signal, heard)
  } catch (error) {
    throw deadline.expired ?? error
  } finally {
    deadline.dispose()
  }
}

async function readStream(attempt: StreamAttempt, signal: AbortSignal, heard: () => void): Promise<StreamOutcome> {
  const response = await attempt.fetch(attempt.url, { headers: attempt.headers, signal, cache: 'no-store' })
  heard()
  if (await hasNoStreamRoute(response)) return 'no-stream'
  if (!response.ok) throw await refusal(response, 'The live status stream')
  const type = response.headers.get('content-type') ?? ''
  if (!/^text\/event-stream\b/i.test(type) || !response.body) {
    await response.body?.cancel()
    throw new RunSubscriptionError(`The live status stream answered ${type || 'no content type'}, not text/event-stream`, {
      status: response.status,
    })
  }
  attempt.onOpen()
  const events = response.body
    .pipeThrough(onEveryChunk(heard))
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(
      new EventSourceParserStream({
        onRetry: (ms) => {
          if (ms > 0) attempt.onRetry(ms)
        },
        onComment: (comment) => {
          const keepAliveMs = announcedKeepAliveMs(comment)
          if (keepAliveMs === undefined) return
          attempt.onKeepAlive(keepAliveMs)
          // The deadline runs from here on the announced interval.
          heard()
        },
      }),
    )
  const reader = events.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return 'dropped'
      if (attempt.onEvent(value)) return 'ended'
    }
  } finally {
    // Frees the connection at once (end, malformed event, abort) instead of waiting for the server.
    await reader.cancel().catch(() => {})
  }
}

/** A pass-through that calls `heard` for every chunk of bytes, comments and partial lines included. */
function onEveryChunk(heard: () => void): TransformStream<Uint8Array<ArrayBuffer>, Uint8Array<ArrayBuffer>> {
  return new TransformStream({
    transform(chunk, controller) {
      heard()
      controller.enqueue(chunk)
    },
  })
}

/**
 * Whether the answer says this server has no stream route: 405, or a 404 that is not the
 * handlers' unknown-run problem (`route_not_found`, or no problem at all: the app's router).
 */
async function hasNoStreamRoute(response: Response): Promise<boolean> {
  if (response.status === 405) {
    await response.body?.cancel()
    return true
  }
  if (response.status !== 404) return false
  // The handlers answer an unknown run with a problem (`run_not_found`); a 404 that is not a
  // problem comes from the app's router (a Next.js app with one file per route and none for
  // `events`), so it too means "no stream route here".
  const problem = await readProblem(response.clone())
  if (problem === undefined || problem.code === 'route_not_found') {
    await response.body?.cancel()
    return true
  }
  return false
}
