/**
 * The page's shared connection (subscribeToRun with `share: true`, the default in a browser):
 * runs followed with the same server and credentials are served by one set stream per 50 runs,
 * events dispatched by run; a run token, other credentials or `share: false` follow alone; a
 * server without the set stream is logged once and each run then has its own stream. Against a
 * fake fetch, no server; the Chromium test (test/e2e/shared-connection.test.ts) counts the
 * connections of a real page.
 */
import { type RunConnectionState, type RunStatusResponse, subscribeToRun, type SubscribeToRunOptions } from 'pipeline-status-sdk'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { type FakeFetch, fakeEventFetch, problemResponse, until } from './fake-event-fetch.js'
import { runRecord, stageRecord, statusDocument } from './sse-fixture.js'

afterEach(() => {
  vi.restoreAllMocks()
})

const TAG_TOKEN = 'psrt1.tag.bmlnaHRseQ.1999999999.sig'

/** A subscription and what it reported. */
function follow(fake: FakeFetch, runId: string, options: SubscribeToRunOptions = {}) {
  const updates: RunStatusResponse[] = []
  const states: RunConnectionState[] = []
  const subscription = subscribeToRun(runId, {
    url: 'http://app.test/api/pipeline',
    token: TAG_TOKEN,
    share: true,
    fetch: fake.fetch,
    onUpdate: (status) => void updates.push(status),
    onStateChange: (state) => void states.push(state),
    ...options,
  })
  return { subscription, updates, states }
}

const ids = (request: { url: URL }) => request.url.searchParams.getAll('run')

