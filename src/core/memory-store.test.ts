import { describe, expect, it } from 'vitest'
import { DEFAULT_STAGES } from '../contract/stages.js'
import { MemoryStore } from './memory-store.js'
import {
  applyStageUpdate,
  cancelRun,
  completeRun,
  createRun,
  deleteExpiredRuns,
  failStaleRuns,
  recordHeartbeat,
} from './operations.js'
import type { RunState } from './state.js'
import type { Store } from './store.js'

const now = new Date('2026-01-01T00:00:00.000Z')
const options = { stages: DEFAULT_STAGES, now }
const update = (stageNumber: number, status: 'PROCESSING' | 'COMPLETED' | 'FAILED', output?: string) => ({
  stageNumber,
  stageName: `Stage ${stageNumber}`,
  status,
  ...(output === undefined ? {} : { output }),
})

describe('MemoryStore through the shared operations', () => {
  it('creates runs idempotently', async () => {
    const store = new MemoryStore()
    const first = await createRun(store, { id: 'r1', now })
    const again = await createRun(store, { id: 'r1', now: new Date() })
    expect(first.created).toBe(true)
    expect(again).toEqual({ created: false, run: first.run })
    const generated = await createRun(store, { now })
    expect(generated.run.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(store.runIds()).toEqual(['r1', generated.run.id])
  })

  it('answers not_found for an unknown run', async () => {
    const store = new MemoryStore()
    expect(await applyStageUpdate(store, 'nope', update(1, 'PROCESSING'), options)).toEqual({ outcome: 'not_found' })
    expect(await completeRun(store, 'nope', { status: 'COMPLETED' }, { now })).toEqual({ outcome: 'not_found' })
    expect(await store.getRun('nope')).toBeNull()
  })

  it('runs a five-stage pipeline to COMPLETED and keeps stages in order', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'r', now })
    for (const n of [5, 3, 1, 2, 4]) {
      await applyStageUpdate(store, 'r', update(n, 'PROCESSING'), options)
    }
    for (const n of [1, 2, 3, 4, 5]) {
      await applyStageUpdate(store, 'r', update(n, 'COMPLETED', `out ${n}`), options)
    }
    const snapshot = await store.getRun('r')
    expect(snapshot?.run.status).toBe('COMPLETED')
    expect(snapshot?.stages.map((s) => [s.stageNumber, s.status, s.output])).toEqual(
      [1, 2, 3, 4, 5].map((n) => [n, 'COMPLETED', `out ${n}`]),
    )
  })

  it('rolls back every write of a transaction that throws, including a throwing hook', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'r', now })
    await expect(
      completeRun(store, 'r', { status: 'COMPLETED' }, {
        now,
        onRunCompleted: () => {
          throw new Error('results table is down')
        },
      }),
    ).rejects.toThrow('results table is down')
    expect((await store.getRun('r'))?.run.status).toBe('PENDING')

    const calls: string[] = []
    const retried = await completeRun(store, 'r', { status: 'COMPLETED' }, {
      now,
      onRunCompleted: (tx, run) => {
        expect(tx).toBe(store)
        calls.push(run.status)
      },
    })
    expect(retried.outcome).toBe('applied')
    expect(calls).toEqual(['COMPLETED'])
  })

  it('serialises concurrent transactions so a hook runs once per run', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'r', now })
    let hooks = 0
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        i % 2 === 0
          ? completeRun(store, 'r', { status: 'COMPLETED' }, { now, onRunCompleted: () => void hooks++ })
          : applyStageUpdate(store, 'r', update(5, 'COMPLETED'), options),
      ),
    )
    expect(hooks).toBe(1)
    expect(results.filter((r) => r.outcome === 'applied')).toHaveLength(2)
  })

  it('reset removes everything', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'r', now })
    store.reset()
    expect(store.runIds()).toEqual([])
  })
})

