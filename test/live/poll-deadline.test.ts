/**
 * The polling fallback of `subscribeToRun` has a deadline (DESIGN.md "Never silent": every wait
 * has one): each `GET /status` must complete, headers and body, within 3 keep-alive intervals
 * (45 s by default), the figure that bounds a silent stream. A real server without a stream route
 * answers the first poll's headers and then stalls; fake timers (setTimeout only, so the sockets
 * stay real) pass the 45 s, and the subscriber aborts that poll as a retriable
 * RunPollTimeoutError, polls again and reaches the final state.
 */
import { isRunPollTimeoutError, type RunConnectionState, subscribeToRun } from 'pipeline-status-sdk'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { runRecord, stageRecord, startSseFixture, statusDocument } from './sse-fixture.js'

const cleanups: (() => Promise<void> | void)[] = []
/** The real clock's setTimeout, kept before fake timers replace it. */
const realSetTimeout = globalThis.setTimeout

/**
 * Waits on the real clock (for socket I/O) without moving the fake one (vi.waitFor would
 * advance it); fails past `ceilingMs`.
 */
async function until(what: string, condition: () => boolean, ceilingMs = 10_000): Promise<void> {
  const deadline = Date.now() + ceilingMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ceilingMs} ms waiting for ${what}`)
    await new Promise((resolve) => realSetTimeout(resolve, 10))
  }
}
afterEach(async () => {
  vi.useRealTimers()
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe('subscribeToRun polling GET /status', () => {
  it('aborts a poll whose answer stalls after the headers at 3 × 15 s, as a retriable timeout, and polls again', async () => {
    const runId = 'run-stalled-poll'
    const stalled: Array<() => void> = []
    const fixture = await startSseFixture({
      // No events route: the subscriber falls back to polling.
      status: (request, response, index) => {
        if (index === 0) {
          // Headers, half a body, then nothing: the connection stays open.
          response.writeHead(200, { 'content-type': 'application/json' })
          response.write('{"run":')
          stalled.push(() => response.destroy())
          request.on('close', () => undefined)
          return
        }
        response.writeHead(200, { 'content-type': 'application/json' })
        response.end(JSON.stringify(statusDocument(runRecord(runId, 'COMPLETED'), [stageRecord(1, 'COMPLETED', 'done')])))
      },
    })
    cleanups.push(() => fixture.close())
    cleanups.push(() => stalled.forEach((destroy) => destroy()))
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const states: [RunConnectionState, Error | undefined][] = []
    const subscription = subscribeToRun(runId, {
      url: fixture.url,
      reconnectDelayMs: 10,
      onStateChange: (state, error) => void states.push([state, error]),
    })
    cleanups.push(() => subscription.close())
    const statusRequests = () => fixture.requests.filter((request) => request.path.endsWith('/status')).length

    // The first poll's headers arrived (real I/O), and its body stalls.
    await until('the first poll to stall', () => stalled.length === 1)
    await vi.advanceTimersByTimeAsync(44_990)
    expect(subscription.state).toBe('connecting')
    expect(statusRequests()).toBe(1)

    await vi.advanceTimersByTimeAsync(20)
    await until('the timeout', () => subscription.state === 'reconnecting')
    const cause = states[0]?.[1]
    expect(isRunPollTimeoutError(cause)).toBe(true)
    expect(cause).toMatchObject({ name: 'RunPollTimeoutError', timeoutMs: 45_000 })

    // The backoff (10 ms, jittered) and the second poll, which answers the finished run.
    await vi.advanceTimersByTimeAsync(20)
    await until('the final state', () => subscription.state === 'finished')
    await subscription.done
    expect(statusRequests()).toBe(2)
    expect(states.map(([state]) => state)).toEqual(['reconnecting', 'live', 'finished'])
    expect(subscription.transport).toBe('polling')
    expect(subscription.status?.stages[0]).toMatchObject({ status: 'COMPLETED', output: 'done' })
  })
})
