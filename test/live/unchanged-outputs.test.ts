/**
 * `update` events and unchanged outputs (docs/contract.md "Live status events"): on a stream
 * opened with `?outputs=changed` a stage's `output` is left out when that stream already sent it,
 * and sent when it changes; without the parameter every stage is whole, as before.
 * `mergeRunUpdate` keeps the output a subscriber has.
 */
import { mergeRunUpdate, RunUpdateEvent, type RunStatusResponse } from 'pipeline-status-sdk'
import { afterEach, describe, expect, it } from 'vitest'
import { LIVE_SECRET, type LiveServer, postJson, startLiveServer } from './live-server.js'
import { openSse, type SseConnection } from './sse-reader.js'
import { runRecord, stageRecord, statusDocument } from './sse-fixture.js'

const auth = { 'X-Webhook-Secret': LIVE_SECRET }
let server: LiveServer | undefined
const streams: SseConnection[] = []
afterEach(async () => {
  for (const stream of streams.splice(0)) stream.abort()
  await server?.close()
  server = undefined
})

/** The stages of the `update` events of `stream`, as sent (raw JSON, so an absent member shows). */
function updateStages(stream: SseConnection): Record<string, unknown>[][] {
  return stream.events
    .filter((event) => event.event === 'update')
    .map((event) => (JSON.parse(event.data) as { stages: Record<string, unknown>[] }).stages)
}

describe('update events and unchanged outputs', () => {
  it('leaves out an output the stream already sent (?outputs=changed), sends it once it changes, and sends whole stages without the parameter', async () => {
    server = await startLiveServer()
    const runId = 'run-outputs'
    await postJson(server.url, '/runs', { id: runId })
    await postJson(server.url, `/${runId}/stage-update`, { stageNumber: 1, stageName: 'Stage 1', status: 'PROCESSING', output: 'big' })
    const changedOnly = await openSse(`${server.url}/${runId}/events?outputs=changed`, auth)
    const whole = await openSse(`${server.url}/${runId}/events`, auth)
    streams.push(changedOnly, whole)
    await changedOnly.waitFor((event) => event.event === 'snapshot')
    await whole.waitFor((event) => event.event === 'snapshot')

    const tick = (seq: number) =>
      postJson(server!.url, `/${runId}/stage-update`, { stageNumber: 1, stageName: 'Stage 1', status: 'PROCESSING', output: 'big', progress: { seq } })
    await tick(1)
    await changedOnly.waitFor((event) => event.event === 'update' && event.data.includes('"seq":1'))
    await tick(2)
    await changedOnly.waitFor((event) => event.event === 'update' && event.data.includes('"seq":2'))
    // The stage's output changes when it completes.
    await postJson(server.url, `/${runId}/stage-update`, { stageNumber: 1, stageName: 'Stage 1', status: 'COMPLETED', output: 'done' })
    await changedOnly.waitFor((event) => event.event === 'update' && event.data.includes('"COMPLETED"'))
    await whole.waitFor((event) => event.event === 'update' && event.data.includes('"COMPLETED"'))

    const changed = updateStages(changedOnly).map((stages) => stages.map((stage) => ('output' in stage ? stage.output : '(absent)')))
    expect(changed).toEqual([['(absent)'], ['(absent)'], ['done']])
    const sentWhole = updateStages(whole).map((stages) => stages.map((stage) => stage.output))
    expect(sentWhole).toEqual([['big'], ['big'], ['done']])
    // Both parse with the published schema.
    for (const event of [...changedOnly.events, ...whole.events].filter((event) => event.event === 'update')) {
      expect(RunUpdateEvent.safeParse(JSON.parse(event.data)).success).toBe(true)
    }
  })

  it('mergeRunUpdate keeps the output it has for a stage sent without one, and takes null as no output', () => {
    const run = runRecord('run-merge', 'PROCESSING')
    const current: RunStatusResponse = statusDocument(run, [stageRecord(1, 'PROCESSING', 'kept'), stageRecord(2, 'PROCESSING', 'two')])
    const { output: _dropped, ...withoutOutput } = stageRecord(1, 'PROCESSING', 'ignored')
    const next = mergeRunUpdate(current, {
      run,
      stages: [{ ...withoutOutput, progress: { seq: 5 } }, { ...stageRecord(2, 'COMPLETED', 'x'), output: null }],
    })
    expect(next.stages.map((stage) => [stage.stageNumber, stage.output, stage.progress])).toEqual([
      [1, 'kept', { seq: 5 }],
      [2, null, null],
    ])
    // A stage not seen before and sent without an output has none.
    const fresh = mergeRunUpdate(undefined, { run, stages: [withoutOutput] })
    expect(fresh.stages[0]?.output).toBeNull()
  })
})
