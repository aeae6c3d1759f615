/**
 * Listeners kept per key (a run id), each set dropped with its last listener so that a
 * long-lived client keeps nothing for runs nobody listens to any more. Internal.
 */
export class ListenersByKey<Listener> {
  readonly #sets = new Map<string, Set<Listener>>()

  /** Adds `listener` under `key`; returns the function that removes it. */
  add(key: string, listener: Listener): () => void {
    const listeners = this.#sets.get(key) ?? new Set()
    listeners.add(listener)
    this.#sets.set(key, listeners)
    return () => {
      listeners.delete(listener)
      if (listeners.size === 0 && this.#sets.get(key) === listeners) this.#sets.delete(key)
    }
  }

  /** The listeners under `key` now (empty when none). */
  of(key: string): Iterable<Listener> {
    return this.#sets.get(key) ?? []
  }
}
