/**
 * Runs that stopped reporting, on the real store: listing them by the (status, updatedAt) index,
 * failing them once with several sweepers at work, and never failing one whose update won the
 * race. On PostgreSQL (DATABASE_URL set) the races are real: the test waits until PostgreSQL
 * reports the other side blocked on the run's row lock before letting the lock holder go on.
 * PGlite serves one connection, so there the same tests check the outcomes under interleaving.
 */
import express from 'express'
import { DEFAULT_STAGES } from 'pipeline-status-sdk'
import { createExpressRouter } from 'pipeline-status-sdk/express'
import { createPrismaStore, createStaleRunSweeper, type PrismaStore, type RunState, type Store, type StoreTransaction } from 'pipeline-status-sdk/server'
import { applyStageUpdate, completeRun, createRun, failStaleRuns, recordHeartbeat } from '../../src/core/operations.js'
import { MAX_BATCHES_PER_SWEEP } from '../../src/server/stale-run-sweeper.js'
import { describe, expect, it } from 'vitest'
import type { PrismaClient } from '../../src/generated/prisma/client.js'
import { listen } from '../contract/targets.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { runStaleRunScenario, STALE_AFTER_MS, STALE_SECRET } from '../support/stale-run-scenario.js'
import { quiet, recordingLogger } from '../support/loggers.js'
import { useTestDatabase } from '../support/use-test-database.js'

const MINUTE = 60_000
const T0 = Date.parse('2026-02-01T12:00:00.000Z')
const at = (minutes: number) => new Date(T0 + minutes * MINUTE)

const fixture = useTestDatabase({ poolSize: 10 })
type Tx = Parameters<Parameters<PrismaStore<PrismaClient>['transaction']>[0]>[0]['client']

async function startRun(id: string, minute: number): Promise<void> {
  await createRun(fixture.store, { id, now: at(minute) })
  const result = await applyStageUpdate(fixture.store, id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING' }), {
    stages: DEFAULT_STAGES,
    now: at(minute),
  })
  expect(result.outcome).toBe('applied')
}

async function runOf(id: string): Promise<RunState> {
  const snapshot = await fixture.store.getRun(id)
  if (!snapshot) throw new Error(`run ${id} not found`)
  return snapshot.run
}

/** A gate a test opens by hand. */
function gate() {
  let open: () => void = () => {}
  const opened = new Promise<void>((resolve) => (open = resolve))
  return { open, opened }
}

/**
 * The store, except that every transaction, once it holds a run's lock, calls `locked` and waits
 * for `release` before it goes on: the test decides when the lock holder commits.
 */
function holdingLocks(inner: PrismaStore<PrismaClient>, locked: () => void, release: Promise<void>): Store<Tx> {
  return {
    transaction: (fn) =>
      inner.transaction((tx) => {
        const held: StoreTransaction<Tx> = {
          client: tx.client,
          getStage: tx.getStage,
          saveStage: tx.saveStage,
          saveRun: tx.saveRun,
          lockRun: async (runId) => {
            const run = await tx.lockRun(runId)
            locked()
            await release
            return run
          },
        }
        return fn(held)
      }),
    insertRun: (run) => inner.insertRun(run),
    getRun: (runId) => inner.getRun(runId),
    listStaleRuns: (updatedBefore, limit) => inner.listStaleRuns(updatedBefore, limit),
  }
}

