/**
 * Subscribers notice a dead stream (issue 19, item 2): the server announces its keep-alive
 * interval first on every stream, and `subscribeToRun` / `useRunStatus` take three intervals
 * without a byte as a lost connection: `reconnecting` with a RunStreamSilentError, then a resume
 * with `Last-Event-ID`.
 */
import {
  isRunStreamSilentError,
  type RunConnectionState,
  type RunStatusResponse,
  subscribeToRun,
} from 'pipeline-status-sdk'
import { createRunStatusStore } from 'pipeline-status-sdk/react'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { type FreezeProxy, startFreezeProxy } from '../support/freeze-proxy.js'
import { LIVE_SECRET, type LiveServer, postJson, startLiveServer } from './live-server.js'

/** A trusted server-side subscriber: the webhook secret authorizes reads. */
const auth = { 'X-Webhook-Secret': LIVE_SECRET }
import { openSse } from './sse-reader.js'
import { runRecord, stageRecord, statusDocument } from './sse-fixture.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  vi.useRealTimers()
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Resolves once `condition` holds; fails after `timeoutMs` (a ceiling far above the expected time). */
async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('Timed out waiting for a condition')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

describe('the server announces its keep-alive interval', () => {
  it('sends `: keep-alive-ms N` right after retry:, before the snapshot, then keep-alives', async () => {
    const server = await startLiveServer({ keepAliveMs: 40, retryMs: 500 })
    cleanups.push(() => server.close())
    await postJson(server.url, '/runs', { id: 'run-announce' })
    const sse = await openSse(`${server.url}/run-announce/events`, auth)
    cleanups.push(() => sse.abort())
    await sse.waitFor((event) => event.event === 'snapshot')
    await until(() => sse.comments.filter((comment) => comment.trim() === 'keep-alive').length >= 2)
    expect(sse.retries).toEqual([500])
    expect(sse.comments[0]?.trim()).toBe('keep-alive-ms 40')
  })
})

describe('subscribeToRun takes three silent keep-alive intervals as a lost connection', () => {
  it('with fake timers: live until 3 × the announced interval passes without a byte, then reconnecting and a resume with Last-Event-ID', async () => {
    vi.useFakeTimers()
    const runId = 'run-silent'
    const requests: Headers[] = []
    const encoder = new TextEncoder()
    // The first answer announces 1 s keep-alives, sends a snapshot, then nothing: a frozen path.
    // The second brings the run to its end.
    const fetchStub = vi.fn(async (_url: RequestInfo | URL, init?: RequestInit) => {
      requests.push(new Headers(init?.headers))
      const first = requests.length === 1
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          if (first) {
            controller.enqueue(encoder.encode('retry: 10\n: keep-alive-ms 1000\n\n'))
            const snapshot = statusDocument(runRecord(runId, 'PROCESSING'), [stageRecord(1, 'PROCESSING')])
            controller.enqueue(encoder.encode(`event: snapshot\nid: 7\ndata: ${JSON.stringify(snapshot)}\n\n`))
            // Closed only by the subscriber's abort.
            init?.signal?.addEventListener('abort', () => controller.error(init.signal?.reason))
          } else {
            const end = { run: runRecord(runId, 'COMPLETED') }
            controller.enqueue(encoder.encode(`event: update\nid: 9\ndata: ${JSON.stringify({ ...end, stages: [stageRecord(1, 'COMPLETED', 'done')] })}\n\n`))
            controller.enqueue(encoder.encode(`event: end\nid: 9\ndata: ${JSON.stringify(end)}\n\n`))
          }
        },
      })
      return new Response(body, { headers: { 'content-type': 'text/event-stream' } })
    })
    const states: [RunConnectionState, Error | undefined][] = []
    const subscription = subscribeToRun(runId, {
      url: 'http://example.test/api/pipeline',
      fetch: fetchStub as unknown as typeof fetch,
      onStateChange: (state, error) => void states.push([state, error]),
    })
    await vi.advanceTimersByTimeAsync(2_999)
    expect(subscription.state).toBe('live')
    expect(requests).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(2)
    expect(subscription.state).toBe('reconnecting')
    const cause = states.at(-1)?.[1]
    expect(isRunStreamSilentError(cause)).toBe(true)
    expect(cause).toMatchObject({ silentMs: 3_000, keepAliveMs: 1_000 })
    // The server's retry: 10 (jittered to 5..10 ms) is the wait before the resume.
    await vi.advanceTimersByTimeAsync(10)
    await subscription.done
    expect(states.map(([state]) => state)).toEqual(['live', 'reconnecting', 'live', 'finished'])
    expect(requests[1]?.get('last-event-id')).toBe('7')
    expect(subscription.status?.stages[0]).toMatchObject({ status: 'COMPLETED', output: 'done' })
  })

  it('with fake timers: a server that never answers the headers is given up after 3 × the default 15 s', async () => {
    vi.useFakeTimers()
    const fetchStub = vi.fn(
      (_url: RequestInfo | URL, init?: RequestInit) =>
        new Promise<Response>((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal?.reason))),
    )
    const states: [RunConnectionState, Error | undefined][] = []
    const subscription = subscribeToRun('run-no-headers', {
      url: 'http://example.test/api/pipeline',
      fetch: fetchStub as unknown as typeof fetch,
      reconnectDelayMs: 600_000,
      onStateChange: (state, error) => void states.push([state, error]),
    })
    cleanups.push(() => subscription.close())
    await vi.advanceTimersByTimeAsync(44_999)
    expect(subscription.state).toBe('connecting')
    await vi.advanceTimersByTimeAsync(2)
    expect(subscription.state).toBe('reconnecting')
    expect(states[0]?.[1]).toMatchObject({ name: 'RunStreamSilentError', silentMs: 45_000, keepAliveMs: 15_000 })
  })
})

