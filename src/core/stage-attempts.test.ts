/**
 * The timing and attempt rules of a stage (DESIGN.md "Timing, attempts and streamed output"), as
 * the state machine decides them: one table, each row a stored stage, an update and what follows.
 */
import { describe, expect, it } from 'vitest'
import type { StageUpdate } from '../contract/stage-update.js'
import { DEFAULT_STAGES } from '../contract/stages.js'
import type { RunStatus } from '../contract/status.js'
import { describeClampedInstant } from './runner-instants.js'
import { clampNextRetryAt, MAX_RETRY_DELAY_MS } from './stage-attempts.js'
import { decideCompletion, decideStageUpdate, newRun } from './state-machine.js'
import type { RunState, StageState } from './state.js'

const CREATED = new Date('2026-01-01T00:00:00.000Z')
const STARTED = new Date('2026-01-01T00:01:00.000Z')
const NOW = new Date('2026-01-01T00:10:00.000Z')
const at = (offsetMs: number) => new Date(NOW.getTime() + offsetMs)
const HOUR = 3_600_000

/** Stage 2, PROCESSING since STARTED, on attempt 2 of 3 with progress and output. */
function storedStage(overrides: Partial<StageState> = {}): StageState {
  return {
    stageNumber: 2,
    stageName: 'Signal Amplification',
    status: 'PROCESSING',
    output: 'partial',
    completedAt: null,
    progress: { seq: 4, percent: 40 },
    createdAt: STARTED,
    updatedAt: STARTED,
    startedAt: STARTED,
    attempt: 2,
    maxAttempts: 3,
    lastError: 'model timed out',
    nextRetryAt: null,
    ...overrides,
  }
}

function run(status: RunStatus = 'PROCESSING', startedAt: Date | null = STARTED): RunState {
  return { ...newRun('r', CREATED), status, startedAt }
}

const update = (fields: Partial<StageUpdate> = {}): StageUpdate => ({
  stageNumber: 2,
  stageName: 'Signal Amplification',
  status: 'PROCESSING',
  ...fields,
})

interface Case {
  rule: string
  stage?: StageState | undefined
  run?: RunState
  update: StageUpdate
  outcome: string
  /** The stage as stored after the update (a subset); absent for a decision that changes nothing. */
  stored?: Partial<StageState>
  runStartedAt?: Date | null
  runCompletedAt?: Date
}

