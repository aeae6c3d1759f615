import { describe, expect, it } from 'vitest'
import { isRetriableFailure, RunPollTimeoutError, RunStreamSilentError, RunSubscriptionError } from './subscription-errors.js'

describe("the subscriber's retry rule", () => {
  it('retries network errors, silence, poll timeouts, 408, 429, 5xx and an answer that is not an event stream', () => {
    expect(isRetriableFailure(new TypeError('fetch failed'))).toBe(true)
    expect(isRetriableFailure(new RunStreamSilentError(45_000, 15_000))).toBe(true)
    expect(isRetriableFailure(new RunPollTimeoutError(45_000))).toBe(true)
    for (const status of [408, 429, 500, 502, 503, 504, 200]) {
      expect(isRetriableFailure(new RunSubscriptionError('x', { status }))).toBe(true)
    }
  })

  it('stops on a 4xx other than 408 and 429, and on a failure without a status (malformed event, unbuildable URL)', () => {
    for (const status of [400, 401, 403, 404, 409, 410, 422]) {
      expect(isRetriableFailure(new RunSubscriptionError('x', { status }))).toBe(false)
    }
    expect(isRetriableFailure(new RunSubscriptionError('The stream sent a malformed snapshot event'))).toBe(false)
  })

  it('recognizes a subscription error from another realm or build by its name', () => {
    const foreign = Object.assign(new Error('x'), { name: 'RunSubscriptionError', status: 401 })
    expect(isRetriableFailure(foreign)).toBe(false)
  })
})
