/**
 * The windows of filter set streams (`GET {base}/events?<filters>`, docs/live-status.md "Set
 * streams"): a window is "the newest `limit` runs matching a filter" (the caller's scope already
 * ANDed in), in the list's order. Streams with the same filter and limit share one window, so
 * each distinct window costs ONE query per tick whatever the number of its streams:
 * - polling mode (no LISTEN connection delivers): every window is read every `pollIntervalMs`;
 *   the ids and versions it returns are how runs created, tagged or finished on other instances
 *   join and leave, and its versions are handed to the run watcher (members' changes); this
 *   process's own writes mark windows dirty as below, so they join at once here too;
 * - LISTEN mode: a change of a run outside a window (a notification, or this process's own
 *   write, a run's creation included) marks the window dirty, and so does a member that stops
 *   matching ({@link WindowFollow.dirty}). A dirty window is read promptly but bounded: the first
 *   mark after a quiet period reads it at the next turn of the event loop (a timer of 0 ms, so
 *   the marks of one turn are one read); marks within {@link DIRTY_READ_INTERVAL_MS} of the last
 *   such read are folded into one read at the end of that interval. With the one query in flight
 *   per window (marks meanwhile are one more read after it), dirty marks cost a window at most
 *   one query per {@link DIRTY_READ_INTERVAL_MS}, however many notifications arrive; every window
 *   is still read at the safety poll (`safetyPollIntervalMs`) and at the first tick after the
 *   mode changes, which catches up a lost notification, and a window whose read failed at the
 *   next tick.
 * Edge-safe: timers and the store only. Not importable outside this package.
 */
import type { RunListFilter } from '../../contract/run-list.js'
import { canonicalFilter } from '../../contract/run-list-query.js'
import type { RunWindowEntry } from '../../core/run-list.js'
import type { Store } from '../../core/store.js'
import type { Logger } from '../../internal/logger.js'
import { unrefTimer } from '../../internal/unref-timer.js'
import type { RunWatcher } from './run-watcher.js'

/**
 * The least time in milliseconds between two reads of a window that dirty marks start (in
 * polling mode, only this process's own writes mark). In LISTEN mode every write notifies (a streamed chunk included), so while any run outside a window is
 * being written, its marks keep coming: this is the window's steady cost then, at most 20 queries
 * a second per window (the tick of 250 ms read it at most 4 times), 1/50th of a burst of 1,000
 * notifications a second, while a join waits at most 50 ms under such a load and a few
 * milliseconds after a quiet period (the first mark reads at once).
 */
export const DIRTY_READ_INTERVAL_MS = 50

/** Receives each membership the window's query read: ids and versions, newest first. */
export type WindowListener = (entries: readonly RunWindowEntry[]) => void

/** A stream's registration with its window. */
export interface WindowFollow {
  /**
   * Resolves once a query that started after the registration was handed to the listener (its
   * first membership); rejects when that query failed (the stream answers the error instead).
   */
  readonly first: Promise<void>
  /**
   * The window may have changed (a member stopped matching): read it at once, within the bound
   * of {@link DIRTY_READ_INTERVAL_MS}, in either mode.
   */
  dirty(): void
  /** Stops following; the last stream of a window removes it. */
  stop(): void
}

/** Options of {@link RunWindows}. */
export interface RunWindowsOptions {
  store: Store<unknown>
  watcher: RunWatcher
  /** Milliseconds between ticks (the watcher's poll interval). */
  pollIntervalMs: number
  /** In LISTEN mode, every window is read at least this often, in milliseconds. */
  safetyPollIntervalMs: number
  logger: Logger
}

interface Window {
  readonly filter: RunListFilter
  readonly limit: number
  readonly listeners: Set<WindowListener>
  /** Ids of the last membership read. */
  members: Set<string>
  dirty: boolean
  /** The pending read of a dirty window, if any. */
  dirtyTimer: ReturnType<typeof setTimeout> | undefined
  /** When the last read started by dirty marks was started (`Date.now()`), -Infinity before any. */
  lastDirtyRead: number
  querying: boolean
  again: boolean
  /** Registrations waiting for a query that started after them. */
  waiting: Array<{ resolve: () => void; reject: (error: unknown) => void }>
}

/** The canonical text of a window: the filter's sets sorted, instants as milliseconds, and the limit. */
export function windowKey(filter: RunListFilter, limit: number): string {
  return JSON.stringify([...canonicalFilter(filter), limit])
}

/** The windows of one handlers instance; see the module comment. */
export class RunWindows {
  readonly #store: Store<unknown>
  readonly #watcher: RunWatcher
  readonly #pollIntervalMs: number
  readonly #safetyPollIntervalMs: number
  readonly #logger: Logger
  readonly #windows = new Map<string, Window>()
  readonly #unsubscribe: () => void
  #timer: ReturnType<typeof setTimeout> | undefined
  #lastFullTick = 0
  #wasListening = false
  #failureLogged = false
  #closed = false