const cases: Case[] = [
  {
    rule: 'a higher attempt wins and resets progress and output',
    stage: storedStage(),
    update: update({ attempt: 3, maxAttempts: 3, lastError: 'rate limited', nextRetryAt: at(30_000).toISOString() }),
    outcome: 'applied',
    stored: { attempt: 3, maxAttempts: 3, lastError: 'rate limited', nextRetryAt: at(30_000), progress: null, output: null, startedAt: STARTED },
  },
  {
    rule: 'a higher attempt without lastError or nextRetryAt clears them and keeps maxAttempts',
    stage: storedStage({ nextRetryAt: at(5_000) }),
    update: update({ attempt: 3 }),
    outcome: 'applied',
    stored: { attempt: 3, maxAttempts: 3, lastError: null, nextRetryAt: null, progress: null },
  },
  {
    rule: 'a higher attempt that carries progress starts from it',
    stage: storedStage(),
    update: update({ attempt: 3, progress: { seq: 0, percent: 1 } }),
    outcome: 'applied',
    stored: { attempt: 3, progress: { seq: 0, percent: 1 } },
  },
  {
    rule: 'a lower attempt is stale, whatever else it carries',
    stage: storedStage(),
    update: update({ attempt: 1, progress: { seq: 99 } }),
    outcome: 'stale',
  },
  {
    rule: 'the same attempt, started (nextRetryAt null), is applied and keeps progress and lastError',
    stage: storedStage({ nextRetryAt: at(-1_000) }),
    update: update({ attempt: 2, nextRetryAt: null }),
    outcome: 'applied',
    stored: { attempt: 2, nextRetryAt: null, lastError: 'model timed out', progress: { seq: 4, percent: 40 }, output: 'partial' },
  },
  {
    rule: 'the same attempt with the same fields is a duplicate',
    stage: storedStage(),
    update: update({ attempt: 2, maxAttempts: 3, lastError: 'model timed out', nextRetryAt: null }),
    outcome: 'duplicate',
  },
  {
    rule: 'a repeated retry notice that arrives after its retry time is a duplicate',
    stage: storedStage({ nextRetryAt: at(-5_000) }),
    update: update({ attempt: 2, nextRetryAt: at(-5_000).toISOString() }),
    outcome: 'duplicate',
  },
  {
    rule: 'an update without attempt leaves the stored attempt unchanged and is never stale for it',
    stage: storedStage(),
    update: update({ progress: { seq: 5, percent: 50 } }),
    outcome: 'applied',
    stored: { attempt: 2, maxAttempts: 3, lastError: 'model timed out', progress: { seq: 5, percent: 50 } },
  },
  {
    rule: 'an update without attempt and nothing new is a duplicate',
    stage: storedStage(),
    update: update(),
    outcome: 'duplicate',
  },
  {
    rule: 'the first attempt of a stage without one is applied, not a duplicate, and resets nothing',
    stage: storedStage({ attempt: null, maxAttempts: null, lastError: null }),
    update: update({ attempt: 1, maxAttempts: 3 }),
    outcome: 'applied',
    stored: { attempt: 1, maxAttempts: 3, progress: { seq: 4, percent: 40 }, output: 'partial' },
  },
  {
    rule: 'a final status keeps the stored attempt fields, without the retry it waited for (a final stage does not retry)',
    stage: storedStage({ nextRetryAt: at(HOUR) }),
    update: update({ status: 'CANCELLED' }),
    outcome: 'applied',
    stored: { status: 'CANCELLED', attempt: 2, maxAttempts: 3, lastError: 'model timed out', nextRetryAt: null },
  },
  {
    rule: 'a final status keeps the stored attempt fields',
    stage: storedStage({ nextRetryAt: at(-1_000) }),
    update: update({ status: 'COMPLETED', output: 'done' }),
    outcome: 'applied',
    stored: { status: 'COMPLETED', attempt: 2, maxAttempts: 3, lastError: 'model timed out', nextRetryAt: null },
  },
  {
    rule: 'a higher attempt on a finished run is a late PROCESSING: stale',
    stage: storedStage(),
    run: run('FAILED'),
    update: update({ attempt: 3 }),
    outcome: 'stale',
  },
  {
    rule: 'a higher attempt after the stage finished is stale',
    stage: storedStage({ status: 'COMPLETED', completedAt: NOW }),
    update: update({ attempt: 3 }),
    outcome: 'stale',
  },
  {
    rule: 'nextRetryAt in the past is stored as now',
    stage: storedStage(),
    update: update({ attempt: 3, nextRetryAt: at(-HOUR).toISOString() }),
    outcome: 'applied',
    stored: { nextRetryAt: NOW },
  },
  {
    rule: 'nextRetryAt past 24 hours is stored as now + 24 h',
    stage: storedStage(),
    update: update({ attempt: 3, nextRetryAt: at(48 * HOUR).toISOString() }),
    outcome: 'applied',
    stored: { nextRetryAt: at(MAX_RETRY_DELAY_MS) },
  },
  {
    rule: "a stage's first update starts it at the server's receipt, and the run with it",
    run: run('PENDING', null),
    update: update({ attempt: 1, maxAttempts: 2 }),
    outcome: 'applied',
    stored: { startedAt: NOW, createdAt: NOW, attempt: 1, maxAttempts: 2, lastError: null, nextRetryAt: null },
    runStartedAt: NOW,
  },
  {
    rule: 'a stage whose first report is final starts when it completed',
    run: run('PROCESSING', STARTED),
    update: update({ status: 'COMPLETED', completedAt: at(-60_000).toISOString() }),
    outcome: 'applied',
    stored: { startedAt: at(-60_000), completedAt: at(-60_000) },
    runStartedAt: STARTED,
  },
  {
    rule: "a completedAt before the stage's start is stored as its start",
    stage: storedStage(),
    update: update({ status: 'COMPLETED', completedAt: CREATED.toISOString() }),
    outcome: 'applied',
    stored: { startedAt: STARTED, completedAt: STARTED },
  },
  {
    rule: "a first final report before the run's start is stored as the run's start (no stage starts before its run)",
    run: run('PROCESSING', STARTED),
    update: update({ status: 'FAILED', completedAt: CREATED.toISOString() }),
    outcome: 'applied',
    stored: { startedAt: STARTED, completedAt: STARTED },
    runCompletedAt: STARTED,
  },
  {
    rule: "a first final report before the creation of a run not started yet is stored as its creation, and starts the run there",
    run: run('PROCESSING', null),
    update: update({ status: 'COMPLETED', completedAt: at(-HOUR).toISOString() }),
    outcome: 'applied',
    stored: { startedAt: CREATED, completedAt: CREATED },
    runStartedAt: CREATED,
  },
  {
    rule: 'a completedAt far in the future is stored as now + tolerance',
    stage: storedStage(),
    update: update({ status: 'COMPLETED', completedAt: at(9 * HOUR).toISOString() }),
    outcome: 'applied',
    stored: { completedAt: at(5 * 60_000) },
  },
  {
    rule: 'a row stored before the startedAt column starts at its creation',
    stage: storedStage({ startedAt: null }),
    update: update({ status: 'COMPLETED', completedAt: CREATED.toISOString() }),
    outcome: 'applied',
    stored: { startedAt: STARTED, completedAt: STARTED },
  },
]

