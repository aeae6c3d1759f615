/**
 * The external store behind `useRunStatus` and `useRuns` (for `useSyncExternalStore`): a snapshot
 * replaced on each change, its listeners, and one subscription opened by the first listener and
 * closed when the last one leaves. Internal: not exported from the entry.
 */

/** What `useSyncExternalStore` reads. */
export interface SubscriptionStore<S> {
  subscribe(listener: () => void): () => void
  getSnapshot(): S
  getServerSnapshot(): S
}

/**
 * A store that starts at `serverSnapshot` (what server-side rendering shows, never changing).
 * `open` is called by a first listener while no subscription is open, with `update` (merges a
 * change into the snapshot and tells the listeners) and a reader of the current snapshot; it returns the
 * subscription, or `undefined` when there is nothing left to follow (a finished or failed state).
 */
export function createSubscriptionStore<S extends object>(
  serverSnapshot: S,
  open: (update: (next: Partial<S>) => void, current: () => S) => { close(): void } | undefined,
): SubscriptionStore<S> {
  let snapshot = serverSnapshot
  const listeners = new Set<() => void>()
  let subscription: { close(): void } | undefined

  function update(next: Partial<S>): void {
    snapshot = { ...snapshot, ...next }
    for (const listener of listeners) listener()
  }

  return {
    subscribe(listener) {
      listeners.add(listener)
      if (subscription === undefined) subscription = open(update, () => snapshot)
      return () => {
        listeners.delete(listener)
        if (listeners.size === 0) {
          subscription?.close()
          subscription = undefined
        }
      }
    },
    getSnapshot: () => snapshot,
    getServerSnapshot: () => serverSnapshot,
  }
}
