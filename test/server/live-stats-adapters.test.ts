/**
 * `liveStats()` (the live streams' counters) is reachable from every framework adapter, not only
 * from `createPipelineStatusHandlers`: the Express router and the Next.js handlers object expose
 * it too, for metrics. Zeros before the first stream, the open stream counted while it is open.
 */
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { createExpressRouter } from 'pipeline-status-sdk/express'
import { createNextRouteHandlers } from 'pipeline-status-sdk/next'
import { MemoryStore } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it } from 'vitest'
import { until } from '../support/until.js'

/** `liveStats().closedStreams` before any stream was ended for a cause: every cause at 0. */
const NONE_CLOSED = { 'not-admitted': 0, 'update-unavailable': 0, 'credential-expired': 0, deleted: 0, 'membership-failed': 0 }

const SECRET = 'live-stats-secret'
const quiet = { warn: () => undefined, error: () => undefined }
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe('liveStats() on the framework adapters', () => {
  it('the Express router counts its open streams', async () => {
    const router = createExpressRouter({ store: new MemoryStore(), secret: SECRET, logger: quiet })
    const app = express()
    app.use('/api/pipeline', router)
    const server: Server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
    cleanups.push(() => new Promise((resolve) => server.close(resolve)))
    cleanups.push(() => server.closeAllConnections())
    cleanups.push(() => router.close())
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/pipeline`
    expect(router.liveStats()).toEqual({ openStreams: 0, slowStreamsClosed: 0, closedStreams: NONE_CLOSED })

    const created = await fetch(`${base}/runs`, {
      method: 'POST',
      headers: { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' },
      body: JSON.stringify({ id: 'stats-express' }),
    })
    expect(created.status).toBe(201)
    const controller = new AbortController()
    const stream = await fetch(`${base}/stats-express/events`, { headers: { 'X-Webhook-Secret': SECRET }, signal: controller.signal })
    expect(stream.status).toBe(200)
    await until('the stream to be counted', () => router.liveStats().openStreams === 1)
    expect(router.liveStats()).toEqual({ openStreams: 1, slowStreamsClosed: 0, closedStreams: NONE_CLOSED })
    controller.abort()
    await until('the stream to be let go', () => router.liveStats().openStreams === 0)
  })

  it('the Next.js handlers count their open streams, and answer zeros before the handlers exist', async () => {
    const handlers = createNextRouteHandlers({ store: new MemoryStore(), secret: SECRET, logger: quiet })
    cleanups.push(() => handlers.close())
    expect(handlers.liveStats()).toEqual({ openStreams: 0, slowStreamsClosed: 0, closedStreams: NONE_CLOSED })
    const base = 'http://app.test/api/pipeline'
    const created = await handlers.POST(
      new Request(`${base}/runs`, {
        method: 'POST',
        headers: { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' },
        body: JSON.stringify({ id: 'stats-next' }),
      }),
    )
    expect(created.status).toBe(201)
    const stream = await handlers.GET(new Request(`${base}/stats-next/events`, { headers: { 'X-Webhook-Secret': SECRET } }))
    expect(stream.status).toBe(200)
    expect(handlers.liveStats()).toEqual({ openStreams: 1, slowStreamsClosed: 0, closedStreams: NONE_CLOSED })
    await stream.body?.cancel()
    await until('the stream to be let go', () => handlers.liveStats().openStreams === 0)

    // Misconfigured (no secret): the handlers are never created, and the stats are zeros, not a throw.
    const broken = createNextRouteHandlers({ store: new MemoryStore(), secret: '', logger: quiet })
    expect(() => broken.handlers).toThrow(/secret/i)
    expect(broken.liveStats()).toEqual({ openStreams: 0, slowStreamsClosed: 0, closedStreams: NONE_CLOSED })
  })
})
