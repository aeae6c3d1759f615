/**
 * The run watcher's reads, batched: the runs it asks for within one turn of the event loop (the
 * notifications that arrived in one read of the LISTEN connection, the changes one poll found, a
 * burst of this process's own writes) go to the store as one `Store.getRuns` call, at most
 * {@link MAX_RUNS_PER_READ} runs each, always without the streamed text (`streamedText: false`:
 * the live streams get it as chunks). A store without `getRuns` is read one `getRun` per run.
 *
 * Why: at 1,000 stage updates a second, one read per notified run was about nine thousand
 * statements per 8 s for the instance that streams them; one statement per batch of
 * notifications does the same work in about one twelfth of the statements (bench/README.md
 * "Issue 31").
 *
 * Bounds: one pending entry per run (a run asked for twice in one turn is read once), cleared at
 * each turn; every read is bounded by the store's own deadlines (`queryTimeoutMs`), and a failed
 * read rejects each of its runs' callers.
 */
import type { RunSnapshot } from '../../core/state.js'
import type { GetRunOptions, Store } from '../../core/store.js'

/** The most runs one batched read asks for: one statement's `= ANY($1)` array. */
export const MAX_RUNS_PER_READ = 100

interface Waiter {
  resolve(snapshot: RunSnapshot | null): void
  reject(error: unknown): void
}

const WITHOUT_TEXT: GetRunOptions = { streamedText: false }

/** See the module comment. Internal to the live streams. */
export class RunReads {
  readonly #store: Store<unknown>
  /** This turn's pending reads, by run. */
  #pending = new Map<string, Waiter[]>()

  constructor(store: Store<unknown>) {
    this.#store = store
  }

  /** The run as `Store.getRun` reads it without its streamed text, or `null` when unknown. */
  read(runId: string): Promise<RunSnapshot | null> {
    if (!this.#store.getRuns) return this.#store.getRun(runId, WITHOUT_TEXT)
    return new Promise((resolve, reject) => {
      const waiters = this.#pending.get(runId)
      if (waiters) waiters.push({ resolve, reject })
      else this.#pending.set(runId, [{ resolve, reject }])
      // The first read of a turn schedules the batch.
      if (this.#pending.size === 1 && !waiters) setImmediate(() => this.#flush())
    })
  }

  #flush(): void {
    const getRuns = this.#store.getRuns
    const pending = this.#pending
    this.#pending = new Map()
    if (pending.size === 0 || !getRuns) return
    const ids = [...pending.keys()]
    for (let start = 0; start < ids.length; start += MAX_RUNS_PER_READ) {
      const batch = ids.slice(start, start + MAX_RUNS_PER_READ)
      getRuns.call(this.#store, batch, WITHOUT_TEXT).then(
        (snapshots) => {
          for (const id of batch) for (const waiter of pending.get(id) ?? []) waiter.resolve(snapshots.get(id) ?? null)
        },
        (error: unknown) => {
          for (const id of batch) for (const waiter of pending.get(id) ?? []) waiter.reject(error)
        },
      )
    }
  }
}
