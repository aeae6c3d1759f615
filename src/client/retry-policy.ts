import { backoffDelay } from '../internal/backoff.js'
import { isStatusHttpError, isStatusNetworkError, isStatusTimeoutError } from './errors.js'

// The one parser, shared with the live status subscriber; the client's entry exports it from here.
export { parseRetryAfter } from '../contract/retry-after.js'

/**
 * How one request is retried: exponential backoff with full jitter, capped, honouring the
 * server's `Retry-After`. Network errors, per-attempt timeouts, 408, 429 and 5xx are retried;
 * other 4xx never are (they would fail the same way again).
 *
 * @example
 * ```ts
 * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient({ retry: { limit: 3, baseDelayMs: 200, maxDelayMs: 2_000 } })
 * ```
 */
export interface RetryPolicy {
  /**
   * Retries after the first attempt; `0` sends once.
   * @default 5
   */
  limit?: number | undefined
  /**
   * Backoff base in milliseconds: retry `n` waits a random time in `[0, baseDelayMs * 2^(n-1)]`
   * (full jitter), at most `maxDelayMs`.
   * @default 300
   */
  baseDelayMs?: number | undefined
  /**
   * Upper bound of one backoff wait, in milliseconds.
   * @default 10_000
   */
  maxDelayMs?: number | undefined
  /**
   * Upper bound of a wait the server asks for with `Retry-After` (seconds or an HTTP date),
   * in milliseconds. A `Retry-After` is honoured exactly, without jitter, up to this bound.
   * @default 60_000
   */
  maxRetryAfterMs?: number | undefined
}

/** The retry policy with every default filled in. */
export type ResolvedRetryPolicy = { readonly [K in keyof RetryPolicy]-?: number }

/** The defaults of {@link RetryPolicy}. */
export const DEFAULT_RETRY_POLICY: ResolvedRetryPolicy = Object.freeze({
  limit: 5,
  baseDelayMs: 300,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 60_000,
})

/** Whether an HTTP status is worth retrying: 408, 429 and every 5xx. */
export function isRetriableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599)
}

/**
 * The client's one retry rule: whether a failed request may succeed if sent again (a network
 * error, a per-attempt timeout, or an HTTP 408, 429 or 5xx, see {@link isRetriableStatus}). Used
 * by the first send, its retries, and the outbox's classification of a failed delivery. Anything
 * else (another 4xx, an abort, an error that is not the client's) is `false`. The guards check
 * the error's `name`, so an error from another realm or build counts alike.
 */
export function shouldRetry(error: unknown): boolean {
  if (isStatusNetworkError(error) || isStatusTimeoutError(error)) return true
  return isStatusHttpError(error) && isRetriableStatus(error.status)
}

/** Fills in the defaults and checks every field; throws a `RangeError` naming the bad one. */
export function resolveRetryPolicy(policy: RetryPolicy | undefined): ResolvedRetryPolicy {
  const resolved = { ...DEFAULT_RETRY_POLICY, ...stripUndefined(policy ?? {}) } as { -readonly [K in keyof ResolvedRetryPolicy]: number }
  if (!Number.isInteger(resolved.limit) || resolved.limit < 0) {
    throw new RangeError('retry.limit must be a non-negative integer')
  }
  for (const key of ['baseDelayMs', 'maxDelayMs', 'maxRetryAfterMs'] as const) {
    if (!(resolved[key] >= 0)) throw new RangeError(`retry.${key} must be a non-negative number of milliseconds`)
  }
  return Object.freeze(resolved)
}

/**
 * The wait before retry number `retry` (1 for the first retry), in milliseconds: the server's
 * `Retry-After` when it sent one (capped at `maxRetryAfterMs`, no jitter), else full jitter below
 * `min(maxDelayMs, baseDelayMs * 2^(retry-1))` (the package's one backoff, `src/internal/backoff.ts`).
 * Every retry wait of a request and of the outbox comes from here.
 *
 * @param random a source of uniform numbers in `[0, 1)`, injected by tests.
 */
export function retryDelay(
  policy: ResolvedRetryPolicy,
  retry: number,
  retryAfterMs?: number | undefined,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== undefined) return Math.min(policy.maxRetryAfterMs, retryAfterMs)
  return backoffDelay(retry, { baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs, jitter: 'full' }, random)
}

/**
 * How a retry is counted in the client's warnings, the same words in the Python client: the
 * attempt it starts among all the request's attempts, then the retry among all the retries, e.g.
 * `attempt 2 of 6 (retry 1 of 5)` for the first retry of the default `limit` 5. `retry` counts
 * from 1; `limit` is {@link RetryPolicy.limit}, the retries after the first attempt. Internal.
 */
export function describeRetry(retry: number, limit: number): string {
  return `attempt ${retry + 1} of ${limit + 1} (retry ${retry} of ${limit})`
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}
