/**
 * subscribeToRuns against the real handlers (a MemoryStore over a real port): a tag filter in the
 * summary view sees runs join when created and leave when the tag is removed, a finished run stay
 * with `end`; a `runIds` stream in the full view closes once both runs ended. Needs the server's
 * set-stream route (GET {base}/events).
 */
import { type RunConnectionState, type RunsConnectionState, type RunStatusResponse, type RunSummary, isRunStreamClosedError, isRunSubscriptionError, subscribeToRun, subscribeToRuns } from 'pipeline-status-sdk'
import { createRunReadToken } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it } from 'vitest'
import { until } from './fake-event-fetch.js'
import { type LiveServer, postJson, startLiveServer } from './live-server.js'

let server: LiveServer | undefined
afterEach(async () => {
  await server?.close()
  server = undefined
})

const SECRET_HEADERS = { 'X-Webhook-Secret': 'live-test-secret' }

describe('subscribeToRuns against the handlers', () => {
  it('a tag filter in the summary view: runs join when created, change, leave when untagged, and stay when finished', async () => {
    server = await startLiveServer({ pollIntervalMs: 50 })
    const { url } = server
    await postJson(url, '/runs', { id: 'before', tags: ['team:a'] })
    await postJson(url, '/runs', { id: 'other-team', tags: ['team:b'] })
    const seen: (readonly RunSummary[])[] = []
    const subscription = subscribeToRuns({ url, filter: { tag: 'team:a' }, headers: SECRET_HEADERS, onChange: (runs) => void seen.push(runs) })
    await until(() => subscription.state === 'live', 'live')
    expect(subscription.runs.map((run) => run.id)).toEqual(['before'])
    await postJson(url, '/runs', { id: 'after', tags: ['team:a'] })
    await until(() => subscription.runs.length === 2, 'the new run joined')
    expect(subscription.runs.map((run) => run.id)).toEqual(['after', 'before'])
    await postJson(url, '/before/stage-update', { stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING' })
    await until(() => subscription.runs.find((run) => run.id === 'before')?.currentStage === 1, 'the update')
    await postJson(url, '/before/tags', { remove: ['team:a'] })
    await until(() => subscription.runs.length === 1, 'the untagged run left')
    await postJson(url, '/after/complete', { status: 'FAILED', error: 'boom' })
    await until(() => subscription.ended.has('after'), 'end')
    expect(subscription.runs.map((run) => [run.id, run.status])).toEqual([['after', 'FAILED']])
    expect(subscription.state).toBe('live')
    subscription.close()
    await subscription.done
  })

  it('runIds in the full view: snapshots, updates, and the stream closes once every run ended', async () => {
    server = await startLiveServer({ pollIntervalMs: 50 })
    const { url } = server
    await postJson(url, '/runs', { id: 'r1' })
    await postJson(url, '/runs', { id: 'r2' })
    const subscription = subscribeToRuns({ url, runIds: ['r1', 'r2'], view: 'full', headers: SECRET_HEADERS })
    await until(() => subscription.state === 'live', 'live')
    await postJson(url, '/r1/stage-update', { stageNumber: 1, stageName: 'Input Processing', status: 'COMPLETED', output: 'one' })
    const r1 = (): RunStatusResponse | undefined => subscription.runs.find((run) => run.run.id === 'r1')
    await until(() => r1()?.stages[0]?.output === 'one', 'the update')
    await postJson(url, '/r1/complete', { status: 'COMPLETED' })
    await postJson(url, '/r2/complete', { status: 'CANCELLED', error: 'stopped' })
    await subscription.done
    expect(subscription.state).toBe('closed')
    expect(subscription.runs.map((run) => [run.run.id, run.run.status]).sort()).toEqual([['r1', 'COMPLETED'], ['r2', 'CANCELLED']])
  })

  it('runIds that had all finished already: onChange shows both in their final status, then closed', async () => {
    server = await startLiveServer({ pollIntervalMs: 50 })
    const { url } = server
    for (const id of ['f1', 'f2']) {
      await postJson(url, '/runs', { id })
      await postJson(url, `/${id}/complete`, { status: 'COMPLETED' })
    }
    const changes: string[] = []
    const states: RunsConnectionState[] = []
    const subscription = subscribeToRuns({
      url,
      runIds: ['f1', 'f2'],
      view: 'full',
      headers: SECRET_HEADERS,
      onChange: (runs) => void changes.push(runs.map((run) => `${run.run.id}:${run.run.status}`).sort().join(',')),
      onStateChange: (state) => void states.push(state),
    })
    await subscription.done
    expect(changes).toEqual(['f1:COMPLETED,f2:COMPLETED'])
    expect(states).toEqual(['closed'])
  })

  it('a refused run= stream names its run: the problem runId of an unknown run', async () => {
    server = await startLiveServer({ pollIntervalMs: 50 })
    const { url } = server
    await postJson(url, '/runs', { id: 'known' })
    const subscription = subscribeToRuns({ url, runIds: ['known', 'does-not-exist'], headers: SECRET_HEADERS })
    await subscription.done
    expect(subscription.state).toBe('error')
    const { error } = subscription
    expect(isRunSubscriptionError(error) && [error.status, error.problem?.code, error.problem?.runId]).toEqual([404, 'run_not_found', 'does-not-exist'])
  })
})

describe('subscribeToRun on a shared connection, against the handlers', () => {
  /** A fetch that counts the requests by path. */
  function countingFetch() {
    const paths: string[] = []
    const counted: typeof fetch = (input, init) => {
      paths.push(new URL(String(input)).pathname)
      return fetch(input, init)
    }
    return { paths, fetch: counted }
  }

  function follow(runId: string, options: Parameters<typeof subscribeToRun>[1]) {
    const states: RunConnectionState[] = []
    const subscription = subscribeToRun(runId, { share: true, reconnectDelayMs: 10, onStateChange: (state) => void states.push(state), ...options })
    return { subscription, states }
  }

  it('an unknown run among shared runs gets its own 404; the others stay on one set stream', async () => {
    server = await startLiveServer({ pollIntervalMs: 50 })
    const { url } = server
    for (const id of ['s1', 's2', 's3']) await postJson(url, '/runs', { id })
    const counter = countingFetch()
    const options = { url, headers: SECRET_HEADERS, fetch: counter.fetch }
    const runs = ['s1', 'does-not-exist', 's2', 's3'].map((id) => follow(id, options))
    const unknown = runs[1]!.subscription
    await unknown.done
    expect(unknown.state).toBe('error')
    expect(isRunSubscriptionError(unknown.error) && [unknown.error.status, unknown.error.problem?.code]).toEqual([404, 'run_not_found'])
    const others = [runs[0]!, runs[2]!, runs[3]!].map(({ subscription }) => subscription)
    await until(() => others.every((subscription) => subscription.state === 'live' && subscription.status !== undefined), 'the others live')
    await postJson(url, '/s2/complete', { status: 'COMPLETED' })
    await until(() => others[1]!.state === 'finished', 's2 finished')
    expect(others[1]!.status?.run.status).toBe('COMPLETED')
    // The refused set and the set of the other three: every request a set stream.
    expect(counter.paths).toEqual(['/api/pipeline/events', '/api/pipeline/events'])
    for (const subscription of others) subscription.close()
  })

  it("a run a tag token stops covering ends with the server's `: closed not-admitted` (no reconnect to be refused); the others go on sharing", async () => {
    server = await startLiveServer({ pollIntervalMs: 50 }, { readTokens: { secret: 'read-token-secret-of-at-least-32-chars' } })
    const { url } = server
    for (const id of ['t1', 't2']) await postJson(url, '/runs', { id, tags: ['team:a'] })
    const token = await createRunReadToken({ tag: 'team:a', secret: 'read-token-secret-of-at-least-32-chars' })
    const counter = countingFetch()
    const [t1, t2] = ['t1', 't2'].map((id) => follow(id, { url, token, fetch: counter.fetch }))
    await until(() => [t1!, t2!].every(({ subscription }) => subscription.state === 'live' && subscription.status !== undefined), 'both live')
    await postJson(url, '/t2/tags', { remove: ['team:a'] })
    await t2!.subscription.done
    expect(t2!.subscription.state).toBe('error')
    const { error } = t2!.subscription
    expect(isRunStreamClosedError(error) && [error.closedCause, error.runId, error.final]).toEqual(['not-admitted', 't2', true])
    await postJson(url, '/t1/complete', { status: 'COMPLETED' })
    await t1!.subscription.done
    expect([t1!.subscription.state, t1!.subscription.status?.run.status]).toEqual(['finished', 'COMPLETED'])
    expect(new Set(counter.paths)).toEqual(new Set(['/api/pipeline/events']))
  })
})
