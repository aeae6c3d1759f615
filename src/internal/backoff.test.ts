import { describe, expect, it } from 'vitest'
import { backoffDelay } from './backoff.js'

/** A random source that returns the given numbers in turn. */
function sequence(...values: number[]): () => number {
  let index = 0
  return () => values[index++ % values.length] as number
}

describe('backoffDelay', () => {
  it('doubles the ceiling per attempt from baseMs and stops at maxMs', () => {
    const options = { baseMs: 100, maxMs: 1_000, jitter: 'none' } as const
    expect([1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, options))).toEqual([100, 200, 400, 800, 1_000, 1_000])
  })

  it('counts an attempt below 1 as the first', () => {
    const options = { baseMs: 100, maxMs: 1_000, jitter: 'none' } as const
    expect(backoffDelay(0, options)).toBe(100)
    expect(backoffDelay(-3, options)).toBe(100)
  })

  it('full jitter draws in [0, ceiling] and equal jitter in [ceiling / 2, ceiling], the cap applied before the draw', () => {
    // [jitter, attempt, random, wait] with baseMs 100 and maxMs 1,000.
    const cases = [
      ['full', 3, 0, 0],
      ['full', 3, 0.5, 200],
      ['full', 3, 0.75, 300],
      // Attempt 10's uncapped ceiling is 51,200 ms: half of the cap, not the cap, at 0.5.
      ['full', 10, 0.5, 500],
      ['equal', 1, 0, 50],
      ['equal', 1, 0.5, 75],
      ['equal', 2, 0.75, 175],
      ['equal', 20, 0, 500],
    ] as const
    for (const [jitter, attempt, random, wait] of cases) {
      expect(backoffDelay(attempt, { baseMs: 100, maxMs: 1_000, jitter }, sequence(random))).toBe(wait)
    }
  })

  it('asks the random source once per jittered wait and never for none', () => {
    let calls = 0
    const counting = () => {
      calls += 1
      return 0.25
    }
    backoffDelay(2, { baseMs: 10, maxMs: 100, jitter: 'full' }, counting)
    backoffDelay(2, { baseMs: 10, maxMs: 100, jitter: 'equal' }, counting)
    backoffDelay(2, { baseMs: 10, maxMs: 100, jitter: 'none' }, counting)
    expect(calls).toBe(2)
  })

  it('stays a finite number for huge attempts and a zero base', () => {
    expect(backoffDelay(5_000, { baseMs: 0, maxMs: 1_000, jitter: 'none' })).toBe(0)
    expect(backoffDelay(5_000, { baseMs: 300, maxMs: 10_000, jitter: 'none' })).toBe(10_000)
    expect(backoffDelay(Number.MAX_SAFE_INTEGER, { baseMs: 1, maxMs: 7, jitter: 'full' }, sequence(0.5))).toBe(3.5)
  })

  it('uses Math.random by default, within the bounds', () => {
    for (let i = 0; i < 100; i++) {
      const wait = backoffDelay(4, { baseMs: 100, maxMs: 10_000, jitter: 'equal' })
      expect(wait).toBeGreaterThanOrEqual(400)
      expect(wait).toBeLessThanOrEqual(800)
    }
  })
})
