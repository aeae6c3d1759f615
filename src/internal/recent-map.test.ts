import { describe, expect, it } from 'vitest'
import { RecentMap } from './recent-map.js'

describe('RecentMap', () => {
  it('holds at most its limit, forgetting the least recently set key first; reading does not make a key recent', () => {
    const map = new RecentMap<number>(2)
    map.set('a', 1).set('b', 2)
    expect(map.get('a')).toBe(1)
    map.set('c', 3) // forgets a: set before b, and reading it did not count
    expect([map.has('a'), map.get('b'), map.get('c'), map.size]).toEqual([false, 2, 3, 2])
    map.set('b', 20) // b is now the most recent
    map.set('d', 4) // forgets c
    expect([map.has('c'), map.get('b'), map.get('d')]).toEqual([false, 20, 4])
    expect(map.delete('b')).toBe(true)
    expect(map.size).toBe(1)
  })

  it('refuses a limit that is not a positive whole number', () => {
    expect(() => new RecentMap(0)).toThrow(RangeError)
    expect(() => new RecentMap(1.5)).toThrow(RangeError)
  })
})