/** On PostgreSQL: waits until `count` sessions of this database wait for a lock. */
async function lockWaiters(count: number): Promise<void> {
  if (fixture.db.kind !== 'postgres') {
    // One connection: the other side waits for it, not for a lock; let it get that far.
    await new Promise((resolve) => setTimeout(resolve, 0))
    return
  }
  for (let attempt = 0; attempt < 1_000; attempt++) {
    const [row] = await fixture.db.prisma.$queryRawUnsafe<Array<{ waiting: number }>>(
      `SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    )
    if ((row?.waiting ?? 0) >= count) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`no ${count} session(s) ever waited for the run's lock`)
}

describe('PrismaStore.listStaleRuns', () => {
  it('lists unfinished runs updated before the cutoff, oldest first, at most limit', async () => {
    await createRun(fixture.store, { id: 'pending-0', now: at(0) })
    await startRun('processing-2', 2)
    await startRun('processing-1', 1)
    await startRun('fresh-30', 30)
    await startRun('failed-1', 1)
    await applyStageUpdate(fixture.store, 'failed-1', makeStageUpdate({ stageNumber: 1, status: 'FAILED', output: 'boom' }), {
      stages: DEFAULT_STAGES,
      now: at(1),
    })
    await createRun(fixture.store, { id: 'completed-0', now: at(0) })
    await completeRun(fixture.store, 'completed-0', { status: 'COMPLETED' }, { now: at(0) })

    const listed = await fixture.store.listStaleRuns(at(20), 10)
    expect(listed.map((run) => run.id)).toEqual(['pending-0', 'processing-1', 'processing-2'])
    expect(listed[1]).toMatchObject({ status: 'PROCESSING', error: null, completedAt: null, updatedAt: at(1) })
    expect(listed[1]?.createdAt).toEqual(at(1))
    expect((await fixture.store.listStaleRuns(at(20), 1)).map((run) => run.id)).toEqual(['pending-0'])
    // Strictly before the cutoff.
    expect((await fixture.store.listStaleRuns(at(1), 10)).map((run) => run.id)).toEqual(['pending-0'])
  })

  it('sees every applied stage update as activity, even one that leaves the run PROCESSING', async () => {
    await startRun('r', 0)
    await applyStageUpdate(fixture.store, 'r', makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }), { stages: DEFAULT_STAGES, now: at(10) })
    expect(await runOf('r')).toMatchObject({ status: 'PROCESSING', updatedAt: at(10) })
    expect(await fixture.store.listStaleRuns(at(10), 10)).toEqual([])
    // A duplicate is no activity.
    await applyStageUpdate(fixture.store, 'r', makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }), { stages: DEFAULT_STAGES, now: at(20) })
    expect((await runOf('r')).updatedAt).toEqual(at(10))
  })
})

describe('failStaleRuns on PrismaStore', () => {
  it('fails each stale run once when two sweepers race over the same runs', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `race-${String(i).padStart(2, '0')}`)
    for (const [i, id] of ids.entries()) await startRun(id, i % 5)
    await startRun('fresh', 40)

    const sweep = (minute: number) => failStaleRuns(fixture.store, { staleAfterMs: 15 * MINUTE, now: at(minute), limit: 100 })
    const [first, second] = await Promise.all([sweep(45), sweep(46)])

    const firstIds = first.map((run) => run.id)
    const secondIds = second.map((run) => run.id)
    expect(firstIds.filter((id) => secondIds.includes(id))).toEqual([])
    expect([...firstIds, ...secondIds].sort()).toEqual(ids)
    for (const [failed, minute] of [[first, 45], [second, 46]] as const) {
      for (const run of failed) {
        // The stored run is the one this sweeper wrote, not overwritten by the other.
        expect(await runOf(run.id)).toEqual({ ...run, completedAt: at(minute), updatedAt: at(minute) })
      }
    }
    expect((await runOf('fresh')).status).toBe('PROCESSING')
  })

  it('does not fail a run whose update commits while the sweeper waits for its lock', async () => {
    await startRun('r', 0)
    const locked = gate()
    const release = gate()
    const update = applyStageUpdate(
      holdingLocks(fixture.store, locked.open, release.opened),
      'r',
      makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'done' }),
      { stages: DEFAULT_STAGES, now: at(20) },
    )
    await locked.opened
    // The sweeper lists the run as stale (the update is not committed), then waits for the lock.
    const sweep = failStaleRuns(fixture.store, { staleAfterMs: 15 * MINUTE, now: at(20), limit: 10 })
    await lockWaiters(1)
    release.open()

    expect((await update).outcome).toBe('applied')
    expect(await sweep).toEqual([])
    expect(await runOf('r')).toMatchObject({ status: 'PROCESSING', error: null, updatedAt: at(20) })
  })

  it('lets updates that wait for the sweeper’s lock find the run FAILED', async () => {
    await startRun('r', 0)
    const locked = gate()
    const release = gate()
    const sweep = failStaleRuns(holdingLocks(fixture.store, locked.open, release.opened), {
      staleAfterMs: 15 * MINUTE,
      now: at(20),
      limit: 10,
    })
    await locked.opened
    const options = { stages: DEFAULT_STAGES, now: at(20) }
    // Two stores, as two instances: one process's writes to one run queue in its own lane
    // (RunLanes) before the database, so both wait for the sweeper's lock only from two stores.
    const otherInstance = createPrismaStore({ prisma: fixture.db.prisma })
    const lateCompleted = applyStageUpdate(fixture.store, 'r', makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'done' }), options)
    const lateProcessing = applyStageUpdate(otherInstance, 'r', makeStageUpdate({ stageNumber: 2, status: 'PROCESSING' }), options)
    await lockWaiters(2)
    release.open()

    expect((await sweep).map((run) => run.id)).toEqual(['r'])
    expect(await lateCompleted).toMatchObject({ outcome: 'applied', run: { status: 'FAILED' } })
    expect(await lateProcessing).toMatchObject({ outcome: 'stale', stage: null, run: { status: 'FAILED' } })
    const snapshot = await fixture.store.getRun('r')
    expect(snapshot?.run).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^No update for more than 15 minutes/) })
    expect(snapshot?.stages.map((stage) => [stage.stageNumber, stage.status, stage.output])).toEqual([[1, 'COMPLETED', 'done']])
  })
})