describe('through a proxy that freezes the open connection without FIN or RST', () => {
  let server: LiveServer
  let proxy: FreezeProxy

  it('subscribeToRun and useRunStatus reach the final state by reconnecting after the freeze', async () => {
    // 1 s keep-alives: silence is noticed after 3 s. Shorter intervals (50 ms) let a loaded
    // machine's pauses pass for a dead path and reconnect a healthy stream too.
    server = await startLiveServer({ keepAliveMs: 1_000, retryMs: 20 })
    cleanups.push(() => server.close())
    proxy = await startFreezeProxy({ port: server.port })
    cleanups.push(() => proxy.close())
    const runId = 'run-frozen'
    await postJson(server.url, '/runs', { id: runId })
    await postJson(server.url, `/${runId}/stage-update`, { stageNumber: 1, stageName: 'Stage 1', status: 'PROCESSING' })
    const viaProxy = `http://127.0.0.1:${proxy.port}/api/pipeline`

    const states: [RunConnectionState, Error | undefined][] = []
    const updates: RunStatusResponse[] = []
    const lastEventIds: (string | null)[] = []
    const subscription = subscribeToRun(runId, {
      url: viaProxy,
      headers: auth,
      fetch: (input, init) => {
        lastEventIds.push(new Headers(init?.headers).get('last-event-id'))
        return fetch(input, init)
      },
      onUpdate: (status) => void updates.push(status),
      onStateChange: (state, error) => void states.push([state, error]),
    })
    cleanups.push(() => subscription.close())
    // The store's own requests, to count its streams (not TCP connections: Node's fetch pool may
    // open spare sockets through the proxy, more under load, and they carry no request).
    const storeLastEventIds: (string | null)[] = []
    const store = createRunStatusStore(runId, {
      url: viaProxy,
      headers: auth,
      fetch: (input, init) => {
        storeLastEventIds.push(new Headers(init?.headers).get('last-event-id'))
        return fetch(input, init)
      },
    })
    const storeStates: RunConnectionState[] = []
    const unsubscribe = store.subscribe(() => {
      const { state } = store.getSnapshot()
      if (storeStates.at(-1) !== state) storeStates.push(state)
    })
    cleanups.push(unsubscribe)
    await until(() => updates.length >= 1 && store.getSnapshot().run !== undefined)
    // The run's version before the freeze, as a direct stream's snapshot id tells it.
    const direct = await openSse(`${server.url}/${runId}/events`, auth)
    const idBeforeFreeze = (await direct.waitFor((event) => event.event === 'snapshot')).id
    direct.abort()
    expect(idBeforeFreeze).toMatch(/^\d+$/)
    expect(proxy.open()).toBe(2)

    proxy.freeze()
    // Written while both paths are frozen: only a reconnect can bring them.
    await postJson(server.url, `/${runId}/stage-update`, { stageNumber: 1, stageName: 'Stage 1', status: 'COMPLETED', output: 'one' })
    await postJson(server.url, `/${runId}/complete`, { status: 'COMPLETED' })

    await subscription.done
    await until(() => store.getSnapshot().state === 'finished', 30_000)

    const names = states.map(([state]) => state)
    expect(names).toEqual(['live', 'reconnecting', 'live', 'finished'])
    expect(isRunStreamSilentError(states[1]?.[1])).toBe(true)
    expect(states[1]?.[1]).toMatchObject({ keepAliveMs: 1_000, silentMs: 3_000 })
    // The resume carried the last id seen before the freeze.
    expect(lastEventIds).toHaveLength(2)
    expect(lastEventIds[0]).toBeNull()
    expect(lastEventIds[1]).toBe(idBeforeFreeze)
    expect(subscription.status?.run.status).toBe('COMPLETED')
    expect(subscription.status?.stages[0]).toMatchObject({ status: 'COMPLETED', output: 'one' })
    expect(storeStates).toEqual(['live', 'reconnecting', 'live', 'finished'])
    expect(store.getSnapshot().run?.status).toBe('COMPLETED')
    expect(store.getSnapshot().stages[0]).toMatchObject({ status: 'COMPLETED', output: 'one' })
    expect(storeLastEventIds).toHaveLength(2)
    expect(storeLastEventIds[0]).toBeNull()
    expect(storeLastEventIds[1]).toBe(idBeforeFreeze)
    // Two frozen streams, two fresh ones, all through the proxy: it relayed exactly four event
    // stream requests (counted from the bytes it relayed, not from its TCP connections).
    expect(proxy.requests().filter((line) => line.startsWith(`GET /api/pipeline/${runId}/events`))).toHaveLength(4)
    expect(proxy.requests()).toHaveLength(4)
  })
})
