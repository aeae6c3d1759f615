/**
 * The windows of filter set streams (docs/live-status.md, "Set streams"): streams with the same
 * filters share one window query per tick; in LISTEN mode a notification of a run outside the
 * window brings it in without waiting for the safety poll.
 */
import type { RunChangeSink, RunChangeSource } from 'pipeline-status-sdk/pg'
import { createPipelineStatusHandlers, MemoryStore, type RunListRequest, type Store } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { readEvents } from '../contract/suite/read-events.js'
import { handlerRequests } from '../support/handler-requests.js'
import { quiet } from '../support/loggers.js'
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

describe('set stream windows', () => {
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
})
