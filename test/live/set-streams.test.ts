/**
 * Set streams on the server (docs/live-status.md, "Set streams"): streams with the same filters
 * share one window query per tick; in LISTEN mode a notification of a run outside the window
 * brings it in without waiting for the safety poll; a reader that falls behind is closed at the
 * send buffer's bound, logged and counted.
 */
import type { RunChangeSink, RunChangeSource } from 'pipeline-status-sdk/pg'
import { createPipelineStatusHandlers, MemoryStore, type RunListRequest, type Store } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { readEvents } from '../contract/suite/read-events.js'
import { handlerRequests } from '../support/handler-requests.js'
import { quiet, recordingLogger } from '../support/loggers.js'
import { until } from '../support/until.js'

const SECRET = 'set-stream-windows-secret'
const { get, post } = handlerRequests(SECRET)

/** Another instance's view of `memory`: no in-process changes, window queries recorded by their tag. */
function countingStore(memory: MemoryStore, queries: string[], options: { versions: boolean }): Store<unknown> {
  return {
    transaction: (fn) => memory.transaction(fn as never),
    insertRun: (run) => memory.insertRun(run),
    getRun: (runId) => memory.getRun(runId),
    ...(options.versions && { getRunVersions: (ids: readonly string[]) => memory.getRunVersions(ids) }),
    listRunWindow: (request: RunListRequest) => {
      queries.push(request.filter.tags?.join(',') ?? '')
      return memory.listRunWindow(request)
    },
  }
}

describe('set streams on the server', () => {
  it('polling: streams with the same filters share one window query per tick', async () => {
    const memory = new MemoryStore()
    const queries: string[] = []
    const reader = createPipelineStatusHandlers({ store: countingStore(memory, queries, { versions: true }), secret: SECRET, logger: quiet, live: { pollIntervalMs: 20 } })
    try {
      // Three streams of tag a (one in the summary view: the view is not part of the window), one of tag b.
      const streams = await Promise.all(
        ['a', 'a', 'a&view=summary', 'b'].map(async (query) => readEvents(await reader.fetch(get(`/events?tag=${query}`)))),
      )
      for (const stream of streams) expect((await stream.next()).event).toBe('ready')
      const opened = queries.length
      await until('twenty more window queries', () => queries.length >= opened + 20)
      const ticks = queries.slice(opened)
      const a = ticks.filter((tag) => tag === 'a').length
      const b = ticks.filter((tag) => tag === 'b').length
      // One query per window per tick, whatever the number of its streams.
      expect(Math.abs(a - b)).toBeLessThanOrEqual(1)
      for (const stream of streams) await stream.cancel()
    } finally {
      await reader.close()
    }
  })

  it('LISTEN: a notification of a run outside the window makes it join, long before the safety poll', async () => {
    let sink: RunChangeSink | undefined
    const source: RunChangeSource = { start: (target) => void (sink = target), close: async () => {} }
    const memory = new MemoryStore()
    const queries: string[] = []
    const reader = createPipelineStatusHandlers({
      store: countingStore(memory, queries, { versions: false }),
      secret: SECRET,
      logger: quiet,
      live: { pollIntervalMs: 20, safetyPollIntervalMs: 600_000, listen: source },
    })
    const writer = createPipelineStatusHandlers({ store: memory, secret: SECRET, logger: quiet })
    try {
      const stream = readEvents(await reader.fetch(get('/events?tag=joins')))
      expect((await stream.next()).event).toBe('ready')
      sink?.connected()
      // The window's read at the stream's start and the full read when LISTEN came up; from now on only notifications.
      await until('the full read after LISTEN came up', () => queries.length >= 2)
      const before = queries.length
      expect((await writer.fetch(post('/runs', { id: 'joined', tags: ['joins'] }))).status).toBe(201)
      sink?.change('joined', 0)
      const join = await stream.next()
      expect({ event: join.event, id: join.id }).toEqual({ event: 'snapshot', id: 'joined:0' })
      expect(queries.length).toBeGreaterThan(before)
      await stream.cancel()
    } finally {
      await reader.close()
      await writer.close()
    }
  })

  it('a set stream whose reader falls behind past live.maxBufferedBytes is closed, logged once and counted', async () => {
    const logger = recordingLogger()
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, logger, live: { maxBufferedBytes: 4096 } })
    try {
      expect((await handlers.fetch(post('/runs', { id: 'slow', tags: ['slow'] }))).status).toBe(201)
      // Opened and never read.
      const response = await handlers.fetch(get('/events?tag=slow'))
      expect(response.status).toBe(200)
      expect(handlers.liveStats().openStreams).toBe(1)
      // Changes of ~3 KB each (metadata: a change and an update event each), until the stream is closed.
      for (let change = 0; change < 100 && handlers.liveStats().slowStreamsClosed === 0; change++) {
        expect((await handlers.fetch(post('/slow/metadata', { blob: `${change}`.padEnd(3000, 'x') }))).status).toBe(200)
        // Lets the watcher read and deliver this change before the next.
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
      await until('the slow stream to be closed', () => handlers.liveStats().slowStreamsClosed === 1)
      expect(handlers.liveStats().openStreams).toBe(0)
      const warnings = logger.lines.filter((line) => line.level === 'warn').map((line) => line.message)
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatch(/closed a set stream whose reader fell \d+ bytes behind \(limit live.maxBufferedBytes = 4096/)
    } finally {
      await handlers.close()
    }
  })

  it('close() ends open set streams cleanly; later ones are answered 503', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, logger: quiet })
    expect((await handlers.fetch(post('/runs', { id: 'closing' }))).status).toBe(201)
    const byFilter = readEvents(await handlers.fetch(get('/events?limit=1')))
    const byRun = readEvents(await handlers.fetch(get('/events?run=closing')))
    for (const stream of [byFilter, byRun]) {
      let event = await stream.next()
      while (event.event !== 'ready') event = await stream.next()
    }
    expect(handlers.liveStats().openStreams).toBe(2)
    await handlers.close()
    await byFilter.closed
    await byRun.closed
    expect(handlers.liveStats().openStreams).toBe(0)
    expect((await handlers.fetch(get('/events?limit=1'))).status).toBe(503)
  })
})