describe('createStaleRunSweeper on a PrismaClient', () => {
  it('fails a silent run end to end: Express router on a real port, sweep, status, late /complete', async () => {
    let time = T0
    const clock = () => new Date(time)
    const completions: RunState[] = []
    const app = express()
    app.use(
      '/api/pipeline',
      createExpressRouter({
        prisma: fixture.db.prisma,
        secret: STALE_SECRET,
        clock,
        logger: quiet,
        onRunCompleted: (_tx, run) => void completions.push(run),
      }),
    )
    const server = await listen(app)
    try {
      const sweeper = createStaleRunSweeper({ prisma: fixture.db.prisma, staleAfterMs: STALE_AFTER_MS, clock, logger: quiet })
      await runStaleRunScenario(
        {
          fetch: (request) => fetch(request),
          base: `${server.url}/api/pipeline`,
          advance: (ms) => void (time += ms),
          sweep: sweeper.sweep,
          completions,
        },
        'stale-prisma',
      )
    } finally {
      await server.close()
    }
  })
})

describe('createStaleRunSweeper with a backlog larger than batchSize', () => {
  const ids = (count: number, prefix: string) => Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`)

  /** A runner host with `runIds` running dies: each run heartbeated every 10 s, last at minute 0. */
  async function hostDied(runIds: string[]): Promise<void> {
    for (const id of runIds) {
      await startRun(id, 0)
      const beat = await recordHeartbeat(fixture.store, id, { stageNumber: 1, intervalMs: 10_000 }, { now: at(0) })
      expect(beat.outcome).not.toBe('not_found')
    }
  }

  /** Every stored run's status and error, by id. */
  async function storedRuns(): Promise<Map<string, { status: string; error: string | null }>> {
    const rows = await fixture.db.prisma.pipelineRun.findMany({ select: { id: true, status: true, error: true } })
    return new Map(rows.map((row) => [row.id, { status: row.status, error: row.error }]))
  }

  const heartbeatReason = /^No heartbeat for \d+ s \(the runner announced one every 10 seconds\): the runner stopped reporting$/

  it('fails 250 stale runs in ONE sweep with batchSize 100, each once, with the stale reason', async () => {
    const runIds = ids(250, 'host')
    await hostDied(runIds)
    const ended: string[] = []
    const logger = recordingLogger()
    const sweeper = createStaleRunSweeper({
      store: fixture.store,
      staleAfterMs: 15 * MINUTE,
      batchSize: 100,
      clock: () => at(1), // 60 s after the last heartbeat: past 3 missed 10 s intervals, long before 15 minutes
      logger,
      onRunEnded: ({ run, how }) => void ended.push(`${run.id}:${how}`),
    })

    const failed = await sweeper.sweep()

    expect(failed).toHaveLength(250)
    expect(failed.map((run) => run.id).sort()).toEqual(runIds)
    expect(ended.sort()).toEqual(runIds.map((id) => `${id}:swept_as_stale`))
    const stored = await storedRuns()
    expect(stored.size).toBe(250)
    for (const id of runIds) {
      expect(stored.get(id)?.status).toBe('FAILED')
      expect(stored.get(id)?.error).toMatch(heartbeatReason)
    }
    // One warn line per failed run, and no backlog line: the sweep drained it.
    expect(logger.lines).toHaveLength(250)
    expect(logger.lines.filter((line) => line.message.includes('more stale runs remain'))).toEqual([])
    expect(await sweeper.sweep()).toEqual([])
  })

  it('fails each of 250 runs exactly once when two sweepers (two web instances) race over them', async () => {
    const runIds = ids(250, 'race')
    await hostDied(runIds)
    const ended: string[] = []
    const sweeperOf = () =>
      createStaleRunSweeper({
        store: fixture.store,
        staleAfterMs: 15 * MINUTE,
        batchSize: 100,
        clock: () => at(1),
        logger: quiet,
        onRunEnded: ({ run }) => void ended.push(run.id),
      })

    const [first, second] = await Promise.all([sweeperOf().sweep(), sweeperOf().sweep()])

    const firstIds = first.map((run) => run.id)
    const secondIds = new Set(second.map((run) => run.id))
    expect(firstIds.filter((id) => secondIds.has(id))).toEqual([])
    expect(first.length + second.length).toBe(250)
    expect([...firstIds, ...secondIds].sort()).toEqual(runIds)
    expect(ended).toHaveLength(250)
    expect(new Set(ended).size).toBe(250)
    const stored = await storedRuns()
    expect([...stored.values()].filter((run) => run.status === 'FAILED' && heartbeatReason.test(run.error ?? ''))).toHaveLength(250)
  })

  it('stops at its bound with one backlog line, and the next sweep goes on', async () => {
    const batchSize = 10
    const bound = batchSize * MAX_BATCHES_PER_SWEEP
    const runIds = ids(bound + 5, 'backlog')
    for (const id of runIds) await createRun(fixture.store, { id, now: at(0) })
    const logger = recordingLogger()
    const sweeper = createStaleRunSweeper({
      store: fixture.store,
      staleAfterMs: 15 * MINUTE,
      batchSize,
      intervalMs: MINUTE,
      clock: () => at(20),
      logger,
    })
    const backlogLines = () => logger.lines.filter((line) => !line.message.includes('failed stale run'))

    const first = await sweeper.sweep()
    expect(first).toHaveLength(bound)
    expect(backlogLines()).toEqual([
      {
        level: 'warn',
        message:
          `pipeline-status: the stale-run sweep failed ${bound} runs in ${MAX_BATCHES_PER_SWEEP} batches of ${batchSize} (its most per sweep) and more stale runs remain for the next sweep; ` +
          `if this repeats, raise batchSize (now ${batchSize}) or lower intervalMs (now 60000 ms)`,
        details: { failed: bound, batches: MAX_BATCHES_PER_SWEEP, batchSize, intervalMs: MINUTE },
      },
    ])
    expect([...(await storedRuns()).values()].filter((run) => run.status === 'PENDING')).toHaveLength(5)

    const second = await sweeper.sweep()
    expect(second).toHaveLength(5)
    expect(backlogLines()).toHaveLength(1)
    expect([...first, ...second].map((run) => run.id).sort()).toEqual(runIds)
    const stored = await storedRuns()
    for (const id of runIds) {
      expect(stored.get(id)).toEqual({ status: 'FAILED', error: 'No update for more than 15 minutes: the runner stopped reporting' })
    }
  })
})
