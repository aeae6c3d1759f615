/**
 * The opt-in fast path: PrismaStore running its own statements on the app's `pg` pool. It must
 * store exactly what the default path (every statement through Prisma) stores. On PostgreSQL the
 * pool connects to the test database; on PGlite, through a socket server over the same PGlite.
 */
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { DEFAULT_STAGES, type StageUpdate } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers, createPrismaStore, type PrismaStore, type RunSnapshot } from 'pipeline-status-sdk/server'
import { applyStageUpdate, cancelRun, completeRun, createRun, recordHeartbeat } from '../../src/core/operations.js'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { PrismaClient } from '../../src/generated/prisma/client.js'
import { makeCompleteRun, makeStageUpdate } from '../support/fixtures.js'
import { buildRequest, type RequestSpec, SECRET } from '../contract/suite/harness.js'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'

let db: TestDatabase
let pool: pg.Pool
let socketServer: PGLiteSocketServer | undefined
let viaPrisma: PrismaStore<PrismaClient>
let viaPool: PrismaStore<PrismaClient>

beforeAll(async () => {
  db = await createTestDatabase({ poolSize: 10 })
  let url = db.url
  if (!url) {
    socketServer = new PGLiteSocketServer({ db: db.pglite as never, host: '127.0.0.1', port: 0, maxConnections: 4 })
    await socketServer.start()
    url = `postgresql://postgres:postgres@${socketServer.getServerConn()}/postgres?sslmode=disable`
  }
  pool = new pg.Pool({ connectionString: url, max: db.url ? 10 : 1 })
  // Dropping the test database ends idle connections from the server's side.
  pool.on('error', () => undefined)
  viaPrisma = createPrismaStore({ prisma: db.prisma })
  viaPool = createPrismaStore({ prisma: db.prisma, pool })
})
afterAll(async () => {
  await pool?.end()
  await socketServer?.stop()
  await db?.close()
})

const stages = DEFAULT_STAGES
const at = (second: number) => new Date(Date.UTC(2025, 9, 25, 14, 0, second))

const SEQUENCE: Array<Partial<StageUpdate>> = [
  { stageNumber: 1, status: 'PROCESSING', output: 'reading' },
  { stageNumber: 1, status: 'COMPLETED', output: '{"rows": 12}', completedAt: '2025-10-25T14:03:11.123Z' },
  // A final status again with another output: 200 conflict, nothing written.
  { stageNumber: 1, status: 'COMPLETED', output: '{"rows": 13}' },
  { stageNumber: 1, status: 'PROCESSING', output: null },
  // A runner clock 9 h ahead: stored at now + 5 min (now is 14:00:05).
  { stageNumber: 2, status: 'COMPLETED', completedAt: '2025-10-25T23:00:05.000Z' },
  { stageNumber: 3, status: 'FAILED', output: 'model timed out' },
  // A naive local time 9 h before the run was created: stored as its creation.
  { stageNumber: 4, status: 'COMPLETED', output: 'late but agrees', completedAt: '2025-10-25T05:00:00' },
  { stageNumber: 5, status: 'CANCELLED' },
]

async function replay(store: PrismaStore<PrismaClient>, runId: string): Promise<{ outcomes: string[]; snapshot: RunSnapshot | null }> {
  await createRun(store, { id: runId, now: at(0) })
  const outcomes: string[] = []
  for (const [i, fields] of SEQUENCE.entries()) {
    outcomes.push((await applyStageUpdate(store, runId, makeStageUpdate(fields), { stages, now: at(i + 1) })).outcome)
  }
  outcomes.push((await completeRun(store, runId, makeCompleteRun({ status: 'FAILED' }), { now: at(30) })).outcome)
  return { outcomes, snapshot: await store.getRun(runId) }
}

