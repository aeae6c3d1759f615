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
import { isRetriableFailure, isRunSubscriptionError } from './subscription-errors.js'

/** A subscriber's delays in milliseconds, or its default when not given; a TypeError for one that is not a positive number. */
export function positiveMs(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!isPositive(value)) throw new TypeError(`Expected a positive number of milliseconds, got ${String(value)}`)
  return value
}

export interface Reconnect {
  /** The `streamOnce` hooks that keep the server's keep-alive interval and `retry:` delay. */
  readonly hooks: Pick<StreamAttempt, 'keepAliveMs' | 'onKeepAlive' | 'onRetry'>
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
}

/** A fresh reconnect state: `reconnectDelayMs` until the server's `retry:` replaces it, waits capped at `maxReconnectDelayMs`. */
export function createReconnect(reconnectDelayMs: number, maxReconnectDelayMs: number): Reconnect {
  let retryDelay = reconnectDelayMs
  let keepAliveMs = DEFAULT_SERVER_KEEP_ALIVE_MS
  let failures = 0
  return {
    hooks: {
      keepAliveMs: () => keepAliveMs,
      onKeepAlive: (ms) => {
        keepAliveMs = ms
      },
      onRetry: (ms) => {
        retryDelay = ms
      },
    },
    keepAliveMs: () => keepAliveMs,
    healthy: () => {
      failures = 0
    },
    nextWait(failure) {
      if (failure !== undefined && !isRetriableFailure(failure)) return undefined
      failures += 1
      const retryAfterMs = isRunSubscriptionError(failure) ? (failure.retryAfterMs ?? 0) : 0
      return Math.max(retryAfterMs, backoffDelay(failures, { baseMs: retryDelay, maxMs: maxReconnectDelayMs, jitter: 'equal' }))
    },
  }
}
