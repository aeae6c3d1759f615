/**
 * Contract scenarios, streamed stage output (DESIGN.md "Timing, attempts and streamed output"):
 * `POST {base}/{runId}/stages/{stageNumber}/output` `{ seq, text }`: order, idempotency, every
 * problem code, a final output replacing the text, an attempt restarting it, the status
 * document's text so far, the live `output` events, a dropped stream resumed exactly with
 * `Last-Event-ID`, checked byte for byte against what was sent, and the same `output` events on
 * set streams (`GET /events`, view `full`; never `summary`).
 */
import {
  applyOutputChunk,
  CreateRunResponse,
  LIVE_EVENTS,
  mergeRunUpdate,
  RunStatusResponse,
  RunSummary,
  RunUpdateEvent,
  StageOutputChunkResponse,
  StageOutputEvent,
} from 'pipeline-status-sdk'
import { describe, expect } from 'vitest'
import { makeStageUpdate } from '../../support/fixtures.js'
import { type Api, expectProblem, type RequestSpec, uniqueRunId } from './harness.js'
import { type EventReader, readEvents } from './read-events.js'
import type { ContractContext } from './use-target.js'

const outputPath = (runId: string, stageNumber: number | string) => `/${encodeURIComponent(runId)}/stages/${stageNumber}/output`

function chunk(api: Api, runId: string, stageNumber: number | string, body: unknown, spec: Partial<RequestSpec> = {}): Promise<Response> {
  return api.send({ path: outputPath(runId, stageNumber), json: body, ...spec })
}

async function chunkOk(api: Api, runId: string, stageNumber: number, seq: number, text: string): Promise<StageOutputChunkResponse> {
  const response = await chunk(api, runId, stageNumber, { seq, text })
  const body = await response.text()
  expect({ status: response.status, body }).toMatchObject({ status: 200 })
  return StageOutputChunkResponse.parse(JSON.parse(body))
}

/** The run's version: its `GET /status` ETag. */
async function versionOf(api: Api, runId: string): Promise<number> {
  const etag = (await api.getStatus(runId)).headers.get('etag') ?? ''
  const version = Number(/\d+/.exec(etag)?.[0])
  expect(Number.isInteger(version)).toBe(true)
  return version
}

/** A run whose stage 1 is PROCESSING (attempt 1). */
async function runningStage1(api: Api): Promise<string> {
  const id = await api.createRun()
  await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', attempt: 1 }))
  return id
}

/** Multibyte text of chunk `i`: ASCII, Latin-1, CJK, an astral emoji, a line break. */
const piece = (i: number) => `chunk ${i} — ü 日本 😀\n`

/** Events until `count` `output` events were taken (at most `count * 2 + 5` events); the output events and the last id. */
async function takeOutputs(events: EventReader, count: number): Promise<{ texts: string[]; lastId: string; others: string[] }> {
  const texts: string[] = []
  const others: string[] = []
  let lastId = ''
  for (let taken = 0; texts.length < count && taken < count * 2 + 5; taken++) {
    const event = await events.next()
    lastId = event.id ?? lastId
    if (event.event === LIVE_EVENTS.output) texts.push(StageOutputEvent.parse(JSON.parse(event.data)).text)
    else others.push(event.event ?? 'message')
  }
  return { texts, lastId, others }
}

/**
 * A set stream's next events of `runId` folded onto its `document` as a subscriber does
 * (`mergeRunUpdate`, `applyOutputChunk`) until an event of `version`, at most `limit` events: the
 * document, the texts of the `output` events in order, their ids, and the updates' stages of
 * `stageNumber`.
 */
