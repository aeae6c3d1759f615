/**
 * What can go wrong in a run subscription, and the subscriber's one rule for which failures are
 * worth another attempt.
 */
import { HEADERS } from '../contract/headers.js'
import { readProblem } from '../contract/event-stream.js'
import type { Problem } from '../contract/problem.js'
import type { StreamClosedCause, StreamClosedComment } from '../contract/live-status.js'
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
 * The server ended the live stream before the run's `end` and said why (`: closed <cause>
 * [<runId>]`, right before the end). Where reconnecting cannot help, the subscription stops with
 * it in state `error` and makes no further request:
 * - `deleted`: the run is no longer stored (its reconnect would be `404 run_not_found`);
 * - `not-admitted`: the credential no longer covers the run as it now is (a tag read token whose
 *   tag the run lost, a run that left the app's `listScope`; the reconnect would be refused);
 * - `credential-expired` with a read token (`psrt1.…`): the token expired; mint a new one.
 *
 * Where it can, the subscriber reconnects as after any drop and reports it as the cause of the
 * `reconnecting` state (`final: false`): `update-unavailable` (a rare race),
 * `membership-failed` (a set stream's server error), and `credential-expired` with the app's
 * session (cookies or the app's own token), whose reconnect asks `authorize` again: a renewed
 * session goes on, and a refusal (401, 403) stops the subscription with this error, `final: true`,
 * the refusal as its `cause`: the session expired, sign in again.
 */
export class RunStreamClosedError extends Error {
  /** Always `'RunStreamClosedError'`; check it with {@link isRunStreamClosedError}. */
  override readonly name = 'RunStreamClosedError' as const
  /** Why the server ended the stream: `not-admitted`, `update-unavailable`, `credential-expired`, `deleted` or `membership-failed`. */
  readonly closedCause: StreamClosedCause
  /** The run the server named (a set stream's member; a run's own stream names its run); `undefined` when it named none. */
  readonly runId: string | undefined
  /** Whether the subscription stopped (state `error`): reconnecting cannot help. */
  readonly final: boolean

  constructor(closed: StreamClosedComment, final: boolean, refusal?: RunSubscriptionError) {
    super(closedMessage(closed, final, refusal), refusal === undefined ? undefined : { cause: refusal })
    this.closedCause = closed.cause
    this.runId = closed.runId
    this.final = final
  }
}

function closedMessage({ cause, runId }: StreamClosedComment, final: boolean, refusal: RunSubscriptionError | undefined): string {
  const which = runId === undefined ? 'The live status stream' : `The live status stream of run ${runId}`
  const why: Record<StreamClosedCause, string> = {
    deleted: 'the run is no longer stored (deleted while unfinished)',
    'not-admitted': 'the credential no longer covers the run (a tag read token whose tag the run lost, or a run that left the app\'s listScope)',
    'credential-expired': 'the credential it was opened with expired (a read token, or the app\'s session)',
    'update-unavailable': 'its next update could not be made (a rare race)',
    'membership-failed': "the set's new membership could not be applied (a server error)",
  }
  const then = refusal !== undefined ? `; the reconnect was refused (${refusal.message}): sign in again, or give a new token` : final ? '; not reconnecting: it cannot help' : '; reconnecting (nothing is lost)'
  return `${which} was ended by the server (closed ${cause}): ${why[cause]}${then}`
}

/**
 * What to report when an attempt fails for good right after the server ended the previous one for
 * `closed`: a refusal (401, 403) of the reconnect after `credential-expired` is the expiry itself
 * (the session was not renewed), reported as a final {@link RunStreamClosedError} with the
 * refusal as its `cause`; anything else is reported as it is.
 */
export function afterClosed(failure: Error | undefined, closed: RunStreamClosedError | undefined): Error | undefined {
  if (closed?.closedCause !== 'credential-expired' || !isRunSubscriptionError(failure)) return failure
  if (failure.status !== 401 && failure.status !== 403) return failure
  return new RunStreamClosedError({ cause: closed.closedCause, runId: closed.runId }, true, failure)
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

/** Whether a value is a {@link RunStreamClosedError}, also across realms and dual builds. */
export function isRunStreamClosedError(error: unknown): error is RunStreamClosedError {
  return isErrorNamed(error, 'RunStreamClosedError')
}

/** Whether a value is a {@link RunSubscriptionError}, also across realms and dual builds. */
export function isRunSubscriptionError(error: unknown): error is RunSubscriptionError {
  return isErrorNamed(error, 'RunSubscriptionError')
}

/**
 * The subscriber's one retry rule: every failure is worth another attempt (a network error, a
 * silent stream, a poll past its deadline, a 5xx, 408, 429, an answer that is not an event
 * stream) except what retrying cannot fix: a 4xx other than 408 and 429 (401, 403, an unknown
 * run), a {@link RunSubscriptionError} without a status (a malformed event or body, a URL
 * that cannot be built), and a final {@link RunStreamClosedError} (the server ended the stream
 * for a cause a reconnect cannot help).
 */
export function isRetriableFailure(error: unknown): boolean {
  if (isRunStreamClosedError(error)) return !error.final
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
