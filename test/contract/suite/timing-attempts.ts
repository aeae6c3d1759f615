/**
 * Contract scenarios, stage timing and attempts (DESIGN.md "Timing, attempts and streamed
 * output"): each rule of the attempt fields, and the clamps of `startedAt`, `completedAt` and
 * `nextRetryAt`. The handlers run on a clock the scenario moves, so every instant is exact.
 */
import { RunUpdateEvent } from 'pipeline-status-sdk'
import { describe, expect } from 'vitest'
import { makeStageUpdate } from '../../support/fixtures.js'
import { expectProblem } from './harness.js'
import { readEvents } from './read-events.js'
import type { ContractContext } from './use-target.js'

const T0 = Date.parse('2026-04-01T09:00:00.000Z')
const MINUTE = 60_000
const HOUR = 60 * MINUTE
const iso = (ms: number) => new Date(ms).toISOString()

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeTimingAttempts({ name, scenario }: ContractContext): void {
  describe(`${name}: stage timing and attempts`, () => {
    // The handlers' clock: each scenario starts at T0 and moves it between requests.
    let now = T0
    const at = (ms: number) => {
      now = ms
    }
    const clock = { clock: () => new Date(now), clockSkewToleranceMs: 5 * MINUTE }
    const retrying = (attempt: number, fields: Record<string, unknown> = {}) =>
      makeStageUpdate({ stageNumber: 2, attempt, maxAttempts: 3, ...fields })

    /** A run whose stage 2 is PROCESSING on attempt 1 with progress, started at T0 + 1 min. */
    async function runOnAttempt1(api: Parameters<Parameters<typeof scenario>[1]>[0]): Promise<string> {
      at(T0)
      const id = await api.createRun()
      at(T0 + MINUTE)
      await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED' }))
      await api.stageOk(id, retrying(1, { progress: { seq: 3, percent: 30 }, output: 'half done' }))
      return id
    }

    scenario(
      'a higher attempt wins: applied (not a duplicate), it resets progress and output, and its fields are in the status document',
      async (api) => {
        const id = await runOnAttempt1(api)
        const etag = (await api.getStatus(id)).headers.get('etag')
        const events = readEvents(await api.send({ path: `/${encodeURIComponent(id)}/events` }))
        expect((await events.next()).event).toBe('snapshot')
        at(T0 + 2 * MINUTE)
        const retry = await api.stageOk(id, retrying(2, { lastError: 'model timed out', nextRetryAt: iso(T0 + 2 * MINUTE + 30_000) }))
        const expected = {
          status: 'PROCESSING',
          attempt: 2,
          maxAttempts: 3,
          lastError: 'model timed out',
          nextRetryAt: iso(T0 + 2 * MINUTE + 30_000),
          progress: null,
          output: null,
          startedAt: iso(T0 + MINUTE),
        }
        expect(retry).toMatchObject({ outcome: 'applied', stage: expected })
        expect((await api.status(id)).stages[1]).toMatchObject(expected)
        expect((await api.getStatus(id)).headers.get('etag')).not.toBe(etag)
        // The live update event carries them too.
        const update = await events.next()
        expect(RunUpdateEvent.parse(JSON.parse(update.data)).stages).toEqual([expect.objectContaining(expected)])
        await events.cancel()

        // The attempt starts: the same attempt with nextRetryAt null is a change; again, a duplicate.
        at(T0 + 3 * MINUTE)
        const started = await api.stageOk(id, retrying(2, { nextRetryAt: null }))
        expect(started).toMatchObject({ outcome: 'applied', stage: { attempt: 2, nextRetryAt: null, lastError: 'model timed out' } })
        expect(await api.stageOk(id, retrying(2, { nextRetryAt: null }))).toMatchObject({ outcome: 'duplicate' })
      },
      clock,
    )

    scenario(
      'a lower attempt is stale and changes nothing',
      async (api) => {
        const id = await runOnAttempt1(api)
        await api.stageOk(id, retrying(2, { lastError: 'boom' }))
        const before = await api.status(id)
        const late = await api.stageOk(id, retrying(1, { progress: { seq: 9, percent: 90 } }))
        expect(late).toMatchObject({ outcome: 'stale', stage: { attempt: 2, progress: null } })
        expect(await api.status(id)).toEqual(before)
      },
      clock,
    )

    scenario(
      'an update without attempt leaves the stored attempt unchanged and is never stale for it',
      async (api) => {
        const id = await runOnAttempt1(api)
        await api.stageOk(id, retrying(3, { lastError: 'again' }))
        const progress = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, progress: { seq: 0, percent: 5 } }))
        expect(progress).toMatchObject({ outcome: 'applied', stage: { attempt: 3, maxAttempts: 3, lastError: 'again', progress: { seq: 0, percent: 5 } } })
        // A heartbeat's progress, which never carries an attempt, is not stale for it either.
        expect(await api.heartbeatOk(id, { stageNumber: 2, progress: { seq: 1, percent: 10 } })).toMatchObject({
          outcome: 'applied',
          stage: { attempt: 3, progress: { seq: 1 } },
        })
      },
      clock,
    )

    scenario(
      'final statuses keep the stored attempt fields',
      async (api) => {
        const id = await runOnAttempt1(api)
        await api.stageOk(id, retrying(2, { lastError: 'model timed out', nextRetryAt: null }))
        at(T0 + 4 * MINUTE)
        const done = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED', output: 'done' }))
        expect(done).toMatchObject({
          outcome: 'applied',
          stage: { status: 'COMPLETED', attempt: 2, maxAttempts: 3, lastError: 'model timed out', nextRetryAt: null, completedAt: iso(T0 + 4 * MINUTE) },
        })
        // The same with a failure, which fails the run: the attempt that failed is what it shows.
        await api.stageOk(id, retrying(1))
        expect(await api.stageOk(id, makeStageUpdate({ stageNumber: 3, attempt: 3, maxAttempts: 3, lastError: 'x' }))).toMatchObject({ outcome: 'applied' })
        const failed = await api.stageOk(id, makeStageUpdate({ stageNumber: 3, status: 'FAILED', output: 'gave up' }))
        expect(failed).toMatchObject({ stage: { status: 'FAILED', attempt: 3, lastError: 'x' }, run: { status: 'FAILED' } })
      },
      clock,
    )

    scenario(
      'a stage cancelled while it waits to retry keeps its attempt but no nextRetryAt: stored, in the status document and the live update',
      async (api) => {
        const id = await runOnAttempt1(api)
        at(T0 + 2 * MINUTE)
        await api.stageOk(id, retrying(2, { lastError: 'model timed out', nextRetryAt: iso(T0 + 30 * MINUTE) }))
        const events = readEvents(await api.send({ path: `/${encodeURIComponent(id)}/events` }))
        expect((await events.next()).event).toBe('snapshot')
        at(T0 + 3 * MINUTE)
        expect(await api.cancelOk(id, { reason: 'stopped by the user' })).toMatchObject({ outcome: 'applied', run: { status: 'CANCELLED' } })
        const expected = {
          stageNumber: 2,
          status: 'CANCELLED',
          attempt: 2,
          maxAttempts: 3,
          lastError: 'model timed out',
          nextRetryAt: null,
          completedAt: iso(T0 + 3 * MINUTE),
        }
        expect((await api.status(id)).stages[1]).toMatchObject(expected)
        const update = await events.next()
        expect(update.event).toBe('update')
        expect(RunUpdateEvent.parse(JSON.parse(update.data)).stages).toEqual([expect.objectContaining(expected)])
        await events.cancel()

        // Cancelled by its own runner (a CANCELLED stage update) while waiting: the same.
        const other = await runOnAttempt1(api)
        at(T0 + 5 * MINUTE)
        await api.stageOk(other, retrying(2, { lastError: 'rate limited', nextRetryAt: iso(T0 + 30 * MINUTE) }))
        at(T0 + 6 * MINUTE)
        const cancelled = await api.stageOk(other, makeStageUpdate({ stageNumber: 2, status: 'CANCELLED' }))
        const direct = { ...expected, lastError: 'rate limited', completedAt: iso(T0 + 6 * MINUTE) }
        expect(cancelled).toMatchObject({ outcome: 'applied', stage: direct, run: { status: 'CANCELLED' } })
        expect((await api.status(other)).stages[1]).toMatchObject(direct)
      },
      clock,
    )

    scenario(
      'attempt fields are valid only with PROCESSING, the last three only with attempt: 400 naming the field, nothing changes',
      async (api) => {
        const id = await runOnAttempt1(api)
        const before = await api.status(id)
        const cases: Array<[Record<string, unknown>, string[]]> = [
          [{ status: 'COMPLETED', attempt: 2 }, ['attempt']],
          [{ status: 'FAILED', lastError: 'x', nextRetryAt: null }, ['lastError', 'nextRetryAt']],
          [{ maxAttempts: 3 }, ['maxAttempts']],
          [{ attempt: 3, maxAttempts: 2 }, ['maxAttempts']],
          [{ attempt: 0 }, ['attempt']],
          [{ attempt: 2, lastError: 'x'.repeat(2001) }, ['lastError']],
        ]
        for (const [fields, named] of cases) {
          const problem = await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber: 2, ...fields })), 400, 'validation_failed')
          expect(problem.errors?.map((error) => error.field).sort()).toEqual(named)
        }
        expect(await api.status(id)).toEqual(before)
      },
      clock,
    )

    scenario(
      'nextRetryAt is stored clamped to [now, now + 24 h]',
      async (api) => {
        const id = await runOnAttempt1(api)
        at(T0 + 10 * MINUTE)
        const past = await api.stageOk(id, retrying(2, { nextRetryAt: iso(T0) }))
        expect(past.stage?.nextRetryAt).toBe(iso(T0 + 10 * MINUTE))
        const far = await api.stageOk(id, retrying(3, { nextRetryAt: iso(T0 + 48 * HOUR) }))
        expect(far.stage?.nextRetryAt).toBe(iso(T0 + 10 * MINUTE + 24 * HOUR))
        const inside = await api.stageOk(id, retrying(3, { nextRetryAt: iso(T0 + 11 * MINUTE) }))
        expect(inside.stage?.nextRetryAt).toBe(iso(T0 + 11 * MINUTE))
      },
      clock,
    )

    scenario(
      "a stage starts at the server's receipt of its first update, the run at its first stage's; completedAt is clamped to [start, now + tolerance]",
      async (api) => {
        at(T0)
        const id = await api.createRun()
        expect((await api.status(id)).run.startedAt).toBeNull()

        at(T0 + 10 * MINUTE)
        const first = await api.stageOk(id, makeStageUpdate())
        expect(first).toMatchObject({ stage: { startedAt: iso(T0 + 10 * MINUTE) }, run: { startedAt: iso(T0 + 10 * MINUTE) } })

        // Sent before the stage started (a clock behind): stored as its start, duration 0, not negative.
        at(T0 + 20 * MINUTE)
        const early = await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', completedAt: iso(T0 + 5 * MINUTE) }))
        expect(early.stage).toMatchObject({ startedAt: iso(T0 + 10 * MINUTE), completedAt: iso(T0 + 10 * MINUTE) })

        // Stage 2 starts later; the run keeps its first stage's start. Far-future: now + tolerance.
        at(T0 + 30 * MINUTE)
        await api.stageOk(id, makeStageUpdate({ stageNumber: 2 }))
        const ahead = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED', completedAt: iso(T0 + 9 * HOUR) }))
        expect(ahead).toMatchObject({
          stage: { startedAt: iso(T0 + 30 * MINUTE), completedAt: iso(T0 + 35 * MINUTE) },
          run: { startedAt: iso(T0 + 10 * MINUTE) },
        })

        // A stage whose first report is final starts when it completed.
        at(T0 + 40 * MINUTE)
        const direct = await api.stageOk(id, makeStageUpdate({ stageNumber: 3, status: 'COMPLETED', completedAt: iso(T0 + 38 * MINUTE) }))
        expect(direct.stage).toMatchObject({ startedAt: iso(T0 + 38 * MINUTE), completedAt: iso(T0 + 38 * MINUTE) })

        // One whose first report is final with an instant before the run started: no stage starts
        // before its run, so it is stored as the run's start (not merely its creation).
        const beforeRun = await api.stageOk(id, makeStageUpdate({ stageNumber: 4, status: 'COMPLETED', completedAt: iso(T0 + 2 * MINUTE) }))
        expect(beforeRun).toMatchObject({
          stage: { startedAt: iso(T0 + 10 * MINUTE), completedAt: iso(T0 + 10 * MINUTE) },
          run: { startedAt: iso(T0 + 10 * MINUTE) },
        })

        const status = await api.status(id)
        expect(status.run.startedAt).toBe(iso(T0 + 10 * MINUTE))
        expect(status.stages.map((stage) => [stage.startedAt, stage.completedAt])).toEqual([
          [iso(T0 + 10 * MINUTE), iso(T0 + 10 * MINUTE)],
          [iso(T0 + 30 * MINUTE), iso(T0 + 35 * MINUTE)],
          [iso(T0 + 38 * MINUTE), iso(T0 + 38 * MINUTE)],
          [iso(T0 + 10 * MINUTE), iso(T0 + 10 * MINUTE)],
        ])
      },
      clock,
    )

    scenario(
      "a run whose first stage update is final starts then, in the transaction that ends it",
      async (api) => {
        at(T0)
        const id = await api.createRun()
        at(T0 + MINUTE)
        const failed = await api.stageOk(id, makeStageUpdate({ status: 'FAILED', output: 'no input', completedAt: iso(T0 + 30_000) }))
        expect(failed).toMatchObject({ stage: { startedAt: iso(T0 + 30_000) }, run: { status: 'FAILED', startedAt: iso(T0 + 30_000), completedAt: iso(T0 + 30_000) } })
        expect((await api.status(id)).run).toMatchObject({ startedAt: iso(T0 + 30_000), completedAt: iso(T0 + 30_000) })
      },
      { ...clock, onRunEnded: () => {} },
    )

    scenario('W3C trace context headers change no answer, valid or not (docs/contract.md "Headers")', async (api) => {
      at(T0)
      const id = await api.createRun()
      const traced = (traceparent: string) => ({ headers: { traceparent, tracestate: 'vendor=1' } })
      const first = await api.stage(id, retrying(1), traced('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'))
      expect(first.status).toBe(200)
      expect(await first.json()).toMatchObject({ outcome: 'applied', stage: { attempt: 1 } })
      const second = await api.stage(id, retrying(2), traced('not a traceparent'))
      expect(second.status).toBe(200)
      expect(await second.json()).toMatchObject({ outcome: 'applied', stage: { attempt: 2 } })
      const again = await api.stage(id, retrying(2), traced('00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01'))
      expect(await again.json()).toMatchObject({ outcome: 'duplicate' })
      const stage = (await api.status(id)).stages.find((candidate) => candidate.stageNumber === 2)
      // The stored trace context is not part of the status document.
      expect(Object.keys(stage ?? {})).not.toContain('traceparent')
    }, clock)
  })
}
