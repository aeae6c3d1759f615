import { createServer } from 'node:net'
import { PrismaPg } from '@prisma/adapter-pg'
import { DEFAULT_STAGES, type StageUpdate } from 'pipeline-status-sdk'
import {
  createPrismaStore,
  isStoreUnavailableError,
  type OnRunCompleted,
  type PrismaStore,
  type RunSnapshot,
  StoreUnavailableError,
} from 'pipeline-status-sdk/server'
import { applyStageUpdate, completeRun, createRun } from '../../src/core/operations.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { makeCompleteRun, makeStageUpdate, PYTHON_RUNNER_PAYLOADS } from '../support/fixtures.js'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'

type Tx = Parameters<Parameters<PrismaClient['$transaction']>[0]>[0]

let db: TestDatabase
let store: PrismaStore<PrismaClient>
let runCounter = 0

beforeAll(async () => {
  db = await createTestDatabase()
  store = createPrismaStore({ prisma: db.prisma })
})
afterAll(() => db?.close())

const stages = DEFAULT_STAGES

async function newRunId(): Promise<string> {
  const id = `run-${++runCounter}-${Date.now()}`
  const { created } = await createRun(store, { id, now: new Date() })
  expect(created).toBe(true)
  return id
}

function update(runId: string, fields: Partial<StageUpdate>) {
  return applyStageUpdate(store, runId, makeStageUpdate(fields), { stages, now: new Date() })
}

