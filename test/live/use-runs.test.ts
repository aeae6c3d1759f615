/**
 * useRuns without a DOM: server rendering shows `initial` and opens nothing; the live part is the
 * store React's useSyncExternalStore reads, driven as React drives it, against a fake fetch.
 */
import { createElement } from 'react'
import { renderToString } from 'react-dom/server'
import { createRunsStore, type RunsState, useRuns, type UseRunsOptions } from 'pipeline-status-sdk/react'
import { describe, expect, it } from 'vitest'
import { fakeEventFetch, until } from './fake-event-fetch.js'
import { summary as item } from './sse-fixture.js'

function List({ options }: { options: UseRunsOptions }) {
  const { runs, state } = useRuns(options)
  return createElement('p', null, `${state}: ${runs.map((run) => `${run.id}=${run.status}`).join(',')}`)
}

describe('useRuns', () => {
  it('renders the list it was given on the server and opens nothing there', () => {
    const fake = fakeEventFetch()
    const html = renderToString(createElement(List, { options: { url: 'http://h/api/pipeline', tag: 'nightly', fetch: fake.fetch, initial: [item('b', 2), item('a', 1)] } }))
    expect(html).toBe('<p>connecting: b=PROCESSING,a=PROCESSING</p>')
    expect(fake.requests).toEqual([])
  })

  it('its store opens a summary stream of the filter with the first listener, replaces initial at ready, follows changes, and closes with the last listener', async () => {
    const fake = fakeEventFetch()
    const store = createRunsStore({ url: 'http://h/api/pipeline', tag: 'nightly', status: ['FAILED', 'PROCESSING'], limit: 10, fetch: fake.fetch, initial: [item('stale', 1)] })
    const seen: RunsState[] = []
    const unsubscribe = store.subscribe(() => seen.push(store.getSnapshot()))
    const request = await fake.request(0)
    expect(request.url.search).toBe('?status=FAILED&status=PROCESSING&tag=nightly&limit=10&view=summary')
    const stream = request.stream()
    stream.event('snapshot', item('a', 1))
    stream.event('ready', { runs: 1 })
    stream.event('snapshot', item('b', 2))
    stream.event('update', item('a', 1, 'FAILED'))
    await until(() => store.getSnapshot().runs.length === 2 && store.getSnapshot().runs[1]?.status === 'FAILED')
    expect(seen.map((state) => `${state.state} ${state.runs.map((run) => `${run.id}=${run.status}`).join(',')}`)).toEqual([
      'connecting a=PROCESSING',
      'live a=PROCESSING',
      'live b=PROCESSING,a=PROCESSING',
      'live b=PROCESSING,a=FAILED',
    ])
    expect(store.getServerSnapshot().runs.map((run) => run.id)).toEqual(['stale'])
    expect(store.getSnapshot()).toBe(store.getSnapshot())
    unsubscribe()
    await until(() => stream.closed, 'the stream closed with the last listener')
  })
})
