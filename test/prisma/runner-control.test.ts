/**
 * Runner control on the real store, driven by raw HTTP requests to the handlers (the runner's
 * side is played by hand here; the client-driven version lives with the client): heartbeats keep
 * a long stage alive, a killed runner is swept once with its reason, the app's `onRunEnded` hook
 * runs exactly once per run however the run ends, also when every way of ending it races, and
 * the retention sweep deletes expired runs with their stages, once, with several sweeps at once.
 */
import { DEFAULT_STAGES, HeartbeatResponse, StageUpdateResponse } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers, createStaleRunSweeper, type OnRunEnded, type RunEndedInput } from 'pipeline-status-sdk/server'
import { applyStageUpdate, cancelRun, completeRun, createRun, failStaleRuns } from '../../src/core/operations.js'
import { describe, expect, it } from 'vitest'
import type { PrismaClient } from '../../src/generated/prisma/client.js'
import { makeCompleteRun, makeStageUpdate } from '../support/fixtures.js'
import { useTestDatabase } from '../support/use-test-database.js'

const SECRET = 'runner-control-secret'
const STALE_AFTER_MS = 60_000
const T0 = Date.parse('2026-03-01T08:00:00.000Z')

const fixture = useTestDatabase({ poolSize: 10 })

/** A clock the test moves by hand. */
function manualClock() {
  let time = T0
  return { now: () => new Date(time), advance: (ms: number) => void (time += ms) }
}

