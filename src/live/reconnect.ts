/**
 * The reconnect state of one subscription, shared by `subscribeToRun` (its run's own stream) and
 * the set-stream loop (`set-stream.ts`): the server's `retry:` delay and keep-alive interval as
 * the stream reports them, the failures in a row, and the one rule for the wait before the next
 * attempt. Internal.
 */
import { DEFAULT_SERVER_KEEP_ALIVE_MS } from '../internal/attempt-deadline.js'
import { backoffDelay } from '../internal/backoff.js'
import { isPositive } from '../internal/is-positive.js'
import type { StreamAttempt } from './stream-attempt.js'
import { closedStops, type StreamClosedComment } from '../contract/live-status.js'
import { afterClosed, isRetriableFailure, isRunSubscriptionError, RunStreamClosedError } from './subscription-errors.js'

/** A subscriber's delays in milliseconds, or its default when not given; a TypeError for one that is not a positive number. */
export function positiveMs(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!isPositive(value)) throw new TypeError(`Expected a positive number of milliseconds, got ${String(value)}`)
  return value
}

export interface Reconnect {
  /** The `streamOnce` hooks that keep the server's keep-alive interval, `retry:` delay and `: closed` cause. */
  readonly hooks: Pick<StreamAttempt, 'keepAliveMs' | 'onKeepAlive' | 'onRetry' | 'onClosed'>
  /** The server's keep-alive interval, in milliseconds (its default until the server names one). */
  keepAliveMs(): number
  /** The connection delivered (an event, a poll): the next drop waits the base delay again. */
  healthy(): void
  /**
   * What a failed or dropped attempt means: `undefined` when retrying cannot help
   * ({@link isRetriableFailure}), else the wait, in milliseconds, before the next attempt: the
   * server's `retry:` delay (or the first delay) doubled per failure in a row up to the longest
   * delay, drawn between half and all of it, or the error's `Retry-After` when that is longer. A
   * clean drop has no error.
   */
  nextWait(failure: Error | undefined): number | undefined
  /**
   * What an attempt that did not end (`end`, aborted) failed with, once the server's `: closed`
   * comment is read: a stream the server ended saying why is a {@link RunStreamClosedError}
   * (final when reconnecting cannot help: {@link closedStops}, judged by the request's
   * `Authorization`); a refusal right after a `credential-expired` end is that expiry
   * ({@link afterClosed}, until a connection delivers again); anything else is `failure` itself.
   * Call it once after every attempt.
   */
  failureOf(failure: Error | undefined, authorization: string | null): Error | undefined
}

/** A fresh reconnect state: `reconnectDelayMs` until the server's `retry:` replaces it, waits capped at `maxReconnectDelayMs`. */
export function createReconnect(reconnectDelayMs: number, maxReconnectDelayMs: number): Reconnect {
  let retryDelay = reconnectDelayMs
  let keepAliveMs = DEFAULT_SERVER_KEEP_ALIVE_MS
  let failures = 0
  // The `: closed` comment of the attempt under way, and the error the previous attempt ended with for one.
  let closedNow: StreamClosedComment | undefined
  let closedBefore: RunStreamClosedError | undefined
  return {
    hooks: {
      keepAliveMs: () => keepAliveMs,
      onKeepAlive: (ms) => {
        keepAliveMs = ms
      },
      onRetry: (ms) => {
        retryDelay = ms
      },
      onClosed: (closed) => {
        closedNow = closed
      },
    },
    keepAliveMs: () => keepAliveMs,
    healthy: () => {
      failures = 0
      closedBefore = undefined
    },
    failureOf(failure, authorization) {
      const closed = closedNow
      closedNow = undefined
      // Kept until a connection delivers again (`healthy`): a 503 between the end and the refusal changes nothing.
      if (closed === undefined) return afterClosed(failure, closedBefore)
      // The server said why it ended the stream: that, not how the connection then ended, is the failure.
      closedBefore = new RunStreamClosedError(closed, closedStops(closed.cause, authorization))
      return closedBefore
    },
    nextWait(failure) {
      if (failure !== undefined && !isRetriableFailure(failure)) return undefined
      failures += 1
      const retryAfterMs = isRunSubscriptionError(failure) ? (failure.retryAfterMs ?? 0) : 0
      return Math.max(retryAfterMs, backoffDelay(failures, { baseMs: retryDelay, maxMs: maxReconnectDelayMs, jitter: 'equal' }))
    },
  }
}
