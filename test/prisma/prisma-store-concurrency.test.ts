/**
 * Concurrent delivery against the real store. On PostgreSQL (DATABASE_URL set) the updates run
 * on a pool of 20 connections, so transactions of the same run really overlap and only the row
 * lock keeps them apart. PGlite serves one connection, so there the same test checks the
 * results under interleaving but not real parallelism.
 */
import { DEFAULT_STAGES, type CompleteRun, type StageUpdate } from 'pipeline-status-sdk'
import { createPrismaStore, type PrismaStore } from 'pipeline-status-sdk/server'
import { applyStageUpdate, completeRun, createRun, type CompletionResult, type StageUpdateResult } from '../../src/core/operations.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { PrismaClient } from '../../src/generated/prisma/client.js'
import { makeCompleteRun, makeStageUpdate } from '../support/fixtures.js'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'

const RUNS = 50
const IN_FLIGHT = 32
const SEED = Number(process.env['CONCURRENCY_SEED'] ?? 20251025)

let db: TestDatabase
let store: PrismaStore<PrismaClient>

beforeAll(async () => {
  db = await createTestDatabase({ poolSize: 20 })
  store = createPrismaStore({ prisma: db.prisma })
})
afterAll(() => db?.close())

/** A small seeded generator (mulberry32), so a failing order can be replayed with CONCURRENCY_SEED. */
function random(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function shuffle<T>(items: T[], next: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[items[i], items[j]] = [items[j] as T, items[i] as T]
  }
  return items
}

/** Runs the tasks with at most `limit` in flight, in order, collecting every result or error. */
async function runLimited<T>(tasks: Array<() => Promise<T>>, limit: number): Promise<Array<PromiseSettledResult<T>>> {
  const results: Array<PromiseSettledResult<T>> = new Array(tasks.length)
  let nextIndex = 0
  const worker = async () => {
    while (nextIndex < tasks.length) {
      const index = nextIndex++
      try {
        results[index] = { status: 'fulfilled', value: await (tasks[index] as () => Promise<T>)() }
      } catch (reason) {
        results[index] = { status: 'rejected', reason }
      }
    }
  }
  await Promise.all(Array.from({ length: limit }, worker))
  return results
}

type Delivery =
  | { kind: 'stage'; runId: string; update: StageUpdate }
  | { kind: 'complete'; runId: string; body: CompleteRun }