/** The handlers and a sweeper on the same store and clock, recording every onRunEnded call. */
function setup() {
  const clock = manualClock()
  const ended: Array<Pick<RunEndedInput, 'how'> & { runId: string; status: string }> = []
  const onRunEnded: OnRunEnded<unknown> = ({ run, how }) => void ended.push({ runId: run.id, how, status: run.status })
  const handlers = createPipelineStatusHandlers({
    store: fixture.store,
    secret: SECRET,
    clock: clock.now,
    onRunEnded,
    logger: { warn: () => {}, error: () => {} },
  })
  const sweeper = createStaleRunSweeper({
    store: fixture.store,
    staleAfterMs: STALE_AFTER_MS,
    clock: clock.now,
    onRunEnded,
    logger: { warn: () => {}, error: () => {} },
  })
  const post = async (path: string, body?: unknown) => {
    const response = await handlers.fetch(
      new Request(`http://app.test/api/pipeline${path}`, {
        method: 'POST',
        headers: { 'x-webhook-secret': SECRET, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      }),
    )
    expect(response.status, await response.clone().text()).toBe(200)
    return (await response.json()) as unknown
  }
  const heartbeat = async (id: string, body?: unknown) => HeartbeatResponse.parse(await post(`/${id}/heartbeat`, body))
  const stage = async (id: string, body: unknown) => StageUpdateResponse.parse(await post(`/${id}/stage-update`, body))
  return { clock, ended, handlers, sweeper, heartbeat, stage }
}

describe('runner control on PostgreSQL, driven by raw requests', () => {
  for (const [label, body] of [
    ['announcing a 20 s interval', { stageNumber: 1, intervalMs: 20_000 }],
    ['with bare heartbeats (judged by staleAfterMs)', undefined],
  ] as const) {
    it(`never sweeps a run whose stage takes 10 × staleAfterMs while it heartbeats every 20 s, ${label}`, async () => {
      const { clock, ended, sweeper, heartbeat, stage } = setup()
      const id = 'long-stage'
      await createRun(fixture.store, { id, now: clock.now() })
      await stage(id, makeStageUpdate())
      for (let elapsed = 0; elapsed < 10 * STALE_AFTER_MS; elapsed += 20_000) {
        clock.advance(20_000)
        const beat = await heartbeat(id, body)
        expect(beat.run.status).toBe('PROCESSING')
        expect(await sweeper.sweep()).toEqual([])
      }
      const done = await stage(id, makeStageUpdate({ status: 'COMPLETED', output: 'after 10 minutes' }))
      expect(done).toMatchObject({ outcome: 'applied', run: { status: 'PROCESSING', error: null } })
      expect(ended).toEqual([])
    })
  }

  it('sweeps a run whose runner was killed once, after 3 missed intervals, storing the reason; the runner learns it', async () => {
    const { clock, ended, sweeper, heartbeat, stage } = setup()
    const id = 'killed-runner'
    await createRun(fixture.store, { id, now: clock.now() })
    await stage(id, makeStageUpdate())
    for (let beat = 0; beat < 5; beat++) {
      clock.advance(10_000)
      await heartbeat(id, { stageNumber: 1, intervalMs: 10_000, progress: { seq: beat, current: beat, total: 10 } })
    }
    // Killed: no heartbeat any more. Within 3 intervals it is still alive…
    clock.advance(30_000)
    expect(await sweeper.sweep()).toEqual([])
    // …past them it is swept, once, with why.
    clock.advance(15_000)
    const swept = await sweeper.sweep()
    expect(swept.map((run) => [run.id, run.status, run.error])).toEqual([
      [id, 'FAILED', 'No heartbeat for 45 s (the runner announced one every 10 seconds): the runner stopped reporting'],
    ])
    clock.advance(60_000)
    expect(await sweeper.sweep()).toEqual([])
    expect(ended).toEqual([{ runId: id, how: 'swept_as_stale', status: 'FAILED' }])

    const stored = await fixture.store.getRun(id)
    expect(stored?.run).toMatchObject({ status: 'FAILED', error: swept[0]?.error })
    expect(stored?.stages[0]?.progress).toEqual({ seq: 4, current: 4, total: 10 })
    // A runner that was only paused learns it at its next report.
    expect((await heartbeat(id, { stageNumber: 1 })).run).toMatchObject({ status: 'FAILED', error: swept[0]?.error })
  })

  it('a heartbeat between the sweep’s read and its write keeps the run alive (no new version, so the write checks the activity)', async () => {
    const { clock, heartbeat, stage } = setup()
    const id = 'raced-heartbeat'
    await createRun(fixture.store, { id, now: clock.now() })
    await stage(id, makeStageUpdate())
    clock.advance(2 * STALE_AFTER_MS)
    const read = await fixture.store.readRun(id)
    if (!read) throw new Error('run not found')
    await heartbeat(id)
    const written = await fixture.store.writeRun({
      run: { ...read.run, status: 'FAILED', error: 'stale', completedAt: clock.now(), updatedAt: clock.now() },
      expectedVersion: read.version,
      version: read.version + 1,
      expectedLastActivityAt: read.run.lastActivityAt ?? null,
    })
    expect(written).toBe(false)
    expect((await fixture.store.getRun(id))?.run.status).toBe('PROCESSING')
  })

  it('runs onRunEnded exactly once per run while the last stage, a failed stage, /complete, /cancel and the sweep race', async () => {
    const calls = new Map<string, string[]>()
    const onRunEnded: OnRunEnded<unknown> = async ({ tx, run, how }) => {
      // Inside the ending write's transaction: the hook's own statement runs on its client.
      await (tx as PrismaClient).$queryRawUnsafe('SELECT 1')
      calls.set(run.id, [...(calls.get(run.id) ?? []), `${how}:${run.status}`])
    }
    const now = new Date(T0)
    const later = new Date(T0 + 10 * STALE_AFTER_MS)
    const ids = Array.from({ length: 24 }, (_, index) => `race-${index}`)
    for (const id of ids) {
      await createRun(fixture.store, { id, now })
      for (const n of [1, 2, 3, 4]) {
        await applyStageUpdate(fixture.store, id, makeStageUpdate({ stageNumber: n, status: 'COMPLETED' }), { stages: DEFAULT_STAGES, now })
      }
      await applyStageUpdate(fixture.store, id, makeStageUpdate({ stageNumber: 5 }), { stages: DEFAULT_STAGES, now })
    }
    const options = { stages: DEFAULT_STAGES, now: later, onRunEnded }
    const settled = await Promise.allSettled(
      ids.flatMap((id) => [
        applyStageUpdate(fixture.store, id, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED' }), options),
        applyStageUpdate(fixture.store, id, makeStageUpdate({ stageNumber: 5, status: 'FAILED', output: 'boom' }), options),
        completeRun(fixture.store, id, makeCompleteRun({ status: 'FAILED', error: 'gave up' }), { now: later, onRunEnded }),
        cancelRun(fixture.store, id, { reason: 'user' }, options),
        failStaleRuns(fixture.store, { staleAfterMs: STALE_AFTER_MS, now: later, limit: 100, onRunEnded }),
      ]),
    )
    expect(settled.filter((result) => result.status === 'rejected')).toEqual([])
    for (const id of ids) {
      const run = (await fixture.store.getRun(id))?.run
      const hookCalls = calls.get(id) ?? []
      expect(hookCalls, id).toHaveLength(1)
      expect(hookCalls[0]?.endsWith(`:${run?.status}`), `${id}: ${hookCalls[0]} vs ${run?.status}`).toBe(true)
    }
  })

  it('a throwing onRunEnded rolls the ending write back, on the hot path’s stage update and on cancel', async () => {
    const now = new Date(T0)
    const failing: OnRunEnded<unknown> = () => {
      throw new Error('notification service down')
    }
    await createRun(fixture.store, { id: 'rollback', now })
    await applyStageUpdate(fixture.store, 'rollback', makeStageUpdate(), { stages: DEFAULT_STAGES, now })
    await expect(
      applyStageUpdate(fixture.store, 'rollback', makeStageUpdate({ status: 'FAILED' }), { stages: DEFAULT_STAGES, now, onRunEnded: failing }),
    ).rejects.toThrow('notification service down')
    await expect(cancelRun(fixture.store, 'rollback', {}, { stages: DEFAULT_STAGES, now, onRunEnded: failing })).rejects.toThrow(
      'notification service down',
    )
    const snapshot = await fixture.store.getRun('rollback')
    expect(snapshot?.run.status).toBe('PROCESSING')
    expect(snapshot?.stages.map((s) => s.status)).toEqual(['PROCESSING'])
  })

  it('the retention sweep deletes expired finished runs with their stages, per status, in bounded batches, once across concurrent sweeps', async () => {
    const clock = manualClock()
    const DAY = 86_400_000
    const make = async (id: string, status: 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'PROCESSING') => {
      await createRun(fixture.store, { id, now: clock.now() })
      await applyStageUpdate(fixture.store, id, makeStageUpdate(), { stages: DEFAULT_STAGES, now: clock.now() })
      if (status === 'COMPLETED') await completeRun(fixture.store, id, makeCompleteRun(), { now: clock.now() })
      if (status === 'FAILED') await applyStageUpdate(fixture.store, id, makeStageUpdate({ status: 'FAILED' }), { stages: DEFAULT_STAGES, now: clock.now() })
      if (status === 'CANCELLED') await cancelRun(fixture.store, id, {}, { stages: DEFAULT_STAGES, now: clock.now() })
    }
    for (let i = 0; i < 12; i++) await make(`old-done-${i}`, 'COMPLETED')
    await make('old-failed', 'FAILED')
    await make('old-cancelled', 'CANCELLED')
    await make('old-running', 'PROCESSING')
    clock.advance(8 * DAY)
    await make('new-done', 'COMPLETED')
    clock.advance(DAY)

    const sweepers = Array.from({ length: 3 }, () =>
      createStaleRunSweeper({
        store: fixture.store,
        staleAfterMs: 365 * DAY,
        clock: clock.now,
        batchSize: 5,
        retention: { COMPLETED: 7 * DAY, FAILED: 30 * DAY },
        logger: { warn: () => {}, error: () => {} },
      }),
    )
    const first = await Promise.all(sweepers.map((sweeper) => sweeper.purge()))
    // Three bounded batches of at most 5, never a run deleted twice.
    expect(first.reduce((sum, deleted) => sum + (deleted.COMPLETED ?? 0), 0)).toBe(12)
    for (const deleted of first) expect(deleted.COMPLETED ?? 0).toBeLessThanOrEqual(5)
    expect(await sweepers[0]?.purge()).toEqual({ COMPLETED: 0, FAILED: 0 })

    const left = await fixture.db.prisma.pipelineRun.findMany({ select: { id: true }, orderBy: { id: 'asc' } })
    expect(left.map((run) => run.id)).toEqual(['new-done', 'old-cancelled', 'old-failed', 'old-running'])
    const orphanStages = await fixture.db.prisma.stageOutput.count({ where: { runId: { startsWith: 'old-done' } } })
    expect(orphanStages).toBe(0)
  })
})
