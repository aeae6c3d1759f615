/**
 * Remembers signed messages that were already accepted, so that a captured request cannot be
 * sent again. The default keeps them in process memory; with several web instances behind a
 * load balancer, plug in a shared one (a table, Redis `SET NX PX`).
 *
 * @example
 * ```ts
 * import type { ReplayStore } from 'pipeline-status-sdk/server'
 * const redisReplayStore: ReplayStore = {
 *   claim: async (key, expiresAt) => (await redis.set(key, '1', { NX: true, PXAT: expiresAt })) === 'OK',
 *   release: async (key) => void (await redis.del(key)),
 * }
 * ```
 */
export interface ReplayStore {
  /**
   * Records `key` until `expiresAt` (milliseconds since the epoch). Returns `false` when the
   * key is already recorded and has not expired: the message is a replay.
   */
  claim(key: string, expiresAt: number): boolean | Promise<boolean>
  /** Forgets `key`, so that the same message may be delivered again (after a 5xx answer). */
  release?(key: string): void | Promise<void>
}

/** Options of {@link createMemoryReplayStore}. */
export interface MemoryReplayStoreOptions {
  /**
   * The most keys kept; past it the oldest are dropped (they are close to expiry anyway).
   * @default 100_000
   */
  maxEntries?: number | undefined
  /**
   * The current time in milliseconds since the epoch.
   * @default Date.now
   */
  now?: (() => number) | undefined
}

/**
 * A {@link ReplayStore} in process memory, with expiry and a size bound.
 *
 * @example
 * ```ts
 * import { createMemoryReplayStore } from 'pipeline-status-sdk/server'
 * const replayStore = createMemoryReplayStore({ maxEntries: 10_000 })
 * ```
 */
export function createMemoryReplayStore(options: MemoryReplayStoreOptions = {}): ReplayStore {
  const maxEntries = options.maxEntries ?? 100_000
  const now = options.now ?? Date.now
  const entries = new Map<string, number>()
  let sweepAt = 0

  const sweep = (time: number): void => {
    for (const [key, expiresAt] of entries) if (expiresAt <= time) entries.delete(key)
  }

  return {
    claim(key, expiresAt) {
      const time = now()
      if (time >= sweepAt) {
        sweep(time)
        sweepAt = time + 60_000
      }
      const known = entries.get(key)
      if (known !== undefined && known > time) return false
      entries.delete(key)
      entries.set(key, expiresAt)
      // Maps iterate in insertion order, so the first keys are the oldest.
      for (const oldest of entries.keys()) {
        if (entries.size <= maxEntries) break
        entries.delete(oldest)
      }
      return true
    },
    release(key) {
      entries.delete(key)
    },
  }
}