describe('subscribeToRun on a shared connection', () => {
  it('serves the runs of one page and one credential with one set stream, dispatched by run; a later run reopens it with the runs still followed', async () => {
    const fake = fakeEventFetch()
    const [a, b, c] = [follow(fake, 'run-a'), follow(fake, 'run-b'), follow(fake, 'run-c')]
    const request = await fake.request(0)
    expect(`${request.url.origin}${request.url.pathname}`).toBe('http://app.test/api/pipeline/events')
    expect(ids(request)).toEqual(['run-a', 'run-b', 'run-c'])
    expect(request.url.searchParams.get('view')).toBe('full')
    expect(request.headers.get('authorization')).toBe(`Bearer ${TAG_TOKEN}`)
    const stream = request.stream()
    stream.event('snapshot', statusDocument(runRecord('run-a', 'PROCESSING'), [stageRecord(1, 'PROCESSING')]), 'run-a:1')
    stream.event('snapshot', statusDocument(runRecord('run-b', 'PROCESSING'), [{ ...stageRecord(1, 'PROCESSING', ''), outputSeq: null }]), 'run-b:1')
    stream.event('snapshot', statusDocument(runRecord('run-c', 'PENDING'), []), 'run-c:1')
    stream.event('ready', { runs: 3 })
    stream.event('output', { runId: 'run-b', stageNumber: 1, seq: 0, text: 'to' }, 'run-b:2')
    stream.event('output', { runId: 'run-b', stageNumber: 1, seq: 1, text: 'kens' }, 'run-b:3')
    stream.event('update', { run: runRecord('run-a', 'COMPLETED'), stages: [stageRecord(1, 'COMPLETED', 'done')] }, 'run-a:2')
    stream.event('end', { run: runRecord('run-a', 'COMPLETED') }, 'run-a:2')
    await a.subscription.done
    expect(a.subscription.state).toBe('finished')
    expect(a.states).toEqual(['live', 'finished'])
    expect(a.updates.map((status) => status.run.status)).toEqual(['PROCESSING', 'COMPLETED'])
    await until(() => b.updates.length === 3)
    expect(b.updates.map((status) => status.stages[0]?.output)).toEqual(['', 'to', 'tokens'])
    expect(c.updates.map((status) => status.run.id)).toEqual(['run-c'])
    expect([b.subscription.state, c.subscription.state]).toEqual(['live', 'live'])
    expect(fake.requests).toHaveLength(1)

    // A run that joins reopens the connection with the runs still followed (run-a ended).
    const d = follow(fake, 'run-d')
    const reopened = await fake.request(1)
    expect(ids(reopened)).toEqual(['run-b', 'run-c', 'run-d'])
    await until(() => stream.closed, 'the first stream closed')
    const second = reopened.stream()
    second.event('snapshot', statusDocument(runRecord('run-d', 'PROCESSING'), []))
    await until(() => d.updates.length === 1)
    for (const { subscription } of [b, c, d]) subscription.close()
    await until(() => second.closed, 'the last stream closed with its last subscriber')
    expect(fake.requests).toHaveLength(2)
  })

  it('opens one connection per 50 runs; other credentials, a run read token and share: false follow apart', async () => {
    const fake = fakeEventFetch()
    const many = Array.from({ length: 51 }, (_, index) => follow(fake, `r${index}`))
    const otherToken = follow(fake, 'x', { token: 'psrt1.tag.b3RoZXI.1999999999.sig' })
    const runToken = follow(fake, 'y', { token: 'psrt1.1999999999.abc' })
    const alone = follow(fake, 'z', { share: false })
    await fake.request(4)
    await new Promise((resolve) => setTimeout(resolve, 20))
    const byPath = fake.requests.map((request) => `${request.url.pathname}?${request.url.search.length > 0 ? ids(request).length : ''}`)
    expect(byPath.sort()).toEqual(['/api/pipeline/events?1', '/api/pipeline/events?1', '/api/pipeline/events?50', '/api/pipeline/y/events?0', '/api/pipeline/z/events?0'])
    const set = fake.requests.find((request) => ids(request).includes('x'))
    expect(set?.headers.get('authorization')).toBe('Bearer psrt1.tag.b3RoZXI.1999999999.sig')
    for (const { subscription } of [...many, otherToken, runToken, alone]) subscription.close()
  })

  it('falls back to one stream per run when the server has no set stream, and says so once', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    const fake = fakeEventFetch()
    const [a, b] = [follow(fake, 'old-a'), follow(fake, 'old-b')]
    ;(await fake.request(0)).respond(problemResponse(404, 'route_not_found'))
    const own = await Promise.all([fake.request(1), fake.request(2)])
    expect(own.map((request) => request.url.pathname).sort()).toEqual(['/api/pipeline/old-a/events', '/api/pipeline/old-b/events'])
    for (const request of own) {
      const runId = request.url.pathname.split('/')[3]!
      const stream = request.stream()
      stream.event('snapshot', statusDocument(runRecord(runId, 'COMPLETED'), []), '1')
      stream.event('end', { run: runRecord(runId, 'COMPLETED') }, '1')
    }
    await Promise.all([a.subscription.done, b.subscription.done])
    expect([a.subscription.state, b.subscription.state]).toEqual(['finished', 'finished'])
    // Known now: a later run goes straight to its own stream.
    const later = follow(fake, 'old-c')
    expect((await fake.request(3)).url.pathname).toBe('/api/pipeline/old-c/events')
    later.subscription.close()
    expect(warn).toHaveBeenCalledTimes(1)
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/this server has no set stream, so each run on this page is followed on its own connection.*Fix: update pipeline-status-sdk on the server/)
  })

  it('a refusal naming its run (problem runId) is that run\'s own error; the other runs go on sharing one connection', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    const fake = fakeEventFetch()
    const [a, unknown, b] = [follow(fake, 'run-a'), follow(fake, 'does-not-exist'), follow(fake, 'run-b')]
    const first = await fake.request(0)
    expect(ids(first)).toEqual(['run-a', 'does-not-exist', 'run-b'])
    first.respond(problemResponse(404, 'run_not_found', 'No pipeline run has the id given as run="does-not-exist"', { runId: 'does-not-exist' }))
    await unknown.subscription.done
    expect(unknown.subscription.state).toBe('error')
    expect(unknown.states).toEqual(['error'])
    const error = unknown.subscription.error as { status?: number; problem?: { code: string; runId?: unknown } }
    expect([error.status, error.problem?.code, error.problem?.runId]).toEqual([404, 'run_not_found', 'does-not-exist'])
    // The others are asked for again together, on one set stream, never on streams of their own.
    const second = await fake.request(1)
    expect(`${second.url.pathname}`).toBe('/api/pipeline/events')
    expect(ids(second)).toEqual(['run-a', 'run-b'])
    const stream = second.stream()
    stream.event('snapshot', statusDocument(runRecord('run-a', 'PROCESSING'), []), 'run-a:1')
    stream.event('snapshot', statusDocument(runRecord('run-b', 'PENDING'), []), 'run-b:1')
    stream.event('ready', { runs: 2 })
    await until(() => a.updates.length === 1 && b.updates.length === 1)
    expect([a.subscription.state, b.subscription.state]).toEqual(['live', 'live'])
    expect(fake.requests).toHaveLength(2)
    expect(warn).not.toHaveBeenCalled()
    for (const { subscription } of [a, b]) subscription.close()
  })

  it('a run a tag token stops covering (the stream closes, the reconnect is refused naming it) ends in that run\'s error; the others share on', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    const fake = fakeEventFetch()
    const [a, b] = [follow(fake, 'run-a', { reconnectDelayMs: 5 }), follow(fake, 'run-b', { reconnectDelayMs: 5 })]
    const first = (await fake.request(0)).stream()
    first.event('snapshot', statusDocument(runRecord('run-a', 'PROCESSING'), []), 'run-a:1')
    first.event('snapshot', statusDocument(runRecord('run-b', 'PROCESSING'), []), 'run-b:1')
    first.event('ready', { runs: 2 })
    await until(() => a.updates.length === 1 && b.updates.length === 1)
    // run-b lost the token's tag: the server closes the stream without an event.
    first.end()
    const reconnect = await fake.request(1)
    expect(ids(reconnect)).toEqual(['run-a', 'run-b'])
    reconnect.respond(problemResponse(401, 'invalid_read_token', 'The read token does not cover this run', { runId: 'run-b' }))
    await b.subscription.done
    expect(b.subscription.state).toBe('error')
    expect((b.subscription.error as { status?: number }).status).toBe(401)
    const third = await fake.request(2)
    expect(ids(third)).toEqual(['run-a'])
    third.stream().event('snapshot', statusDocument(runRecord('run-a', 'COMPLETED'), []), 'run-a:2')
    await until(() => a.updates.length === 2)
    expect(a.subscription.state).toBe('live')
    expect(fake.requests.map((request) => request.url.pathname)).toEqual(['/api/pipeline/events', '/api/pipeline/events', '/api/pipeline/events'])
    expect(warn).not.toHaveBeenCalled()
    a.subscription.close()
  })

  it('a refusal naming no run (a server older than the runId member) hands the set to streams of their own, said once', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    const fake = fakeEventFetch()
    const [known, unknown] = [follow(fake, 'known'), follow(fake, 'unknown')]
    ;(await fake.request(0)).respond(problemResponse(404, 'run_not_found', 'No run unknown'))
    const own = await Promise.all([fake.request(1), fake.request(2)])
    for (const request of own) {
      if (request.url.pathname.includes('/unknown/')) request.respond(problemResponse(404, 'run_not_found'))
      else request.stream().event('snapshot', statusDocument(runRecord('known', 'PROCESSING'), []), '1')
    }
    await unknown.subscription.done
    expect(unknown.subscription.state).toBe('error')
    await until(() => known.updates.length === 1)
    expect(known.subscription.state).toBe('live')
    expect(warn).toHaveBeenCalledTimes(1)
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/without naming the run refused.*Fix: update pipeline-status-sdk on the server/)
    known.subscription.close()
  })
})

