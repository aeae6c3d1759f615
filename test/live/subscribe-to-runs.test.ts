/**
 * subscribeToRuns against a fake fetch (no server): the query it sends, how it keeps the set
 * (snapshots gathered until `ready`, joins, updates, output chunks, leaves, `end` without closing),
 * the set replaced after a reconnect, a `runIds` stream that closes once every run ended, and what
 * stops it for good. The server side is the contract suite's.
 */
import {
  isRunSubscriptionError,
  type RunsConnectionState,
  type RunStatusResponse,
  type RunSummary,
  subscribeToRuns,
} from 'pipeline-status-sdk'
import { describe, expect, it } from 'vitest'
import { fakeEventFetch, problemResponse, until } from './fake-event-fetch.js'
import { runRecord, stageRecord, statusDocument, summary } from './sse-fixture.js'

function recorder<T>() {
  const changes: (readonly T[])[] = []
  const states: [RunsConnectionState, Error | undefined][] = []
  return {
    changes,
    states,
    names: () => states.map(([state]) => state),
    ids: () => changes.map((runs) => runs.map((run) => ('run' in (run as object) ? (run as RunStatusResponse).run.id : (run as RunSummary).id)).join(',')),
    onChange: (runs: readonly T[]) => void changes.push(runs),
    onStateChange: (state: RunsConnectionState, error: Error | undefined) => void states.push([state, error]),
  }
}

