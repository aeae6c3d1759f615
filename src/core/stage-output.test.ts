import { describe, expect, it } from 'vitest'
import { decideOutputChunk, resetsStreamedOutput, showsStreamedOutput, utf8Bytes, withStreamedOutput } from './stage-output.js'
import { decideStageUpdate, newRun } from './state-machine.js'
import { DEFAULT_STAGES } from '../contract/stages.js'
import type { RunState, StageState } from './state.js'
import type { Store } from './store.js'
import { NOW, stage } from '../../test/support/state-fixtures.js'
import { MemoryStore } from './memory-store.js'
import { appendOutputChunk, applyStageUpdate, createRun, deleteExpiredRuns, stageAsShown } from './operations.js'

const run: RunState = { ...newRun('run_1', NOW), status: 'PROCESSING' }
const decide = (fields: {
  stage?: StageState | undefined
  seq: number
  text: string
  stored?: string
  maxBytes?: number
  run?: RunState
  stageNumber?: number
  catalogue?: typeof DEFAULT_STAGES | undefined
}) =>
  decideOutputChunk({
    run: fields.run ?? run,
    stageNumber: fields.stageNumber ?? 1,
    catalogue: 'catalogue' in fields ? fields.catalogue : DEFAULT_STAGES,
    stage: 'stage' in fields ? fields.stage : stage(),
    chunk: { seq: fields.seq, text: fields.text },
    maxBytes: fields.maxBytes ?? 1024,
    stored: fields.stored,
    now: NOW,
  })

describe('decideOutputChunk', () => {
  it('applies the next seq: outputSeq and the byte total advance, chunk 0 clears a PROCESSING output', () => {
    const first = decide({ stage: stage({ output: 'starting' }), seq: 0, text: 'ü😀' })
    expect(first).toMatchObject({ outcome: 'applied', stage: { output: null, outputSeq: 0, outputBytes: 6 }, run: { updatedAt: NOW } })
    const next = decide({ stage: stage({ output: null, outputSeq: 0, outputBytes: 6 }), seq: 1, text: 'ab' })
    expect(next).toMatchObject({ outcome: 'applied', stage: { outputSeq: 1, outputBytes: 8 } })
  })

  it('tells a repeat: needs the stored text first, then duplicate or conflict', () => {
    const running = stage({ outputSeq: 3, outputBytes: 10 })
    expect(decide({ stage: running, seq: 2, text: 'x' })).toEqual({ outcome: 'repeat' })
    expect(decide({ stage: running, seq: 2, text: 'x', stored: 'x' })).toMatchObject({ outcome: 'duplicate' })
    expect(decide({ stage: running, seq: 2, text: 'x', stored: 'y' })).toMatchObject({ outcome: 'conflict' })
  })

  it('refuses a stage outside the run\'s catalogue first, naming stageNumber as a stage update does', () => {
    const finished = { ...run, status: 'CANCELLED' as const }
    expect(decide({ run: finished, stageNumber: 6, stage: undefined, seq: 0, text: 'x' })).toEqual({
      outcome: 'invalid',
      field: 'stageNumber',
      // The reason; the handlers put the field in front (`stageNumber must be a whole number from 1 to 5`).
      message: 'must be a whole number from 1 to 5',
    })
    // A run whose catalogue is unknown takes any number: without a row the stage has not started.
    expect(decide({ stageNumber: 6, catalogue: undefined, stage: undefined, seq: 0, text: 'x' })).toMatchObject({ code: 'stage_not_started' })
  })

  it('refuses in the documented order: run finished, stage not started, stage finished, gap, too large', () => {
    const finished = { ...run, status: 'CANCELLED' as const }
    expect(decide({ run: finished, stage: undefined, seq: 9, text: 'x' })).toMatchObject({ code: 'run_finished' })
    expect(decide({ stage: undefined, seq: 0, text: 'x' })).toMatchObject({ code: 'stage_not_started' })
    expect(decide({ stage: stage({ status: 'COMPLETED' }), seq: 0, text: 'x' })).toMatchObject({ code: 'stage_finished' })
    expect(decide({ stage: stage({ outputSeq: 1 }), seq: 3, text: 'x' })).toMatchObject({ code: 'output_out_of_order', expectedSeq: 2 })
    expect(decide({ seq: 1, text: 'x' })).toMatchObject({ code: 'output_out_of_order', expectedSeq: 0 })
    expect(decide({ stage: stage({ outputSeq: 0, outputBytes: 9 }), seq: 1, text: 'ü', maxBytes: 10 })).toMatchObject({
      code: 'output_too_large',
      maxBytes: 10,
    })
    expect(decide({ stage: stage({ outputSeq: 0, outputBytes: 8 }), seq: 1, text: 'ü', maxBytes: 10 })).toMatchObject({ outcome: 'applied' })
  })
})

