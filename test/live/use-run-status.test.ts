/**
 * The React hook without a DOM (no jsdom or happy-dom in this repository): server rendering
 * with `react-dom/server` shows `initial` and opens nothing; the live part is the store that
 * the hook hands to React's `useSyncExternalStore` (subscribe, getSnapshot, getServerSnapshot),
 * driven here exactly as React drives it, against the SSE test server.
 */
import { createElement } from 'react'
import { renderToString } from 'react-dom/server'
import { isRunStreamClosedError, type RunStatusResponse } from 'pipeline-status-sdk'
import { createRunStatusStore, type RunStatusState, useRunStatus, type UseRunStatusOptions } from 'pipeline-status-sdk/react'
import { afterEach, describe, expect, it } from 'vitest'
import { openStream, runRecord, type SseFixture, stageRecord, startSseFixture, statusDocument, type StreamConnection } from './sse-fixture.js'

let fixture: SseFixture | undefined
afterEach(async () => {
  await fixture?.close()
  fixture = undefined
})

function RunView({ runId, options }: { runId: string; options: UseRunStatusOptions }) {
  const { run, stages, state } = useRunStatus(runId, options)
  return createElement('p', null, `${run?.status ?? 'unknown'} ${state} ${stages.map((stage) => `${stage.stageNumber}:${stage.status}`).join(',')}`)
}

/** Waits until the store's state satisfies `condition`, as a React render would see it. */
function waitForState(store: ReturnType<typeof createRunStatusStore>, condition: (state: RunStatusState) => boolean): Promise<RunStatusState> {
  return new Promise((resolve) => {
    if (condition(store.getSnapshot())) return resolve(store.getSnapshot())
    const unsubscribe = store.subscribe(() => {
      if (condition(store.getSnapshot())) {
        unsubscribe()
        resolve(store.getSnapshot())
      }
    })
  })
}