describe('PrismaStore under concurrency', () => {
  it(`finishes ${RUNS} runs exactly once with ${IN_FLIGHT} updates in flight, each sent twice, in random order`, async () => {
    const prefix = `load-${Date.now()}`
    const runIds = Array.from({ length: RUNS }, (_, i) => `${prefix}-${i}`)
    for (const id of runIds) await createRun(store, { id, now: new Date() })

    const deliveries: Delivery[] = []
    for (const runId of runIds) {
      for (const stage of DEFAULT_STAGES) {
        for (const status of ['PROCESSING', 'COMPLETED'] as const) {
          const output = status === 'COMPLETED' ? `{"run":"${runId}","stage":${stage.number}}` : 'working'
          const update = makeStageUpdate({ stageNumber: stage.number, status, output })
          deliveries.push({ kind: 'stage', runId, update }, { kind: 'stage', runId, update })
        }
      }
      // The runner's explicit /complete, delivered twice as well, races the stage updates.
      deliveries.push({ kind: 'complete', runId, body: makeCompleteRun() }, { kind: 'complete', runId, body: makeCompleteRun() })
    }
    shuffle(deliveries, random(SEED))

    const hookCalls = new Map<string, number>()
    const results = await runLimited<StageUpdateResult | CompletionResult>(
      deliveries.map((delivery) => () =>
        delivery.kind === 'stage'
          ? applyStageUpdate(store, delivery.runId, delivery.update, { stages: DEFAULT_STAGES, now: new Date() })
          : completeRun(store, delivery.runId, delivery.body, {
              now: new Date(),
              onRunCompleted: (_tx, run) => void hookCalls.set(run.id, (hookCalls.get(run.id) ?? 0) + 1),
            }),
      ),
      IN_FLIGHT,
    )

    const errors = results.filter((r) => r.status === 'rejected')
    expect(errors, `seed ${SEED}`).toEqual([])
    const outcomes = results.map((r) => (r as PromiseFulfilledResult<StageUpdateResult | CompletionResult>).value.outcome)
    // Every delivery agrees with the outcome, so none is refused.
    expect(outcomes.filter((o) => !['applied', 'duplicate', 'stale'].includes(o))).toEqual([])

    // Each (run, stage, COMPLETED) was applied exactly once; its twin was a duplicate.
    const completedApplied = new Map<string, number>()
    results.forEach((result, index) => {
      const delivery = deliveries[index] as Delivery
      const value = (result as PromiseFulfilledResult<StageUpdateResult | CompletionResult>).value
      if (delivery.kind === 'stage' && delivery.update.status === 'COMPLETED' && value.outcome === 'applied') {
        const key = `${delivery.runId}/${delivery.update.stageNumber}`
        completedApplied.set(key, (completedApplied.get(key) ?? 0) + 1)
      }
    })
    expect(completedApplied.size).toBe(RUNS * DEFAULT_STAGES.length)
    expect([...completedApplied].filter(([, count]) => count !== 1)).toEqual([])

    // The completion hook ran once per run, whichever of /complete or stage 5 finished it.
    expect([...hookCalls.keys()].sort()).toEqual([...runIds].sort())
    expect([...hookCalls].filter(([, count]) => count !== 1)).toEqual([])

    for (const runId of runIds) {
      const snapshot = await store.getRun(runId)
      expect(snapshot?.run).toMatchObject({ status: 'COMPLETED', error: null })
      expect(snapshot?.run.completedAt).toBeInstanceOf(Date)
      expect(snapshot?.run.completionReceivedAt).toBeInstanceOf(Date)
      expect(snapshot?.stages.map((s) => [s.stageNumber, s.status, s.output])).toEqual(
        DEFAULT_STAGES.map((s) => [s.number, 'COMPLETED', `{"run":"${runId}","stage":${s.number}}`]),
      )
    }

    // Every answer that saw the run finished reported the same completedAt: it was set once.
    const completedAtByRun = new Map<string, Set<number>>()
    results.forEach((result, index) => {
      const value = (result as PromiseFulfilledResult<StageUpdateResult | CompletionResult>).value
      const run = 'run' in value ? value.run : undefined
      if (run?.status !== 'COMPLETED' || !run.completedAt) return
      const runId = (deliveries[index] as Delivery).runId
      const seen = completedAtByRun.get(runId) ?? new Set<number>()
      seen.add(run.completedAt.getTime())
      completedAtByRun.set(runId, seen)
    })
    expect([...completedAtByRun].filter(([, seen]) => seen.size !== 1)).toEqual([])
    expect(await db.prisma.stageOutput.count({ where: { runId: { startsWith: prefix } } })).toBe(RUNS * DEFAULT_STAGES.length)
  })

  it('creates a run once when the same id is created concurrently', async () => {
    const ids = Array.from({ length: 5 }, (_, i) => `same-id-${Date.now()}-${i}`)
    const creates = ids.flatMap((id) => Array.from({ length: 10 }, () => () => createRun(store, { id, now: new Date() })))
    const results = await runLimited(shuffle(creates, random(SEED + 1)), IN_FLIGHT)
    expect(results.filter((r) => r.status === 'rejected')).toEqual([])
    for (const id of ids) {
      const forId = results
        .map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof createRun>>>).value)
        .filter((value) => value.run.id === id)
      expect(forId).toHaveLength(10)
      expect(forId.filter((value) => value.created)).toHaveLength(1)
      expect(new Set(forId.map((value) => value.run.createdAt.getTime())).size).toBe(1)
    }
    expect(await db.prisma.pipelineRun.count({ where: { id: { in: ids } } })).toBe(ids.length)
  })

  it('merges concurrent first updates of one stage without a unique violation', async () => {
    const runId = `first-updates-${Date.now()}`
    await createRun(store, { id: runId, now: new Date() })
    const updates = [
      ...Array.from({ length: 12 }, () => makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: 'working' })),
      ...Array.from({ length: 12 }, () => makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'done' })),
    ]
    const results = await runLimited(
      shuffle(updates, random(SEED + 2)).map((update) => () =>
        applyStageUpdate(store, runId, update, { stages: DEFAULT_STAGES, now: new Date() }),
      ),
      IN_FLIGHT,
    )
    expect(results.filter((r) => r.status === 'rejected')).toEqual([])
    const applied = results.filter((r) => r.status === 'fulfilled' && r.value.outcome === 'applied')
    expect(applied.length).toBeGreaterThanOrEqual(1)
    expect(applied.length).toBeLessThanOrEqual(2)
    const snapshot = await store.getRun(runId)
    expect(snapshot?.stages).toHaveLength(1)
    expect(snapshot?.stages[0]).toMatchObject({ status: 'COMPLETED', output: 'done' })
  })

  it('never raises a unique violation from saveStage, even without the run lock', async () => {
    const runId = `unlocked-${Date.now()}`
    await createRun(store, { id: runId, now: new Date() })
    const writes = Array.from({ length: 24 }, (_, i) => () => {
      const now = new Date()
      return store.transaction((tx) =>
        tx.saveStage(runId, {
          stageNumber: 2,
          stageName: 'Signal Amplification',
          status: 'PROCESSING',
          output: `writer ${i}`,
          completedAt: null,
          createdAt: now,
          updatedAt: now,
        }),
      )
    })
    const results = await runLimited(writes, IN_FLIGHT)
    expect(results.filter((r) => r.status === 'rejected')).toEqual([])
    expect(await db.prisma.stageOutput.count({ where: { runId } })).toBe(1)
  })
})
