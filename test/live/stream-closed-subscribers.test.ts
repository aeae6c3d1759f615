/**
 * The subscribers read the server's `: closed <cause> [<runId>]` comment (sent right before it ends
 * a stream for a reason of its own) instead of taking the end for a dropped connection: where
 * reconnecting cannot help (`deleted`, `not-admitted`, `credential-expired` with a read token) they
 * stop in state `error` with a `RunStreamClosedError` naming the cause, and make no further request;
 * where it can (`update-unavailable`, `membership-failed`, an expired session that may have been
 * renewed) they reconnect as before, the error of `reconnecting` naming the cause. Against a fake
 * fetch, no server (test/live/stream-closed-http.test.ts runs the real handlers over HTTP).
 */
import {
  isRunStreamClosedError,
  isRunSubscriptionError,
  type RunConnectionState,
  type RunStreamClosedError,
  type RunsConnectionState,
  subscribeToRun,
  subscribeToRuns,
  type SubscribeToRunOptions,
} from 'pipeline-status-sdk'
import { describe, expect, it } from 'vitest'
import { type FakeFetch, fakeEventFetch, problemResponse } from './fake-event-fetch.js'
import { runRecord, stageRecord, statusDocument, summary } from './sse-fixture.js'

const RUN_TOKEN = 'psrt1.1999999999.c2lnbmF0dXJl'
const TAG_TOKEN = 'psrt1.tag.bmlnaHRseQ.1999999999.sig'
const URL_BASE = 'http://app.test/api/pipeline'

/** A run followed on its own stream, and every state it reported (with its error). */
function followAlone(fake: FakeFetch, runId: string, options: SubscribeToRunOptions = {}) {
  const states: Array<[RunConnectionState, Error | undefined]> = []
  const subscription = subscribeToRun(runId, {
    url: URL_BASE,
    share: false,
    fetch: fake.fetch,
    reconnectDelayMs: 1,
    onStateChange: (state, error) => void states.push([state, error]),
    ...options,
  })
  return { subscription, states }
}

function snapshot(runId: string) {
  return statusDocument(runRecord(runId, 'PROCESSING'), [stageRecord(1, 'PROCESSING')])
}

