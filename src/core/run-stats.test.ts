import { describe, expect, it } from 'vitest'
import { compareStageStats, percentileCont, percentileMs } from './run-stats.js'

describe('percentileCont, as PostgreSQL computes it', () => {
  it('interpolates linearly between the neighbours of fraction × (n − 1)', () => {
    expect(percentileCont([], 0.5)).toBeNull()
    expect(percentileCont([7], 0.95)).toBe(7)
    expect(percentileCont([1, 2], 0.5)).toBe(1.5)
    expect(percentileCont([100, 200, 300, 400, 1000], 0.5)).toBe(300)
    // 0.95 × 4 = 3.8 (as a double, 3.7999999999999998): 400 + 600 × 0.7999999999999998.
    expect(percentileCont([100, 200, 300, 400, 1000], 0.95)).toBe(400 + 600 * (0.95 * 4 - 3))
    expect(percentileMs(percentileCont([100, 200, 300, 400, 1000], 0.95))).toBe(880)
    expect(percentileCont([10, 20, 30, 40], 0)).toBe(10)
    expect(percentileCont([10, 20, 30, 40], 1)).toBe(40)
  })

  it('rounds to whole milliseconds half up, and orders by pipeline in code-unit order, then stage', () => {
    expect([percentileMs(1.5), percentileMs(2.4999), percentileMs(null)]).toEqual([2, 2, null])
    const rows = [
      { pipeline: 'b', stageNumber: 1 },
      { pipeline: 'B', stageNumber: 2 },
      { pipeline: 'B', stageNumber: 1 },
      { pipeline: 'a', stageNumber: 10 },
      { pipeline: 'a', stageNumber: 9 },
    ]
    expect([...rows].sort(compareStageStats)).toEqual([rows[2], rows[1], rows[4], rows[3], rows[0]])
  })
})