describe('useRunStatus', () => {
  it('renders the run it was given on the server, and opens no connection there', async () => {
    fixture = await startSseFixture({})
    const initial = statusDocument(runRecord('run-ssr', 'PROCESSING'), [stageRecord(1, 'COMPLETED', 'x'), stageRecord(2, 'PROCESSING')])
    const html = renderToString(createElement(RunView, { runId: 'run-ssr', options: { url: fixture.url, initial } }))
    expect(html).toBe('<p>PROCESSING connecting 1:COMPLETED,2:PROCESSING</p>')
    // `initial` of another run is not shown.
    const other = renderToString(createElement(RunView, { runId: 'run-other', options: { url: fixture.url, initial } }))
    expect(other).toBe('<p>unknown connecting </p>')
    const finished = statusDocument(runRecord('run-done', 'COMPLETED'), [stageRecord(1, 'COMPLETED')])
    expect(renderToString(createElement(RunView, { runId: 'run-done', options: { url: fixture.url, initial: finished } }))).toBe(
      '<p>COMPLETED finished 1:COMPLETED</p>',
    )
    expect(fixture.requests).toEqual([])
  })

  it('its store goes live with the first listener, merges updates, and finishes at end', async () => {
    const runId = 'run-store'
    fixture = await startSseFixture({
      events: (request, response) => {
        const stream = openStream(request, response)
        stream.event('snapshot', 2, statusDocument(runRecord(runId, 'PROCESSING'), [stageRecord(1, 'PROCESSING')]))
        stream.event('update', 3, { run: runRecord(runId, 'COMPLETED'), stages: [stageRecord(1, 'COMPLETED', 'done')] })
        stream.event('end', 3, { run: runRecord(runId, 'COMPLETED') })
        stream.end()
      },
    })
    const initial: RunStatusResponse = statusDocument(runRecord(runId, 'PENDING'), [])
    const store = createRunStatusStore(runId, { url: fixture.url, token: 'psrt1.t', initial })
    expect(store.getSnapshot()).toEqual({ run: initial.run, stages: [], state: 'connecting', error: undefined })
    expect(fixture.requests).toEqual([])
    const seen: RunStatusState[] = []
    const unsubscribe = store.subscribe(() => seen.push(store.getSnapshot()))
    const final = await waitForState(store, (state) => state.state === 'finished')
    unsubscribe()
    expect(final).toEqual({ run: runRecord(runId, 'COMPLETED'), stages: [stageRecord(1, 'COMPLETED', 'done')], state: 'finished', error: undefined })
    expect(seen.map((state) => `${state.run?.status} ${state.state}`)).toEqual([
      'PENDING live',
      'PROCESSING live',
      'COMPLETED live',
      'COMPLETED finished',
    ])
    // Each change is a new object; unchanged reads are the same one (what useSyncExternalStore needs).
    expect(new Set(seen).size).toBe(seen.length)
    expect(store.getSnapshot()).toBe(store.getSnapshot())
    expect(store.getServerSnapshot().run).toEqual(initial.run)
    expect(fixture.requests.map((request) => request.headers.authorization)).toEqual(['Bearer psrt1.t'])
  })

  it("shows the server's reason in its error state: `: closed deleted <runId>` is a RunStreamClosedError, and nothing reconnects", async () => {
    const runId = 'run-deleted'
    fixture = await startSseFixture({
      events: (request, response) => {
        const stream = openStream(request, response)
        stream.event('snapshot', 2, statusDocument(runRecord(runId, 'PROCESSING'), [stageRecord(1, 'PROCESSING')]))
        stream.write(`: closed deleted ${runId}\n\n`)
        stream.end()
      },
    })
    const store = createRunStatusStore(runId, { url: fixture.url, token: 'psrt1.t', share: false })
    const unsubscribe = store.subscribe(() => {})
    const failed = await waitForState(store, (state) => state.state === 'error')
    unsubscribe()
    expect(isRunStreamClosedError(failed.error)).toBe(true)
    expect(failed.error).toMatchObject({ closedCause: 'deleted', runId, final: true })
    // The run as last received stays shown.
    expect(failed.run?.status).toBe('PROCESSING')
    expect(fixture.requests.map((request) => request.path)).toEqual([`/api/pipeline/${runId}/events`])
  })

  it('closes the connection when the last listener leaves, and never subscribes for a finished initial run', async () => {
    const runId = 'run-leave'
    let connection: StreamConnection | undefined
    fixture = await startSseFixture({
      events: (request, response) => {
        connection = openStream(request, response)
        connection.event('snapshot', 1, statusDocument(runRecord(runId, 'PROCESSING'), []))
      },
    })
    const store = createRunStatusStore(runId, { url: fixture.url })
    const unsubscribe = store.subscribe(() => {})
    await waitForState(store, (state) => state.run?.status === 'PROCESSING')
    unsubscribe()
    await connection?.closed
    expect(store.getSnapshot().state).toBe('live')

    const done = createRunStatusStore('run-finished', {
      url: fixture.url,
      initial: statusDocument(runRecord('run-finished', 'FAILED'), []),
    })
    done.subscribe(() => {})()
    expect(fixture.requests.map((request) => request.path)).toEqual([`/api/pipeline/${runId}/events`])
  })

  it("exposes the run's and a stage's startedAt and the attempt fields as sent, and null for them from a server older than them", async () => {
    const runId = 'run-attempts'
    const started = { ...runRecord(runId, 'PROCESSING'), startedAt: '2026-01-01T00:00:30.000Z' }
    // An older server's run: no startedAt.
    const { startedAt: _r, ...olderRun } = runRecord(runId, 'PROCESSING')
    const retrying = {
      ...stageRecord(2, 'PROCESSING'),
      startedAt: '2026-01-01T00:01:00.000Z',
      attempt: 2,
      maxAttempts: 3,
      lastError: 'model timed out',
      nextRetryAt: '2026-01-01T00:02:30.000Z',
    }
    // An older server's stage: no startedAt and no attempt fields at all.
    const { startedAt: _s, attempt: _a, maxAttempts: _m, lastError: _l, nextRetryAt: _n, ...older } = stageRecord(1, 'COMPLETED')
    fixture = await startSseFixture({
      events: (request, response) => {
        const stream = openStream(request, response)
        stream.event('snapshot', 1, { run: olderRun, stages: [older] })
        stream.event('update', 2, { run: started, stages: [retrying] })
      },
    })
    const store = createRunStatusStore(runId, { url: fixture.url })
    const seen: RunStatusState[] = []
    const unsubscribe = store.subscribe(() => seen.push(store.getSnapshot()))
    const state = await waitForState(store, (next) => next.stages.length === 2)
    unsubscribe()
    expect(seen.find((next) => next.stages.length === 1)?.run?.startedAt).toBeNull()
    expect(state.run?.startedAt).toBe('2026-01-01T00:00:30.000Z')
    expect(state.stages).toEqual([
      { ...older, startedAt: null, attempt: null, maxAttempts: null, lastError: null, nextRetryAt: null },
      retrying,
    ])
  })
})
