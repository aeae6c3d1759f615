import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { CompleteRun } from '../contract/complete.js'
import type { StageUpdate } from '../contract/stage-update.js'
import { DEFAULT_STAGES, defineStages, type StageCatalogue } from '../contract/stages.js'
import { isFinalStatus } from '../contract/status.js'
import { decideHeartbeat, decideStaleRun, MISSED_HEARTBEATS_LIMIT, staleRunCutoff } from './run-liveness.js'
import { clampRunnerInstant, DEFAULT_CLOCK_SKEW_TOLERANCE_MS, describeClampedInstant } from './runner-instants.js'
import { decideProgress } from './stage-progress.js'
import { decideCancel, decideCompletion, decideStageUpdate, newRun, runEndReason } from './state-machine.js'
import type { RunState, StageState } from './state.js'

const NOW = new Date('2026-01-01T00:00:00.000Z')
const LATER = new Date('2026-01-01T00:00:05.000Z')

type Event = { kind: 'stage'; update: StageUpdate } | { kind: 'complete'; body: CompleteRun }
interface World {
  run: RunState
  stages: Map<number, StageState>
}

const RANK = { PENDING: 0, PROCESSING: 1, COMPLETED: 2, FAILED: 2, CANCELLED: 2 } as const

function world(): World {
  return { run: newRun('r', NOW), stages: new Map() }
}

/** Applies one event to a world the way a store does, and says what happened. */
function apply(w: World, event: Event, catalogue: StageCatalogue = DEFAULT_STAGES, now = NOW): string {
  if (event.kind === 'complete') {
    const d = decideCompletion({ run: w.run, body: event.body, now })
    if (d.outcome === 'applied') w.run = d.run
    return d.outcome
  }
  const d = decideStageUpdate({
    run: w.run,
    stage: w.stages.get(event.update.stageNumber),
    update: event.update,
    stages: catalogue,
    now,
  })
  if (d.outcome === 'applied') {
    w.stages.set(d.stage.stageNumber, d.stage)
    w.run = d.run
  }
  return d.outcome
}

function snapshot(w: World) {
  return { run: w.run, stages: [...w.stages.values()].sort((a, b) => a.stageNumber - b.stageNumber) }
}

const stageUpdate = (stages: number) =>
  fc.record({
    stageNumber: fc.integer({ min: 1, max: stages }),
    status: fc.constantFrom('PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED' as const),
    output: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
  }).map(({ stageNumber, status, output }): Event => ({
    kind: 'stage',
    update: { stageNumber, stageName: `Stage ${stageNumber}`, status, ...(output === undefined ? {} : { output }) },
  }))

const completion: fc.Arbitrary<Event> = fc
  .constantFrom('COMPLETED', 'FAILED', 'CANCELLED' as const)
  .map((status) => ({ kind: 'complete', body: { status } }))

const events = (stages: number) =>
  fc.array(fc.oneof({ weight: 6, arbitrary: stageUpdate(stages) }, { weight: 1, arbitrary: completion }), {
    maxLength: 40,
  })

