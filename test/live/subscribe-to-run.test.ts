import {
  isRunSubscriptionError,
  type RunConnectionState,
  type RunStatusResponse,
  RunStatusResponse as RunStatusSchema,
  subscribeToRun,
} from 'pipeline-status-sdk'
import { startMockServer } from 'pipeline-status-sdk/msw'
import { createRunReadToken } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { makeStageUpdate } from '../support/fixtures.js'
import { openStream, runRecord, type SseFixture, stageRecord, startSseFixture, statusDocument, type StreamConnection } from './sse-fixture.js'

let fixture: SseFixture | undefined
afterEach(async () => {
  vi.useRealTimers()
  await fixture?.close()
  fixture = undefined
})

/** Collects what a subscription reports. */
function recorder() {
  const updates: RunStatusResponse[] = []
  const states: [RunConnectionState, Error | undefined][] = []
  return {
    updates,
    states,
    names: () => states.map(([state]) => state),
    onUpdate: (status: RunStatusResponse) => void updates.push(status),
    onStateChange: (state: RunConnectionState, error: Error | undefined) => void states.push([state, error]),
  }
}

/** Resolves once `condition` holds, checking every 5 ms. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5))
}

describe('subscribeToRun over the live stream', () => {
  it('merges snapshot and updates, resumes with Last-Event-ID after a dropped connection, honours retry:, stops at end', async () => {
    const runId = 'run:42'
    const seen = recorder()
    const connections: StreamConnection[] = []
    fixture = await startSseFixture({
      events: async (request, response, index) => {
        const stream = openStream(request, response)
        connections.push(stream)
        if (index === 0) {
          stream.write('retry: 40\n\n')
          stream.write(': keep-alive\n\n')
          stream.event('snapshot', 3, statusDocument(runRecord(runId, 'PROCESSING'), [stageRecord(1, 'PROCESSING')]))
          stream.event('update', 4, { run: runRecord(runId, 'PROCESSING'), stages: [stageRecord(1, 'COMPLETED', 'one'), stageRecord(2, 'PROCESSING')] })
          await until(() => seen.updates.length === 2)
          stream.drop()
        } else {
          stream.write(': resumed\n\n')
          stream.event('update', 5, { run: runRecord(runId, 'PROCESSING'), stages: [stageRecord(2, 'COMPLETED', 'two'), stageRecord(3, 'PROCESSING')] })
          stream.event('update', 6, { run: runRecord(runId, 'COMPLETED'), stages: [stageRecord(3, 'COMPLETED', 'three')] })
          stream.event('end', 6, { run: runRecord(runId, 'COMPLETED') })
          // Left open: the subscriber itself must stop at `end`.
        }
      },
    })
    const subscription = subscribeToRun(runId, {
      url: fixture.url,
      token: 'psrt1.token-for-run-42',
      // Only the server's `retry: 40` lets this test finish before its timeout.
      reconnectDelayMs: 600_000,
      maxReconnectDelayMs: 600_000,
      onUpdate: seen.onUpdate,
      onStateChange: seen.onStateChange,
    })
    expect(subscription.state).toBe('connecting')
    await subscription.done

    expect(seen.names()).toEqual(['live', 'reconnecting', 'live', 'finished'])
    expect(subscription.state).toBe('finished')
    expect(subscription.transport).toBe('stream')
    const [first, second] = connections
    expect(first?.headers).toMatchObject({ accept: 'text/event-stream', authorization: 'Bearer psrt1.token-for-run-42' })
    expect(first?.headers['last-event-id']).toBeUndefined()
    expect(second?.headers['last-event-id']).toBe('4')
    expect(fixture.requests.map((request) => request.path)).toEqual([`/api/pipeline/run%3A42/events`, `/api/pipeline/run%3A42/events`])
    await second?.closed

    expect(seen.updates.map(({ run, stages }) => [run.status, stages.map((stage) => `${stage.stageNumber}:${stage.status}`)])).toEqual([
      ['PROCESSING', ['1:PROCESSING']],
      ['PROCESSING', ['1:COMPLETED', '2:PROCESSING']],
      ['PROCESSING', ['1:COMPLETED', '2:COMPLETED', '3:PROCESSING']],
      ['COMPLETED', ['1:COMPLETED', '2:COMPLETED', '3:COMPLETED']],
    ])
    expect(subscription.status).toEqual(
      statusDocument(runRecord(runId, 'COMPLETED'), [stageRecord(1, 'COMPLETED', 'one'), stageRecord(2, 'COMPLETED', 'two'), stageRecord(3, 'COMPLETED', 'three')]),
    )
  })

  it('backs off and retries after a 503 and a reset connection, then goes live', async () => {
    const runId = 'run-backoff'
    const seen = recorder()
    fixture = await startSseFixture({
      events: (request, response, index) => {
        if (index === 0) {
          response.writeHead(503, { 'content-type': 'application/problem+json' })
          response.end(JSON.stringify({ type: 'urn:x', title: 'Database unavailable', status: 503, code: 'database_unavailable' }))
        } else if (index === 1) {
          request.socket.destroy()
        } else {
          const stream = openStream(request, response)
          const done = runRecord(runId, 'FAILED')
          stream.event('snapshot', 9, statusDocument(done, [stageRecord(1, 'FAILED', 'boom')]))
          stream.event('end', 9, { run: done })
          stream.end()
        }
      },
    })
    const subscription = subscribeToRun(runId, { url: fixture.url, reconnectDelayMs: 10, onUpdate: seen.onUpdate, onStateChange: seen.onStateChange })
    await subscription.done
    expect(seen.names()).toEqual(['reconnecting', 'reconnecting', 'live', 'finished'])
    const [unavailable, reset] = seen.states.map(([, error]) => error)
    expect(isRunSubscriptionError(unavailable) && unavailable.status === 503 && unavailable.problem?.code).toBe('database_unavailable')
    expect(reset).toBeInstanceOf(TypeError) // fetch failed
    expect(seen.updates.at(-1)?.run.status).toBe('FAILED')
    expect(fixture.requests).toHaveLength(3)
  })

  it('stops with state error on 401 and does not retry', async () => {
    const seen = recorder()
    fixture = await startSseFixture({
      events: (_request, response) => {
        response.writeHead(401, { 'content-type': 'application/problem+json' })
        response.end(JSON.stringify({ type: 'urn:x', title: 'Invalid', status: 401, code: 'invalid_read_token', detail: 'The read token is not valid for this run' }))
      },
    })
    const subscription = subscribeToRun('run-x', { url: fixture.url, token: 'psrt1.wrong', onStateChange: seen.onStateChange })
    await subscription.done
    expect(seen.names()).toEqual(['error'])
    expect(subscription.error?.message).toBe('The live status stream answered 401 invalid_read_token: The read token is not valid for this run')
    expect(fixture.requests).toHaveLength(1)
  })

  it('a malformed event is an error, not a silent gap', async () => {
    fixture = await startSseFixture({
      events: (request, response) => {
        const stream = openStream(request, response)
        stream.event('snapshot', 1, { run: { id: 'r' } })
      },
    })
    const subscription = subscribeToRun('r', { url: fixture.url })
    await subscription.done
    expect(subscription.state).toBe('error')
    expect(subscription.error?.message).toBe('The stream sent a malformed snapshot event')
  })

  it('aborting the signal closes the stream and stops without reconnecting', async () => {
    const runId = 'run-abort'
    const controller = new AbortController()
    const seen = recorder()
    let connection: StreamConnection | undefined
    fixture = await startSseFixture({
      events: (request, response) => {
        connection = openStream(request, response)
        connection.event('snapshot', 1, statusDocument(runRecord(runId, 'PROCESSING'), []))
      },
    })
    const subscription = subscribeToRun(runId, { url: fixture.url, signal: controller.signal, onUpdate: seen.onUpdate, onStateChange: seen.onStateChange })
    await until(() => seen.updates.length === 1)
    controller.abort()
    await subscription.done
    await connection?.closed
    expect(seen.names()).toEqual(['live'])
    expect(fixture.requests).toHaveLength(1)
  })
})

describe('subscribeToRun without a stream route: polling GET /status', () => {
  it('falls back on 405, sends If-None-Match with the ETag it got, and stops once the run is finished', async () => {
    const runId = 'run-etag'
    const seen = recorder()
    const processing = statusDocument(runRecord(runId, 'PROCESSING'), [stageRecord(1, 'PROCESSING')])
    const completed = statusDocument(runRecord(runId, 'COMPLETED'), [stageRecord(1, 'COMPLETED', 'x')])
    fixture = await startSseFixture({
      events: (_request, response) => {
        response.writeHead(405, { allow: 'POST' })
        response.end()
      },
      status: (request, response, index) => {
        if (index === 0) {
          response.writeHead(200, { 'content-type': 'application/json', etag: '"7"' })
          response.end(JSON.stringify(processing))
        } else if (index === 1 && request.headers['if-none-match'] === '"7"') {
          response.writeHead(304, { etag: '"7"' })
          response.end()
        } else {
          response.writeHead(200, { 'content-type': 'application/json', etag: '"8"' })
          response.end(JSON.stringify(completed))
        }
      },
    })
    const subscription = subscribeToRun(runId, { url: fixture.url, pollIntervalMs: 5, onUpdate: seen.onUpdate, onStateChange: seen.onStateChange })
    await subscription.done
    expect(subscription.transport).toBe('polling')
    expect(seen.names()).toEqual(['live', 'finished'])
    expect(seen.updates).toEqual([processing, completed])
    const polls = fixture.requests.filter((request) => request.path.endsWith('/status'))
    expect(polls.map((request) => request.headers['if-none-match'])).toEqual([undefined, '"7"', '"7"'])
  })

  it("falls back on a router's plain 404 (no route file for events), and stops with error when the run is unknown", async () => {
    fixture = await startSseFixture({
      events: (_request, response) => {
        response.writeHead(404, { 'content-type': 'text/html' })
        response.end('<h1>404: This page could not be found.</h1>')
      },
      status: (_request, response) => {
        response.writeHead(404, { 'content-type': 'application/problem+json' })
        response.end(JSON.stringify({ type: 'urn:x', title: 'Unknown pipeline run', status: 404, code: 'run_not_found', detail: 'No pipeline run has this id' }))
      },
    })
    const subscription = subscribeToRun('nobody', { url: fixture.url, pollIntervalMs: 5 })
    await subscription.done
    expect(subscription.transport).toBe('polling')
    expect(subscription.state).toBe('error')
    expect(subscription.error?.message).toBe('GET /status answered 404 run_not_found: No pipeline run has this id')
    expect(fixture.requests.map((request) => request.path)).toEqual(['/api/pipeline/nobody/events', '/api/pipeline/nobody/status'])
  })
})

describe('subscribeToRun decides once what a failure means', () => {
  it('with a url missing its scheme: state error at once, saying what was meant, and no request', async () => {
    const fetchStub = vi.fn(async () => new Response(null, { status: 500 }))
    for (const [url, meant] of [
      ['localhost:3000/api/pipeline', 'http://localhost:3000/api/pipeline'],
      ['app.example.com/api/pipeline', 'https://app.example.com/api/pipeline'],
    ] as const) {
      const subscription = subscribeToRun('run-no-scheme', { url, fetch: fetchStub as unknown as typeof fetch })
      await subscription.done
      expect(subscription.state).toBe('error')
      expect(isRunSubscriptionError(subscription.error)).toBe(true)
      expect(subscription.error?.message).toBe(`subscribeToRun: url '${url}' has no http:// or https://; did you mean ${meant}?`)
    }
    expect(fetchStub).not.toHaveBeenCalled()
  })

  it('with a relative url in Node (no page to resolve it against): state error at once, naming the fix, and no request', async () => {
    const fetchStub = vi.fn(async () => new Response(null, { status: 500 }))
    const seen = recorder()
    const subscription = subscribeToRun('run-relative', {
      url: '/api/pipeline',
      fetch: fetchStub as unknown as typeof fetch,
      onStateChange: seen.onStateChange,
    })
    // Reported after subscribeToRun returned, like every state change.
    expect(subscription.state).toBe('connecting')
    expect(seen.states).toEqual([])
    await subscription.done
    expect(seen.names()).toEqual(['error'])
    expect(isRunSubscriptionError(subscription.error)).toBe(true)
    expect(subscription.error?.message).toMatch(/needs an absolute url/)
    expect(subscription.error?.message).toContain("'/api/pipeline' is relative")
    expect(subscription.error?.message).toContain("url: 'https://app.example.com/api/pipeline'")
    expect(fetchStub).not.toHaveBeenCalled()
    // The default base path is relative too.
    const byDefault = subscribeToRun('run-relative', { fetch: fetchStub as unknown as typeof fetch })
    await byDefault.done
    expect(byDefault.state).toBe('error')
    expect(fetchStub).not.toHaveBeenCalled()
  })

  it("with fake timers: a 503's Retry-After is a field of its error and the next attempt waits for it, not the shorter backoff", async () => {
    vi.useFakeTimers()
    const runId = 'run-retry-after'
    const encoder = new TextEncoder()
    let calls = 0
    const fetchStub = vi.fn(async () => {
      calls += 1
      if (calls === 1) {
        const problem = { type: 'urn:x', title: 'Busy', status: 503, code: 'database_unavailable' }
        return new Response(JSON.stringify(problem), { status: 503, headers: { 'content-type': 'application/problem+json', 'retry-after': '2' } })
      }
      const done = runRecord(runId, 'COMPLETED')
      const body = `event: snapshot\nid: 3\ndata: ${JSON.stringify(statusDocument(done, []))}\n\nevent: end\nid: 3\ndata: ${JSON.stringify({ run: done })}\n\n`
      return new Response(encoder.encode(body), { headers: { 'content-type': 'text/event-stream' } })
    })
    const seen = recorder()
    const subscription = subscribeToRun(runId, {
      url: 'http://example.test/api/pipeline',
      fetch: fetchStub as unknown as typeof fetch,
      reconnectDelayMs: 10,
      onStateChange: seen.onStateChange,
    })
    await vi.advanceTimersByTimeAsync(1_999)
    expect(calls).toBe(1)
    expect(subscription.state).toBe('reconnecting')
    const cause = seen.states[0]?.[1]
    expect(isRunSubscriptionError(cause) && [cause.status, cause.retryAfterMs]).toEqual([503, 2_000])
    await vi.advanceTimersByTimeAsync(2)
    await subscription.done
    expect(calls).toBe(2)
    expect(seen.names()).toEqual(['reconnecting', 'live', 'finished'])
  })

  it('an answer that is not an event stream is retried; a 403 after it stops for good', async () => {
    fixture = await startSseFixture({
      events: (_request, response, index) => {
        if (index === 0) {
          response.writeHead(200, { 'content-type': 'text/html' })
          response.end('<p>a proxy login page</p>')
        } else {
          response.writeHead(403, { 'content-type': 'application/problem+json' })
          response.end(JSON.stringify({ type: 'urn:x', title: 'Forbidden', status: 403, code: 'forbidden' }))
        }
      },
    })
    const seen = recorder()
    const subscription = subscribeToRun('run-403', { url: fixture.url, reconnectDelayMs: 5, onStateChange: seen.onStateChange })
    await subscription.done
    expect(seen.names()).toEqual(['reconnecting', 'error'])
    expect(seen.states[0]?.[1]?.message).toBe('The live status stream answered text/html, not text/event-stream')
    expect(isRunSubscriptionError(subscription.error) && subscription.error.status).toBe(403)
    expect(fixture.requests).toHaveLength(2)
  })
})

describe('subscribeToRun against the real handlers', () => {
  it('follows the real handlers (the mock server over HTTP) over their stream with a run read token until the run completes', async () => {
    const secret = 'webhook-secret-subscribe-test'
    const readSecret = 'read-token-secret-subscribe-test-0001'
    const server = await startMockServer({ secret, readTokens: { secret: readSecret }, logger: { warn: () => {}, error: () => {} } })
    try {
      const run = await server.mock.createRun()
      const other = await server.mock.createRun()
      const token = await createRunReadToken({ runId: run.id, secret: readSecret, expiresInSeconds: 60 })
      const seen = recorder()
      const subscription = subscribeToRun(run.id, {
        url: `${server.url}/api/pipeline`,
        token,
        pollIntervalMs: 5,
        onUpdate: seen.onUpdate,
        onStateChange: seen.onStateChange,
      })
      const post = (stageNumber: number) =>
        fetch(`${server.url}/api/pipeline/${run.id}/stage-update`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-webhook-secret': secret },
          body: JSON.stringify(makeStageUpdate({ stageNumber, status: 'COMPLETED', output: `out ${stageNumber}` })),
        })
      for (const stageNumber of [1, 2, 3, 4, 5]) {
        expect((await post(stageNumber)).status).toBe(200)
        await until(() => seen.updates.at(-1)?.stages.length === stageNumber)
      }
      await subscription.done
      expect(subscription.state).toBe('finished')
      expect(subscription.transport).toBe('stream')
      const stored = await fetch(`${server.url}/api/pipeline/${run.id}/status`, { headers: { 'x-webhook-secret': secret } })
      expect(subscription.status).toEqual(RunStatusSchema.parse(await stored.json()))
      expect(subscription.status?.run.status).toBe('COMPLETED')
      // Never out of order: each update has as many completed stages as the one before, or more.
      const completedCounts = seen.updates.map(({ stages }) => stages.filter((stage) => stage.status === 'COMPLETED').length)
      expect(completedCounts).toEqual([...completedCounts].sort((a, b) => a - b))

      // The token reads its own run only.
      const refused = subscribeToRun(other.id, { url: `${server.url}/api/pipeline`, token })
      await refused.done
      expect(refused.state).toBe('error')
      expect(isRunSubscriptionError(refused.error) && refused.error.problem?.code).toBe('invalid_read_token')
    } finally {
      await server.close()
    }
  })
})
