/**
 * In-process notification of applied run changes: a store calls `emit` after a write succeeded
 * (never inside a transaction that may still roll back), so that live streams served by the same
 * process learn of the change at once, without a round trip to the database.
 */

/** One applied change: the run and the version it now has. */
export interface RunChange {
  /** The run's id. */
  runId: string
  /** The run's version after the change. */
  version: number
}

/** Receives {@link RunChange}s; a throw is ignored so that a listener never fails a write. */
export type RunChangeListener = (change: RunChange) => void

/** A set of listeners a store notifies after each successful write. */
export class RunChangeEmitter {
  readonly #listeners = new Set<RunChangeListener>()

  /** Adds a listener; the returned function removes it. */
  subscribe(listener: RunChangeListener): () => void {
    this.#listeners.add(listener)
    return () => void this.#listeners.delete(listener)
  }

  /** Tells every listener about a change. */
  emit(change: RunChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change)
      } catch {
        // The write already succeeded; a listener's failure must not turn it into an error.
      }
    }
  }
}
