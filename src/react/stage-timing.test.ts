/**
 * RunTimeline writes a stage's time and attempts with one pure module (src/react/stage-timing.ts),
 * used for the server HTML and the ticking clock alike.
 * Its rules without a browser; test/e2e/nextjs.test.ts shows them on the page in Chromium.
 */
import type { PipelineRunRecord, StageOutputRecord } from 'pipeline-status-sdk'
import { describe, expect, it } from 'vitest'
import { describeAttempt, formatCountdown, formatDuration, formatTook, isoDuration, stageTiming } from './stage-timing.js'

const T0 = Date.parse('2026-01-01T12:00:00.000Z')
const at = (ms: number) => new Date(T0 + ms).toISOString()

function stage(overrides: Partial<StageOutputRecord> = {}): StageOutputRecord {
  return {
    stageNumber: 2,
    stageName: 'Translation',
    status: 'PROCESSING',
    output: null,
    completedAt: null,
    progress: null,
    createdAt: at(0),
    updatedAt: at(0),
    startedAt: at(0),
    attempt: null,
    maxAttempts: null,
    lastError: null,
    nextRetryAt: null,
    outputSeq: null,
    ...overrides,
  }
}
const going: Pick<PipelineRunRecord, 'status' | 'completedAt'> = { status: 'PROCESSING', completedAt: null }

describe("RunTimeline's stage timing text", () => {
  it('writes durations to the second, rounded down, never negative', () => {
    expect(
      [0, 999, 4_000, 59_999, 60_000, 125_400, 3_599_000, 3_720_000, -5_000, Number.NaN].map(formatDuration),
    ).toEqual(['0 s', '0 s', '4 s', '59 s', '1 min 00 s', '2 min 05 s', '59 min 59 s', '1 h 02 min', '0 s', '0 s'])
    // A countdown rounds up: 29.2 s to go reads 30 s, and it reaches 0 s only when the wait is over.
    expect([29_200, 30_000, 1, 0, -1].map(formatCountdown)).toEqual(['30 s', '30 s', '1 s', '0 s', '0 s'])
    // A finished duration: milliseconds below a second (a 879 ms stage read "took 0 s"), else the nearest second.
    expect([0, 0.4, 879, 999.4, 999.5, 1_722, 4_499, 59_500, 125_400, 3_599_600, 3_720_000, -5, Number.NaN].map(formatTook)).toEqual([
      '0 ms', '0 ms', '879 ms', '999 ms', '1 s', '2 s', '4 s', '1 min 00 s', '2 min 05 s', '1 h 00 min', '1 h 02 min', '0 ms', '0 ms',
    ])
    // <time dateTime>: to the millisecond.
    expect([0, 879, 1_000, 1_720, 125_400, -1, Number.NaN].map(isoDuration)).toEqual(['PT0S', 'PT0.879S', 'PT1S', 'PT1.72S', 'PT125.4S', 'PT0S', 'PT0S'])
  })

  it('times a finished stage from startedAt to completedAt, the running one to now, floored at 0', () => {
    const finished = stage({ status: 'COMPLETED', completedAt: at(125_000), updatedAt: at(125_000) })
    expect(stageTiming(finished, going, T0 + 999_999)).toEqual({ startedAt: at(0), durationMs: 125_000, kind: 'took' })
    expect(stageTiming(stage(), going, T0 + 4_500)).toEqual({ startedAt: at(0), durationMs: 4_500, kind: 'running' })
    // A startedAt ahead of the browser's clock reads 0, never a negative time.
    expect(stageTiming(stage({ startedAt: at(2_000) }), going, T0).durationMs).toBe(0)
    // A stage a finished run left PROCESSING stopped when the run ended; it does not tick on.
    expect(stageTiming(stage(), { status: 'FAILED', completedAt: at(7_000) }, T0 + 60_000)).toEqual({ startedAt: at(0), durationMs: 7_000, kind: 'stopped' })
    // From a server older than startedAt: the row's creation.
    expect(stageTiming(stage({ startedAt: null, createdAt: at(1_000) }), going, T0 + 3_000)).toEqual({ startedAt: at(1_000), durationMs: 2_000, kind: 'running' })
  })

  it('says which attempt a retrying stage is on, and counts down to the next one', () => {
    const waiting = stage({ attempt: 2, maxAttempts: 3, lastError: 'model timed out', nextRetryAt: at(30_000) })
    expect(describeAttempt(waiting, T0)).toBe('attempt 2 of 3 · retrying in 30 s')
    expect(describeAttempt(waiting, T0 + 200)).toBe('attempt 2 of 3 · retrying in 30 s')
    expect(describeAttempt(waiting, T0 + 1_000)).toBe('attempt 2 of 3 · retrying in 29 s')
    expect(describeAttempt(waiting, T0 + 30_000)).toBe('attempt 2 of 3 · retrying now')
    // The retry started (nextRetryAt null): the attempt, without a countdown.
    expect(describeAttempt({ ...waiting, nextRetryAt: null }, T0)).toBe('attempt 2 of 3')
    expect(describeAttempt(stage({ attempt: 2 }), T0)).toBe('attempt 2')
    expect(describeAttempt(stage({ attempt: 1, maxAttempts: 3, nextRetryAt: at(5_000) }), T0)).toBe('attempt 1 of 3 · retrying in 5 s')
    // Nothing to say for a first attempt that runs, a stage that never sent one, or a finished stage.
    expect(describeAttempt(stage({ attempt: 1, maxAttempts: 3 }), T0)).toBeUndefined()
    expect(describeAttempt(stage(), T0)).toBeUndefined()
    expect(describeAttempt({ ...waiting, status: 'FAILED' }, T0)).toBeUndefined()
  })
})
