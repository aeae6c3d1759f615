/**
 * Set streams on the server (docs/live-status.md, "Set streams"): streams with the same filters
 * share one window query per tick; in LISTEN mode a notification of a run outside the window
 * brings it in without waiting for the safety poll, and a run created through the instance itself
 * joins without waiting for a tick, a burst of changes in one turn costing one window query; a reader that falls behind is closed at the
 * send buffer's bound, logged and counted, on the Web stream body and written straight to the Node
 * response (the Express adapter's path) alike.
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import type { RunChangeSink, RunChangeSource } from 'pipeline-status-sdk/pg'
import { createPipelineStatusHandlers, MemoryStore, type RunListRequest, type Store } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { readEvents } from '../contract/suite/read-events.js'
import { handlerRequests } from '../support/handler-requests.js'
import { quiet, recordingLogger } from '../support/loggers.js'
import { until } from '../support/until.js'
import { LIVE_SECRET, postJson, startLiveServer } from './live-server.js'

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

  it('LISTEN: a run created through this instance joins at once, with no tick (pollIntervalMs 60 s); a burst of changes in one turn costs one window query', async () => {
    let sink: RunChangeSink | undefined
    const source: RunChangeSource = { start: (target) => void (sink = target), close: async () => {} }
    // The same store for writes and streams (its own writes announce changes), its window queries counted.
    const memory = new MemoryStore()
    const queries: string[] = []
    const listRunWindow = memory.listRunWindow.bind(memory)
    memory.listRunWindow = (request: RunListRequest) => {
      queries.push(request.filter.tags?.join(',') ?? '')
      return listRunWindow(request)
    }
    // No tick within the test: only a dirty window's own read can bring the run in.
    const handlers = createPipelineStatusHandlers({ store: memory, secret: SECRET, logger: quiet, live: { pollIntervalMs: 60_000, safetyPollIntervalMs: 600_000, listen: source } })
    try {
      const stream = readEvents(await handlers.fetch(get('/events?tag=prompt&view=summary')))
      expect(JSON.parse((await stream.next()).data)).toEqual({ runs: 0 })
      expect(queries).toEqual(['prompt'])
      sink?.connected()

      expect((await handlers.fetch(post('/runs', { id: 'prompt-joined', tags: ['prompt'] }))).status).toBe(201)
      const join = await stream.next()
      expect({ event: join.event, id: join.id }).toEqual({ event: 'snapshot', id: 'prompt-joined:0' })
      expect(JSON.parse(join.data)).toMatchObject({ id: 'prompt-joined', tags: ['prompt'], status: 'PENDING' })
      await until('the join read to be counted', () => queries.length >= 2)

      // 200 notifications of runs outside the window within one turn: one window query, not 200.
      const before = queries.length
      for (let change = 0; change < 200; change++) sink?.change(`elsewhere-${change}`, 1)
      await until('the window query after the burst', () => queries.length > before)
      // A run joining afterwards proves the window is read again (folded with any late mark).
      expect((await handlers.fetch(post('/runs', { id: 'prompt-after', tags: ['prompt'] }))).status).toBe(201)
      const after = await stream.next()
      expect({ event: after.event, id: after.id }).toEqual({ event: 'snapshot', id: 'prompt-after:0' })
      // The burst's read and the join's read; one more only if the run's writes were announced in two turns far apart.
      expect(queries.length - before).toBeGreaterThanOrEqual(2)
      expect(queries.length - before).toBeLessThanOrEqual(3)
      await stream.cancel()
    } finally {
      await handlers.close()
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

  it("written straight to the Node response (the Express adapter's path): a set stream is read as on the Web path, and a paused one is closed past the bound, logged once and counted", async () => {
    const server = await startLiveServer({ maxBufferedBytes: 4096, keepAliveMs: 600_000 }, { directEvents: true })
    const reading = new AbortController()
    let socket: Socket | undefined
    try {
      await postJson(server.url, '/runs', { id: 'direct-slow', tags: ['direct'] })
      // A reader that keeps up gets the stream's events as on the Web path.
      const response = await fetch(`${server.url}/events?tag=direct`, { headers: { 'X-Webhook-Secret': LIVE_SECRET }, signal: reading.signal })
      expect(response.status).toBe(200)
      const reader = readEvents(response)
      expect((await reader.next()).event).toBe('snapshot')
      expect((await reader.next()).event).toBe('ready')
      // A reader that never reads: its bytes pile up in the socket, then in the response.
      socket = connect({ host: '127.0.0.1', port: server.port })
      await once(socket, 'connect')
      socket.pause()
      socket.write(`GET /api/pipeline/events?tag=direct HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Webhook-Secret: ${LIVE_SECRET}\r\n\r\n`)
      await until('both set streams to be open', () => server.handlers.liveStats().openStreams === 2)
      // Stage outputs of 256 KB, a new one each change, until the kernel's socket buffers are full
      // and the paused stream is closed (bounded: 400 changes are 100 MB, far past any buffer).
      for (let seq = 1; seq <= 400 && server.handlers.liveStats().slowStreamsClosed === 0; seq += 1) {
        const output = `${seq}`.padEnd(256 * 1024, 'x')
        await postJson(server.url, '/direct-slow/stage-update', { stageNumber: 1, stageName: 'Stage 1', status: 'PROCESSING', output, progress: { seq, current: seq, total: 400 } })
        // The reader that keeps up takes this change before the next.
        let event = await reader.next()
        while (event.event !== 'update') event = await reader.next()
      }
      await until('the paused stream to be closed', () => server.handlers.liveStats().slowStreamsClosed === 1)
      expect(server.handlers.liveStats().openStreams).toBe(1)
      const slow = server.warnings.filter((line) => /closed a set stream whose reader fell \d+ bytes behind \(limit live.maxBufferedBytes = 4096/.test(line))
      expect(slow).toHaveLength(1)
    } finally {
      reading.abort()
      socket?.destroy()
      await server.close()
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
