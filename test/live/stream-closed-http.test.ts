/**
 * The real handlers over a real port end a stream with `: closed not-admitted <runId>` when the
 * run loses the tag of the tag read token it was opened with: `subscribeToRun` (its own stream)
 * and `subscribeToRuns` (a `run=` set stream) stop in state `error` with a RunStreamClosedError
 * naming the cause and the run, without reconnecting to be refused; the handlers count each closed
 * stream by cause (`liveStats().closedStreams`). The subscriber side against scripted bytes:
 * stream-closed-subscribers.test.ts.
 */
import { isRunStreamClosedError, type RunConnectionState, subscribeToRun, subscribeToRuns } from 'pipeline-status-sdk'
import { createRunReadToken } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it } from 'vitest'
import { until } from './fake-event-fetch.js'
import { type LiveServer, postJson, startLiveServer } from './live-server.js'

const READ_SECRET = 'read-token-secret-of-at-least-32-chars'

let server: LiveServer | undefined
afterEach(async () => {
  await server?.close()
  server = undefined
})

/** The global fetch, counting the requests of each path. */
function countingFetch(): { fetch: typeof globalThis.fetch; paths: string[] } {
  const paths: string[] = []
  const fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
    paths.push(new URL(String(input)).pathname)
    return globalThis.fetch(input, init)
  }) as typeof globalThis.fetch
  return { fetch, paths }
}

describe('a stream the server ends for a cause reconnecting cannot help, over HTTP', () => {
  it('a run loses the tag of the read token: its own stream and a run= set stream stop with `not-admitted`, no reconnect; counted by cause', async () => {
    server = await startLiveServer({ pollIntervalMs: 20 }, { readTokens: { secret: READ_SECRET } })
    const { url } = server
    for (const id of ['tagged-1', 'tagged-2']) await postJson(url, '/runs', { id, tags: ['team:a'] })
    const token = await createRunReadToken({ tag: 'team:a', secret: READ_SECRET, expiresInSeconds: 600 })

    const counted = countingFetch()
    const states: RunConnectionState[] = []
    const own = subscribeToRun('tagged-1', { url, token, share: false, fetch: counted.fetch, reconnectDelayMs: 1, onStateChange: (state) => void states.push(state) })
    const set = subscribeToRuns({ url, token, runIds: ['tagged-2'], fetch: counted.fetch, reconnectDelayMs: 1 })
    await until(() => own.state === 'live' && set.state === 'live', 'both subscriptions live')

    await postJson(url, '/tagged-1/tags', { remove: ['team:a'] })
    await postJson(url, '/tagged-2/tags', { remove: ['team:a'] })
    await Promise.all([own.done, set.done])

    expect(own.state).toBe('error')
    expect(isRunStreamClosedError(own.error)).toBe(true)
    expect(own.error).toMatchObject({ closedCause: 'not-admitted', runId: 'tagged-1', final: true })
    expect(states).toEqual(['live', 'error'])
    expect(set.state).toBe('error')
    expect(set.error).toMatchObject({ name: 'RunStreamClosedError', closedCause: 'not-admitted', runId: 'tagged-2', final: true })
    // One request each: neither reconnected to be refused.
    expect(counted.paths.sort()).toEqual(['/api/pipeline/events', '/api/pipeline/tagged-1/events'])
    expect(server.handlers.liveStats().closedStreams).toMatchObject({ 'not-admitted': 2, deleted: 0 })
  })
})
