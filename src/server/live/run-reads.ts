/**
 * The run watcher's reads, batched: the runs it asks for within one turn of the event loop (the
 * notifications that arrived in one read of the LISTEN connection, the changes one poll found, a
 * burst of this process's own writes) go to the store as one `Store.getRuns` call, at most
 * {@link MAX_RUNS_PER_READ} runs each, separately for reads with and without streamed text. A
 * store without `getRuns` is read one `getRun` per run, as before.
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
  /** Pending reads of this turn: with streamed text, and without. */
  #withText = new Map<string, Waiter[]>()
  #withoutText = new Map<string, Waiter[]>()
  #scheduled = false

  constructor(store: Store<unknown>) {
    this.#store = store
  }

  /** The run as `Store.getRun` reads it (with its streamed text when `withText`), or `null` when unknown. */
  read(runId: string, withText: boolean): Promise<RunSnapshot | null> {
    if (!this.#store.getRuns) return this.#store.getRun(runId, withText ? undefined : WITHOUT_TEXT)
    return new Promise((resolve, reject) => {
      const pending = withText ? this.#withText : this.#withoutText
      const waiters = pending.get(runId)
      if (waiters) waiters.push({ resolve, reject })
      else pending.set(runId, [{ resolve, reject }])
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => this.#flush())
      }
    })
  }

  #flush(): void {
    this.#scheduled = false
    const withText = this.#withText
    const withoutText = this.#withoutText
    this.#withText = new Map()
    this.#withoutText = new Map()
    this.#readAll(withText, undefined)
    this.#readAll(withoutText, WITHOUT_TEXT)
  }

  #readAll(pending: Map<string, Waiter[]>, options: GetRunOptions | undefined): void {
    const getRuns = this.#store.getRuns
    if (pending.size === 0 || !getRuns) return
    const ids = [...pending.keys()]
    for (let start = 0; start < ids.length; start += MAX_RUNS_PER_READ) {
      const batch = ids.slice(start, start + MAX_RUNS_PER_READ)
      getRuns.call(this.#store, batch, options).then(
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