describe('subscribeToRun on its own stream reads `: closed`', () => {
  for (const [cause, token] of [
    ['deleted', RUN_TOKEN],
    ['not-admitted', TAG_TOKEN],
    ['credential-expired', RUN_TOKEN],
  ] as const) {
    it(`\`: closed ${cause}\` (token ${token.slice(0, 9)}…): state error with a final RunStreamClosedError naming it, no reconnect`, async () => {
      const fake = fakeEventFetch()
      const { subscription, states } = followAlone(fake, 'run-1', { token })
      const stream = (await fake.request(0)).stream()
      stream.write(': keep-alive-ms 15000\n\n')
      stream.event('snapshot', snapshot('run-1'), '3')
      stream.write(`: closed ${cause} run-1\n\n`)
      stream.end()
      await subscription.done
      expect(subscription.state).toBe('error')
      const error = subscription.error
      expect(isRunStreamClosedError(error)).toBe(true)
      expect(error).toMatchObject({ name: 'RunStreamClosedError', closedCause: cause, runId: 'run-1', final: true })
      expect(error?.message).toContain(`closed ${cause}`)
      expect(states.map(([state]) => state)).toEqual(['live', 'error'])
      // Stopped for good: the reconnect (401 or 404) was never made.
      expect(fake.requests).toHaveLength(1)
      expect(subscription.status?.run.id).toBe('run-1')
    })
  }

  it('`: closed update-unavailable`: reconnects with Last-Event-ID, the cause of `reconnecting` naming it', async () => {
    const fake = fakeEventFetch()
    const { subscription, states } = followAlone(fake, 'run-1', { token: RUN_TOKEN })
    const first = (await fake.request(0)).stream()
    first.event('snapshot', snapshot('run-1'), '3')
    first.write(': closed update-unavailable run-1\n\n')
    first.end()
    const again = await fake.request(1)
    expect(again.headers.get('last-event-id')).toBe('3')
    const reconnecting = states.find(([state]) => state === 'reconnecting')?.[1]
    expect(reconnecting).toMatchObject({ name: 'RunStreamClosedError', closedCause: 'update-unavailable', runId: 'run-1', final: false })
    const stream = again.stream()
    stream.event('update', { run: runRecord('run-1', 'COMPLETED'), stages: [stageRecord(1, 'COMPLETED', 'done')] }, '4')
    stream.event('end', { run: runRecord('run-1', 'COMPLETED') }, '4')
    await subscription.done
    expect(subscription.state).toBe('finished')
  })

  it("`: closed credential-expired` with the app's session: one reconnect asks again; a refusal stops with the expiry (the 401 as its cause), a renewed session goes on", async () => {
    const refused = fakeEventFetch()
    const ended = followAlone(refused, 'run-1', { credentials: 'include' })
    const first = (await refused.request(0)).stream()
    first.event('snapshot', snapshot('run-1'), '3')
    first.write(': closed credential-expired run-1\n\n')
    first.end()
    // A server briefly unavailable between the end and the refusal changes nothing.
    ;(await refused.request(1)).respond(problemResponse(503, 'service_unavailable'))
    ;(await refused.request(2)).respond(problemResponse(401, 'authentication_required', 'The session expired'))
    await ended.subscription.done
    expect(ended.states.map(([state]) => state)).toEqual(['live', 'reconnecting', 'reconnecting', 'error'])
    expect(ended.states[1]?.[1]).toMatchObject({ closedCause: 'credential-expired', final: false })
    const error = ended.subscription.error as RunStreamClosedError
    expect(error).toMatchObject({ name: 'RunStreamClosedError', closedCause: 'credential-expired', runId: 'run-1', final: true })
    expect(isRunSubscriptionError(error.cause)).toBe(true)
    expect(error.cause).toMatchObject({ status: 401, problem: { code: 'authentication_required' } })
    expect(refused.requests).toHaveLength(3)

    const renewed = fakeEventFetch()
    const goesOn = followAlone(renewed, 'run-1', { credentials: 'include' })
    const before = (await renewed.request(0)).stream()
    before.event('snapshot', snapshot('run-1'), '3')
    before.write(': closed credential-expired run-1\n\n')
    before.end()
    const after = (await renewed.request(1)).stream()
    after.event('snapshot', snapshot('run-1'), '3')
    after.event('end', { run: runRecord('run-1', 'COMPLETED') }, '4')
    await goesOn.subscription.done
    expect(goesOn.subscription.state).toBe('finished')
  })

  it('a refusal after a drop without `: closed` is reported as before (a RunSubscriptionError)', async () => {
    const fake = fakeEventFetch()
    const { subscription } = followAlone(fake, 'run-1', { token: RUN_TOKEN })
    const first = (await fake.request(0)).stream()
    first.event('snapshot', snapshot('run-1'), '3')
    first.end()
    ;(await fake.request(1)).respond(problemResponse(404, 'run_not_found'))
    await subscription.done
    expect(isRunSubscriptionError(subscription.error)).toBe(true)
    expect(isRunStreamClosedError(subscription.error)).toBe(false)
  })
})

