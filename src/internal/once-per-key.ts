/**
 * Remembers which keys (run ids) were already reported, in bounded memory: at most `limit` keys,
 * the least recently reported forgotten first. A forgotten key may be reported once more; never
 * more than once while it is remembered.
 */
export class OncePerKey {
  readonly #seen = new Set<string>()
  readonly #limit: number

  /** `limit`: how many keys are remembered, a positive whole number (default 10,000). */
  constructor(limit = 10_000) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive whole number, got ${String(limit)}`)
    this.#limit = limit
  }

  /** `true` the first time `key` is seen (while remembered), `false` after. */
  first(key: string): boolean {
    if (this.#seen.has(key)) {
      // Seen again: the most recent, so the last to be forgotten (a Set keeps insertion order).
      this.#seen.delete(key)
      this.#seen.add(key)
      return false
    }
    this.#seen.add(key)
    if (this.#seen.size > this.#limit) {
      const oldest = this.#seen.values().next().value
      if (oldest !== undefined) this.#seen.delete(oldest)
    }
    return true
  }

  /** How many keys are remembered. */
  get size(): number {
    return this.#seen.size
  }
}
