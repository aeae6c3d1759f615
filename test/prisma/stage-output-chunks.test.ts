/**
 * Streamed output chunks on PostgreSQL: one row per applied chunk, written with the stage in one
 * statement (or in the locking protocol's transaction), assembled in `seq` order on read, deleted
 * by an applied higher attempt, by the retention sweep and with their run (ON DELETE CASCADE).
 */
import { createPrismaStore, type PrismaStore, type Store } from 'pipeline-status-sdk/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { appendOutputChunk, applyStageUpdate, createRun, deleteExpiredRuns } from '../../src/core/operations.js'
import type { PrismaClient } from '../../src/generated/prisma/client.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'

let db: TestDatabase
let store: PrismaStore<PrismaClient>
let counter = 0
const NOW = new Date('2026-12-06T10:00:00.000Z')
const options = { now: NOW, maxBytes: 1024 * 1024 }

beforeAll(async () => {
  db = await createTestDatabase()
  store = createPrismaStore({ prisma: db.prisma })
})
afterAll(() => db?.close())

async function runningRun(on: Store<unknown> = store): Promise<string> {
  const id = `chunks-${++counter}`
  await createRun(on, { id, now: NOW })
  await applyStageUpdate(on, id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', attempt: 1 }), { now: NOW })
  return id
}

async function rowsOf(runId: string): Promise<Array<{ stageNumber: number; seq: number; version: number; text: string }>> {
  return db.prisma.$queryRawUnsafe(
    'SELECT "stageNumber", "seq", "version", "text" FROM "StageOutputChunk" WHERE "runId" = $1 ORDER BY "version"',
    runId,
  )
}

describe('PrismaStore streamed output chunks', () => {
  it('stores one row per applied chunk with the version it made, and assembles the text in seq order', async () => {
    const id = await runningRun()
    const texts = ['# Bericht\n', 'Größe: ', '😀', '']
    for (const [seq, text] of texts.entries()) expect(await appendOutputChunk(store, id, 1, { seq, text }, options)).toMatchObject({ outcome: 'applied' })
    const snapshot = await store.getRun(id)
    expect(snapshot?.stages[0]).toMatchObject({ output: texts.join(''), outputSeq: 3, outputBytes: 23, streamedOutput: true })
    const rows = await rowsOf(id)
    expect(rows.map((row) => row.seq)).toEqual([0, 1, 2, 3])
    expect(rows.at(-1)?.version).toBe(snapshot?.version)
    expect(await store.getOutputChunksSince(id, rows[1]!.version)).toEqual(rows.slice(2))
    // A limit reads only the first rows in version order (LIMIT; the live streams ask one past their bound).
    expect(await store.getOutputChunksSince(id, rows[0]!.version, 2)).toEqual(rows.slice(1, 3))
    expect(await store.getOutputChunksSince(id, rows[0]!.version, 10)).toEqual(rows.slice(1))
    expect(await store.getOutputChunk(id, 1, 1)).toBe('Größe: ')
    expect(await appendOutputChunk(store, id, 1, { seq: 1, text: 'Größe: ' }, options)).toMatchObject({ outcome: 'duplicate' })
    expect(await appendOutputChunk(store, id, 1, { seq: 1, text: 'other' }, options)).toMatchObject({ outcome: 'conflict' })
    expect(await rowsOf(id)).toHaveLength(4)
  })

  it('deletes the rows with an applied higher attempt, with the retention sweep, and with the run', async () => {
    const id = await runningRun()
    await appendOutputChunk(store, id, 1, { seq: 0, text: 'old' }, options)
    await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', attempt: 2 }), { now: NOW })
    expect(await rowsOf(id)).toEqual([])
    expect((await store.getRun(id))?.stages[0]).toMatchObject({ output: null, outputSeq: null })
    await appendOutputChunk(store, id, 1, { seq: 0, text: 'new' }, options)
    await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, status: 'FAILED' }), { now: NOW })
    expect((await store.getRun(id))?.stages[0]).toMatchObject({ status: 'FAILED', output: 'new', outputSeq: 0 })
    const deleted = await deleteExpiredRuns(store, { keep: { FAILED: 1 }, now: new Date(NOW.getTime() + 60_000), limit: 1000 })
    expect(deleted.FAILED).toBeGreaterThanOrEqual(1)
    expect(await store.getRun(id)).toBeNull()
    expect(await rowsOf(id)).toEqual([])

    // The foreign key cascades for a run deleted by the app itself.
    const other = await runningRun()
    await appendOutputChunk(store, other, 1, { seq: 0, text: 'x' }, options)
    await db.prisma.$executeRawUnsafe('DELETE FROM "PipelineRun" WHERE "id" = $1', other)
    expect(await rowsOf(other)).toEqual([])
  })

  it('writes chunks and resets in the locking protocol too (a store without the optimistic path)', async () => {
    const locking: Store<unknown> = {
      transaction: (fn) => store.transaction(fn as never),
      insertRun: (run) => store.insertRun(run),
      getRun: (runId) => store.getRun(runId),
      getOutputChunk: (runId, stageNumber, seq) => store.getOutputChunk(runId, stageNumber, seq),
      getOutputChunksSince: (runId, version) => store.getOutputChunksSince(runId, version),
    }
    const id = await runningRun(locking)
    await appendOutputChunk(locking, id, 1, { seq: 0, text: 'a' }, options)
    await appendOutputChunk(locking, id, 1, { seq: 1, text: 'b' }, options)
    expect(await appendOutputChunk(locking, id, 1, { seq: 1, text: 'b' }, options)).toMatchObject({ outcome: 'duplicate' })
    const snapshot = await locking.getRun(id)
    expect(snapshot?.stages[0]).toMatchObject({ output: 'ab', outputSeq: 1 })
    expect((await rowsOf(id)).map((row) => row.version)).toEqual([(snapshot?.version ?? 0) - 1, snapshot?.version])
    await applyStageUpdate(locking, id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', attempt: 2 }), { now: NOW })
    expect(await rowsOf(id)).toEqual([])
  })
})
