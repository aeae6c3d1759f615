/**
 * subscribeToRuns against the real handlers (a MemoryStore over a real port): a tag filter in the
 * summary view sees runs join when created and leave when the tag is removed, a finished run stay
 * with `end`; a `runIds` stream in the full view closes once both runs ended. Needs the server's
 * set-stream route (GET {base}/events).
 */
import { type RunStatusResponse, type RunSummary, subscribeToRuns } from 'pipeline-status-sdk'
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
})
