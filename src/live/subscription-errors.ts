/**
 * What can go wrong in a run subscription, and the subscriber's one rule for which failures are
 * worth another attempt.
 */
import { HEADERS } from '../contract/headers.js'
import { readProblem } from '../contract/event-stream.js'
import type { Problem } from '../contract/problem.js'
import { parseRetryAfter } from '../contract/retry-after.js'
import { isErrorNamed } from '../internal/is-error-named.js'
import { SILENT_KEEP_ALIVES } from '../internal/attempt-deadline.js'

/**
 * Why a subscription failed: an HTTP answer it cannot use, with the server's problem when it
 * sent one, or a malformed event.
 */
export class RunSubscriptionError extends Error {
  /** Always `'RunSubscriptionError'`; check it with {@link isRunSubscriptionError}. */
  override readonly name = 'RunSubscriptionError' as const
  /** The HTTP status of the refused request; `undefined` for a malformed event. */
  readonly status: number | undefined
  /** The server's `application/problem+json` body, when it sent one. */
  readonly problem: Problem | undefined
  /**
   * How long the server asked to wait before the next attempt (its `Retry-After`, seconds or an
   * HTTP date, as milliseconds from the answer), when it sent one. The next attempt waits at least
   * this long, or the backoff when that is longer.
   */
  readonly retryAfterMs: number | undefined

  constructor(
    message: string,
    details: { status?: number | undefined; problem?: Problem | undefined; retryAfterMs?: number | undefined; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.status = details.status
    this.problem = details.problem
    this.retryAfterMs = details.retryAfterMs
  }
}

/**
 * The live stream said nothing, not even a keep-alive, for {@link SILENT_KEEP_ALIVES} of the
 * server's keep-alive intervals (or the answer's headers took that long): the path is taken as
 * dead (a NAT entry or proxy dropped it without a FIN), and the subscriber reconnects with
 * `Last-Event-ID`. Reported as the cause of the `reconnecting` state; never fatal.
 */
export class RunStreamSilentError extends Error {
  /** Always `'RunStreamSilentError'`; check it with {@link isRunStreamSilentError}. */
  override readonly name = 'RunStreamSilentError' as const
  /** How long nothing arrived, in milliseconds. */
  readonly silentMs: number
  /** The keep-alive interval the deadline was derived from, in milliseconds (announced by the server, or the default). */
  readonly keepAliveMs: number

  constructor(silentMs: number, keepAliveMs: number) {
    super(
      `The live status stream sent nothing for ${silentMs} ms (${SILENT_KEEP_ALIVES} keep-alive intervals of ${keepAliveMs} ms); taking the connection as lost and reconnecting`,
    )
    this.silentMs = silentMs
    this.keepAliveMs = keepAliveMs
  }
}

/**
 * A poll of the fallback (`GET {url}/{runId}/status`) did not complete, headers and body, within
 * its deadline: {@link SILENT_KEEP_ALIVES} keep-alive intervals (45 s with the default 15 s, or 3 ×
 * the interval a stream of this server announced), the same figure that bounds a silent stream.
 * The request is aborted and retried like any failed request (state `reconnecting`, backoff).
 */
export class RunPollTimeoutError extends Error {
  /** Always `'RunPollTimeoutError'`; check it with {@link isRunPollTimeoutError}. */
  override readonly name = 'RunPollTimeoutError' as const
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number

  constructor(timeoutMs: number) {
    super(`GET /status did not complete (headers and body) within ${timeoutMs} ms; aborting it and polling again`)
    this.timeoutMs = timeoutMs
  }
}

/** Whether a value is a {@link RunPollTimeoutError}, also across realms and dual builds. */
export function isRunPollTimeoutError(error: unknown): error is RunPollTimeoutError {
  return isErrorNamed(error, 'RunPollTimeoutError')
}

/** Whether a value is a {@link RunStreamSilentError}, also across realms and dual builds. */
export function isRunStreamSilentError(error: unknown): error is RunStreamSilentError {
  return isErrorNamed(error, 'RunStreamSilentError')
}

/** Whether a value is a {@link RunSubscriptionError}, also across realms and dual builds. */
export function isRunSubscriptionError(error: unknown): error is RunSubscriptionError {
  return isErrorNamed(error, 'RunSubscriptionError')
}

/**
 * The subscriber's one retry rule: every failure is worth another attempt (a network error, a
 * silent stream, a poll past its deadline, a 5xx, 408, 429, an answer that is not an event
 * stream) except what retrying cannot fix: a 4xx other than 408 and 429 (401, 403, an unknown
 * run), and a {@link RunSubscriptionError} without a status (a malformed event or body, a URL
 * that cannot be built).
 */
export function isRetriableFailure(error: unknown): boolean {
  if (!isRunSubscriptionError(error)) return true
  const { status } = error
  if (status === undefined) return false
  return !(status >= 400 && status < 500 && status !== 408 && status !== 429)
}

/** A refused answer as an error: its status, the server's problem and its `Retry-After`. */
export async function refusal(response: Response, what: string): Promise<RunSubscriptionError> {
  const problem = await readProblem(response)
  return new RunSubscriptionError(
    `${what} answered ${response.status}${problem ? ` ${problem.code}${problem.detail ? `: ${problem.detail}` : ''}` : ''}`,
    { status: response.status, problem, retryAfterMs: parseRetryAfter(response.headers.get(HEADERS.retryAfter)) },
  )
}
