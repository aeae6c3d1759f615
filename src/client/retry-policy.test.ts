import { describe, expect, it } from 'vitest'
import { PipelineStatusError, StatusHttpError, StatusNetworkError, StatusTimeoutError } from './errors.js'
import { DEFAULT_RETRY_POLICY, describeRetry, isRetriableStatus, parseRetryAfter, resolveRetryPolicy, retryDelay, shouldRetry } from './retry-policy.js'

describe('retry policy', () => {
  it('counts a retry by the attempt it starts of all attempts and by the retry of all retries (the Python client says the same)', () => {
    // The default limit 5: six attempts in all. It said "retry 1 of 5", the Python client "retry 1 of 4" for its five attempts.
    expect(describeRetry(1, DEFAULT_RETRY_POLICY.limit)).toBe('attempt 2 of 6 (retry 1 of 5)')
    expect(describeRetry(5, 5)).toBe('attempt 6 of 6 (retry 5 of 5)')
    expect(describeRetry(1, 1)).toBe('attempt 2 of 2 (retry 1 of 1)')
  })

  it('retries 408, 429 and every 5xx, never other 4xx', () => {
    for (const status of [408, 429, 500, 501, 502, 503, 504, 520, 599]) expect(isRetriableStatus(status)).toBe(true)
    for (const status of [400, 401, 403, 404, 409, 413, 415, 422, 200, 302]) expect(isRetriableStatus(status)).toBe(false)
  })

  it('reads Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2025-10-25T14:00:00Z')
    expect(parseRetryAfter('1', now)).toBe(1000)
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000)
    expect(parseRetryAfter('Sat, 25 Oct 2025 14:00:30 GMT', now)).toBe(30_000)
    expect(parseRetryAfter('Sat, 25 Oct 2025 13:00:00 GMT', now)).toBe(0)
    expect(parseRetryAfter('soon', now)).toBeUndefined()
    expect(parseRetryAfter(null, now)).toBeUndefined()
  })

  it('waits Retry-After up to maxRetryAfterMs, else full jitter up to maxDelayMs', () => {
    const policy = resolveRetryPolicy({ baseDelayMs: 100, maxDelayMs: 1_000, maxRetryAfterMs: 5_000 })
    expect(retryDelay(policy, 1, 2_000)).toBe(2_000)
    expect(retryDelay(policy, 1, 60_000)).toBe(5_000)
    for (let i = 0; i < 200; i++) {
      const first = retryDelay(policy, 1)
      expect(first).toBeGreaterThanOrEqual(0)
      expect(first).toBeLessThanOrEqual(100)
      expect(retryDelay(policy, 3)).toBeLessThanOrEqual(400)
      expect(retryDelay(policy, 10)).toBeLessThanOrEqual(1_000)
    }
  })

  it('draws full jitter below the capped ceiling, from the one backoff', () => {
    const policy = resolveRetryPolicy({ baseDelayMs: 100, maxDelayMs: 1_000 })
    expect(retryDelay(policy, 1, undefined, () => 0.5)).toBe(50)
    expect(retryDelay(policy, 3, undefined, () => 0.5)).toBe(200)
    // The cap bounds the ceiling before the draw: retry 10 (51,200 ms uncapped) at 0.5 is 500.
    expect(retryDelay(policy, 10, undefined, () => 0.5)).toBe(500)
    expect(retryDelay(policy, 10, undefined, () => 0)).toBe(0)
    // A Retry-After takes no jitter.
    expect(retryDelay(policy, 10, 700, () => 0)).toBe(700)
  })

  it('has one retry rule: network errors, timeouts, 408, 429 and 5xx, never other 4xx or other errors', () => {
    const request = new Request('http://127.0.0.1/x', { method: 'POST' })
    const http = (status: number) => new StatusHttpError({ request, response: new Response(null, { status }), body: undefined, attempts: 1 })
    expect(shouldRetry(new StatusNetworkError({ request, attempts: 1 }))).toBe(true)
    expect(shouldRetry(new StatusTimeoutError({ request, timeoutMs: 10, attempts: 1 }))).toBe(true)
    for (const status of [408, 429, 500, 503]) expect(shouldRetry(http(status))).toBe(true)
    for (const status of [400, 401, 403, 404, 409, 413, 422]) expect(shouldRetry(http(status))).toBe(false)
    expect(shouldRetry(new PipelineStatusError('aborted'))).toBe(false)
    expect(shouldRetry(new TypeError('fetch failed'))).toBe(false)
    // An error of the other build (ESM or CommonJS) of the package is judged by its name alike.
    expect(shouldRetry(Object.assign(new Error('timed out'), { name: 'StatusTimeoutError' }))).toBe(true)
    expect(shouldRetry(Object.assign(new Error('refused'), { name: 'StatusHttpError', status: 422 }))).toBe(false)
  })

  it('fills defaults and rejects nonsense', () => {
    expect(resolveRetryPolicy(undefined)).toEqual(DEFAULT_RETRY_POLICY)
    expect(resolveRetryPolicy({ limit: undefined, baseDelayMs: 50 })).toEqual({ ...DEFAULT_RETRY_POLICY, baseDelayMs: 50 })
    expect(() => resolveRetryPolicy({ limit: 1.5 })).toThrow(/retry.limit/)
    expect(() => resolveRetryPolicy({ maxDelayMs: -1 })).toThrow(/retry.maxDelayMs/)
    expect(() => resolveRetryPolicy({ baseDelayMs: Number.NaN })).toThrow(/retry.baseDelayMs/)
  })
})