  constructor(options: RunWindowsOptions) {
    this.#store = options.store
    this.#watcher = options.watcher
    this.#pollIntervalMs = options.pollIntervalMs
    this.#safetyPollIntervalMs = options.safetyPollIntervalMs
    this.#logger = options.logger
    this.#unsubscribe = this.#watcher.onChange((runId) => {
      for (const window of this.#windows.values()) if (!window.members.has(runId)) this.#markDirty(window)
    })
  }

  /** Whether the store can read windows at all (`listRunWindow`, else `listRuns`). */
  get supported(): boolean {
    return this.#store.listRunWindow !== undefined || this.#store.listRuns !== undefined
  }

  /** How many distinct windows are followed. */
  get size(): number {
    return this.#windows.size
  }

  /** Follows the window of `filter` and `limit`; `listener` gets every membership read from now on. */
  follow(filter: RunListFilter, limit: number, listener: WindowListener): WindowFollow {
    const key = windowKey(filter, limit)
    let window = this.#windows.get(key)
    if (!window) {
      window = {
        filter,
        limit,
        listeners: new Set(),
        members: new Set(),
        dirty: false,
        dirtyTimer: undefined,
        lastDirtyRead: Number.NEGATIVE_INFINITY,
        querying: false,
        again: false,
        waiting: [],
      }
      this.#windows.set(key, window)
    }
    window.listeners.add(listener)
    const followed = window
    const first = new Promise<void>((resolve, reject) => followed.waiting.push({ resolve, reject }))
    // The new stream needs a membership read after it registered: now, not at the next tick.
    this.#query(followed)
    this.#schedule()
    return {
      first,
      dirty: () => this.#markDirty(followed),
      stop: () => {
        followed.listeners.delete(listener)
        if (followed.listeners.size === 0 && this.#windows.get(key) === followed) {
          this.#windows.delete(key)
          this.#clearDirtyTimer(followed)
        }
      },
    }
  }

  /** Stops the ticks; windows end with their streams. */
  close(): void {
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#unsubscribe()
    for (const window of this.#windows.values()) {
      this.#clearDirtyTimer(window)
      for (const waiter of window.waiting.splice(0)) waiter.reject(new Error('The live streams are closing'))
    }
    this.#windows.clear()
  }

  /**
   * The window may have changed: a read is started at once, or at the end of the current
   * {@link DIRTY_READ_INTERVAL_MS}. In polling mode only this process's own writes and members
   * that stop matching mark windows (other instances' changes come with the tick).
   */
  #markDirty(window: Window): void {
    window.dirty = true
    if (this.#closed || window.dirtyTimer !== undefined) return
    // Clamped to the interval, so a wall clock set back cannot hold the read for longer.
    const delay = Math.min(DIRTY_READ_INTERVAL_MS, Math.max(0, window.lastDirtyRead + DIRTY_READ_INTERVAL_MS - Date.now()))
    window.dirtyTimer = setTimeout(() => {
      window.dirtyTimer = undefined
      // Read meanwhile (a tick), or no longer followed: nothing to do.
      if (this.#closed || !window.dirty || window.listeners.size === 0) return
      window.lastDirtyRead = Date.now()
      this.#query(window)
    }, delay)
    // A window waiting for its read must never keep a Node process alive either.
    unrefTimer(window.dirtyTimer)
  }

  #clearDirtyTimer(window: Window): void {
    if (window.dirtyTimer !== undefined) clearTimeout(window.dirtyTimer)
    window.dirtyTimer = undefined
  }

  #schedule(): void {
    if (this.#closed || this.#timer !== undefined || this.#windows.size === 0) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#tick()
      this.#schedule()
    }, this.#pollIntervalMs)
    // Idle windows must never keep a Node process alive.
    unrefTimer(this.#timer)
  }

  /** One tick: every window when polling (or at the safety poll), else the dirty ones, within the dirty reads' bound. */
  #tick(): void {
    const listening = this.#watcher.listening
    const now = Date.now()
    const full = !listening || listening !== this.#wasListening || now - this.#lastFullTick >= this.#safetyPollIntervalMs
    this.#wasListening = listening
    if (full) this.#lastFullTick = now
    for (const window of this.#windows.values()) {
      if (full) this.#query(window)
      // A dirty window between full ticks (a read that failed, a mark) keeps the bound of
      // DIRTY_READ_INTERVAL_MS: the tick does not read it a second time beside its dirty read.
      else if (window.dirty) this.#markDirty(window)
    }
  }

  /** Reads a window and hands the membership to its streams; one query at a time per window, so never reordered. */
  #query(window: Window): void {
    if (this.#closed) return
    window.dirty = false
    if (window.querying) {
      window.again = true
      return
    }
    window.querying = true
    void (async () => {
      try {
        do {
          window.again = false
          const waiting = window.waiting.splice(0)
          let entries: RunWindowEntry[]
          try {
            entries = await this.#read(window)
          } catch (error) {
            for (const waiter of waiting) waiter.reject(error)
            if (!this.#failureLogged) {
              this.#failureLogged = true
              this.#logger.warn('pipeline-status: reading the window of a set stream failed; retrying at the next tick', { error })
            }
            window.dirty = true
            continue
          }
          this.#failureLogged = false
          window.members = new Set(entries.map((entry) => entry.id))
          for (const listener of [...window.listeners]) {
            try {
              listener(entries)
            } catch (error) {
              this.#logger.error('pipeline-status: a set stream failed to take its window', { error })
            }
          }
          for (const waiter of waiting) waiter.resolve()
          // Members' versions: the watcher reads those newer than it has (their `update` events).
          for (const entry of entries) this.#watcher.hint(entry.id, entry.version)
        } while (window.again && !this.#closed)
      } finally {
        window.querying = false
      }
    })()
  }

  async #read(window: Window): Promise<RunWindowEntry[]> {
    const request = { filter: window.filter, limit: window.limit }
    if (this.#store.listRunWindow) return this.#store.listRunWindow(request)
    if (this.#store.listRuns) return (await this.#store.listRuns(request)).map((item) => ({ id: item.run.id, version: item.version }))
    return []
  }
}
