import { describe, expect, it } from 'vitest'
import { closedStops } from '../contract/live-status.js'
import { afterClosed, isRetriableFailure, RunPollTimeoutError, RunStreamClosedError, RunStreamSilentError, RunSubscriptionError } from './subscription-errors.js'

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

  it("stops for a `: closed` cause a reconnect cannot help, and retries the others", () => {
    const readToken = 'Bearer psrt1.tag.bmlnaHRseQ.1999999999.sig'
    expect(closedStops('deleted', null)).toBe(true)
    expect(closedStops('not-admitted', 'Bearer session')).toBe(true)
    expect(closedStops('credential-expired', readToken)).toBe(true)
    expect(closedStops('credential-expired', 'psrt1.1999999999.c2ln')).toBe(true)
    // A session (cookies, the app's own token) may have been renewed: its reconnect asks authorize again.
    expect(closedStops('credential-expired', null)).toBe(false)
    expect(closedStops('credential-expired', 'Bearer app-session')).toBe(false)
    expect(closedStops('update-unavailable', readToken)).toBe(false)
    expect(closedStops('membership-failed', readToken)).toBe(false)
    expect(isRetriableFailure(new RunStreamClosedError({ cause: 'deleted', runId: 'r' }, true))).toBe(false)
    expect(isRetriableFailure(new RunStreamClosedError({ cause: 'update-unavailable', runId: 'r' }, false))).toBe(true)
  })

  it('reports a refusal right after a `credential-expired` end as that expiry, and anything else as it is', () => {
    const expired = new RunStreamClosedError({ cause: 'credential-expired', runId: 'r' }, false)
    const refused = new RunSubscriptionError('401', { status: 401 })
    const reported = afterClosed(refused, expired) as RunStreamClosedError
    expect(reported).toMatchObject({ name: 'RunStreamClosedError', closedCause: 'credential-expired', runId: 'r', final: true })
    expect(reported.cause).toBe(refused)
    const unavailable = new RunSubscriptionError('503', { status: 503 })
    expect(afterClosed(unavailable, expired)).toBe(unavailable)
    expect(afterClosed(refused, undefined)).toBe(refused)
    expect(afterClosed(refused, new RunStreamClosedError({ cause: 'update-unavailable', runId: 'r' }, false))).toBe(refused)
  })
})
