/**
 * Contract scenarios, streamed stage output (DESIGN.md "Timing, attempts and streamed output"):
 * `POST {base}/{runId}/stages/{stageNumber}/output` `{ seq, text }`: order, idempotency, every
 * problem code, a final output replacing the text, an attempt restarting it, the status
 * document's text so far, the live `output` events, and a dropped stream resumed exactly with
 * `Last-Event-ID`, checked byte for byte against what was sent.
 */
import { LIVE_EVENTS, RunStatusResponse, RunUpdateEvent, StageOutputChunkResponse, StageOutputEvent } from 'pipeline-status-sdk'
import { describe, expect } from 'vitest'
import { makeStageUpdate } from '../../support/fixtures.js'
import { type Api, expectProblem, type RequestSpec } from './harness.js'
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
      // Outside the catalogue no stage can have started either.
      await expectProblem(await chunk(api, id, 9, { seq: 0, text: 'x' }), 409, 'stage_not_started')
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
