import { describe, expect, it } from 'vitest'
import { ConfigurationError } from './errors.js'
import { MAX_LAST_ERROR_LENGTH } from '../contract/stage-update.js'
import { lastErrorOf, resolveStageRetry, runStageAttempts } from './stage-retry.js'

const quiet = { retrying: async () => {}, starting: async () => {} }

describe('resolveStageRetry', () => {
  it('defaults to one attempt; a stage option replaces the pipeline one field by field', () => {
    expect(resolveStageRetry(undefined, undefined, 'Stage 1').attempts).toBe(1)
    const merged = resolveStageRetry({ attempts: 3, backoffMs: 5 }, { attempts: 2 }, 'Stage 1')
    expect([merged.attempts, merged.delay(1)]).toEqual([2, 5])
    expect(resolveStageRetry({ backoffMs: (attempt) => attempt * 10 }, undefined, 'Stage 1').delay(3)).toBe(30)
  })

  it('the default wait is full jitter below 1 s, 2 s, 4 s, ... capped at 30 s', () => {
    const { delay } = resolveStageRetry({ attempts: 9 }, undefined, 'Stage 1')
    for (const [attempt, ceiling] of [[1, 1000], [2, 2000], [3, 4000], [9, 30_000]] as const) {
      const wait = delay(attempt)
      expect(wait).toBeGreaterThanOrEqual(0)
      expect(wait).toBeLessThanOrEqual(ceiling)
    }
  })

  it('never retries an abort; retries everything else unless retryIf says no', () => {
    const policy = resolveStageRetry({ attempts: 3 }, undefined, 'Stage 1')
    expect(policy.retryIf(new Error('model timed out'), 1)).toBe(true)
    expect(policy.retryIf(new DOMException('stop', 'AbortError'), 1)).toBe(false)
    const picky = resolveStageRetry({ attempts: 3, retryIf: (error) => !(error instanceof TypeError) }, undefined, 'Stage 1')
    expect(picky.retryIf(new TypeError('bug'), 1)).toBe(false)
  })

  it('refuses attempts outside 1..100 and a negative backoff, naming the stage', () => {
    expect(() => resolveStageRetry({ attempts: 0 }, undefined, 'Stage 2')).toThrow(ConfigurationError)
    expect(() => resolveStageRetry(undefined, { attempts: 1.5 }, 'Stage 2')).toThrow(/Stage 2: retry.attempts/)
    expect(() => resolveStageRetry({ backoffMs: -1 }, undefined, 'Stage 3')).toThrow(/Stage 3: retry.backoffMs/)
  })
})

describe('runStageAttempts', () => {
  it('reports each retry and each attempt start, then resolves the attempt that succeeded', async () => {
    const seen: string[] = []
    const result = await runStageAttempts(resolveStageRetry({ attempts: 3, backoffMs: 0 }, undefined, 'Stage 1'), new AbortController().signal, {
      run: async (attempt) => {
        seen.push(`run ${attempt}`)
        if (attempt < 3) throw new Error(`failure ${attempt}`)
        return 'ok'
      },
      retrying: async ({ attempt, maxAttempts, lastError }) => void seen.push(`retrying ${attempt}/${maxAttempts}: ${lastError}`),
      starting: async (attempt) => void seen.push(`starting ${attempt}`),
    })
    expect(result).toBe('ok')
    expect(seen).toEqual(['run 1', 'retrying 2/3: failure 1', 'starting 2', 'run 2', 'retrying 3/3: failure 2', 'starting 3', 'run 3'])
  })

  it('rejects with the last failure once the attempts are used up', async () => {
    const attempt = runStageAttempts(resolveStageRetry({ attempts: 2, backoffMs: 0 }, undefined, 'Stage 1'), new AbortController().signal, {
      ...quiet,
      run: async (n) => {
        throw new Error(`failure ${n}`)
      },
    })
    await expect(attempt).rejects.toThrow('failure 2')
  })

  it('ends the wait at once when the signal aborts, with its reason', async () => {
    const controller = new AbortController()
    const attempt = runStageAttempts(resolveStageRetry({ attempts: 2, backoffMs: 3_600_000 }, undefined, 'Stage 1'), controller.signal, {
      ...quiet,
      run: async () => {
        throw new Error('transient')
      },
      retrying: async () => controller.abort(new Error('cancelled elsewhere')),
    })
    await expect(attempt).rejects.toThrow('cancelled elsewhere')
  })
})

it('lastErrorOf cuts at 2,000 code units with …, never splitting a surrogate pair', () => {
  expect(lastErrorOf(new Error('short'))).toBe('short')
  expect(lastErrorOf(new Error('nul \u0000 here'))).toBe('nul \ufffd here')
  const long = lastErrorOf(new Error('x'.repeat(1998) + '😀'.repeat(10)))
  expect(long.length).toBeLessThanOrEqual(MAX_LAST_ERROR_LENGTH)
  expect(long.endsWith('…')).toBe(true)
  expect(long.at(-2)).toBe('x')
})