async function snapshot(runId: string): Promise<RunSnapshot> {
  const found = await store.getRun(runId)
  if (!found) throw new Error(`run ${runId} not found`)
  return found
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

describe('PrismaStore', () => {
  it('stores a full five-stage run and completes it once', async () => {
    const runId = await newRunId()
    for (const stage of stages) {
      const processing = await update(runId, { stageNumber: stage.number, status: 'PROCESSING', output: null })
      expect(processing.outcome).toBe('applied')
      const completed = await update(runId, {
        stageNumber: stage.number,
        status: 'COMPLETED',
        output: JSON.stringify({ stage: stage.number }),
      })
      expect(completed).toMatchObject({ outcome: 'applied', stage: { status: 'COMPLETED' } })
    }

    const done = await snapshot(runId)
    expect(done.run.status).toBe('COMPLETED')
    expect(done.run.completedAt).toBeInstanceOf(Date)
    expect(done.run.completionReceivedAt).toBeNull()
    expect(done.stages.map((s) => [s.stageNumber, s.stageName, s.status, s.output])).toEqual(
      stages.map((s) => [s.number, s.name, 'COMPLETED', JSON.stringify({ stage: s.number })]),
    )

    // Stage 5 already finished the run; the first /complete still runs the hook, the second does not.
    const calls: unknown[] = []
    const hook: OnRunCompleted<Tx> = (_tx, run, payload) => void calls.push([run.status, payload.status])
    const first = await completeRun(store, runId, makeCompleteRun(), { now: new Date(), onRunCompleted: hook })
    const second = await completeRun(store, runId, makeCompleteRun(), { now: new Date(), onRunCompleted: hook })
    expect(first.outcome).toBe('applied')
    expect(second.outcome).toBe('duplicate')
    expect(calls).toEqual([['COMPLETED', 'COMPLETED']])

    const after = await snapshot(runId)
    expect(after.run.completedAt).toEqual(done.run.completedAt)
    expect(after.run.completionReceivedAt).toBeInstanceOf(Date)
  })

  it('stores the Python runner payloads as sent, timestamps to the millisecond', async () => {
    // The run those payloads come from: created at 14:00, its instants inside [creation, now + 5 min].
    const runId = `run-${++runCounter}-${Date.now()}`
    await createRun(store, { id: runId, now: new Date('2025-10-25T14:00:00.000Z') })
    const at = (update: Partial<StageUpdate>, now = '2025-10-25T14:06:00.000Z') =>
      applyStageUpdate(store, runId, makeStageUpdate(update), { stages, now: new Date(now) })
    const { processing, completedJson, completedMarkdown } = PYTHON_RUNNER_PAYLOADS
    // Received when stage 1 started: a stage's completedAt is stored no earlier than its start.
    expect((await at(processing, '2025-10-25T14:00:01.000Z')).outcome).toBe('applied')
    expect((await at(completedJson)).outcome).toBe('applied')
    expect((await at(completedMarkdown)).outcome).toBe('applied')
    const { run, stages: stored } = await snapshot(runId)
    expect(stored.map((s) => [s.stageNumber, s.output, s.completedAt?.toISOString()])).toEqual([
      [1, completedJson.output, '2025-10-25T14:03:11.123Z'],
      [5, completedMarkdown.output, '2025-10-25T14:09:58.000Z'],
    ])
    expect(run.status).toBe('COMPLETED')
  })

  it('never lets a late PROCESSING wipe a COMPLETED stage', async () => {
    const runId = await newRunId()
    await update(runId, { stageNumber: 2, status: 'PROCESSING', output: 'partial' })
    await update(runId, { stageNumber: 2, status: 'COMPLETED', output: '{"done":true}' })
    const late = await update(runId, { stageNumber: 2, status: 'PROCESSING', output: null })
    expect(late.outcome).toBe('stale')
    const stage = (await snapshot(runId)).stages.find((s) => s.stageNumber === 2)
    expect(stage).toMatchObject({ status: 'COMPLETED', output: '{"done":true}' })
  })

  it('keeps the output stored by PROCESSING when COMPLETED brings none', async () => {
    const runId = await newRunId()
    await update(runId, { stageNumber: 1, status: 'PROCESSING', output: 'draft' })
    await update(runId, { stageNumber: 1, status: 'COMPLETED' })
    expect((await snapshot(runId)).stages[0]).toMatchObject({ status: 'COMPLETED', output: 'draft' })
  })

  it('answers a FAILED stage for a COMPLETED run with a conflict and changes nothing', async () => {
    const runId = await newRunId()
    await update(runId, { stageNumber: 5, status: 'COMPLETED', output: 'report' })
    const before = await snapshot(runId)
    expect(before.run.status).toBe('COMPLETED')

    const failed = await update(runId, { stageNumber: 3, status: 'FAILED', output: 'boom' })
    expect(failed).toMatchObject({ outcome: 'conflict', code: 'run_finished' })
    expect(await snapshot(runId)).toEqual(before)

    // A late COMPLETED agrees with the outcome and is stored; the run's status stays, and only its
    // last activity (updatedAt) moves, as with every applied update.
    expect((await update(runId, { stageNumber: 4, status: 'COMPLETED', output: 'four' })).outcome).toBe('applied')
    const after = (await snapshot(runId)).run
    expect({ ...after, updatedAt: before.run.updatedAt }).toEqual(before.run)
    expect(after.updatedAt.getTime()).toBeGreaterThanOrEqual(before.run.updatedAt.getTime())
  })

  it.each(['FAILED', 'CANCELLED'] as const)('never lets /complete overwrite a %s run', async (status) => {
    const runId = await newRunId()
    if (status === 'FAILED') await update(runId, { stageNumber: 3, status: 'FAILED', output: 'model timed out' })
    else await completeRun(store, runId, makeCompleteRun({ status }), { now: new Date() })
    const before = await snapshot(runId)
    expect(before.run.status).toBe(status)

    const calls: string[] = []
    const result = await completeRun(store, runId, makeCompleteRun({ status: 'COMPLETED' }), {
      now: new Date(),
      onRunCompleted: (_tx, run) => void calls.push(run.id),
    })
    expect(result).toMatchObject({ outcome: 'conflict', code: 'run_finished' })
    expect(calls).toEqual([])
    expect(await snapshot(runId)).toEqual(before)
  })

  it('runs onRunCompleted inside the completing transaction; a throwing hook rolls the completion back', async () => {
    const runId = await newRunId()
    await update(runId, { stageNumber: 1, status: 'COMPLETED', output: 'one' })
    const before = await snapshot(runId)

    const failure = new Error('results could not be saved')
    const throwing: OnRunCompleted<Tx> = async (tx, run) => {
      // The hook sees the completion that is not committed yet, and its own writes join it.
      const seen = await tx.pipelineRun.findUniqueOrThrow({ where: { id: run.id } })
      expect(seen.status).toBe('COMPLETED')
      await tx.pipelineRun.update({ where: { id: run.id }, data: { error: 'written by the hook' } })
      throw failure
    }
    await expect(completeRun(store, runId, makeCompleteRun(), { now: new Date(), onRunCompleted: throwing })).rejects.toBe(
      failure,
    )
    expect(await snapshot(runId)).toEqual(before)

    // The runner retries; the completion is applied now, and the hook runs exactly once more.
    let calls = 0
    const counting: OnRunCompleted<Tx> = async (tx, run) => {
      calls += 1
      await tx.stageOutput.updateMany({ where: { runId: run.id }, data: { output: 'saved by the hook' } })
    }
    const retried = await completeRun(store, runId, makeCompleteRun({ duration: 12.5 }), {
      now: new Date(),
      onRunCompleted: counting,
    })
    const again = await completeRun(store, runId, makeCompleteRun(), { now: new Date(), onRunCompleted: counting })
    expect([retried.outcome, again.outcome, calls]).toEqual(['applied', 'duplicate', 1])
    const after = await snapshot(runId)
    expect(after.run.status).toBe('COMPLETED')
    expect(after.stages[0]?.output).toBe('saved by the hook')
  })

  it('answers not_found for an unknown run and creates nothing', async () => {
    const missing = 'no-such-run'
    expect(await update(missing, { stageNumber: 1 })).toEqual({ outcome: 'not_found' })
    expect(await completeRun(store, missing, makeCompleteRun(), { now: new Date() })).toEqual({ outcome: 'not_found' })
    expect(await store.getRun(missing)).toBeNull()
    expect(await db.prisma.stageOutput.count({ where: { runId: missing } })).toBe(0)
  })

  it('creates a run once and returns the stored one for the same id', async () => {
    const id = `created-${Date.now()}`
    const first = await createRun(store, { id, now: new Date('2025-01-01T00:00:00.000Z') })
    const second = await createRun(store, { id, now: new Date('2025-06-01T00:00:00.000Z') })
    expect(first).toMatchObject({ created: true, run: { id, status: 'PENDING' } })
    expect(second).toEqual({ created: false, run: first.run })
    expect(second.run.createdAt.toISOString()).toBe('2025-01-01T00:00:00.000Z')
  })

  it('is built the same way by createPrismaStore', async () => {
    const other = createPrismaStore({ prisma: db.prisma, timeoutMs: 20_000, maxWaitMs: 2_000 })
    const runId = await newRunId()
    expect(await other.getRun(runId)).toEqual(await snapshot(runId))
  })

  it('turns an unreachable database into StoreUnavailableError', async () => {
    const port = await freePort()
    const unreachable = new PrismaClient({
      adapter: new PrismaPg({ connectionString: `postgresql://postgres@127.0.0.1:${port}/none` }),
    })
    const down = createPrismaStore({ prisma: unreachable })
    try {
      const results = await Promise.allSettled([
        applyStageUpdate(down, 'run', makeStageUpdate(), { stages, now: new Date() }),
        completeRun(down, 'run', makeCompleteRun(), { now: new Date() }),
        createRun(down, { id: 'run', now: new Date() }),
        down.getRun('run'),
      ])
      for (const result of results) {
        expect(result.status).toBe('rejected')
        const reason = (result as PromiseRejectedResult).reason
        expect(reason).toBeInstanceOf(StoreUnavailableError)
        expect(isStoreUnavailableError(reason)).toBe(true)
      }
    } finally {
      await unreachable.$disconnect()
    }
  })

  it('lets errors other than connectivity propagate unchanged', async () => {
    const runId = await newRunId()
    const invalid = makeStageUpdate({ stageNumber: 9 })
    await expect(applyStageUpdate(store, runId, invalid, { stages, now: new Date() })).rejects.toBeInstanceOf(RangeError)
    // A database error that is not about connectivity (here: a value too large for INTEGER).
    const error = await store
      .transaction((tx) => tx.saveStage(runId, { ...makeStored(), stageNumber: 2 ** 40 }))
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(Error)
    expect(isStoreUnavailableError(error)).toBe(false)
  })
})

function makeStored() {
  const now = new Date()
  return {
    stageNumber: 1,
    stageName: 'Input Processing',
    status: 'COMPLETED' as const,
    output: null,
    completedAt: now,
    createdAt: now,
    updatedAt: now,
  }
}
