/**
 * One attempt at a run's live stream (`GET {base}/{runId}/events`), as every subscriber of the
 * package reads it: open it, read it through `EventSourceParserStream` until it ends, drops or
 * goes silent, and tell a server without the route from a refusal. The browser's `subscribeToRun`
 * (src/live) and the runner's run-end watch (src/client) both read through it, each with its own
 * errors; what to do about a failure is decided by each subscriber. Internal.
 */
import { EventSourceParserStream, ParseError, type EventSourceMessage } from 'eventsource-parser/stream'
import { AttemptDeadline, announcedKeepAliveMs, SILENT_KEEP_ALIVES } from '../internal/attempt-deadline.js'
import { parseStreamClosedComment, type StreamClosedComment } from './live-status.js'
import { Problem } from './problem.js'

/**
 * The most characters one event may take while it is being read (its unfinished line and the
 * `data:` gathered so far), 32 Mi characters: far above any event of the contract (a snapshot
 * holds every stage's output, each at most 1 MiB streamed or 1 MiB of body) and a bound on what a
 * server that never ends a line can make a subscriber hold. More is an error, not memory.
 */
export const MAX_EVENT_CHARS = 32 * 1024 * 1024

/** How a stream attempt ended without an error: `end` received, the connection closed before it, or no stream route on this server. */
export type StreamOutcome = 'ended' | 'dropped' | 'no-stream'

/** The errors a subscriber throws for what went wrong, so each keeps its own error classes. */
export interface StreamErrors {
  /** Nothing arrived for `silentMs` (headers included), derived from `keepAliveMs`. */
  silent(silentMs: number, keepAliveMs: number): Error
  /** No answer headers within the attempt's `connectMs`. */
  connect?(connectMs: number): Error
  /** A non-2xx answer that is not "no stream route". */
  refused(response: Response): Promise<Error>
  /** A 2xx answer that is not `text/event-stream` (its content type, `''` when none). */
  notEventStream(contentType: string, status: number): Error
  /** One event (or one unfinished line) grew past `maxChars` characters; the attempt is aborted. */
  tooLarge?(maxChars: number): Error
}

/** What one stream attempt needs from its subscriber, and what it tells it. */
export interface StreamAttempt {
  /** The stream's absolute URL. */
  readonly url: string
  readonly fetch: (url: string, init: RequestInit) => Promise<Response>
  /** The subscription's signal: aborting it aborts the attempt. */
  readonly signal: AbortSignal
  /** The request's headers (`Accept`, credentials, `Last-Event-ID`). */
  readonly headers: Headers | Record<string, string>
  /** The fetch `credentials` mode; `undefined`: fetch's default (`same-origin`). */
  readonly credentials?: RequestCredentials | undefined
  /** The bound of one event while it is read, in characters. @default {@link MAX_EVENT_CHARS} */
  readonly maxEventChars?: number | undefined
  /**
   * The deadline of the answer's headers, in milliseconds, when shorter than the silence
   * deadline; `undefined`: the silence deadline ({@link SILENT_KEEP_ALIVES} keep-alive intervals).
   */
  readonly connectMs?: number | undefined
  readonly errors: StreamErrors
  /** The keep-alive interval in force, in milliseconds. */
  keepAliveMs(): number
  /** The server announced its keep-alive interval (`: keep-alive-ms N`). */
  onKeepAlive(ms: number): void
  /** The server's `retry:` field, in milliseconds. */
  onRetry?(ms: number): void
  /**
   * The server said why it is ending the stream (`: closed <cause> [<runId>]`, sent right before
   * the end): the attempt then ends as a drop, and the subscriber decides what the cause means.
   */
  onClosed?(closed: StreamClosedComment): void
  /** The answer is an event stream: the subscription is live. */
  onOpen(): void
  /** Applies one event; `true` once it was `end`. Throws for a malformed one. */
  onEvent(message: EventSourceMessage): boolean
}

/**
 * Opens the stream once and reads it to its end. One deadline, pushed back by every byte: a
 * connection quiet for {@link SILENT_KEEP_ALIVES} keep-alive intervals, headers included (or
 * past `connectMs` before the headers), is aborted with the subscriber's error.
 */
export async function streamOnce(attempt: StreamAttempt): Promise<StreamOutcome> {
  const deadline = new AttemptDeadline(attempt.signal)
  const heard = () => {
    const keepAliveMs = attempt.keepAliveMs()
    const silentMs = SILENT_KEEP_ALIVES * keepAliveMs
    deadline.arm(silentMs, () => attempt.errors.silent(silentMs, keepAliveMs))
  }
  const { connectMs } = attempt
  const connect = attempt.errors.connect?.bind(attempt.errors)
  if (connectMs !== undefined && connect !== undefined && connectMs < SILENT_KEEP_ALIVES * attempt.keepAliveMs()) {
    deadline.arm(connectMs, () => connect(connectMs))
  } else heard()
  try {
    return await readStream(attempt, deadline.signal, heard)
  } catch (error) {
    throw deadline.expired ?? error
  } finally {
    deadline.dispose()
  }
}

async function readStream(attempt: StreamAttempt, signal: AbortSignal, heard: () => void): Promise<StreamOutcome> {
  const init: RequestInit = { headers: attempt.headers, signal, cache: 'no-store' }
  if (attempt.credentials !== undefined) init.credentials = attempt.credentials
  const response = await attempt.fetch(attempt.url, init)
  heard()
  if (await hasNoStreamRoute(response)) return 'no-stream'
  if (!response.ok) throw await attempt.errors.refused(response)
  const type = response.headers.get('content-type') ?? ''
  if (!/^text\/event-stream\b/i.test(type) || !response.body) {
    await response.body?.cancel()
    throw attempt.errors.notEventStream(type, response.status)
  }
  attempt.onOpen()
  const maxChars = attempt.maxEventChars ?? MAX_EVENT_CHARS
  const events = response.body
    .pipeThrough(onEveryChunk(heard))
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(
      new EventSourceParserStream({
        maxBufferSize: maxChars,
        onRetry: (ms) => {
          if (ms > 0) attempt.onRetry?.(ms)
        },
        onComment: (comment) => {
          const keepAliveMs = announcedKeepAliveMs(comment)
          if (keepAliveMs === undefined) {
            const closed = attempt.onClosed === undefined ? undefined : parseStreamClosedComment(comment)
            if (closed !== undefined) attempt.onClosed?.(closed)
            return
          }
          attempt.onKeepAlive(keepAliveMs)
          // The deadline runs from here on the announced interval.
          heard()
        },
      }),
    )
  const reader = events.getReader()
  try {
    for (;;) {
      let next: ReadableStreamReadResult<EventSourceMessage>
      try {
        next = await reader.read()
      } catch (error) {
        if (error instanceof ParseError && error.type === 'max-buffer-size-exceeded') {
          throw attempt.errors.tooLarge?.(maxChars) ?? error
        }
        throw error
      }
      if (next.done) return 'dropped'
      if (attempt.onEvent(next.value)) return 'ended'
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

/** The server's `application/problem+json` body, or `undefined` when the body is anything else. */
export async function readProblem(response: Response): Promise<Problem | undefined> {
  try {
    const parsed = Problem.safeParse(await response.json())
    return parsed.success ? parsed.data : undefined
  } catch {
    return undefined
  }
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