describe('subscribeToRuns', () => {
  it('asks for the filter in the summary view, shows the set at ready newest first, then joins, updates, leaves and ends without closing', async () => {
    const fake = fakeEventFetch()
    const seen = recorder<RunSummary>()
    const subscription = subscribeToRuns({
      url: 'https://app.example/api/pipeline/',
      filter: { tag: ['nightly', 'team:a'], status: ['PENDING', 'PROCESSING'], pipeline: 'report', createdAfter: new Date('2026-01-01T00:00:00Z') },
      limit: 20,
      token: 'psrt1.tag.bmlnaHRseQ.1.x',
      credentials: 'include',
      fetch: fake.fetch,
      ...seen,
    })
    const request = await fake.request(0)
    expect(`${request.url.origin}${request.url.pathname}`).toBe('https://app.example/api/pipeline/events')
    expect([...request.url.searchParams]).toEqual([
      ['status', 'PENDING'],
      ['status', 'PROCESSING'],
      ['pipeline', 'report'],
      ['tag', 'nightly'],
      ['tag', 'team:a'],
      ['createdAfter', '2026-01-01T00:00:00.000Z'],
      ['limit', '20'],
      ['view', 'summary'],
    ])
    expect(request.headers.get('authorization')).toBe('Bearer psrt1.tag.bmlnaHRseQ.1.x')
    expect(request.headers.get('accept')).toBe('text/event-stream')
    expect(request.credentials).toBe('include')

    const stream = request.stream()
    stream.event('snapshot', summary('old', 1), 'old:1')
    stream.event('snapshot', summary('new', 5), 'new:1')
    stream.event('snapshot', summary('b-same-minute', 3), 'b-same-minute:1')
    stream.event('snapshot', summary('a-same-minute', 3), 'a-same-minute:1')
    await until(() => fake.requests.length === 1 && subscription.runs.length === 0 && seen.changes.length === 0)
    expect(subscription.state).toBe('connecting')
    stream.event('ready', { runs: 4 })
    await until(() => seen.changes.length === 1, 'the set at ready')
    expect(seen.ids()).toEqual(['new,b-same-minute,a-same-minute,old'])
    expect(subscription.state).toBe('live')

    stream.event('snapshot', summary('joined', 9), 'joined:1')
    stream.event('update', summary('old', 1, 'PROCESSING', 2), 'old:2')
    stream.event('leave', { runId: 'b-same-minute' })
    stream.event('end', { run: { ...runRecord('new', 'COMPLETED'), createdAt: summary('new', 5).createdAt } }, 'new:2')
    stream.event('some-later-event', { x: 1 })
    await until(() => seen.changes.length === 5, 'four changes after ready')
    expect(seen.ids().slice(1)).toEqual(['joined,new,b-same-minute,a-same-minute,old', 'joined,new,b-same-minute,a-same-minute,old', 'joined,new,a-same-minute,old', 'joined,new,a-same-minute,old'])
    expect(subscription.runs.find((run) => run.id === 'old')?.version).toBe(2)
    expect(subscription.runs.find((run) => run.id === 'new')).toMatchObject({ status: 'COMPLETED', completedAt: '2026-01-01T00:00:00.000Z', stageCounts: summary('new', 5).stageCounts })
    expect([...subscription.ended]).toEqual(['new'])
    // `end` keeps a filter stream open.
    expect(subscription.state).toBe('live')
    expect(stream.closed).toBe(false)
    subscription.close()
    await subscription.done
    expect(stream.closed).toBe(true)
    expect(seen.names()).toEqual(['live'])
  })

  it('reconnects after a drop with fresh snapshots and replaces the set at ready: a run that left meanwhile is gone', async () => {
    const fake = fakeEventFetch()
    const seen = recorder<RunSummary>()
    const subscription = subscribeToRuns({ url: 'http://h/api/pipeline', fetch: fake.fetch, reconnectDelayMs: 600_000, ...seen })
    const first = (await fake.request(0)).stream()
    first.write('retry: 5\n\n')
    first.event('snapshot', summary('a', 1))
    first.event('snapshot', summary('b', 2))
    first.event('ready', { runs: 2 })
    await until(() => seen.changes.length === 1)
    first.end()
    const second = (await fake.request(1)).stream()
    expect(subscription.state).toBe('reconnecting')
    second.event('snapshot', summary('a', 1, 'COMPLETED', 3))
    // Until ready, the set shown is the one before the drop.
    await until(() => subscription.state === 'reconnecting')
    expect(subscription.runs.map((run) => run.id)).toEqual(['b', 'a'])
    second.event('ready', { runs: 1 })
    await until(() => subscription.state === 'live')
    expect(seen.ids()).toEqual(['b,a', 'a'])
    expect(subscription.runs[0]?.status).toBe('COMPLETED')
    expect(seen.names()).toEqual(['live', 'reconnecting', 'live'])
    expect([...fake.requests[1]!.url.searchParams]).toEqual([['view', 'summary']])
    subscription.close()
  })

  it('follows runIds in the full view: appends each next output chunk, ignores the others, and closes once every run ended', async () => {
    const fake = fakeEventFetch()
    const seen = recorder<RunStatusResponse>()
    const subscription = subscribeToRuns({ url: 'http://h/api/pipeline', runIds: ['r1', 'r2', 'r1'], view: 'full', fetch: fake.fetch, ...seen })
    const request = await fake.request(0)
    expect([...request.url.searchParams]).toEqual([['run', 'r1'], ['run', 'r2'], ['view', 'full']])
    const stream = request.stream()
    const streaming = { ...stageRecord(1, 'PROCESSING', 'Hel'), outputSeq: 0 }
    stream.event('snapshot', statusDocument(runRecord('r1', 'PROCESSING'), [streaming]))
    stream.event('snapshot', statusDocument(runRecord('r2', 'COMPLETED'), [stageRecord(1, 'COMPLETED', 'done')]))
    stream.event('end', { run: runRecord('r2', 'COMPLETED') })
    stream.event('ready', { runs: 2 })
    stream.event('output', { runId: 'r1', stageNumber: 1, seq: 1, text: 'lo' })
    stream.event('output', { runId: 'r1', stageNumber: 1, seq: 1, text: 'lo' }) // a repeat
    stream.event('output', { runId: 'r1', stageNumber: 1, seq: 3, text: '!!' }) // a gap
    stream.event('output', { runId: 'r1', stageNumber: 1, seq: 2, text: ' world' })
    stream.event('update', { run: runRecord('r1', 'COMPLETED'), stages: [{ ...stageRecord(1, 'COMPLETED'), outputSeq: 2, output: undefined }] })
    await until(() => subscription.runs.find((run) => run.run.id === 'r1')?.run.status === 'COMPLETED')
    const r1 = () => subscription.runs.find((run) => run.run.id === 'r1')
    expect(r1()?.stages[0]?.output).toBe('Hello world')
    expect(subscription.state).toBe('live')
    stream.event('end', { run: runRecord('r1', 'COMPLETED') })
    await subscription.done
    expect(subscription.state).toBe('closed')
    expect(stream.closed).toBe(true)
    expect(seen.names()).toEqual(['live', 'closed'])
    // The repeat and the gap changed nothing: ready, two chunks, the update.
    expect(seen.changes.map((runs) => runs.find((run) => run.run.id === 'r1')?.stages[0]?.output)).toEqual(['Hel', 'Hello', 'Hello world', 'Hello world'])
    expect(fake.requests).toHaveLength(1)
  })

  it('shows runIds that had all finished already, in their final status, then closes (with or without ready before the close)', async () => {
    for (const withReady of [true, false]) {
      const fake = fakeEventFetch()
      const seen = recorder<RunStatusResponse>()
      const subscription = subscribeToRuns({ url: 'http://h/api/pipeline', runIds: ['f1', 'f2'], view: 'full', fetch: fake.fetch, ...seen })
      const stream = (await fake.request(0)).stream()
      for (const id of ['f1', 'f2']) {
        stream.event('snapshot', statusDocument(runRecord(id, 'COMPLETED'), [stageRecord(1, 'COMPLETED', 'done')]), `${id}:3`)
        stream.event('end', { run: runRecord(id, 'COMPLETED') }, `${id}:3`)
      }
      if (withReady) stream.event('ready', { runs: 2 })
      stream.end()
      await subscription.done
      expect(seen.changes.map((runs) => runs.map((run) => `${run.run.id}:${run.run.status}`).sort().join(','))).toEqual(['f1:COMPLETED,f2:COMPLETED'])
      expect(seen.names()).toEqual(['closed'])
      expect(subscription.state).toBe('closed')
      expect([...subscription.ended].sort()).toEqual(['f1', 'f2'])
      expect(fake.requests).toHaveLength(1)
    }
  })

  it('stops with state error on a refusal, on a server without the set stream, and on a malformed event; retries a 503', async () => {
    const refused = fakeEventFetch()
    const forbidden = subscribeToRuns({ url: 'http://h/api/pipeline', fetch: refused.fetch })
    ;(await refused.request(0)).respond(problemResponse(403, 'forbidden', "The app's authorize hook refused to let this request list runs"))
    await forbidden.done
    expect(forbidden.state).toBe('error')
    expect(isRunSubscriptionError(forbidden.error) && forbidden.error.status).toBe(403)
    expect(refused.requests).toHaveLength(1)

    const older = fakeEventFetch()
    const noRoute = subscribeToRuns({ url: 'http://h/api/pipeline', fetch: older.fetch })
    ;(await older.request(0)).respond(problemResponse(404, 'route_not_found'))
    await noRoute.done
    expect(noRoute.state).toBe('error')
    expect(noRoute.error?.message).toMatch(/this server has no set stream \(GET \{base\}\/events\)\. Update pipeline-status-sdk on the server/)

    const flaky = fakeEventFetch()
    const states: RunsConnectionState[] = []
    const retried = subscribeToRuns({ url: 'http://h/api/pipeline', fetch: flaky.fetch, reconnectDelayMs: 5, onStateChange: (state) => void states.push(state) })
    ;(await flaky.request(0)).respond(problemResponse(503, 'database_unavailable'))
    const malformed = (await flaky.request(1)).stream()
    malformed.event('snapshot', { id: 'no-such-shape' })
    await retried.done
    expect(states).toEqual(['reconnecting', 'error'])
    expect(retried.error?.message).toBe('The set stream sent a malformed snapshot event')
  })

  it('refuses options no server would take, before any request', () => {
    expect(() => subscribeToRuns({ runIds: ['a'], filter: { tag: 'x' } })).toThrow(/give runIds or a filter/)
    expect(() => subscribeToRuns({ runIds: Array.from({ length: 51 }, (_, index) => `r${index}`) })).toThrow(/runIds must name 1 to 50 runs, got 51/)
    expect(() => subscribeToRuns({ runIds: [] })).toThrow(/got 0/)
    expect(() => subscribeToRuns({ limit: 201 })).toThrow(/limit must be a whole number from 1 to 200, got 201/)
    expect(() => subscribeToRuns({ reconnectDelayMs: -1 })).toThrow(TypeError)
  })

  it('stops with state error where a relative url cannot be resolved (no page)', async () => {
    const subscription = subscribeToRuns({ url: '/api/pipeline' })
    await subscription.done
    expect(subscription.state).toBe('error')
    expect(subscription.error?.message).toMatch(/subscribeToRuns needs an absolute url here/)
  })
})
