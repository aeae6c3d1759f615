/**
 * A map in bounded memory: at most `limit` keys, the least recently set forgotten first. The one
 * least-recently-used bound of the package: per-run memories (which runs were already reported,
 * per run what was logged, seen or kept) use it rather than growing with every run a long-lived
 * process sees. Reading does not make a key recent; setting it does.
 */
export class RecentMap<V> {
  readonly #entries = new Map<string, V>()
  readonly #limit: number

  /** `limit`: how many keys are remembered, a positive whole number. */
  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive whole number, got ${String(limit)}`)
    this.#limit = limit
  }

  /** The value of `key`, while remembered. */
  get(key: string): V | undefined {
    return this.#entries.get(key)
  }

  /** Whether `key` is remembered. */
  has(key: string): boolean {
    return this.#entries.has(key)
  }

  /** Sets `key`'s value and makes it the most recent; past the limit, the least recent key is forgotten. */
  set(key: string, value: V): this {
    // A Map keeps insertion order: re-inserting makes the key the last to be forgotten.
    this.#entries.delete(key)
    this.#entries.set(key, value)
    if (this.#entries.size > this.#limit) {
      const oldest = this.#entries.keys().next()
      if (oldest.done !== true) this.#entries.delete(oldest.value)
    }
    return this
  }

  /** Forgets `key`; whether it was remembered. */
  delete(key: string): boolean {
    return this.#entries.delete(key)
  }

  /** How many keys are remembered. */
  get size(): number {
    return this.#entries.size
  }
}