describe('state machine properties', () => {
  const catalogue = DEFAULT_STAGES

  it('never moves a stage backwards or out of a final status', () => {
    fc.assert(
      fc.property(events(5), (seq) => {
        const w = world()
        for (const event of seq) {
          const before = new Map(w.stages)
          apply(w, event, catalogue)
          for (const [n, prev] of before) {
            const next = w.stages.get(n)
            expect(next).toBeDefined()
            expect(RANK[next!.status]).toBeGreaterThanOrEqual(RANK[prev.status])
            if (isFinalStatus(prev.status)) expect(next).toBe(prev)
          }
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('never changes a finished run’s status', () => {
    fc.assert(
      fc.property(events(5), (seq) => {
        const w = world()
        let finished: string | undefined
        for (const event of seq) {
          apply(w, event, catalogue)
          if (finished) expect(w.run.status).toBe(finished)
          else if (isFinalStatus(w.run.status)) finished = w.run.status
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('keeps every stage consistent with the run: failed or cancelled stages only in a run that ended so', () => {
    fc.assert(
      fc.property(events(5), (seq) => {
        const w = world()
        for (const event of seq) {
          apply(w, event, catalogue)
          for (const s of w.stages.values()) {
            if (s.status === 'FAILED' || s.status === 'CANCELLED') expect(w.run.status).toBe(s.status)
            if (s.status === 'COMPLETED' && s.stageNumber === catalogue.length) {
              expect(isFinalStatus(w.run.status)).toBe(true)
            }
          }
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('treats an update sent twice in a row as a no-op', () => {
    fc.assert(
      fc.property(events(5), (seq) => {
        const w = world()
        for (const event of seq) {
          apply(w, event, catalogue)
          const before = snapshot(w)
          const second = apply(w, event, catalogue, LATER)
          expect(second).not.toBe('applied')
          expect(snapshot(w)).toEqual(before)
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('gives the same result whatever retries of earlier updates arrive later', () => {
    fc.assert(
      fc.property(
        events(5),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 20 }),
        (seq, retries) => {
          const clean = world()
          for (const event of seq) apply(clean, event, catalogue)

          // Insert copies of earlier events at later positions.
          const withRetries = [...seq]
          for (const [a, b] of retries) {
            if (withRetries.length === 0) break
            const from = a % withRetries.length
            const to = from + 1 + (b % (withRetries.length - from))
            withRetries.splice(to, 0, withRetries[from]!)
          }
          const retried = world()
          for (const event of withRetries) apply(retried, event, catalogue)
          expect(snapshot(retried)).toEqual(snapshot(clean))
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('ends the run exactly as the first finishing event says', () => {
    const last = catalogue.length
    fc.assert(
      fc.property(events(5), (seq) => {
        const w = world()
        // An independent oracle: before the run ends, an update applies iff it moves its stage
        // forward out of a non-final status; the first such finishing event decides the outcome.
        const model = new Map<number, keyof typeof RANK>()
        let expected: string | undefined
        for (const event of seq) {
          apply(w, event, catalogue)
          if (expected) continue
          if (event.kind === 'complete') {
            expected = event.body.status
            continue
          }
          const { stageNumber: n, status } = event.update
          const current = model.get(n) ?? 'PENDING'
          if (isFinalStatus(current) || RANK[status] <= RANK[current]) continue
          model.set(n, status)
          if (status === 'FAILED' || status === 'CANCELLED') expected = status
          else if (status === 'COMPLETED' && n === last) expected = 'COMPLETED'
        }
        if (expected) expect(w.run.status).toBe(expected)
        else expect(isFinalStatus(w.run.status)).toBe(false)
        expect(w.run.completedAt !== null).toBe(expected !== undefined)
      }),
      { numRuns: 3000 },
    )
  })

  it('works for any catalogue size', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), (size) => {
        const stages = defineStages(Array.from({ length: size }, (_, i) => `s${i + 1}`))
        const w = world()
        for (let n = 1; n <= size; n++) {
          apply(w, { kind: 'stage', update: { stageNumber: n, stageName: `s${n}`, status: 'PROCESSING' } }, stages)
          expect(w.run.status).toBe('PROCESSING')
          apply(w, { kind: 'stage', update: { stageNumber: n, stageName: `s${n}`, status: 'COMPLETED' } }, stages)
        }
        expect(w.run.status).toBe('COMPLETED')
      }),
    )
  })
})

describe('state machine examples (the original handlers’ defects)', () => {
  const stage = (stageNumber: number, status: StageUpdate['status'], output?: string): Event => ({
    kind: 'stage',
    update: { stageNumber, stageName: `Stage ${stageNumber}`, status, ...(output === undefined ? {} : { output }) },
  })

  it('initialising marks the run PROCESSING', () => {
    const w = world()
    expect(apply(w, stage(1, 'PROCESSING'))).toBe('applied')
    expect(w.run.status).toBe('PROCESSING')
    expect(w.stages.get(1)?.status).toBe('PROCESSING')
  })

  it('a late PROCESSING never wipes a COMPLETED stage’s output', () => {
    const w = world()
    apply(w, stage(2, 'PROCESSING', ''))
    apply(w, stage(2, 'COMPLETED', '{"a":1}'))
    expect(apply(w, stage(2, 'PROCESSING', ''))).toBe('stale')
    expect(w.stages.get(2)).toMatchObject({ status: 'COMPLETED', output: '{"a":1}' })
  })

  it('a final update without output keeps what PROCESSING stored', () => {
    const w = world()
    apply(w, stage(2, 'PROCESSING', 'partial'))
    apply(w, stage(2, 'COMPLETED'))
    expect(w.stages.get(2)?.output).toBe('partial')
  })

  it('a late FAILED never turns a COMPLETED run FAILED', () => {
    const w = world()
    apply(w, stage(5, 'COMPLETED', 'report'))
    expect(w.run.status).toBe('COMPLETED')
    expect(apply(w, stage(3, 'FAILED', 'boom'))).toBe('conflict')
    expect(w.run.status).toBe('COMPLETED')
    expect(w.stages.has(3)).toBe(false)
  })

  it('fills in a late stage that agrees with the outcome', () => {
    const w = world()
    apply(w, stage(5, 'COMPLETED', 'five'))
    expect(apply(w, stage(4, 'COMPLETED', 'four'))).toBe('applied')
    expect(w.stages.get(4)).toMatchObject({ status: 'COMPLETED', output: 'four' })
    expect(apply(w, stage(3, 'PROCESSING'))).toBe('stale')
    expect(w.stages.has(3)).toBe(false)
  })

  it('/complete cannot overwrite FAILED or CANCELLED with COMPLETED', () => {
    for (const status of ['FAILED', 'CANCELLED'] as const) {
      const w = world()
      apply(w, stage(2, status, 'x'))
      expect(apply(w, { kind: 'complete', body: { status: 'COMPLETED' } })).toBe('conflict')
      expect(w.run.status).toBe(status)
    }
  })

  it('the first /complete after auto-completion is applied once, so its results are stored', () => {
    const w = world()
    apply(w, stage(5, 'COMPLETED'))
    const d1 = decideCompletion({ run: w.run, body: { status: 'COMPLETED' }, now: LATER })
    expect(d1).toMatchObject({ outcome: 'applied', runCompletionHook: true })
    if (d1.outcome === 'applied') w.run = d1.run
    expect(w.run.completedAt).toEqual(NOW)
    expect(w.run.completionReceivedAt).toEqual(LATER)
    expect(decideCompletion({ run: w.run, body: { status: 'COMPLETED' }, now: LATER }).outcome).toBe('duplicate')
  })

  it('a FAILED stage sets the run error from its output', () => {
    const w = world()
    apply(w, stage(3, 'FAILED', 'model timed out'))
    expect(w.run).toMatchObject({ status: 'FAILED', error: 'model timed out' })
    const v = world()
    apply(v, stage(3, 'FAILED'))
    expect(v.run.error).toBe('Stage 3 (Stage 3) failed')
  })

  it("a /complete FAILED after a FAILED stage is applied once, but the run keeps the stage's error and completedAt (docs/other-languages.md)", () => {
    const w = world()
    apply(w, stage(3, 'FAILED', 'model timed out'))
    const { completedAt } = w.run
    const complete = decideCompletion({ run: w.run, body: { status: 'FAILED', error: 'pipeline aborted', completedAt: LATER.toISOString() }, now: LATER })
    expect(complete).toMatchObject({ outcome: 'applied', runCompletionHook: true, statusChanged: false })
    if (complete.outcome !== 'applied') return
    expect(complete.run).toMatchObject({ status: 'FAILED', error: 'model timed out', completedAt, completionReceivedAt: LATER })
  })

  it('a stage in one final status cannot take another', () => {
    const w = world()
    apply(w, stage(2, 'COMPLETED'))
    expect(apply(w, stage(2, 'FAILED'))).toBe('conflict')
    expect(w.stages.get(2)?.status).toBe('COMPLETED')
  })

  it('uses the runner’s completedAt when it sends one (inside the run’s window)', () => {
    const w = world()
    apply(w, { kind: 'stage', update: { stageNumber: 5, stageName: 'x', status: 'COMPLETED', completedAt: '2026-01-01T00:00:03.123456Z' } }, DEFAULT_STAGES, LATER)
    expect(w.stages.get(5)?.completedAt?.toISOString()).toBe('2026-01-01T00:00:03.123Z')
    expect(w.run.completedAt?.toISOString()).toBe('2026-01-01T00:00:03.123Z')
  })

  it('refuses a stage number outside the catalogue', () => {
    expect(() => apply(world(), stage(6, 'PROCESSING'))).toThrow(RangeError)
  })
})

describe('last activity (run.updatedAt)', () => {
  it('is bumped by every applied stage update and by nothing else', () => {
    fc.assert(
      fc.property(events(5), fc.array(fc.integer({ min: 0, max: 60_000 }), { minLength: 40, maxLength: 40 }), (seq, gaps) => {
        const w = world()
        let time = NOW.getTime()
        seq.forEach((event, i) => {
          time += gaps[i] ?? 0
          const before = w.run
          const outcome = apply(w, event, DEFAULT_STAGES, new Date(time))
          if (outcome === 'applied') expect(w.run.updatedAt.getTime()).toBe(time)
          else expect(w.run).toBe(before)
        })
      }),
      { numRuns: 2000 },
    )
  })

  it('leaves the run PROCESSING but records the time when a middle stage completes', () => {
    const w = world()
    apply(w, { kind: 'stage', update: { stageNumber: 1, stageName: 's1', status: 'PROCESSING' } }, DEFAULT_STAGES, NOW)
    const d = decideStageUpdate({
      run: w.run,
      stage: w.stages.get(1),
      update: { stageNumber: 1, stageName: 's1', status: 'COMPLETED' },
      stages: DEFAULT_STAGES,
      now: LATER,
    })
    expect(d).toMatchObject({ outcome: 'applied', statusChanged: false, run: { status: 'PROCESSING', updatedAt: LATER } })
  })
})

describe('decideStaleRun', () => {
  const MINUTE = 60_000
  const statuses = fc.constantFrom('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED' as const)
  const runs = fc
    .record({
      status: statuses,
      ageMs: fc.integer({ min: -MINUTE, max: 120 * MINUTE }),
      completionReceived: fc.boolean(),
    })
    .map(({ status, ageMs, completionReceived }): RunState => ({
      ...newRun('r', new Date(NOW.getTime() - 180 * MINUTE)),
      status,
      error: status === 'FAILED' ? 'earlier' : null,
      completedAt: isFinalStatus(status) ? NOW : null,
      completionReceivedAt: isFinalStatus(status) && completionReceived ? NOW : null,
      updatedAt: new Date(NOW.getTime() - ageMs),
    }))

  it('fails exactly the unfinished runs last updated before now - staleAfterMs, and changes nothing else', () => {
    fc.assert(
      fc.property(runs, fc.integer({ min: 1, max: 90 * MINUTE }), (run, staleAfterMs) => {
        const decision = decideStaleRun({ run, now: NOW, staleAfterMs })
        const stale = !isFinalStatus(run.status) && NOW.getTime() - run.updatedAt.getTime() > staleAfterMs
        if (isFinalStatus(run.status)) expect(decision).toEqual({ outcome: 'finished', run })
        else if (!stale) expect(decision).toEqual({ outcome: 'active', run })
        else {
          expect(decision.outcome).toBe('failed')
          expect(decision.run).toEqual({
            ...run,
            status: 'FAILED',
            error: expect.stringMatching(/^No update for more than .+: the runner stopped reporting$/),
            completedAt: NOW,
            updatedAt: NOW,
          })
          expect(decision.run.completionReceivedAt).toBeNull()
          // Deciding again, by this or another sweeper, changes nothing.
          expect(decideStaleRun({ run: decision.run, now: LATER, staleAfterMs }).outcome).toBe('finished')
        }
        if (decision.outcome !== 'failed') expect(decision.run).toBe(run)
      }),
      { numRuns: 3000 },
    )
  })

  it('is not stale exactly at the cutoff, only past it', () => {
    const run = { ...newRun('r', NOW), status: 'PROCESSING' as const }
    const at = new Date(NOW.getTime() + 15 * MINUTE)
    expect(decideStaleRun({ run, now: at, staleAfterMs: 15 * MINUTE }).outcome).toBe('active')
    expect(decideStaleRun({ run, now: new Date(at.getTime() + 1), staleAfterMs: 15 * MINUTE }).outcome).toBe('failed')
    expect(staleRunCutoff(at, 15 * MINUTE)).toEqual(NOW)
  })

  it('fails a run only when no update was applied for staleAfterMs, whatever the runner sent', () => {
    const staleAfterMs = 10 * MINUTE
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.oneof({ weight: 4, arbitrary: stageUpdate(5) }, { weight: 1, arbitrary: completion }), fc.integer({ min: 0, max: 15 * MINUTE })),
          { maxLength: 30 },
        ),
        (timeline) => {
          const w = world()
          let time = NOW.getTime()
          let lastActivity = time
          for (const [event, gap] of timeline) {
            time += gap
            const now = new Date(time)
            // A sweep before every event, as a sweeper on a timer would run.
            const wasFinished = isFinalStatus(w.run.status)
            const sweep = decideStaleRun({ run: w.run, now, staleAfterMs })
            const expected = wasFinished ? 'finished' : time - lastActivity > staleAfterMs ? 'failed' : 'active'
            expect(sweep.outcome).toBe(expected)
            w.run = sweep.run
            if (apply(w, event, DEFAULT_STAGES, now) === 'applied') lastActivity = time
          }
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('leaves a failed run open to the runner: /complete FAILED once, COMPLETED refused, late stages as for any failed run', () => {
    const w = world()
    apply(w, { kind: 'stage', update: { stageNumber: 1, stageName: 's1', status: 'PROCESSING' } })
    const swept = decideStaleRun({ run: w.run, now: new Date(NOW.getTime() + 16 * MINUTE), staleAfterMs: 15 * MINUTE })
    expect(swept.run).toMatchObject({
      status: 'FAILED',
      error: 'No update for more than 15 minutes: the runner stopped reporting',
      completionReceivedAt: null,
    })
    w.run = swept.run

    expect(apply(w, stage1('PROCESSING'))).toBe('duplicate')
    expect(apply(w, { kind: 'stage', update: { stageNumber: 2, stageName: 's2', status: 'PROCESSING' } })).toBe('stale')
    expect(apply(w, stage1('COMPLETED'))).toBe('applied')
    expect(w.run.status).toBe('FAILED')
    expect(apply(w, { kind: 'stage', update: { stageNumber: 3, stageName: 's3', status: 'CANCELLED' } })).toBe('conflict')

    expect(decideCompletion({ run: w.run, body: { status: 'COMPLETED' }, now: LATER }).outcome).toBe('conflict')
    const complete = decideCompletion({ run: w.run, body: { status: 'FAILED', error: 'OOM killed' }, now: LATER })
    expect(complete).toMatchObject({ outcome: 'applied', runCompletionHook: true })
    if (complete.outcome === 'applied') w.run = complete.run
    expect(decideCompletion({ run: w.run, body: { status: 'FAILED' }, now: LATER }).outcome).toBe('duplicate')
  })

  it.each([
    [15 * MINUTE, '15 minutes'],
    [MINUTE, '1 minute'],
    [90_000, '90 seconds'],
    [2 * 3_600_000, '2 hours'],
    [86_400_000, '1 day'],
    [1_500, '1500 ms'],
  ])('describes %d ms as "%s"', (staleAfterMs, text) => {
    const run = { ...newRun('r', NOW), status: 'PROCESSING' as const }
    const decision = decideStaleRun({ run, now: new Date(NOW.getTime() + staleAfterMs + 1), staleAfterMs })
    expect(decision.run.error).toBe(`No update for more than ${text}: the runner stopped reporting`)
  })

  it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY])('refuses staleAfterMs %d', (staleAfterMs) => {
    expect(() => decideStaleRun({ run: newRun('r', NOW), now: NOW, staleAfterMs })).toThrow(RangeError)
  })
})

function stage1(status: StageUpdate['status']): Event {
  return { kind: 'stage', update: { stageNumber: 1, stageName: 's1', status } }
}

describe('runner control', () => {
  const processing = (progress: StageState['progress'] = null): StageState => ({
    stageNumber: 1,
    stageName: 'Input Processing',
    status: 'PROCESSING',
    output: null,
    completedAt: null,
    progress,
    createdAt: NOW,
    updatedAt: NOW,
  })
  const running: RunState = { ...newRun('r', NOW), status: 'PROCESSING' }

  it('keeps the progress with the highest seq, whatever order reports arrive in', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 20 }), { minLength: 1, maxLength: 12 }), (seqs) => {
        let stage = processing()
        for (const seq of seqs) {
          const decision = decideProgress({ run: running, stage, progress: { seq, percent: seq }, now: LATER })
          if (decision.outcome === 'applied') stage = decision.stage
        }
        expect(stage.progress).toEqual({ seq: Math.max(...seqs), percent: Math.max(...seqs) })
      }),
    )
  })

  it('stores progress only on a PROCESSING stage of an unfinished run', () => {
    const progress = { seq: 1 }
    expect(decideProgress({ run: running, stage: undefined, progress, now: LATER }).outcome).toBe('stale')
    expect(decideProgress({ run: running, stage: { ...processing(), status: 'COMPLETED' }, progress, now: LATER }).outcome).toBe('stale')
    expect(decideProgress({ run: { ...running, status: 'CANCELLED' }, stage: processing(), progress, now: LATER }).outcome).toBe('stale')
    expect(decideProgress({ run: running, stage: processing({ seq: 1 }), progress, now: LATER }).outcome).toBe('duplicate')
    const applied = decideProgress({ run: running, stage: processing(), progress, now: LATER })
    expect(applied).toMatchObject({ outcome: 'applied', stage: { progress, updatedAt: LATER }, run: { updatedAt: LATER } })
  })

  it('a PROCESSING update with newer progress is applied; a final status keeps the progress', () => {
    const update = (fields: Partial<StageUpdate>): StageUpdate => ({ stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING', ...fields })
    const newer = decideStageUpdate({ run: running, stage: processing({ seq: 1 }), update: update({ progress: { seq: 2 } }), stages: DEFAULT_STAGES, now: LATER })
    expect(newer).toMatchObject({ outcome: 'applied', statusChanged: false, stage: { progress: { seq: 2 } } })
    const older = decideStageUpdate({ run: running, stage: processing({ seq: 3 }), update: update({ progress: { seq: 2 } }), stages: DEFAULT_STAGES, now: LATER })
    // The same rule as on a heartbeat: a lower seq is stale, the same seq a duplicate.
    expect(older).toEqual({ outcome: 'stale', stage: processing({ seq: 3 }), run: running })
    const same = decideStageUpdate({ run: running, stage: processing({ seq: 3 }), update: update({ progress: { seq: 3 } }), stages: DEFAULT_STAGES, now: LATER })
    expect(same).toEqual({ outcome: 'duplicate', stage: processing({ seq: 3 }), run: running })
    const done = decideStageUpdate({ run: running, stage: processing({ seq: 3 }), update: update({ status: 'COMPLETED' }), stages: DEFAULT_STAGES, now: LATER })
    expect(done).toMatchObject({ outcome: 'applied', stage: { status: 'COMPLETED', progress: { seq: 3 } } })
  })

  it('records a heartbeat on an unfinished run only; on a finished run it is stale', () => {
    expect(decideHeartbeat(running)).toBe('recorded')
    expect(decideHeartbeat({ ...running, status: 'PENDING' })).toBe('recorded')
    for (const status of ['COMPLETED', 'FAILED', 'CANCELLED'] as const) expect(decideHeartbeat({ ...running, status })).toBe('stale')
  })

  it('cancels an unfinished run with its PROCESSING stages; CANCELLED is a duplicate; COMPLETED and FAILED conflict', () => {
    const done: StageState = { ...processing(), stageNumber: 2, status: 'COMPLETED', completedAt: NOW }
    const decision = decideCancel({ run: running, stages: [processing({ seq: 1 }), done], reason: 'user', now: LATER })
    expect(decision).toMatchObject({
      outcome: 'applied',
      run: { status: 'CANCELLED', error: 'user', completedAt: LATER },
      stages: [{ stageNumber: 1, status: 'CANCELLED', completedAt: LATER, progress: { seq: 1 } }],
    })
    expect(decideCancel({ run: { ...running, status: 'CANCELLED' }, stages: [], reason: undefined, now: LATER }).outcome).toBe('duplicate')
    for (const status of ['COMPLETED', 'FAILED'] as const) {
      expect(decideCancel({ run: { ...running, status }, stages: [], reason: undefined, now: LATER })).toMatchObject({ outcome: 'conflict', code: 'run_finished' })
    }
  })

  it('names how a run ended only for the write that took it from unfinished to final', () => {
    const finished = (status: RunState['status']): RunState => ({ ...running, status })
    expect(runEndReason(running, finished('COMPLETED'), 'stage')).toBe('last_stage_completed')
    expect(runEndReason(running, finished('FAILED'), 'stage')).toBe('stage_failed')
    expect(runEndReason(running, finished('CANCELLED'), 'stage')).toBe('stage_cancelled')
    expect(runEndReason(running, finished('CANCELLED'), 'cancel')).toBe('cancelled')
    expect(runEndReason(running, finished('FAILED'), 'sweep')).toBe('swept_as_stale')
    expect(runEndReason(running, finished('COMPLETED'), 'complete')).toBe('completed_explicitly')
    expect(runEndReason(finished('COMPLETED'), finished('COMPLETED'), 'complete')).toBeUndefined()
    expect(runEndReason(running, running, 'stage')).toBeUndefined()
  })

  it(`judges a run that announced an interval by ${MISSED_HEARTBEATS_LIMIT} of them, from its last heartbeat or update`, () => {
    const beating: RunState = { ...running, heartbeatIntervalMs: 10_000, lastActivityAt: new Date(NOW.getTime() + 60 * 60_000) }
    const at = (ms: number) => new Date(beating.lastActivityAt!.getTime() + ms)
    expect(decideStaleRun({ run: beating, now: at(30_000), staleAfterMs: 60 * 60_000 * 24 }).outcome).toBe('active')
    const failed = decideStaleRun({ run: beating, now: at(45_000), staleAfterMs: 60 * 60_000 * 24 })
    expect(failed).toMatchObject({
      outcome: 'failed',
      run: { status: 'FAILED', error: 'No heartbeat for 45 s (the runner announced one every 10 seconds): the runner stopped reporting' },
    })
    // Bare heartbeats (no interval) are activity too, judged by staleAfterMs.
    const bare: RunState = { ...running, lastActivityAt: at(0) }
    expect(decideStaleRun({ run: bare, now: at(59_000), staleAfterMs: 60_000 }).outcome).toBe('active')
    expect(decideStaleRun({ run: bare, now: at(61_000), staleAfterMs: 60_000 }).outcome).toBe('failed')
  })
})

describe('runner clock skew: one window for every runner-sent instant', () => {
  // The run was created at NOW; the server's clock reads SERVER_NOW when the update arrives.
  const SERVER_NOW = new Date('2026-01-01T01:00:00.000Z')
  const HOUR = 3_600_000
  const iso = (ms: number) => new Date(ms).toISOString()
  const finalUpdate = (completedAt: string, stageNumber = 1): StageUpdate => ({
    stageNumber,
    stageName: `Stage ${stageNumber}`,
    status: 'COMPLETED',
    output: 'out',
    completedAt,
  })

  it('stores an instant inside [the run\'s creation, now + 5 min] as sent, without a clamp', () => {
    const completedAt = iso(SERVER_NOW.getTime() + 299_000)
    const d = decideStageUpdate({ run: newRun('r', NOW), stage: undefined, update: finalUpdate(completedAt), stages: DEFAULT_STAGES, now: SERVER_NOW })
    expect(d).toMatchObject({ outcome: 'applied', stage: { completedAt: new Date(completedAt) } })
    expect(d).not.toHaveProperty('clamped')
    expect(DEFAULT_CLOCK_SKEW_TOLERANCE_MS).toBe(300_000)
  })

  it('a runner clock 9 h ahead: the stage\'s and the run\'s completedAt are now + 5 min, named as 9 h ahead', () => {
    const sent = iso(SERVER_NOW.getTime() + 9 * HOUR)
    const d = decideStageUpdate({ run: newRun('r', NOW), stage: undefined, update: finalUpdate(sent, 5), stages: DEFAULT_STAGES, now: SERVER_NOW })
    const stored = new Date('2026-01-01T01:05:00.000Z')
    expect(d).toMatchObject({
      outcome: 'applied',
      stage: { completedAt: stored },
      run: { status: 'COMPLETED', completedAt: stored },
      clamped: { field: 'completedAt', sent: new Date(sent), stored, bound: 'ahead', skewMs: 9 * HOUR, toleranceMs: 300_000 },
    })
    if (d.outcome !== 'applied' || !d.clamped) throw new Error('expected a clamp')
    expect(describeClampedInstant('r', d.clamped)).toBe(
      "run r: the runner sent completedAt 2026-01-01T10:00:00.000Z, 9 hours ahead of the server's clock (tolerance 5 minutes); " +
        "stored clamped to 2026-01-01T01:05:00.000Z. The runner's clock is ahead: sync it (NTP), or raise clockSkewToleranceMs if such skew is expected",
    )
  })

  it('a naive local time read as UTC (9 h before the run was created): stored as the run\'s creation', () => {
    // A runner in UTC+9 sending datetime.now().isoformat() without an offset.
    const sent = '2025-12-31T15:00:00'
    const d = decideStageUpdate({ run: newRun('r', NOW), stage: undefined, update: finalUpdate(sent), stages: DEFAULT_STAGES, now: SERVER_NOW })
    expect(d).toMatchObject({
      outcome: 'applied',
      stage: { completedAt: NOW },
      clamped: { sent: new Date('2025-12-31T15:00:00.000Z'), stored: NOW, bound: 'before_creation', skewMs: 9 * HOUR },
    })
    if (d.outcome !== 'applied' || !d.clamped) throw new Error('expected a clamp')
    expect(describeClampedInstant('r', d.clamped)).toContain('9 hours before the run was created (2026-01-01T00:00:00.000Z)')
    expect(describeClampedInstant('r', d.clamped)).toContain("send UTC instants with 'Z'")
  })

  it("a stage's PROCESSING delivered late (an outbox after an outage): completedAt 3 s before its receipt is stored as its start (0 s); the warning names both causes, late delivery first", () => {
    // The runner ran stage 1 while the server was down: PROCESSING reached the server at
    // SERVER_NOW, with the COMPLETED that says it finished 3 s before.
    const received = SERVER_NOW
    const processing = decideStageUpdate({ run: newRun('r', NOW), stage: undefined, update: { ...finalUpdate('x'), status: 'PROCESSING', completedAt: undefined }, stages: DEFAULT_STAGES, now: received })
    if (processing.outcome !== 'applied') throw new Error('expected PROCESSING applied')
    const sent = iso(received.getTime() - 3_000)
    const d = decideStageUpdate({ run: processing.run, stage: processing.stage, update: finalUpdate(sent), stages: DEFAULT_STAGES, now: new Date(received.getTime() + 20) })
    expect(d).toMatchObject({
      outcome: 'applied',
      stage: { startedAt: received, completedAt: received },
      clamped: { of: 'stage', bound: 'before_start', startOf: 'stage', sent: new Date(sent), stored: received, skewMs: 3_000 },
    })
    if (d.outcome !== 'applied' || !d.clamped) throw new Error('expected a clamp')
    expect(describeClampedInstant('r', d.clamped)).toBe(
      'run r: the runner sent completedAt 2026-01-01T00:59:57.000Z, 3 seconds before the stage started (2026-01-01T01:00:00.000Z, ' +
        "when the server received the stage's PROCESSING update); stored clamped to that start, so the stage's duration is stored as 0 s. " +
        "Either the stage's PROCESSING update arrived late (a runner's outbox delivering after an outage or a server restart; nothing to fix then), " +
        "or the runner's clock is behind, or it sent a local time without an offset, which is read as UTC: sync its clock (NTP), " +
        "or send UTC instants with 'Z' (Python: datetime.now(timezone.utc).isoformat())",
    )
  })

  it("a stage first reported final with an instant before the run started: stored as the run's start, the warning names the run's start", () => {
    const running: RunState = { ...newRun('r', NOW), status: 'PROCESSING', startedAt: SERVER_NOW }
    const d = decideStageUpdate({ run: running, stage: undefined, update: finalUpdate(iso(SERVER_NOW.getTime() - 60_000), 2), stages: DEFAULT_STAGES, now: SERVER_NOW })
    expect(d).toMatchObject({ outcome: 'applied', stage: { startedAt: SERVER_NOW, completedAt: SERVER_NOW }, clamped: { of: 'stage', bound: 'before_start', startOf: 'run' } })
    if (d.outcome !== 'applied' || !d.clamped) throw new Error('expected a clamp')
    expect(describeClampedInstant('r', d.clamped)).toContain(
      "1 minute before the run started (2026-01-01T01:00:00.000Z, when the server received the run's first stage update); " +
        "stored clamped to that start, so the stage's duration is stored as 0 s. Either the run's first stage update arrived late",
    )
  })

  it('the same rule for /complete, with a configurable tolerance', () => {
    const run = newRun('r', NOW)
    const ahead = decideCompletion({ run, body: { status: 'COMPLETED', completedAt: iso(SERVER_NOW.getTime() + HOUR) }, now: SERVER_NOW, clockSkewToleranceMs: 60_000 })
    expect(ahead).toMatchObject({ outcome: 'applied', run: { completedAt: new Date(SERVER_NOW.getTime() + 60_000) }, clamped: { bound: 'ahead', skewMs: HOUR, toleranceMs: 60_000 } })
    const before = decideCompletion({ run, body: { status: 'FAILED', completedAt: '2025-01-01T00:00:00Z' }, now: SERVER_NOW })
    expect(before).toMatchObject({ outcome: 'applied', run: { status: 'FAILED', completedAt: NOW }, clamped: { bound: 'before_creation' } })
    const inside = decideCompletion({ run, body: { status: 'COMPLETED', completedAt: iso(NOW.getTime() + 1) }, now: SERVER_NOW })
    expect(inside).toMatchObject({ outcome: 'applied', run: { completedAt: new Date(NOW.getTime() + 1) } })
    expect(inside).not.toHaveProperty('clamped')
    // A run already finished keeps its completedAt: the body's instant is not stored, so not clamped.
    const finished: RunState = { ...run, status: 'COMPLETED', completedAt: LATER }
    const late = decideCompletion({ run: finished, body: { status: 'COMPLETED', completedAt: iso(SERVER_NOW.getTime() + 9 * HOUR) }, now: SERVER_NOW })
    expect(late).toMatchObject({ outcome: 'applied', run: { completedAt: LATER } })
    expect(late).not.toHaveProperty('clamped')
  })

  it('names the skew rounded for people: 9 h less 5 ms is 9 hours; 91 min is 1 hour 31 minutes; 42 s; 250 ms', () => {
    const clamped = (skewMs: number) => ({
      field: 'completedAt' as const,
      of: 'stage' as const,
      sent: new Date(SERVER_NOW.getTime() + skewMs),
      stored: new Date(SERVER_NOW.getTime() + 300_000),
      bound: 'ahead' as const,
      skewMs,
      toleranceMs: 300_000,
    })
    expect(describeClampedInstant('r', clamped(9 * HOUR - 5))).toContain(', 9 hours ahead of')
    expect(describeClampedInstant('r', clamped(91 * 60_000 + 20_000))).toContain(', 1 hour 31 minutes ahead of')
    expect(describeClampedInstant('r', clamped(26 * HOUR))).toContain(', 1 day 2 hours ahead of')
    expect(describeClampedInstant('r', clamped(42_400))).toContain(', 42 seconds ahead of')
    expect(describeClampedInstant('r', clamped(250))).toContain(', 250 ms ahead of')
  })

  it('a tolerance of 0 clamps anything past now; an empty window (row created after now + tolerance) keeps the creation', () => {
    expect(clampRunnerInstant(new Date(SERVER_NOW.getTime() + 1), { notBefore: NOW, now: SERVER_NOW, toleranceMs: 0 }).at).toEqual(SERVER_NOW)
    const created = new Date(SERVER_NOW.getTime() + 10 * 60_000)
    const sent = new Date(SERVER_NOW.getTime() + HOUR)
    expect(clampRunnerInstant(sent, { notBefore: created, now: SERVER_NOW, toleranceMs: 300_000 })).toEqual({
      at: created,
      clamped: { field: 'completedAt', of: 'stage', sent, stored: created, bound: 'ahead', skewMs: HOUR, toleranceMs: 300_000 },
    })
  })

  it('property: whatever instant a runner sends, the stored one is inside [createdAt, now + tolerance] and equals it when inside', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(1, 0, 1) , max: Date.UTC(9999, 11, 31) }),
        fc.integer({ min: 0, max: 48 * HOUR }),
        fc.integer({ min: 0, max: HOUR }),
        fc.boolean(),
        (sentMs, sinceCreation, toleranceMs, viaComplete) => {
          const run = newRun('r', NOW)
          const now = new Date(NOW.getTime() + sinceCreation)
          const completedAt = iso(sentMs)
          const d = viaComplete
            ? decideCompletion({ run, body: { status: 'COMPLETED', completedAt }, now, clockSkewToleranceMs: toleranceMs })
            : decideStageUpdate({ run, stage: undefined, update: finalUpdate(completedAt, 5), stages: DEFAULT_STAGES, now, clockSkewToleranceMs: toleranceMs })
          if (d.outcome !== 'applied') throw new Error(`expected applied, got ${d.outcome}`)
          const stored = d.run.completedAt!.getTime()
          expect(stored).toBeGreaterThanOrEqual(NOW.getTime())
          expect(stored).toBeLessThanOrEqual(now.getTime() + toleranceMs)
          const inside = sentMs >= NOW.getTime() && sentMs <= now.getTime() + toleranceMs
          expect(stored === sentMs).toBe(inside)
          expect('clamped' in d).toBe(!inside)
        },
      ),
      { numRuns: 2000 },
    )
  })
})

describe('a final status repeated with another output: conflict, nothing changes', () => {
  const completed: StageState = {
    stageNumber: 2,
    stageName: 'Stage 2',
    status: 'COMPLETED',
    output: 'first',
    completedAt: NOW,
    progress: null,
    createdAt: NOW,
    updatedAt: NOW,
  }
  const run: RunState = { ...newRun('r', NOW), status: 'PROCESSING' }
  const decide = (update: Partial<StageUpdate>, stage: StageState = completed) =>
    decideStageUpdate({
      run,
      stage,
      update: { stageNumber: stage.stageNumber, stageName: stage.stageName, status: stage.status as StageUpdate['status'], ...update },
      stages: DEFAULT_STAGES,
      now: LATER,
    })

  it('a different output: conflict with the stored stage and run, unchanged', () => {
    expect(decide({ output: 'second' })).toEqual({ outcome: 'conflict', stage: completed, run })
  })

  it('the same output, no output, or a null output: duplicate', () => {
    expect(decide({ output: 'first' })).toMatchObject({ outcome: 'duplicate' })
    expect(decide({})).toMatchObject({ outcome: 'duplicate' })
    expect(decide({ output: null })).toMatchObject({ outcome: 'duplicate' })
  })

  it('FAILED and CANCELLED alike; a stage stored without output conflicts with any output', () => {
    const failed: StageState = { ...completed, status: 'FAILED', output: 'boom' }
    expect(decide({ output: 'other error' }, failed)).toMatchObject({ outcome: 'conflict', stage: failed })
    const cancelled: StageState = { ...completed, status: 'CANCELLED', output: null }
    expect(decide({ output: 'late' }, cancelled)).toMatchObject({ outcome: 'conflict', stage: cancelled })
  })

  it('a PROCESSING repeat with another output stays duplicate; another final status stays a 409 refusal', () => {
    const processing: StageState = { ...completed, status: 'PROCESSING', completedAt: null }
    expect(decide({ output: 'other' }, processing)).toMatchObject({ outcome: 'duplicate' })
    expect(decide({ status: 'FAILED', output: 'x' })).toMatchObject({ outcome: 'conflict', code: 'stage_finished' })
  })
})