describe('subscribeToRun on its own stream', () => {
  it('appends output events to their stage at outputSeq + 1 only', async () => {
    const fake = fakeEventFetch()
    const { subscription, updates } = follow(fake, 'solo', { share: false, token: undefined })
    const stream = (await fake.request(0)).stream()
    stream.event('snapshot', statusDocument(runRecord('solo', 'PROCESSING'), [{ ...stageRecord(2, 'PROCESSING', 'a'), outputSeq: 0 }]), '1')
    stream.event('output', { runId: 'solo', stageNumber: 2, seq: 2, text: 'gap' }, '2')
    stream.event('output', { runId: 'solo', stageNumber: 2, seq: 1, text: 'b' }, '3')
    stream.event('output', { runId: 'solo', stageNumber: 2, seq: 1, text: 'b' }, '3')
    stream.event('output', { runId: 'solo', stageNumber: 3, seq: 0, text: 'no such stage' }, '4')
    stream.event('update', { run: runRecord('solo', 'PROCESSING'), stages: [{ ...stageRecord(2, 'PROCESSING'), output: undefined, outputSeq: 1 }] }, '5')
    await until(() => updates.length === 3)
    expect(updates.map((status) => [status.stages[0]?.output, status.stages[0]?.outputSeq])).toEqual([['a', 0], ['ab', 1], ['ab', 1]])
    subscription.close()
  })
})
