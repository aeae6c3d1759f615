import { describe, expect, it } from 'vitest'
import { isStoreUnavailableError } from '../../core/store.js'
import { createMemoryReplayStore, createPostgresReplayStore } from './replay-store.js'

describe('createMemoryReplayStore', () => {
  it('accepts an id again with the same fingerprint, refuses another until the id expires', () => {
    let now = 1_000
    const store = createMemoryReplayStore({ now: () => now })
    expect(store.claim('a', 'body-1', 2_000)).toBe(true)
    expect(store.claim('a', 'body-1', 2_000)).toBe(true)
    expect(store.claim('a', 'body-2', 2_000)).toBe(false)
    now = 2_000
    expect(store.claim('a', 'body-2', 3_000)).toBe(true)
    expect(store.claim('a', 'body-1', 3_000)).toBe(false)
  })

  it('extends the record when the same message comes again with a later expiry', () => {
    let now = 0
    const store = createMemoryReplayStore({ now: () => now })
    expect(store.claim('a', 'body-1', 1_000)).toBe(true)
    expect(store.claim('a', 'body-1', 5_000)).toBe(true)
    now = 2_000
    expect(store.claim('a', 'body-2', 6_000)).toBe(false)
  })

  it('keeps at most maxEntries ids, dropping the oldest', () => {
    const store = createMemoryReplayStore({ maxEntries: 2, now: () => 0 })
    for (const key of ['a', 'b', 'c']) expect(store.claim(key, 'x', 10_000)).toBe(true)
    expect(store.claim('c', 'y', 10_000)).toBe(false)
    expect(store.claim('b', 'y', 10_000)).toBe(false)
    expect(store.claim('a', 'y', 10_000)).toBe(true)
  })
})

describe('createPostgresReplayStore errors', () => {
  it('an unreachable database rejects with StoreUnavailableError (503 database_unavailable), any other error as it is', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
    const unreachable = createPostgresReplayStore({ $queryRawUnsafe: () => Promise.reject(refused) })
    const error: unknown = await Promise.resolve(unreachable.claim('a', 'x', Date.now() + 1_000)).catch((caught: unknown) => caught)
    expect(isStoreUnavailableError(error) && error.code).toBe('database_unavailable')
    expect((error as Error).cause).toBe(refused)
    const broken = new Error('syntax error')
    const other = createPostgresReplayStore({ $queryRawUnsafe: () => Promise.reject(broken) })
    await expect(other.claim('a', 'x', Date.now() + 1_000)).rejects.toBe(broken)
  })
})