async function followMember(
  events: EventReader,
  document: RunStatusResponse,
  version: number,
  stageNumber: number,
  limit: number,
): Promise<{ document: RunStatusResponse; texts: string[]; ids: string[]; updates: Array<Record<string, unknown>> }> {
  const runId = document.run.id
  let at = -1
  const texts: string[] = []
  const ids: string[] = []
  const updates: Array<Record<string, unknown>> = []
  for (let taken = 0; at < version && taken < limit; taken++) {
    const event = await events.next()
    if (!event.id?.startsWith(`${runId}:`)) continue
    ids.push(event.id)
    at = Number(event.id.slice(runId.length + 1))
    const data = JSON.parse(event.data) as unknown
    if (event.event === LIVE_EVENTS.snapshot) document = RunStatusResponse.parse(data)
    else if (event.event === LIVE_EVENTS.update) {
      const update = RunUpdateEvent.parse(data)
      document = mergeRunUpdate(document, update)
      updates.push(...update.stages.filter((stage) => stage.stageNumber === stageNumber))
    } else if (event.event === LIVE_EVENTS.output) {
      const chunk = StageOutputEvent.parse(data)
      expect(chunk.runId).toBe(runId)
      texts.push(chunk.text)
      document = applyOutputChunk(document, chunk)
    }
  }
  return { document, texts, ids, updates }
}

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeStageOutput({ name, scenario }: ContractContext): void {
  describe(`${name}: streamed stage output`, () => {
    scenario('chunks apply in order: each is a new version, and the status document carries the text so far and outputSeq', async (api) => {
      const id = await runningStage1(api)
      const before = await versionOf(api, id)
      const first = await chunkOk(api, id, 1, 0, '# Report\n')
      expect(first).toMatchObject({ outcome: 'applied', stage: { stageNumber: 1, outputSeq: 0 }, run: { id, status: 'PROCESSING' } })
      expect(await versionOf(api, id)).toBe(before + 1)
      await chunkOk(api, id, 1, 1, 'Größe ')
      expect(await versionOf(api, id)).toBe(before + 2)
      expect(await chunkOk(api, id, 1, 2, '😀')).toMatchObject({ outcome: 'applied', stage: { outputSeq: 2 } })
      // An empty chunk is a chunk too.
      expect(await chunkOk(api, id, 1, 3, '')).toMatchObject({ outcome: 'applied', stage: { outputSeq: 3 } })
      expect(await versionOf(api, id)).toBe(before + 4)
      expect((await api.status(id)).stages[0]).toMatchObject({ stageNumber: 1, status: 'PROCESSING', output: '# Report\nGröße 😀', outputSeq: 3 })
    })

    scenario('a repeated seq is a duplicate with the same text and a conflict with another; neither changes anything', async (api) => {
      const id = await runningStage1(api)
      await chunkOk(api, id, 1, 0, 'alpha ')
      await chunkOk(api, id, 1, 1, 'beta')
      const version = await versionOf(api, id)
      expect(await chunkOk(api, id, 1, 0, 'alpha ')).toMatchObject({ outcome: 'duplicate', stage: { outputSeq: 1 } })
      expect(await chunkOk(api, id, 1, 1, 'BETA')).toMatchObject({ outcome: 'conflict', stage: { outputSeq: 1 } })
      expect(await versionOf(api, id)).toBe(version)
      expect((await api.status(id)).stages[0]).toMatchObject({ output: 'alpha beta', outputSeq: 1 })
    })

    scenario('a gap is 409 output_out_of_order with expectedSeq; nothing is stored', async (api) => {
      const id = await runningStage1(api)
      const gapFirst = await expectProblem(await chunk(api, id, 1, { seq: 1, text: 'x' }), 409, 'output_out_of_order')
      expect(gapFirst).toMatchObject({ expectedSeq: 0 })
      await chunkOk(api, id, 1, 0, 'a')
      expect(await expectProblem(await chunk(api, id, 1, { seq: 5, text: 'x' }), 409, 'output_out_of_order')).toMatchObject({ expectedSeq: 1 })
      expect((await api.status(id)).stages[0]).toMatchObject({ output: 'a', outputSeq: 0 })
    })

    scenario('a stage without an update is 409 stage_not_started; a final stage 409 stage_finished; a finished run 409 run_finished', async (api) => {
      const id = await runningStage1(api)
      await expectProblem(await chunk(api, id, 2, { seq: 0, text: 'early' }), 409, 'stage_not_started')
      await chunkOk(api, id, 1, 0, 'done')
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }))
      await expectProblem(await chunk(api, id, 1, { seq: 1, text: 'late' }), 409, 'stage_finished')
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'PROCESSING' }))
      await api.cancelOk(id)
      await expectProblem(await chunk(api, id, 2, { seq: 0, text: 'after the end' }), 409, 'run_finished')
      const status = await api.status(id)
      expect(status.stages.map((stage) => [stage.output, stage.outputSeq])).toEqual([
        ['done', 0],
        [null, null],
      ])
    })

    scenario(
      "a chunk that takes the stage past maxStreamedOutputBytes is 413 output_too_large with maxBytes, and nothing is stored",
      async (api) => {
        const id = await runningStage1(api)
        // 'ü' is two bytes: 5 of them are 10 bytes, the limit.
        await chunkOk(api, id, 1, 0, 'üüüü')
        await chunkOk(api, id, 1, 1, 'ü')
        const version = await versionOf(api, id)
        const problem = await expectProblem(await chunk(api, id, 1, { seq: 2, text: 'x' }), 413, 'output_too_large')
        expect(problem).toMatchObject({ maxBytes: 10 })
        expect(await versionOf(api, id)).toBe(version)
        expect((await api.status(id)).stages[0]).toMatchObject({ output: 'üüüüü', outputSeq: 1 })
      },
      { maxStreamedOutputBytes: 10 },
    )

    scenario('bad input is 400 naming the field; an unknown run 404; no secret 401', async (api) => {
      const id = await runningStage1(api)
      const named = async (response: Response, field: string) =>
        expect((await expectProblem(response, 400, 'validation_failed')).errors?.map((error) => error.field)).toContain(field)
      // 64 KiB of UTF-8 is the most one chunk holds: 21,846 three-byte characters are 65,538 bytes.
      await named(await chunk(api, id, 1, { seq: 0, text: '日'.repeat(21_846) }), 'text')
      await named(await chunk(api, id, 1, { seq: 0, text: 'nul \u0000' }), 'text')
      await named(await chunk(api, id, 1, { seq: 0, text: 'lone \uD800' }), 'text')
      await named(await chunk(api, id, 1, { seq: -1, text: 'x' }), 'seq')
      await named(await chunk(api, id, 1, { seq: 0.5, text: 'x' }), 'seq')
      await named(await chunk(api, id, 1, { seq: 0 }), 'text')
      await named(await chunk(api, id, 1, { seq: 0, text: 'x', extra: true }), 'extra')
      await named(await chunk(api, id, 0, { seq: 0, text: 'x' }), 'stageNumber')
      await named(await chunk(api, id, 'one', { seq: 0, text: 'x' }), 'stageNumber')
      // Outside the run's catalogue (5 stages): refused as a stage update of that number is, not 409
      // stage_not_started, whose advice (send its PROCESSING update first) could not be followed.
      for (const stageNumber of [6, 9]) {
        const outside = await expectProblem(await chunk(api, id, stageNumber, { seq: 0, text: 'x' }), 400, 'validation_failed')
        const update = await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber })), 400, 'validation_failed')
        expect(outside.errors).toEqual([{ field: 'stageNumber', message: 'stageNumber must be a whole number from 1 to 5' }])
        expect({ detail: outside.detail, errors: outside.errors }).toEqual({ detail: update.detail, errors: update.errors })
      }
      await expectProblem(await chunk(api, 'no-such-run', 1, { seq: 0, text: 'x' }), 404, 'run_not_found')
      await expectProblem(await chunk(api, id, 1, { seq: 0, text: 'x' }, { secret: null }), 401, 'unauthorized')
      // Exactly 64 KiB is taken.
      expect(await chunkOk(api, id, 1, 0, 'ü'.repeat(32 * 1024))).toMatchObject({ outcome: 'applied' })
      expect((await api.status(id)).stages[0]?.outputSeq).toBe(0)
    })

    scenario('a final output sent with COMPLETED replaces the streamed text and keeps outputSeq; without one the text stays', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING' }))
      await chunkOk(api, id, 1, 0, 'draft ')
      await chunkOk(api, id, 1, 1, 'text')
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: '{"final":true}' }))
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'PROCESSING', output: 'starting' }))
      await chunkOk(api, id, 2, 0, 'streamed ')
      await chunkOk(api, id, 2, 1, 'only')
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED' }))
      const status = await api.status(id)
      expect(status.stages[0]).toMatchObject({ status: 'COMPLETED', output: '{"final":true}', outputSeq: 1 })
      expect(status.stages[1]).toMatchObject({ status: 'COMPLETED', output: 'streamed only', outputSeq: 1 })
    })

    scenario("a stage update's answer shows the stage as GET /status does: its streamed text while it has no final output", async (api) => {
      const id = await runningStage1(api)
      await chunkOk(api, id, 1, 0, 'streamed')
      // A repeated PROCESSING (a duplicate) and COMPLETED without an output answer the text so far.
      const again = await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', attempt: 1 }))
      expect(again.stage).toMatchObject({ status: 'PROCESSING', output: 'streamed', outputSeq: 0 })
      await chunkOk(api, id, 1, 1, ' ü😀')
      const completed = await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }))
      expect(completed).toMatchObject({ outcome: 'applied', stage: { status: 'COMPLETED', output: 'streamed ü😀', outputSeq: 1 } })
      expect((await api.status(id)).stages[0]).toEqual(completed.stage)
      // The same update again: a duplicate, answered alike.
      expect(await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }))).toMatchObject({
        outcome: 'duplicate',
        stage: { output: 'streamed ü😀' },
      })
      // A final output of its own replaces the text, in the answer as in the status document.
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'PROCESSING' }))
      await chunkOk(api, id, 2, 0, 'draft')
      const final = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED', output: 'final' }))
      expect(final.stage).toMatchObject({ output: 'final', outputSeq: 0 })
      expect((await api.status(id)).stages[1]).toEqual(final.stage)
    })

    scenario("a heartbeat's answer shows the stage as GET /status does: its streamed text while it has no final output", async (api) => {
      const id = await runningStage1(api)
      await chunkOk(api, id, 1, 0, 'streamed')
      await chunkOk(api, id, 1, 1, ' ü😀')
      // A bare heartbeat naming the stage, then one whose progress is applied: the text so far.
      const bare = await api.heartbeatOk(id, { stageNumber: 1 })
      expect(bare).toMatchObject({ outcome: 'recorded', stage: { status: 'PROCESSING', output: 'streamed ü😀', outputSeq: 1 } })
      expect((await api.status(id)).stages[0]).toEqual(bare.stage)
      const progressed = await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 1, percent: 50 } })
      expect(progressed).toMatchObject({ outcome: 'applied', stage: { output: 'streamed ü😀', outputSeq: 1, progress: { percent: 50 } } })
      expect((await api.status(id)).stages[0]).toEqual(progressed.stage)
      // Completed without an output of its own, the stage keeps showing the text; a heartbeat without a stage has none.
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }))
      expect((await api.heartbeatOk(id, { stageNumber: 1 })).stage).toMatchObject({ status: 'COMPLETED', output: 'streamed ü😀' })
      expect((await api.heartbeatOk(id)).stage).toBeNull()
      // A final output of its own replaces the text; a stage that never streamed shows its own output.
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'PROCESSING' }))
      await chunkOk(api, id, 2, 0, 'draft')
      expect((await api.heartbeatOk(id, { stageNumber: 2 })).stage).toMatchObject({ output: 'draft', outputSeq: 0 })
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED', output: 'final' }))
      const final = await api.heartbeatOk(id, { stageNumber: 2 })
      expect(final.stage).toMatchObject({ output: 'final', outputSeq: 0 })
      expect((await api.status(id)).stages[1]).toEqual(final.stage)
      await api.stageOk(id, makeStageUpdate({ stageNumber: 3, status: 'PROCESSING', output: 'plain' }))
      const plain = await api.heartbeatOk(id, { stageNumber: 3 })
      expect(plain.stage).toMatchObject({ output: 'plain' })
      expect(plain.stage?.outputSeq ?? null).toBeNull()
    })

    scenario('an applied higher attempt restarts the streamed output at seq 0', async (api) => {
      const id = await runningStage1(api)
      await chunkOk(api, id, 1, 0, 'attempt one ')
      await chunkOk(api, id, 1, 1, 'failed')
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', attempt: 2, lastError: 'timeout' }))
      expect((await api.status(id)).stages[0]).toMatchObject({ attempt: 2, output: null, outputSeq: null })
      await expectProblem(await chunk(api, id, 1, { seq: 2, text: 'x' }), 409, 'output_out_of_order').then((problem) =>
        expect(problem).toMatchObject({ expectedSeq: 0 }),
      )
      // Seq 0 of the new attempt is a new chunk, not a repeat of the old one.
      expect(await chunkOk(api, id, 1, 0, 'attempt two')).toMatchObject({ outcome: 'applied', stage: { outputSeq: 0 } })
      expect((await api.status(id)).stages[0]).toMatchObject({ output: 'attempt two', outputSeq: 0 })
      // A late report of attempt 1 changes nothing.
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', attempt: 1 }))
      expect((await api.status(id)).stages[0]).toMatchObject({ attempt: 2, output: 'attempt two', outputSeq: 0 })
    })

    scenario('live: each applied chunk is one output event (id: its version) and no update; updates leave the streamed text out', async (api) => {
      const id = await runningStage1(api)
      await chunkOk(api, id, 1, 0, 'before ')
      const events = readEvents(await api.send({ path: `/${encodeURIComponent(id)}/events?outputs=changed` }))
      try {
        const snapshot = RunStatusResponse.parse(JSON.parse((await events.next()).data))
        expect(snapshot.stages[0]).toMatchObject({ output: 'before ', outputSeq: 0 })
        await chunkOk(api, id, 1, 1, 'während')
        const output = await events.next()
        expect(output.event).toBe(LIVE_EVENTS.output)
        expect(output.id).toBe(String(await versionOf(api, id)))
        expect(StageOutputEvent.parse(JSON.parse(output.data))).toEqual({ runId: id, stageNumber: 1, seq: 1, text: 'während' })
        // A repeat emits nothing; the progress update that follows is the next event, without the text.
        await chunkOk(api, id, 1, 1, 'während')
        await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 1, percent: 50 } })
        const update = await events.next()
        expect(update.event).toBe(LIVE_EVENTS.update)
        const stage = RunUpdateEvent.parse(JSON.parse(update.data)).stages[0]
        expect(stage).toMatchObject({ stageNumber: 1, outputSeq: 1, progress: { percent: 50 } })
        expect(stage).not.toHaveProperty('output')
        // The stage completes without an output of its own: the text stays, and the update does not resend it.
        await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }))
        const completed = RunUpdateEvent.parse(JSON.parse((await events.next()).data)).stages[0]
        expect(completed).toMatchObject({ status: 'COMPLETED', outputSeq: 1 })
        expect(completed).not.toHaveProperty('output')
      } finally {
        await events.cancel()
      }
    })

    scenario(
      'a dropped stream resumed with Last-Event-ID gets no snapshot and exactly the chunks after it: 200 multibyte chunks, byte for byte',
      async (api) => {
        const id = await runningStage1(api)
        const sent: string[] = []
        const send = async (from: number, to: number) => {
          for (let seq = from; seq < to; seq++) {
            sent.push(piece(seq))
            await chunkOk(api, id, 1, seq, piece(seq))
          }
        }
        await send(0, 20)
        const path = `/${encodeURIComponent(id)}/events?outputs=changed`
        const first = readEvents(await api.send({ path }))
        const snapshot = await first.next()
        expect(snapshot.event).toBe(LIVE_EVENTS.snapshot)
        let text = RunStatusResponse.parse(JSON.parse(snapshot.data)).stages[0]?.output ?? ''
        await send(20, 120)
        // The subscriber takes 60 of the 100 output events, then its connection drops.
        const before = await takeOutputs(first, 60)
        expect(before.others).toEqual([])
        text += before.texts.join('')
        await first.cancel()
        await send(120, 200)

        const second = readEvents(await api.send({ path, headers: { 'Last-Event-ID': before.lastId } }))
        try {
          const update = await second.next()
          expect(update.event).toBe(LIVE_EVENTS.update)
          const stage = RunUpdateEvent.parse(JSON.parse(update.data)).stages.find((candidate) => candidate.stageNumber === 1)
          expect(stage).toMatchObject({ status: 'PROCESSING', outputSeq: 79 })
          expect(stage).not.toHaveProperty('output')
          const after = await takeOutputs(second, 120)
          expect(after.others).toEqual([])
          text += after.texts.join('')
          expect(Buffer.from(text, 'utf8').equals(Buffer.from(sent.join(''), 'utf8'))).toBe(true)
          expect(text).toBe((await api.status(id)).stages[0]?.output)
          // Then live events, in order.
          await send(200, 201)
          const live = await second.next()
          expect({ event: live.event, seq: StageOutputEvent.parse(JSON.parse(live.data)).seq }).toEqual({ event: 'output', seq: 200 })
        } finally {
          await second.cancel()
        }
      },
    )

    scenario('a resume after an attempt restarted the output clears the old text, then sends the new chunks from seq 0', async (api) => {
      const id = await runningStage1(api)
      await chunkOk(api, id, 1, 0, 'old ')
      await chunkOk(api, id, 1, 1, 'attempt')
      const last = await versionOf(api, id)
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', attempt: 2 }))
      await chunkOk(api, id, 1, 0, 'new ')
      await chunkOk(api, id, 1, 1, 'attempt')
      const events = readEvents(
        await api.send({ path: `/${encodeURIComponent(id)}/events?outputs=changed`, headers: { 'Last-Event-ID': String(last) } }),
      )
      try {
        const update = await events.next()
        expect(update.event).toBe(LIVE_EVENTS.update)
        expect(RunUpdateEvent.parse(JSON.parse(update.data)).stages[0]).toMatchObject({ attempt: 2, output: null, outputSeq: null })
        const { texts, others } = await takeOutputs(events, 2)
        expect(others).toEqual([])
        expect(texts.join('')).toBe('new attempt')
      } finally {
        await events.cancel()
      }
    })

    scenario(
      'a resume after a stage finished without an output of its own repeats no chunk text: update whole text + output events = the text, once',
      async (api) => {
        const id = await runningStage1(api)
        await chunkOk(api, id, 1, 0, 'AAA ')
        const last = await versionOf(api, id)
        await chunkOk(api, id, 1, 1, 'BBB')
        await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }))
        const events = readEvents(await api.send({ path: `/${encodeURIComponent(id)}/events`, headers: { 'Last-Event-ID': String(last) } }))
        try {
          // A later change, so the reader knows when the resumed events are over.
          await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'PROCESSING' }))
          // What a raw consumer does: take an update's output of stage 1 as the text, append every output event's.
          let text = ''
          let stage1: unknown
          for (let taken = 0; taken < 6; taken++) {
            const event = await events.next()
            if (event.event === LIVE_EVENTS.output) {
              const chunk = StageOutputEvent.parse(JSON.parse(event.data))
              if (chunk.stageNumber === 1) text += chunk.text
              continue
            }
            expect(event.event).toBe(LIVE_EVENTS.update)
            const update = RunUpdateEvent.parse(JSON.parse(event.data))
            const stage = update.stages.find((candidate) => candidate.stageNumber === 1)
            if (stage && typeof stage.output === 'string') text = stage.output
            stage1 ??= stage
            if (update.stages.some((candidate) => candidate.stageNumber === 2 && candidate.status === 'PROCESSING')) break
          }
          expect(stage1).toMatchObject({ status: 'COMPLETED', outputSeq: 1 })
          expect(text).toBe('AAA BBB')
          expect(text).toBe((await api.status(id)).stages[0]?.output)
        } finally {
          await events.cancel()
        }
      },
    )
    scenario(
      'set streams, view full: a run= stream and a filter stream get a member\'s chunks as output events, in order and byte for byte; updates leave the text out; view summary gets none',
      async (api) => {
        const tag = `out-${crypto.randomUUID().slice(0, 12)}`
        const created = await api.send({ path: '/runs', json: { id: uniqueRunId('setout'), tags: [tag] } })
        expect(created.status).toBe(201)
        const id = CreateRunResponse.parse(await created.json()).run.id
        await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', attempt: 1 }))
        const sent = [piece(0)]
        await chunkOk(api, id, 1, 0, piece(0))
        const open = async (query: string) => {
          const response = await api.send({ path: `/events?${query}` })
          expect(response.status).toBe(200)
          return readEvents(response)
        }
        const streams = { listed: await open(`run=${encodeURIComponent(id)}`), filter: await open(`tag=${tag}`), summary: await open(`tag=${tag}&view=summary`) }
        try {
          // A member's snapshot carries the text so far and outputSeq, then ready.
          const snapshots: RunStatusResponse[] = []
          for (const stream of [streams.listed, streams.filter]) {
            const snapshot = await stream.next()
            expect(snapshot.event).toBe(LIVE_EVENTS.snapshot)
            snapshots.push(RunStatusResponse.parse(JSON.parse(snapshot.data)))
            expect(snapshots.at(-1)?.stages[0]).toMatchObject({ output: piece(0), outputSeq: 0 })
            expect((await stream.next()).event).toBe('ready')
          }
          for (let seq = 1; seq < 40; seq++) {
            sent.push(piece(seq))
            await chunkOk(api, id, 1, seq, piece(seq))
          }
          // A change that is no chunk: an update, after the chunks, without the streamed text.
          await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 1, percent: 50 } })
          const version = await versionOf(api, id)
          const status = await api.status(id)
          expect(status.stages[0]).toMatchObject({ output: sent.join(''), outputSeq: 39 })
          for (const [index, stream] of [streams.listed, streams.filter].entries()) {
            const followed = await followMember(stream, snapshots[index]!, version, 1, 100)
            expect(followed.texts).toHaveLength(39)
            const text = piece(0) + followed.texts.join('')
            expect(Buffer.from(text, 'utf8').equals(Buffer.from(sent.join(''), 'utf8'))).toBe(true)
            // Chunk-only versions send no update: one output per version, then the one update.
            expect(followed.ids).toEqual(Array.from({ length: 40 }, (_, i) => `${id}:${version - 39 + i}`))
            expect(stream.events.filter((event) => event.event === LIVE_EVENTS.update)).toHaveLength(1)
            expect(followed.updates).toHaveLength(1)
            expect(followed.updates[0]).toMatchObject({ stageNumber: 1, outputSeq: 39, progress: { percent: 50 } })
            expect(followed.updates[0]).not.toHaveProperty('output')
            expect(followed.document.stages[0]).toEqual(status.stages[0])
          }
          // The summary view: list items only, never an output event nor the text, and no event for
          // a change it does not show (the 39 chunks, the progress tick): the next event is the
          // stage's completion, with the version it made.
          const first = RunSummary.parse(JSON.parse((await streams.summary.next()).data))
          expect((await streams.summary.next()).event).toBe('ready')
          await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }))
          const completed = await streams.summary.next()
          expect(completed.event).toBe(LIVE_EVENTS.update)
          const summary = RunSummary.parse(JSON.parse(completed.data))
          expect(summary.version).toBe(await versionOf(api, id))
          expect(summary.version).toBeGreaterThan(version)
          expect(summary.stageCounts.COMPLETED).toBe(1)
          // Its snapshot was read before or after some of the chunks; every event after it is the completion's.
          expect(first.version).toBeLessThanOrEqual(version)
          expect(streams.summary.events.map((event) => event.event)).toEqual([LIVE_EVENTS.snapshot, 'ready', LIVE_EVENTS.update])
          expect(streams.summary.events.some((event) => event.event === LIVE_EVENTS.output || event.data.includes('chunk 1 '))).toBe(false)
        } finally {
          for (const stream of Object.values(streams)) await stream.cancel()
        }
      },
    )

    scenario('set streams, view full: an attempt restarting the output reaches the subscriber as text it can append to, equal to the status document', async (api) => {
      const id = await runningStage1(api)
      await chunkOk(api, id, 1, 0, 'old ')
      const response = await api.send({ path: `/events?run=${encodeURIComponent(id)}` })
      expect(response.status).toBe(200)
      const stream = readEvents(response)
      try {
        expect((await stream.next()).event).toBe(LIVE_EVENTS.snapshot)
        expect((await stream.next()).event).toBe('ready')
        await chunkOk(api, id, 1, 1, 'attempt')
        // A restart and its chunks: the update clearing the text comes before them, however the reads group them.
        await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', attempt: 2 }))
        await chunkOk(api, id, 1, 0, 'neu ')
        await chunkOk(api, id, 1, 1, 'über 😀')
        await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'PROCESSING', attempt: 1 }))
        const version = await versionOf(api, id)
        const status = await api.status(id)
        expect(status.stages[0]).toMatchObject({ attempt: 2, output: 'neu über 😀', outputSeq: 1 })
        const snapshot = RunStatusResponse.parse(JSON.parse(stream.events[0]?.data ?? ''))
        const { document, texts } = await followMember(stream, snapshot, version, 1, 20)
        // Chunk 1 of attempt 1 is sent when a read found it before the restart deleted it.
        expect(['attemptneu über 😀', 'neu über 😀']).toContain(texts.join(''))
        expect(document.stages.map(({ stageNumber, attempt, output, outputSeq }) => ({ stageNumber, attempt, output, outputSeq }))).toEqual(
          status.stages.map(({ stageNumber, attempt, output, outputSeq }) => ({ stageNumber, attempt, output, outputSeq })),
        )
      } finally {
        await stream.cancel()
      }
    })

    scenario('a Last-Event-ID the server cannot serve (malformed, past the run) gets a fresh snapshot with the text so far', async (api) => {
      const id = await runningStage1(api)
      await chunkOk(api, id, 1, 0, 'so ')
      await chunkOk(api, id, 1, 1, 'far')
      const latest = await versionOf(api, id)
      for (const lastEventId of ['nonsense', '-1', String(latest + 100)]) {
        const events = readEvents(await api.send({ path: `/${encodeURIComponent(id)}/events`, headers: { 'Last-Event-ID': lastEventId } }))
        try {
          const first = await events.next()
          expect(first.event).toBe(LIVE_EVENTS.snapshot)
          expect(RunStatusResponse.parse(JSON.parse(first.data)).stages[0]).toMatchObject({ output: 'so far', outputSeq: 1 })
        } finally {
          await events.cancel()
        }
      }
    })
  })
}