describe('stale runs in a MemoryStore', () => {
  const MINUTE = 60_000
  const at = (minutes: number) => new Date(now.getTime() + minutes * MINUTE)

  /** Runs created at minute 0, each last touched at the given minute, and some finished. */
  async function seed(store: MemoryStore) {
    await createRun(store, { id: 'pending-0', now: at(0) })
    for (const [id, minute] of [['processing-3', 3], ['processing-1', 1], ['processing-1b', 1], ['fresh-30', 30]] as const) {
      await createRun(store, { id, now: at(0) })
      await applyStageUpdate(store, id, update(1, 'PROCESSING'), { stages: DEFAULT_STAGES, now: at(minute) })
    }
    await createRun(store, { id: 'failed-2', now: at(0) })
    await applyStageUpdate(store, 'failed-2', update(2, 'FAILED'), { stages: DEFAULT_STAGES, now: at(2) })
    await createRun(store, { id: 'completed-2', now: at(0) })
    await completeRun(store, 'completed-2', { status: 'COMPLETED' }, { now: at(2) })
  }

  it('lists unfinished runs updated before the cutoff, oldest first (ties by id), at most limit', async () => {
    const store = new MemoryStore()
    await seed(store)
    const ids = (runs: RunState[]) => runs.map((run) => run.id)
    expect(ids(await store.listStaleRuns(at(20), 10))).toEqual(['pending-0', 'processing-1', 'processing-1b', 'processing-3'])
    expect(ids(await store.listStaleRuns(at(20), 2))).toEqual(['pending-0', 'processing-1'])
    // Strictly before: a run updated exactly at the cutoff is not listed.
    expect(ids(await store.listStaleRuns(at(1), 10))).toEqual(['pending-0'])
  })

  it('fails the stale runs once and returns them; a second sweep finds nothing', async () => {
    const store = new MemoryStore()
    await seed(store)
    const seen: string[] = []
    const failed = await failStaleRuns(store, {
      staleAfterMs: 15 * MINUTE,
      now: at(20),
      limit: 100,
      onFailed: async (run) => {
        // Called after the commit: the store already holds the failed run.
        expect((await store.getRun(run.id))?.run).toEqual(run)
        seen.push(run.id)
      },
    })
    expect(failed.map((run) => run.id)).toEqual(['pending-0', 'processing-1', 'processing-1b', 'processing-3'])
    expect(seen).toEqual(failed.map((run) => run.id))
    for (const run of failed) {
      expect(run).toMatchObject({
        status: 'FAILED',
        error: 'No update for more than 15 minutes: the runner stopped reporting',
        completedAt: at(20),
        completionReceivedAt: null,
        updatedAt: at(20),
      })
    }
    expect((await store.getRun('fresh-30'))?.run.status).toBe('PROCESSING')
    expect((await store.getRun('failed-2'))?.run.error).toBe('Stage 2 (Stage 2) failed')
    expect(await failStaleRuns(store, { staleAfterMs: 15 * MINUTE, now: at(21), limit: 100 })).toEqual([])
  })

  it('re-decides under the lock: a run updated after the listing is not failed', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'r', now: at(0) })
    await applyStageUpdate(store, 'r', update(1, 'PROCESSING'), options)
    const racing: Store<MemoryStore> = {
      transaction: (fn) => store.transaction(fn),
      insertRun: (run) => store.insertRun(run),
      getRun: (runId) => store.getRun(runId),
      async listStaleRuns(updatedBefore, limit) {
        const listed = await store.listStaleRuns(updatedBefore, limit)
        // The runner reports between the sweeper's listing and its lock.
        await applyStageUpdate(store, 'r', update(1, 'COMPLETED'), { stages: DEFAULT_STAGES, now: at(20) })
        return listed
      },
    }
    const failed = await failStaleRuns(racing, { staleAfterMs: 15 * MINUTE, now: at(20), limit: 10 })
    expect(failed).toEqual([])
    expect((await store.getRun('r'))?.run).toMatchObject({ status: 'PROCESSING', updatedAt: at(20) })
  })

  it('refuses a store without listStaleRuns and a limit that is not positive', async () => {
    const store = new MemoryStore()
    const bare: Store<MemoryStore> = {
      transaction: (fn) => store.transaction(fn),
      insertRun: (run) => store.insertRun(run),
      getRun: (runId) => store.getRun(runId),
    }
    await expect(failStaleRuns(bare, { staleAfterMs: MINUTE, now, limit: 1 })).rejects.toThrow(TypeError)
    await expect(failStaleRuns(store, { staleAfterMs: MINUTE, now, limit: 0 })).rejects.toThrow(RangeError)
    await expect(failStaleRuns(store, { staleAfterMs: 0, now, limit: 1 })).rejects.toThrow(RangeError)
  })

  it('records every applied stage update as activity, and duplicates as nothing', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'r', now: at(0) })
    await applyStageUpdate(store, 'r', update(1, 'PROCESSING'), { stages: DEFAULT_STAGES, now: at(1) })
    await applyStageUpdate(store, 'r', update(1, 'COMPLETED'), { stages: DEFAULT_STAGES, now: at(5) })
    expect((await store.getRun('r'))?.run).toMatchObject({ status: 'PROCESSING', updatedAt: at(5) })
    await applyStageUpdate(store, 'r', update(1, 'COMPLETED'), { stages: DEFAULT_STAGES, now: at(9) })
    expect((await store.getRun('r'))?.run.updatedAt).toEqual(at(5))
  })
})

