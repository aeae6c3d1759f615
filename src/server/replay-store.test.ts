import { describe, expect, it } from 'vitest'
import { createMemoryReplayStore } from './replay-store.js'

describe('createMemoryReplayStore', () => {
  it('accepts a key once until it expires', () => {
    let now = 1_000
    const store = createMemoryReplayStore({ now: () => now })
    expect(store.claim('a', 2_000)).toBe(true)
    expect(store.claim('a', 2_000)).toBe(false)
    now = 2_000
    expect(store.claim('a', 3_000)).toBe(true)
  })

  it('forgets a released key', () => {
    const store = createMemoryReplayStore()
    expect(store.claim('a', Date.now() + 60_000)).toBe(true)
    store.release?.('a')
    expect(store.claim('a', Date.now() + 60_000)).toBe(true)
  })

  it('keeps at most maxEntries keys, dropping the oldest', () => {
    const store = createMemoryReplayStore({ maxEntries: 2, now: () => 0 })
    for (const key of ['a', 'b', 'c']) expect(store.claim(key, 10_000)).toBe(true)
    expect(store.claim('c', 10_000)).toBe(false)
    expect(store.claim('b', 10_000)).toBe(false)
    expect(store.claim('a', 10_000)).toBe(true)
  })
})