describe('the streamed text a stage shows', () => {
  it('is shown while PROCESSING, and after a final status without an output of its own', () => {
    expect(showsStreamedOutput({ status: 'PROCESSING', output: 'x', outputSeq: 0 })).toBe(true)
    expect(showsStreamedOutput({ status: 'COMPLETED', output: null, outputSeq: 0 })).toBe(true)
    expect(showsStreamedOutput({ status: 'COMPLETED', output: 'final', outputSeq: 0 })).toBe(false)
    expect(showsStreamedOutput({ status: 'PROCESSING', output: 'x', outputSeq: null })).toBe(false)
    expect(withStreamedOutput(stage({ outputSeq: 1 }), () => 'ab')).toMatchObject({ output: 'ab', streamedOutput: true })
  })

  it('restarts with an applied higher attempt, and is kept by a final status', () => {
    const streaming = stage({ attempt: 1, outputSeq: 4, outputBytes: 20 })
    const retried = decideStageUpdate({
      run,
      stage: streaming,
      update: { stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING', attempt: 2 },
      stages: DEFAULT_STAGES,
      now: NOW,
    })
    expect(retried).toMatchObject({ outcome: 'applied', stage: { attempt: 2, outputSeq: null, outputBytes: null } })
    if (retried.outcome === 'applied') expect(resetsStreamedOutput(streaming, retried.stage)).toBe(true)
    const completed = decideStageUpdate({
      run,
      stage: streaming,
      update: { stageNumber: 1, stageName: 'Input Processing', status: 'COMPLETED' },
      stages: DEFAULT_STAGES,
      now: NOW,
    })
    expect(completed).toMatchObject({ outcome: 'applied', stage: { status: 'COMPLETED', output: null, outputSeq: 4, outputBytes: 20 } })
  })

  it('counts UTF-8 bytes like TextEncoder, lone surrogates as three', () => {
    for (const text of ['', 'abc', 'ü', '日本', '😀', 'a😀b', '\uD800', '\uDC00x']) {
      const expected = text.includes('\uD800') || text.includes('\uDC00') ? text.length * 3 - (text.endsWith('x') ? 2 : 0) : new TextEncoder().encode(text).byteLength
      expect(utf8Bytes(text)).toBe(expected)
    }
  })
})

describe('MemoryStore chunks', () => {
  it('are assembled in seq order, listed after a version, dropped by a higher attempt and purged with their run', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'run_1', now: NOW })
    const update = (fields: object) =>
      applyStageUpdate(store, 'run_1', { stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING', ...fields }, { now: NOW })
    await update({ attempt: 1 })
    const options = { now: NOW, maxBytes: 1024 }
    await appendOutputChunk(store, 'run_1', 1, { seq: 0, text: 'a' }, options)
    const after = (await store.getRun('run_1'))?.version ?? -1
    await appendOutputChunk(store, 'run_1', 1, { seq: 1, text: 'b' }, options)
    expect((await store.getRun('run_1'))?.stages[0]).toMatchObject({ output: 'ab', outputSeq: 1, streamedOutput: true })
    expect(await store.getOutputChunksSince('run_1', after)).toEqual([{ stageNumber: 1, seq: 1, version: after + 1, text: 'b' }])
    // A limit keeps the first ones in version order (the live streams read one past their bound).
    expect((await store.getOutputChunksSince('run_1', -1, 1)).map((chunk) => chunk.text)).toEqual(['a'])
    expect((await store.getOutputChunksSince('run_1', -1, 5)).map((chunk) => chunk.text)).toEqual(['a', 'b'])
    expect(await appendOutputChunk(store, 'run_1', 1, { seq: 1, text: 'b' }, options)).toMatchObject({ outcome: 'duplicate' })
    await update({ attempt: 2 })
    expect(await store.getOutputChunksSince('run_1', 0)).toEqual([])
    expect((await store.getRun('run_1'))?.stages[0]).toMatchObject({ output: null, outputSeq: null })
    await appendOutputChunk(store, 'run_1', 1, { seq: 0, text: 'c' }, options)
    await applyStageUpdate(store, 'run_1', { stageNumber: 1, stageName: 'Input Processing', status: 'FAILED' }, { now: NOW })
    expect(await deleteExpiredRuns(store, { keep: { FAILED: 1 }, now: new Date(NOW.getTime() + 10), limit: 10 })).toEqual({ FAILED: 1 })
    expect(await store.getOutputChunksSince('run_1', -1)).toEqual([])
    expect(await store.getOutputChunk('run_1', 1, 0)).toBeUndefined()
  })

  it('show a stage as GET /status does (stageAsShown): its text up to its outputSeq, read only when it shows it', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'run_1', now: NOW })
    await applyStageUpdate(store, 'run_1', { stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING' }, { now: NOW })
    const options = { now: NOW, maxBytes: 1024 }
    await appendOutputChunk(store, 'run_1', 1, { seq: 0, text: 'a' }, options)
    await appendOutputChunk(store, 'run_1', 1, { seq: 1, text: 'b' }, options)
    expect(await stageAsShown(store, 'run_1', stage({ outputSeq: 0 }))).toMatchObject({ output: 'a', streamedOutput: true })
    expect(await stageAsShown(store, 'run_1', stage({ status: 'COMPLETED', output: null, outputSeq: 1 }))).toMatchObject({ output: 'ab' })
    // A custom store without getStreamedOutput: the stage of getRun.
    const plain: Store<MemoryStore> = { transaction: (fn) => store.transaction(fn), insertRun: (run) => store.insertRun(run), getRun: (id) => store.getRun(id) }
    expect(await stageAsShown(plain, 'run_1', stage({ outputSeq: 1 }))).toMatchObject({ output: 'ab', streamedOutput: true })
    // A stage that does not show streamed text is returned as it is, without a read.
    const reads = { count: 0 }
    const counting: Store<MemoryStore> = {
      ...plain,
      getStreamedOutput: async () => String(reads.count++),
      getRun: async () => (reads.count++, null),
    }
    const final = stage({ status: 'COMPLETED', output: 'final', outputSeq: 1 })
    expect(await stageAsShown(counting, 'run_1', final)).toBe(final)
    expect(await stageAsShown(counting, 'run_1', stage({ outputSeq: null }))).toMatchObject({ outputSeq: null })
    expect(reads.count).toBe(0)
  })
})
