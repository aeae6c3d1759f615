import { RecentMap } from './recent-map.js'

/**
 * Remembers which keys (run ids) were already reported, in bounded memory ({@link RecentMap}):
 * at most `limit` keys, the least recently reported forgotten first. A forgotten key may be
 * reported once more; never more than once while it is remembered.
 */
export class OncePerKey {
  readonly #seen: RecentMap<true>

  /** `limit`: how many keys are remembered, a positive whole number (default 10,000). */
  constructor(limit = 10_000) {
    this.#seen = new RecentMap(limit)
  }

  /** `true` the first time `key` is seen (while remembered), `false` after. */
  first(key: string): boolean {
    const seen = this.#seen.has(key)
    // Seen again: the most recent, so the last to be forgotten.
    this.#seen.set(key, true)
    return !seen
  }

  /** How many keys are remembered. */
  get size(): number {
    return this.#seen.size
  }
}
