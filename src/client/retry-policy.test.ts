import { describe, expect, it } from 'vitest'
import { DEFAULT_RETRY_POLICY, isRetriableStatus, parseRetryAfter, resolveRetryPolicy, retryDelay, toKyRetryOptions } from './retry-policy.js'

describe('retry policy', () => {
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

  it('waits Retry-After up to maxRetryAfter, else full jitter up to maxDelay', () => {
    const policy = resolveRetryPolicy({ baseDelay: 100, maxDelay: 1_000, maxRetryAfter: 5_000 })
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
    const policy = resolveRetryPolicy({ baseDelay: 100, maxDelay: 1_000 })
    expect(retryDelay(policy, 1, undefined, () => 0.5)).toBe(50)
    expect(retryDelay(policy, 3, undefined, () => 0.5)).toBe(200)
    // The cap bounds the ceiling before the draw: retry 10 (51,200 ms uncapped) at 0.5 is 500.
    expect(retryDelay(policy, 10, undefined, () => 0.5)).toBe(500)
    expect(retryDelay(policy, 10, undefined, () => 0)).toBe(0)
    // A Retry-After takes no jitter.
    expect(retryDelay(policy, 10, 700, () => 0)).toBe(700)
  })

  it('hands ky the retries after the first attempt, POST included, waiting what the plan says', () => {
    const planned: Array<[string, number]> = []
    const ky = toKyRetryOptions(resolveRetryPolicy({ limit: 5, baseDelay: 100 }), (error, retry) => {
      planned.push([error.name, retry])
      return error.name === 'NetworkError' ? 250 : undefined
    })
    expect(ky.limit).toBe(4)
    expect(ky.methods).toContain('post')
    expect(ky.retryOnTimeout).toBe(true)
    expect(ky.jitter).toBe(false)
    const network = Object.assign(new Error('x'), { name: 'NetworkError' })
    // ky's first retry is the policy's second.
    expect(ky.shouldRetry?.({ error: network, retryCount: 1 })).toBe(true)
    expect(ky.delay?.(1)).toBe(250)
    expect(ky.shouldRetry?.({ error: new Error('bug'), retryCount: 2 })).toBe(false)
    expect(planned).toEqual([['NetworkError', 2], ['Error', 3]])
    expect(toKyRetryOptions(resolveRetryPolicy({ limit: 0 }), () => 0).limit).toBe(0)
  })

  it('fills defaults and rejects nonsense', () => {
    expect(resolveRetryPolicy(undefined)).toEqual(DEFAULT_RETRY_POLICY)
    expect(resolveRetryPolicy({ limit: undefined, baseDelay: 50 })).toEqual({ ...DEFAULT_RETRY_POLICY, baseDelay: 50 })
    expect(() => resolveRetryPolicy({ limit: 1.5 })).toThrow(/retry.limit/)
    expect(() => resolveRetryPolicy({ maxDelay: -1 })).toThrow(/retry.maxDelay/)
    expect(() => resolveRetryPolicy({ baseDelay: Number.NaN })).toThrow(/retry.baseDelay/)
  })
})