describe('PrismaStore with the opt-in pg pool', () => {
  it('stores exactly what the Prisma path stores, versions included', async () => {
    const expected = await replay(viaPrisma, 'pool-a')
    const actual = await replay(viaPool, 'pool-b')
    expect(expected.outcomes).toEqual(['applied', 'applied', 'conflict', 'stale', 'applied', 'applied', 'applied', 'conflict', 'applied'])
    expect(expected.snapshot?.stages.map((stage) => [stage.stageNumber, stage.output, stage.completedAt?.toISOString()])).toEqual([
      [1, '{"rows": 12}', '2025-10-25T14:03:11.123Z'],
      [2, null, '2025-10-25T14:05:05.000Z'],
      [3, 'model timed out', '2025-10-25T14:00:06.000Z'],
      // Its first report is final and earlier than the run's start: it finishes when the run started.
      [4, 'late but agrees', '2025-10-25T14:00:01.000Z'],
    ])
    expect(actual.outcomes).toEqual(expected.outcomes)
    expect({ ...actual.snapshot, run: { ...actual.snapshot?.run, id: 'pool-a' } }).toEqual(expected.snapshot)
    expect(actual.snapshot?.version).toBe(6)
    // Each path reads what the other wrote.
    expect(await viaPrisma.getRun('pool-b')).toEqual(actual.snapshot)
    expect(await viaPool.getRun('pool-a')).toEqual(expected.snapshot)
  })

  it('getRuns reads several runs in one call, each exactly as getRun reads it, on both paths', async () => {
    const now = new Date('2026-12-07T01:00:00.000Z')
    await createRun(viaPool, { id: 'many-a', tags: ['team-a', 'night'], metadata: { owner: 'ana' }, now })
    await createRun(viaPool, { id: 'many-b', now })
    await createRun(viaPool, { id: 'many-c', pipeline: 'default', tags: ['x'], now })
    for (const n of [3, 1, 2]) await applyStageUpdate(viaPool, 'many-a', makeStageUpdate({ stageNumber: n, status: 'COMPLETED', output: `a ${n}` }), { stages, now })
    await applyStageUpdate(viaPool, 'many-c', makeStageUpdate({ stageNumber: 2, status: 'PROCESSING' }), { stages, now })
    for (const store of [viaPool, viaPrisma]) {
      const many = await store.getRuns(['many-c', 'unknown', 'many-a', 'many-b'])
      expect([...many.keys()].sort()).toEqual(['many-a', 'many-b', 'many-c'])
      for (const id of ['many-a', 'many-b', 'many-c']) expect(many.get(id)).toEqual(await store.getRun(id))
      // The run's large columns come once, and still belong to every run read.
      expect(many.get('many-a')?.run).toMatchObject({ tags: ['team-a', 'night'], metadata: { owner: 'ana' } })
      expect(many.get('many-a')?.stages.map((stage) => [stage.stageNumber, stage.output])).toEqual([
        [1, 'a 1'],
        [2, 'a 2'],
        [3, 'a 3'],
      ])
      expect(many.get('many-a')?.run.catalogue).toEqual(stages)
      expect(many.get('many-b')?.stages).toEqual([])
      expect(many.get('many-c')?.run.tags).toEqual(['x'])
      expect(await store.getRuns([])).toEqual(new Map())
    }
  })

  it('applies concurrent updates of one run exactly once each, mixed with the Prisma path', async () => {
    const runId = 'pool-race'
    await createRun(viaPool, { id: runId, now: new Date() })
    const updates = [1, 2, 3, 4].flatMap((n) => [viaPool, viaPrisma].map((store) => ({ store, n })))
    const results = await Promise.all(
      updates.map(({ store, n }) => applyStageUpdate(store, runId, makeStageUpdate({ stageNumber: n, status: 'COMPLETED', output: `out ${n}` }), { stages, now: new Date() })),
    )
    expect(results.filter((r) => r.outcome === 'applied')).toHaveLength(4)
    expect(results.filter((r) => r.outcome === 'duplicate')).toHaveLength(4)
    const snapshot = await viaPool.getRun(runId)
    expect([snapshot?.version, snapshot?.stages.length, snapshot?.run.status]).toEqual([4, 4, 'PROCESSING'])
  })

  it('stores heartbeats, progress and cancellation exactly as the Prisma path does, and lists and deletes alike', async () => {
    async function control(store: PrismaStore<PrismaClient>, runId: string) {
      await createRun(store, { id: runId, now: at(0) })
      const outcomes: string[] = []
      outcomes.push((await applyStageUpdate(store, runId, makeStageUpdate(), { stages, now: at(1) })).outcome)
      outcomes.push((await recordHeartbeat(store, runId, { stageNumber: 1, intervalMs: 5_000 }, { now: at(2) })).outcome)
      outcomes.push((await recordHeartbeat(store, runId, { stageNumber: 1, progress: { seq: 2, percent: 40, message: 'half' } }, { now: at(3) })).outcome)
      outcomes.push((await recordHeartbeat(store, runId, { stageNumber: 1, progress: { seq: 1, percent: 10 } }, { now: at(4) })).outcome)
      outcomes.push((await applyStageUpdate(store, runId, makeStageUpdate({ progress: { seq: 3, current: 3, total: 4 } }), { stages, now: at(5) })).outcome)
      outcomes.push((await cancelRun(store, runId, { reason: 'stop' }, { stages, now: at(6) })).outcome)
      outcomes.push((await cancelRun(store, runId, {}, { stages, now: at(7) })).outcome)
      // A finished run never changes: this heartbeat writes neither its time nor its interval.
      outcomes.push((await recordHeartbeat(store, runId, { stageNumber: 1, intervalMs: 1_000 }, { now: at(8) })).outcome)
      return { outcomes, snapshot: await store.getRun(runId) }
    }
    const expected = await control(viaPrisma, 'ctl-a')
    const actual = await control(viaPool, 'ctl-b')
    expect(expected.outcomes).toEqual(['applied', 'recorded', 'applied', 'stale', 'applied', 'applied', 'duplicate', 'stale'])
    expect(actual.outcomes).toEqual(expected.outcomes)
    expect({ ...actual.snapshot, run: { ...actual.snapshot?.run, id: 'ctl-a' } }).toEqual(expected.snapshot)
    expect(expected.snapshot?.run).toMatchObject({ status: 'CANCELLED', error: 'stop', heartbeatIntervalMs: 5_000, lastActivityAt: at(4) })
    expect(expected.snapshot?.stages[0]).toMatchObject({ status: 'CANCELLED', progress: { seq: 3, current: 3, total: 4 } })

    await createRun(viaPool, { id: 'ctl-quiet', now: at(0) })
    await recordHeartbeat(viaPool, 'ctl-quiet', { intervalMs: 5_000 }, { now: at(0) })
    for (const store of [viaPrisma, viaPool]) {
      expect((await store.listStaleRuns(at(0), 10, at(16))).map((run) => run.id)).toEqual(['ctl-quiet'])
      expect(await store.listStaleRuns(at(0), 10, at(14))).toEqual([])
    }
    expect(await viaPool.deleteFinishedRuns({ status: 'CANCELLED', updatedBefore: at(60), limit: 1 })).toBe(1)
    expect(await viaPrisma.deleteFinishedRuns({ status: 'CANCELLED', updatedBefore: at(60), limit: 5 })).toBe(1)
    expect(await viaPool.getRun('ctl-a')).toBeNull()
  })

  it("answers a heartbeat's stage as GET /status shows it on both paths, reading streamed text only for a stage that streams", async () => {
    for (const [runId, store] of [['hb-out-prisma', viaPrisma], ['hb-out-pool', viaPool]] as const) {
      const handlers = createPipelineStatusHandlers({ store, secret: SECRET })
      const send = async (spec: RequestSpec) => {
        const response = await handlers.fetch(buildRequest('http://app.test/api/pipeline', spec))
        expect(response.status).toBeLessThan(300)
        return response.json()
      }
      const reads = vi.spyOn(store, 'getStreamedOutput')
      try {
        await send({ path: '/runs', json: { id: runId } })
        await send({ path: `/${runId}/stage-update`, json: makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: 'own' }) })
        // An ordinary stage: the heartbeat answers it as stored, without reading any text.
        expect((await send({ path: `/${runId}/heartbeat`, json: { stageNumber: 1 } })).stage).toMatchObject({ output: 'own', outputSeq: null })
        expect(reads).not.toHaveBeenCalled()
        await send({ path: `/${runId}/stages/1/output`, json: { seq: 0, text: 'stre' } })
        await send({ path: `/${runId}/stages/1/output`, json: { seq: 1, text: 'amed ü😀' } })
        const beat = await send({ path: `/${runId}/heartbeat`, json: { stageNumber: 1, progress: { seq: 1, percent: 50 } } })
        expect(beat).toMatchObject({ outcome: 'applied', stage: { output: 'streamed ü😀', outputSeq: 1, progress: { percent: 50 } } })
        expect(reads).toHaveBeenCalledTimes(1)
        const status = await send({ path: `/${runId}/status` })
        expect(status.stages[0]).toEqual(beat.stage)
      } finally {
        reads.mockRestore()
        await handlers.close()
      }
    }
  })

  it('a heartbeat that waits for the lock of a run being finished writes nothing after it', async () => {
    // PGlite runs one statement at a time (a single connection): no heartbeat can wait for a lock
    // there, so the PostgreSQL race below becomes a heartbeat right after the finishing commit.
    const pause = db.url ? 200 : 0
    for (const [runId, store] of [['fin-race-prisma', viaPrisma], ['fin-race-pool', viaPool]] as const) {
      await createRun(store, { id: runId, now: at(0) })
      await applyStageUpdate(store, runId, makeStageUpdate(), { stages, now: at(1) })
      const finisher = await pool.connect()
      try {
        await finisher.query('BEGIN')
        await finisher.query(`UPDATE "PipelineRun" SET status = 'CANCELLED', version = version + 1 WHERE id = $1`, [runId])
        // The heartbeat's UPDATE blocks on the finisher's row lock until it commits.
        const heartbeat = db.url ? recordHeartbeat(store, runId, { intervalMs: 1_000 }, { now: at(9) }) : undefined
        await new Promise((resolve) => setTimeout(resolve, pause))
        await finisher.query('COMMIT')
        finisher.release()
        const answer = await (heartbeat ?? recordHeartbeat(store, runId, { intervalMs: 1_000 }, { now: at(9) }))
        expect(answer).toMatchObject({ outcome: 'stale', run: { status: 'CANCELLED', lastActivityAt: null, heartbeatIntervalMs: null } })
      } catch (error) {
        finisher.release()
        throw error
      }
      expect((await store.getRun(runId))?.run).toMatchObject({ status: 'CANCELLED', lastActivityAt: null, heartbeatIntervalMs: null })
    }
  })
})