describe('the optimistic write path', () => {
  const MINUTE = 60_000
  const at = (minutes: number) => new Date(now.getTime() + minutes * MINUTE)

  /** The store, except that `race` runs once between a run's read and its conditional write. */
  function racing(store: MemoryStore, race: () => Promise<unknown>): Store<MemoryStore> {
    let raced = false
    return {
      transaction: (fn) => store.transaction(fn),
      insertRun: (run) => store.insertRun(run),
      getRun: (runId) => store.getRun(runId),
      listStaleRuns: (before, limit) => store.listStaleRuns(before, limit),
      readRunStage: (runId, stageNumber) => store.readRunStage(runId, stageNumber),
      writeRunStage: (write) => store.writeRunStage(write),
      readRun: async (runId) => {
        const read = await store.readRun(runId)
        if (!raced) {
          raced = true
          await race()
        }
        return read
      },
      writeRun: (write) => store.writeRun(write),
    }
  }

  it('re-reads after a lost race: a run updated between the sweep’s read and write is not failed', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'r', now: at(0) })
    await applyStageUpdate(store, 'r', update(1, 'PROCESSING'), { stages: DEFAULT_STAGES, now: at(1) })
    const swept = racing(store, () => applyStageUpdate(store, 'r', update(1, 'COMPLETED'), { stages: DEFAULT_STAGES, now: at(20) }))
    expect(await failStaleRuns(swept, { staleAfterMs: 15 * MINUTE, now: at(20), limit: 10 })).toEqual([])
    expect(await store.getRun('r')).toMatchObject({ run: { status: 'PROCESSING', updatedAt: at(20) }, version: 2 })
  })

  it('a /complete without a hook that lost the race decides again on the run as it is now', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'r', now: at(0) })
    const completing = racing(store, () => applyStageUpdate(store, 'r', update(2, 'FAILED', 'boom'), { stages: DEFAULT_STAGES, now: at(1) }))
    const result = await completeRun(completing, 'r', { status: 'COMPLETED' }, { now: at(2) })
    expect(result).toMatchObject({ outcome: 'conflict', code: 'run_finished' })
    expect(await store.getRun('r')).toMatchObject({ run: { status: 'FAILED', completionReceivedAt: null }, version: 1 })
  })
})

describe('MemoryStore runner control', () => {
  const at = (seconds: number) => new Date(now.getTime() + seconds * 1000)

  it('a heartbeat writes the last activity without a new version, and no later write undoes it', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'hb', now })
    await applyStageUpdate(store, 'hb', update(1, 'PROCESSING'), options)
    const before = await store.getRun('hb')
    const touched = await recordHeartbeat(store, 'hb', { stageNumber: 1, intervalMs: 5_000 }, { now: at(3) })
    expect(touched).toMatchObject({ outcome: 'recorded', run: { lastActivityAt: at(3), heartbeatIntervalMs: 5_000 }, stage: { stageNumber: 1 } })
    expect((await store.getRun('hb'))?.version).toBe(before?.version)
    await applyStageUpdate(store, 'hb', update(1, 'COMPLETED'), { ...options, now: at(4) })
    expect((await store.getRun('hb'))?.run).toMatchObject({ lastActivityAt: at(3), heartbeatIntervalMs: 5_000 })
    expect(await recordHeartbeat(store, 'nope', {}, { now })).toEqual({ outcome: 'not_found' })
  })

  it('a heartbeat on a finished run writes nothing and answers stale with the run as stored', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'ended', now })
    await cancelRun(store, 'ended', {}, { now: at(1), stages: DEFAULT_STAGES })
    const ended = await store.getRun('ended')
    const late = await recordHeartbeat(store, 'ended', { stageNumber: 2, intervalMs: 1_000 }, { now: at(5) })
    expect(late).toEqual({ outcome: 'stale', run: ended?.run, stage: null })
    expect(await store.getRun('ended')).toEqual(ended)
  })

  it('the sweep write is refused when a heartbeat came after its read', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'raced', now })
    const read = await store.readRun('raced')
    await recordHeartbeat(store, 'raced', {}, { now: at(1) })
    const write = { run: { ...read!.run, status: 'FAILED' as const }, expectedVersion: read!.version, version: read!.version + 1 }
    expect(await store.writeRun({ ...write, expectedLastActivityAt: read!.run.lastActivityAt ?? null })).toBe(false)
    expect(await store.writeRun(write)).toBe(true)
  })

  it('lists heartbeating runs by 3 missed intervals and deletes expired finished runs in bounded batches', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'beating', now })
    await recordHeartbeat(store, 'beating', { intervalMs: 10_000 }, { now })
    await createRun(store, { id: 'quiet', now })
    expect((await store.listStaleRuns(at(-60), 10, at(31))).map((run) => run.id)).toEqual(['beating'])
    expect(await store.listStaleRuns(at(-60), 10, at(29))).toEqual([])
    expect((await store.listStaleRuns(at(1), 10, at(29))).map((run) => run.id)).toEqual(['quiet'])

    for (const id of ['a', 'b', 'c']) {
      await createRun(store, { id, now })
      await cancelRun(store, id, {}, { stages: DEFAULT_STAGES, now })
    }
    const deleted = await deleteExpiredRuns(store, { keep: { CANCELLED: 1000 }, now: at(2), limit: 2 })
    expect(deleted).toEqual({ CANCELLED: 2 })
    expect(await deleteExpiredRuns(store, { keep: { CANCELLED: 1000, COMPLETED: 1000 }, now: at(2), limit: 2 })).toEqual({ CANCELLED: 1, COMPLETED: 0 })
    expect(store.runIds()).toEqual(['beating', 'quiet'])
    await expect(deleteExpiredRuns(store, { keep: { FAILED: 0 }, now, limit: 1 })).rejects.toThrow(RangeError)
  })
})
