/**
 * The run watcher behind the stream route, from the outside (handlers in memory): changes from
 * "another instance" arrive by one batched version query per tick whatever the number of
 * streams; a failed read is retried; close() ends open streams cleanly and refuses new ones.
 */
import { RunUpdateEvent } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers, MemoryStore, type Store } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it } from 'vitest'
import { readEvents } from '../contract/suite/read-events.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { handlerRequests } from '../support/handler-requests.js'

const SECRET = 'watcher-secret'
const quiet = { warn: () => {}, error: () => {} }

/** The store as another instance sees it: the same data, but none of this process's write notifications. */
function elsewhere(store: MemoryStore, calls: { versions: string[][]; getRun: number }): Store<unknown> {
  return {
    transaction: (fn) => store.transaction(fn as never),
    insertRun: (run) => store.insertRun(run),
    getRun: async (runId) => {
      calls.getRun++
      return store.getRun(runId)
    },
    getRunVersions: async (ids) => {
      calls.versions.push([...ids])
      return store.getRunVersions(ids)
    },
  }
}

const open: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const close of open.splice(0)) await close()
})

function handlersOn(store: Store<unknown>, pollIntervalMs = 20) {
  const handlers = createPipelineStatusHandlers({ store, secret: SECRET, logger: quiet, live: { pollIntervalMs } })
  open.push(handlers.close)
  return handlers
}
const { get, post } = handlerRequests(SECRET)

describe('the run watcher', () => {
  it('polls the versions of all streamed runs with one query per tick, and delivers what another instance wrote', async () => {
    const store = new MemoryStore()
    const calls = { versions: [] as string[][], getRun: 0 }
    const writer = handlersOn(store)
    const reader = handlersOn(elsewhere(store, calls))
    const ids = ['w-1', 'w-2', 'w-3', 'w-4', 'w-5']
    for (const id of ids) expect((await writer.fetch(post('/runs', { id }))).status).toBe(201)
    const streams = await Promise.all(ids.map(async (id) => readEvents(await reader.fetch(get(`/${id}/events`)))))
    for (const stream of streams) expect((await stream.next()).event).toBe('snapshot')

    const written = await writer.fetch(post('/w-3/stage-update', makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'one' })))
    expect(written.status).toBe(200)
    const update = await (streams[2] as (typeof streams)[number]).next()
    expect(update.event).toBe('update')
    expect(RunUpdateEvent.parse(JSON.parse(update.data)).stages.map((stage) => [stage.stageNumber, stage.status])).toEqual([[1, 'COMPLETED']])

    // Every tick asked once, for every streamed run at once.
    expect(calls.versions.length).toBeGreaterThan(0)
    for (const batch of calls.versions) expect([...batch].sort()).toEqual(ids)
    for (const stream of streams) await stream.cancel()
  })

  it('retries a failed read of a changed run and still delivers the change', async () => {
    const store = new MemoryStore()
    const calls = { versions: [] as string[][], getRun: 0 }
    const writer = handlersOn(store)
    // The stream's own first read succeeds; the watcher's next two reads fail.
    let reads = 0
    const flaky = elsewhere(store, calls)
    const reader = handlersOn({
      ...flaky,
      getRun: async (runId) => {
        reads++
        if (reads === 2 || reads === 3) throw new Error('connection reset')
        return flaky.getRun(runId)
      },
    })
    await writer.fetch(post('/runs', { id: 'flaky' }))
    const stream = readEvents(await reader.fetch(get('/flaky/events')))
    expect((await stream.next()).event).toBe('snapshot')
    await writer.fetch(post('/flaky/stage-update', makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' })))
    const update = await stream.next()
    expect(update.event).toBe('update')
    expect(update.id).toBe('1')
    expect(reads).toBeGreaterThanOrEqual(4)
    await stream.cancel()
  })

  it('close() ends open streams cleanly (no end event) and answers later stream requests 503 with Retry-After', async () => {
    const handlers = handlersOn(new MemoryStore())
    await handlers.fetch(post('/runs', { id: 'closing' }))
    const stream = readEvents(await handlers.fetch(get('/closing/events')))
    expect((await stream.next()).event).toBe('snapshot')
    await handlers.close()
    await stream.closed
    expect(stream.events.map((event) => event.event)).toEqual(['snapshot'])
    const refused = await handlers.fetch(get('/closing/events'))
    expect(refused.status).toBe(503)
    expect(refused.headers.get('retry-after')).toBe('5')
    expect(((await refused.json()) as { code: string }).code).toBe('too_many_streams')
    // Status reads still work while the server drains.
    expect((await handlers.fetch(get('/closing/status'))).status).toBe(200)
  })

  it('warns once, when the first stream opens, that a store with no way to learn of changes streams no updates', async () => {
    const memory = new MemoryStore()
    const silent: Store<unknown> = {
      transaction: (fn) => memory.transaction(fn as never),
      insertRun: (run) => memory.insertRun(run),
      getRun: (runId) => memory.getRun(runId),
    }
    const warnings: string[] = []
    const recording = (store: Store<unknown>) => {
      const handlers = createPipelineStatusHandlers({ store, secret: SECRET, logger: { warn: (message) => warnings.push(message), error: () => {} } })
      open.push(handlers.close)
      return handlers
    }
    const handlers = recording(silent)
    await handlers.fetch(post('/runs', { id: 'unwatched' }))
    expect(warnings).toEqual([])
    const first = readEvents(await handlers.fetch(get('/unwatched/events')))
    const second = readEvents(await handlers.fetch(get('/unwatched/events')))
    expect([(await first.next()).event, (await second.next()).event]).toEqual(['snapshot', 'snapshot'])
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/neither onRunChange nor getRunVersions.*no updates/)
    // MemoryStore has both: no warning.
    const watched = recording(new MemoryStore())
    await watched.fetch(post('/runs', { id: 'watched' }))
    const third = readEvents(await watched.fetch(get('/watched/events')))
    expect((await third.next()).event).toBe('snapshot')
    expect(warnings).toHaveLength(1)
  })
})
