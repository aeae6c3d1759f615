import { describe, expect, it } from 'vitest'
import { OncePerKey } from './once-per-key.js'

describe('OncePerKey', () => {
  it('says first once per key while the key is remembered', () => {
    const once = new OncePerKey(3)
    expect(['a', 'b', 'a', 'b', 'c'].map((key) => once.first(key))).toEqual([true, true, false, false, true])
    expect(once.size).toBe(3)
  })

  it('holds at most its limit, forgetting the least recently seen key first', () => {
    const once = new OncePerKey(2)
    once.first('a')
    once.first('b')
    once.first('a') // a is now the most recent
    expect(once.first('c')).toBe(true) // forgets b
    expect(once.size).toBe(2)
    expect(once.first('a')).toBe(false)
    expect(once.first('b')).toBe(true)
    for (let i = 0; i < 10_000; i++) once.first(`run-${i}`)
    expect(once.size).toBe(2)
  })

  it('refuses a limit that is not a positive whole number', () => {
    expect(() => new OncePerKey(0)).toThrow(RangeError)
    expect(() => new OncePerKey(1.5)).toThrow(RangeError)
  })
})