describe('set streams read `: closed`', () => {
  function followSet(fake: FakeFetch, options: Parameters<typeof subscribeToRuns>[0]) {
    const states: Array<[RunsConnectionState, Error | undefined]> = []
    const subscription = subscribeToRuns({ url: URL_BASE, fetch: fake.fetch, reconnectDelayMs: 1, onStateChange: (state, error) => void states.push([state, error]), ...options })
    return { subscription, states }
  }

  it('subscribeToRuns with runIds: `: closed deleted <runId>` stops with the cause and the run, no reconnect', async () => {
    const fake = fakeEventFetch()
    const { subscription } = followSet(fake, { runIds: ['run-a', 'run-b'], token: TAG_TOKEN })
    const stream = (await fake.request(0)).stream()
    stream.event('snapshot', summary('run-a', 1), 'run-a:1')
    stream.event('snapshot', summary('run-b', 2), 'run-b:1')
    stream.event('ready', { runs: 2 })
    stream.write(': closed deleted run-b\n\n')
    stream.end()
    await subscription.done
    expect(subscription.state).toBe('error')
    expect(subscription.error).toMatchObject({ name: 'RunStreamClosedError', closedCause: 'deleted', runId: 'run-b', final: true })
    expect(fake.requests).toHaveLength(1)
  })

  it('subscribeToRuns with a tag read token: `: closed credential-expired` stops (the token is refused again for sure)', async () => {
    const fake = fakeEventFetch()
    const { subscription } = followSet(fake, { filter: { tag: 'nightly' }, token: TAG_TOKEN })
    const stream = (await fake.request(0)).stream()
    stream.event('ready', { runs: 0 })
    stream.write(': closed credential-expired\n\n')
    stream.end()
    await subscription.done
    expect(subscription.error).toMatchObject({ closedCause: 'credential-expired', runId: undefined, final: true })
    expect(fake.requests).toHaveLength(1)
  })

  it('subscribeToRuns: `: closed membership-failed` reconnects to fresh snapshots, the cause of `reconnecting` naming it', async () => {
    const fake = fakeEventFetch()
    const { subscription, states } = followSet(fake, { filter: { tag: 'nightly' }, token: TAG_TOKEN })
    const first = (await fake.request(0)).stream()
    first.event('ready', { runs: 0 })
    first.write(': closed membership-failed\n\n')
    first.end()
    const again = (await fake.request(1)).stream()
    again.event('ready', { runs: 0 })
    expect(states.find(([state]) => state === 'reconnecting')?.[1]).toMatchObject({ closedCause: 'membership-failed', final: false })
    subscription.close()
    await subscription.done
  })

  it("the page's shared connection: `: closed not-admitted <runId>` stops that run only; the others go on, on a connection without it", async () => {
    const fake = fakeEventFetch()
    const follow = (runId: string) => followAlone(fake, runId, { share: true, token: TAG_TOKEN })
    const [a, b] = [follow('run-a'), follow('run-b')]
    const request = await fake.request(0)
    expect(request.url.searchParams.getAll('run')).toEqual(['run-a', 'run-b'])
    const stream = request.stream()
    stream.event('snapshot', snapshot('run-a'), 'run-a:1')
    stream.event('snapshot', snapshot('run-b'), 'run-b:1')
    stream.event('ready', { runs: 2 })
    stream.write(': closed not-admitted run-a\n\n')
    stream.end()
    await a.subscription.done
    expect(a.subscription.error).toMatchObject({ name: 'RunStreamClosedError', closedCause: 'not-admitted', runId: 'run-a', final: true })
    const next = await fake.request(1)
    expect(next.url.searchParams.getAll('run')).toEqual(['run-b'])
    const after = next.stream()
    after.event('snapshot', snapshot('run-b'), 'run-b:2')
    after.event('end', { run: runRecord('run-b', 'COMPLETED') }, 'run-b:3')
    await b.subscription.done
    expect(b.subscription.state).toBe('finished')
    expect(fake.requests).toHaveLength(2)
  })

  it("the page's shared connection with a tag read token: `: closed credential-expired` stops every run it carried", async () => {
    const fake = fakeEventFetch()
    const follow = (runId: string) => followAlone(fake, runId, { share: true, token: TAG_TOKEN })
    const [a, b] = [follow('run-a'), follow('run-b')]
    const stream = (await fake.request(0)).stream()
    stream.event('snapshot', snapshot('run-a'), 'run-a:1')
    stream.event('snapshot', snapshot('run-b'), 'run-b:1')
    stream.event('ready', { runs: 2 })
    stream.write(': closed credential-expired\n\n')
    stream.end()
    await Promise.all([a.subscription.done, b.subscription.done])
    for (const { subscription } of [a, b]) expect(subscription.error).toMatchObject({ closedCause: 'credential-expired', final: true })
    expect(fake.requests).toHaveLength(1)
  })
})