describe('stage timing and attempts', () => {
  it.each(cases)('$rule', ({ stage, run: stored = run(), update: sent, outcome, stored: expected, runStartedAt, runCompletedAt }) => {
    const decision = decideStageUpdate({ run: stored, stage, update: sent, stages: DEFAULT_STAGES, now: NOW })
    expect(decision.outcome).toBe(outcome)
    if (decision.outcome !== 'applied') {
      expect(expected).toBeUndefined()
      if ('stage' in decision) expect(decision.stage).toBe(stage ?? null)
      return
    }
    expect(decision.stage).toMatchObject(expected ?? {})
    expect(decision.run.startedAt).toEqual(runStartedAt === undefined ? stored.startedAt : runStartedAt)
    if (runCompletedAt) expect(decision.run.completedAt).toEqual(runCompletedAt)
    // No duration is negative: the stage's, and the run's once it ended; no stage starts before its run.
    for (const { startedAt, completedAt } of [decision.stage, decision.run]) {
      if (completedAt) expect(completedAt.getTime()).toBeGreaterThanOrEqual((startedAt ?? CREATED).getTime())
    }
    const runStart = decision.run.startedAt
    if (runStart && decision.stage.startedAt) expect(decision.stage.startedAt.getTime()).toBeGreaterThanOrEqual(runStart.getTime())
  })

  it("clamps the run's completedAt to its start, so its duration is never negative", () => {
    const decision = decideCompletion({ run: run(), body: { status: 'COMPLETED', completedAt: CREATED.toISOString() }, now: NOW })
    expect(decision).toMatchObject({ outcome: 'applied', run: { completedAt: STARTED }, clamped: { of: 'run', bound: 'before_start', startOf: 'run', stored: STARTED } })
    expect(clampNextRetryAt(at(-1), NOW)).toEqual(NOW)
    if (decision.outcome !== 'applied' || !decision.clamped) return expect.unreachable('clamped')
    expect(describeClampedInstant('r', decision.clamped)).toContain(
      `the runner sent completedAt ${CREATED.toISOString()}, 1 minute before the run started (${STARTED.toISOString()}, when the server ` +
        "received the run's first stage update); stored clamped to that start, so the run's duration is stored as 0 s. " +
        "Either the run's first stage update arrived late (a runner's outbox delivering after an outage or a server restart; nothing to fix then), " +
        "or the runner's clock is behind",
    )
  })
})
