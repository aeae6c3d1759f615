/**
 * The per-process run watcher behind the live streams (DESIGN.md "Live status"): it learns that a
 * streamed run changed, reads the run once, and hands the stored state to every stream of that
 * run. Changes reach it three ways:
 * - in-process, from the store's own successful writes (`Store.onRunChange`), at once;
 * - from a LISTEN connection (a {@link RunChangeSource}, e.g. `createPgRunListener`), when given;
 * - by polling the versions of every streamed run with ONE batched query per tick
 *   (`Store.getRunVersions`), whenever no LISTEN connection is up;
 * - while LISTEN delivers, by a slow safety poll of the same kind (`safetyPollIntervalMs`), which
 *   catches up a change no notification announced (a writer without `notifyChannel`, or a
 *   notification lost to a writer's crash between commit and its notification batch) and logs
 *   that once per process.
 * A streamed run that a poll no longer finds, read again and found missing, was deleted: its
 * listeners are told (`RunListener.gone`), so no stream follows a run that is gone in silence.
 * Edge-safe: timers and the store only, no Node built-ins.
 */
import type { OutputChunkRow, RunSnapshot } from '../../core/state.js'
import type { Store } from '../../core/store.js'
import { chunksUpTo } from '../../core/stage-output.js'
import type { Logger } from '../../internal/logger.js'
import { unrefTimer } from '../../internal/unref-timer.js'
import { RunReads } from './run-reads.js'

/** What a LISTEN connection reports to the watcher. */
export interface RunChangeSink {
  /** A run changed; `version` is its new version when the notification carried one. */
  change(runId: string, version: number | undefined): void
  /**
   * The connection is (again) listening: the watcher re-reads every streamed run, since
   * notifications sent while it was down are lost, and polls only every `safetyPollIntervalMs`.
   */
  connected(): void
  /**
   * Notifications are not arriving (the connection failed, missed a liveness probe, or cannot
   * receive other sessions' notifications): the watcher polls versions until `connected` is
   * called again, and logs one warning with `error`, whose message should name the cause and the
   * fix. A source calls it once per degradation, not once per failed attempt.
   */
  disconnected(error?: unknown): void
}

/**
 * A source of cross-instance change notifications, such as a PostgreSQL `LISTEN` connection
 * (`createPgRunListener` from `pipeline-status-sdk/pg`). The watcher calls `start` once, when it
 * is created, and `close` when the handlers shut down.
 */
export interface RunChangeSource {
  /** Starts listening; reports to `sink` until closed. */
  start(sink: RunChangeSink): void
  /** Stops listening and releases the connection. */
  close(): Promise<void>
}

/**
 * A watched run's listener (a stream, or a member of a set stream): `take` receives the stored
 * state each time the watcher read a newer version, read WITHOUT the streamed text
 * (`streamedText: false`: a stage showing it has `output: null`), with the run's streamed output
 * chunks after the listener's `sentVersion` (up to the snapshot's version), in version order,
 * when it has one and the store has `getOutputChunksSince`. An object rather than callbacks so
 * that a stream is its own listener: an idle stream holds no closures for its watch. One watch
 * per listener object.
 */
export interface RunListener {
  take(snapshot: RunSnapshot, chunks: readonly OutputChunkRow[]): void
  /**
   * The version the listener has sent so far (-1 before its first event); `undefined`: it takes
   * no chunks (the summary view).
   */
  readonly sentVersion?: number | undefined
  /**
   * Instead of `take`, for a listener with a `sentVersion`: the run read WITH its streamed text,
   * because more than `maxReplayedChunks` chunks lay between the version it sent and the
   * snapshot's (it sends a fresh snapshot). A listener with a `sentVersion` has it; one without is
   * never handed chunks, so never this.
   */
  takeWhole?(snapshot: RunSnapshot): void
  /**
   * The run is no longer stored: a read found none (it was deleted, by the app or by hand, or
   * the poll's versions no longer name it). A listener that has sent the run's state ends or
   * drops it; one that has not yet ignores it (its own read finds no run).
   */
  gone?(): void
}

/**
 * A catch-up that sent a fresh snapshot instead of replaying chunks: more than
 * `maxReplayedChunks` chunks of `runId` lay after `from`, up to the run's `version`. `cause`:
 * `resume`, a reconnect's `Last-Event-ID`; `behind`, a stream the run watcher found behind.
 */
export interface ReplayTooLong {
  cause: 'resume' | 'behind'
  runId: string
  from: number
  version: number
  maxReplayedChunks: number
}

/** A stream's registration with the watcher. */
export interface RunWatch {
  /**
   * Tells the watcher the version the stream read itself (its snapshot, or the version it resumed
   * from), so it does not read it again. A chunk-taking stream calls it once it has sent that
   * version: until then it gets nothing (its chunks would start at the beginning of the text), and
   * a change read meanwhile is read again for it here.
   */
  seen(version: number): void
  /** Stops watching. */
  stop(): void
}

/** Options of {@link RunWatcher}. */
export interface RunWatcherOptions {
  store: Store<unknown>
  /** Polling interval in milliseconds, while no LISTEN connection delivers. */
  pollIntervalMs: number
  /** Safety polling interval in milliseconds, while a LISTEN connection delivers. */
  safetyPollIntervalMs: number
  source?: RunChangeSource | undefined
  logger: Logger
  /**
   * Told every version the watcher learns of any run (own writes, notifications, polls), so the
   * handlers' read source knows when a read replica is behind.
   */
  onVersion?: ((runId: string, version: number) => void) | undefined
  /**
   * The most chunks one read hands its listeners (`live.maxReplayedChunks`): when more lie after
   * the oldest version they sent, the chunk-taking ones get the run read with its text
   * (`takeWhole`) instead. Reads ask the store for one more than this.
   */
  maxReplayedChunks: number
  /** Told each time listeners got the run whole because they were that far behind (log it once). */
  onReplayTooLong: (details: ReplayTooLong) => void
}

interface WatchedRun {
  listeners: Set<RunListener>
  /** The newest version read (by the watcher or a stream); -1 before any. */
  version: number
  refreshing: boolean
  again: boolean
}

/** A read that hands no listener any chunk. */
const NO_CHUNKS: ReadonlyMap<RunListener, readonly OutputChunkRow[] | null> = new Map()

/** One per handlers instance; see the module comment. Not importable outside this package. */
export class RunWatcher {
  readonly #store: Store<unknown>
  readonly #pollIntervalMs: number
  readonly #safetyPollIntervalMs: number
  readonly #source: RunChangeSource | undefined
  readonly #logger: Logger
  readonly #onVersion: ((runId: string, version: number) => void) | undefined
  readonly #maxReplayedChunks: number
  readonly #onReplayTooLong: (details: ReplayTooLong) => void
  readonly #runs = new Map<string, WatchedRun>()
  /**
   * The watched runs' ids as the poll sends them, made again only after a run was added or
   * dropped: an idle server's poll then allocates no array of its own per tick.
   */
  #ids: readonly string[] | undefined
  /** The runs' reads, batched per turn of the event loop. */
  readonly #reads: RunReads
  readonly #unsubscribe: (() => void) | undefined
  #listening = false
  #timer: ReturnType<typeof setTimeout> | undefined
  #polling = false
  #closed = false
  #pollFailureLogged = false
  /**
   * Versions a safety poll found that no notification had announced yet, by run. One found at a
   * tick and still unannounced at the next (a whole safety interval later, far beyond the few
   * milliseconds a notification takes) was never announced.
   */
  #unannounced = new Map<string, number>()
  #unannouncedLogged = false
  /** Told of every announced change, watched run or not (set streams' windows). */
  readonly #changeListeners = new Set<(runId: string, version: number | undefined) => void>()

  constructor(options: RunWatcherOptions) {
    this.#store = options.store
    this.#reads = new RunReads(options.store)
    this.#pollIntervalMs = options.pollIntervalMs
    this.#safetyPollIntervalMs = options.safetyPollIntervalMs
    this.#source = options.source
    this.#logger = options.logger
    this.#onVersion = options.onVersion
    this.#maxReplayedChunks = options.maxReplayedChunks
    this.#onReplayTooLong = options.onReplayTooLong
    this.#unsubscribe = this.#store.onRunChange?.((change) => this.#announced(change.runId, change.version))
    if (!this.#store.onRunChange && !this.#store.getRunVersions && !this.#source) {
      // Nothing would ever tell a stream of a change: say so once, when the first stream opens.
      this.#logger.warn(
        'pipeline-status: the store has neither onRunChange nor getRunVersions, and no listen source is set, ' +
          'so live streams send their snapshot and then no updates; implement one of them (docs/live-status.md)',
      )
    }
    this.#source?.start({
      change: (runId, version) => this.#announced(runId, version),
      connected: () => {
        this.#listening = true
        this.#unannounced.clear()
        // Notifications sent while the connection was down are lost: read every streamed run.
        for (const runId of this.#runs.keys()) this.#refresh(runId)
        // From now on only the slow safety poll, its first tick a whole interval after these reads.
        this.#rearm()
      },
      disconnected: (error) => {
        if (this.#closed) return
        this.#listening = false
        this.#unannounced.clear()
        this.#logger.warn('pipeline-status: LISTEN is not delivering notifications; live streams poll run versions until it does again', { error })
        this.#rearm()
      },
    })
  }

  /** How many runs are watched. */
  get size(): number {
    return this.#runs.size
  }

  /** Whether a LISTEN connection delivers notifications now (then only the safety poll runs). */
  get listening(): boolean {
    return this.#listening
  }

  /**
   * Tells `listener` of every change announced to this process (its own writes, a run's creation
   * included, and LISTEN notifications), whether or not the run is watched: set streams learn
   * from it that a run outside their window may have entered it. Returns the unsubscribe.
   */
  onChange(listener: (runId: string, version: number | undefined) => void): () => void {
    this.#changeListeners.add(listener)
    return () => void this.#changeListeners.delete(listener)
  }

  /** A version of a watched run learnt elsewhere (a set stream's window query): read it if newer. */
  hint(runId: string, version: number): void {
    this.#changed(runId, version)
  }

  /**
   * Watches a run; `listener.take` gets each newer stored state, read without its streamed text.
   * With a `sentVersion` (the version the listener has sent so far, -1 for none), it also gets the
   * streamed output chunks after it, and gets nothing while it is -1 (see {@link RunWatch.seen});
   * without, it takes no text at all (the summary view of set streams).
   */
  watch(runId: string, listener: RunListener): RunWatch {
    let run = this.#runs.get(runId)
    if (!run) {
      run = { listeners: new Set(), version: -1, refreshing: false, again: false }
      this.#runs.set(runId, run)
      this.#ids = undefined
    }
    run.listeners.add(listener)
    this.#schedule()
    const watched = run
    return {
      seen: (version) => {
        // The watcher read (or is reading) a newer version than the stream's own read: one it was
        // not handed (a chunk-taking stream gets none before this), or one its own read raced.
        // The run is read again for it, its chunks starting at this version.
        const behind = version < watched.version || watched.refreshing
        if (version > watched.version) watched.version = version
        if (behind && watched.listeners.has(listener)) this.#refresh(runId)
      },
      stop: () => {
        watched.listeners.delete(listener)
        if (watched.listeners.size === 0 && this.#runs.get(runId) === watched) {
          this.#runs.delete(runId)
          this.#ids = undefined
        }
      },
    }
  }

  /** Stops polling and listening; watches end with their streams. */
  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#unsubscribe?.()
    this.#runs.clear()
    this.#ids = undefined
    this.#changeListeners.clear()
    await this.#source?.close()
  }

  /** A notification (or this process's own write) announced a change. */
  #announced(runId: string, version: number | undefined): void {
    const found = this.#unannounced.get(runId)
    if (found !== undefined && (version === undefined || version >= found)) this.#unannounced.delete(runId)
    this.#changed(runId, version)
    for (const listener of this.#changeListeners) {
      try {
        listener(runId, version)
      } catch (error) {
        this.#logger.error('pipeline-status: a set stream failed to take a change', { error })
      }
    }
  }

  #changed(runId: string, version: number | undefined): void {
    if (version !== undefined) this.#onVersion?.(runId, version)
    const run = this.#runs.get(runId)
    if (!run) return
    if (version === undefined || version > run.version) this.#refresh(runId)
  }

  /** Reads the run and hands it to its streams; one read at a time per run, so never reordered. */
  #refresh(runId: string): void {
    const run = this.#runs.get(runId)
    if (!run || this.#closed) return
    if (run.refreshing) {
      run.again = true
      return
    }
    run.refreshing = true
    void (async () => {
      try {
        do {
          run.again = false
          let snapshot: RunSnapshot | null
          let plan: ReadonlyMap<RunListener, readonly OutputChunkRow[] | null> = NO_CHUNKS
          // The run read with its text, for listeners too far behind to replay chunks (null: deleted).
          let whole: RunSnapshot | null = null
          // Who gets this read: a listener taking chunks once it has sent something (its chunks start
          // there); one that has not yet is read for at its `seen`. Never the whole text, whatever its
          // length, except for a listener more than maxReplayedChunks chunks behind.
          let handed: RunListener[] = []
          try {
            snapshot = await this.#reads.read(runId)
            if (snapshot) {
              handed = this.#handed(run)
              plan = await this.#chunksOf(run, handed, snapshot)
              if ([...plan.values()].includes(null)) whole = await this.#store.getRun(runId)
            }
          } catch (error) {
            // Tried again after a poll interval, also in LISTEN mode (whose safety tick is slower); streams
            // keep their last state meanwhile.
            this.#logger.warn(`pipeline-status: reading run ${runId} for its live streams failed`, { error })
            run.version = -1
            unrefTimer(setTimeout(() => this.#refresh(runId), this.#pollIntervalMs))
            return
          }
          if (!snapshot) {
            // Deleted: its listeners end or drop it (each stops its watch).
            for (const listener of [...run.listeners]) {
              try {
                listener.gone?.()
              } catch (error) {
                this.#logger.error('pipeline-status: a live stream failed to end for its deleted run', { error })
              }
            }
            return
          }
          if (snapshot.version !== undefined && snapshot.version > run.version) run.version = snapshot.version
          if (whole?.version !== undefined && whole.version > run.version) run.version = whole.version
          for (const listener of handed) {
            if (!run.listeners.has(listener)) continue
            try {
              const chunks = plan.get(listener)
              if (chunks !== null) listener.take(snapshot, chunks ?? [])
              else if (whole) listener.takeWhole?.(whole)
            } catch (error) {
              this.#logger.error('pipeline-status: a live stream failed to send an event', { error })
            }
          }
        } while (run.again && !this.#closed)
      } finally {
        run.refreshing = false
      }
    })()
  }

  /**
   * The listeners a read is handed to: all but chunk-taking ones that have sent nothing yet (-1),
   * so that the chunks read start after a version sent, never at the beginning of the text; those
   * are read for again at their `seen` when this read was newer than their own.
   */
  #handed(run: WatchedRun): RunListener[] {
    const handed: RunListener[] = []
    for (const listener of run.listeners) {
      const sent = listener.sentVersion
      if (sent === undefined || sent >= 0) handed.push(listener)
    }
    return handed
  }

  /**
   * For each `handed` chunk-taking listener, the run's chunks after the version it sent, up to the
   * snapshot's version (read after the snapshot, so later chunks wait for the next read), or
   * `null` when more than `maxReplayedChunks` lie between (it gets the run whole); a listener not
   * in the map gets none (none when no listener takes chunks, the store keeps none, or no stage
   * of the run has any). Reads at most `maxReplayedChunks + 1` rows at a time, from the oldest
   * version of the listeners not yet decided; listeners at one version (the usual case) cost one
   * read, and each further read decides at least the oldest listener left.
   */
  async #chunksOf(run: WatchedRun, handed: readonly RunListener[], snapshot: RunSnapshot): Promise<ReadonlyMap<RunListener, readonly OutputChunkRow[] | null>> {
    const store = this.#store
    if (!store.getOutputChunksSince || snapshot.version === undefined) return NO_CHUNKS
    // No stage with streamed output: the run has no chunk rows, so none are read.
    if (!snapshot.stages.some((stage) => stage.outputSeq != null)) return NO_CHUNKS
    const version = snapshot.version
    const max = this.#maxReplayedChunks
    let open: Array<{ listener: RunListener; sent: number }> = []
    for (const listener of handed) {
      const sent = listener.sentVersion
      if (run.listeners.has(listener) && sent !== undefined && sent < version) open.push({ listener, sent })
    }
    const plan = new Map<RunListener, readonly OutputChunkRow[] | null>()
    let tooLong: number | undefined
    while (open.length > 0) {
      const since = Math.min(...open.map((entry) => entry.sent))
      const read = await store.getOutputChunksSince(snapshot.run.id, since, max + 1)
      const chunks = read.filter((chunk) => chunk.version <= version)
      // Every chunk up to the snapshot's version is in `read` unless it holds max + 1 rows, all of
      // them up to it (a store that ignores the limit returns them all).
      const complete = read.length !== max + 1 || (read.at(-1) as OutputChunkRow).version > version
      const undecided: typeof open = []
      for (const entry of open) {
        const after = chunks.length - chunksUpTo(chunks, entry.sent)
        if (after > max) {
          plan.set(entry.listener, null)
          tooLong = Math.min(tooLong ?? entry.sent, entry.sent)
        } else if (complete) plan.set(entry.listener, chunks)
        else undecided.push(entry)
      }
      open = undecided
    }
    if (tooLong !== undefined) this.#onReplayTooLong({ cause: 'behind', runId: snapshot.run.id, from: tooLong, version, maxReplayedChunks: max })
    return plan
  }

  /** Drops the armed tick and arms one at the interval of the current mode (polling or safety polling). */
  #rearm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#schedule()
  }

  /**
   * Arms the next poll tick when runs are watched: every `pollIntervalMs` while no LISTEN
   * connection delivers, every `safetyPollIntervalMs` while one does.
   */
  #schedule(): void {
    if (this.#closed || this.#timer !== undefined || this.#runs.size === 0) return
    if (!this.#store.getRunVersions) return
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined
        void this.#poll()
      },
      this.#listening ? this.#safetyPollIntervalMs : this.#pollIntervalMs,
    )
    // An idle watcher must never keep a Node process alive.
    unrefTimer(this.#timer)
  }

  /** One batched query for the versions of every watched run, whatever their number. */
  async #poll(): Promise<void> {
    if (this.#polling || this.#closed || !this.#store.getRunVersions) return
    this.#polling = true
    const safety = this.#listening
    try {
      if (safety) this.#reportUnannounced()
      const ids = (this.#ids ??= [...this.#runs.keys()])
      if (ids.length === 0) return
      const versions = await this.#store.getRunVersions(ids)
      this.#pollFailureLogged = false
      // forEach, not `for (const [runId, version] of versions)`: an idle server polls every run it
      // streams each tick, and the loop's entry arrays and iterator results were most of what it
      // allocated (bench/README.md, "An idle server's allocations").
      versions.forEach((version, runId) => {
        const run = this.#runs.get(runId)
        // A run being read, or whose last read failed, may well be behind: that is no missed notification.
        if (safety && this.#listening && run && !run.refreshing && run.version >= 0 && version > run.version) {
          this.#unannounced.set(runId, version)
        }
        this.#changed(runId, version)
      })
      // A watched run the versions no longer name was deleted: read it to be sure, then its listeners are told.
      if (versions.size < ids.length) for (const runId of ids) if (!versions.has(runId)) this.#refresh(runId)
    } catch (error) {
      if (!this.#pollFailureLogged) {
        this.#pollFailureLogged = true
        this.#logger.warn('pipeline-status: polling run versions for live streams failed; retrying', { error })
      }
    } finally {
      this.#polling = false
      this.#schedule()
    }
  }

  /** Warns (once per process) when a change found by the previous safety tick was never announced since. */
  #reportUnannounced(): void {
    for (const [runId, version] of this.#unannounced) {
      if (!this.#runs.has(runId) || this.#unannouncedLogged) continue
      this.#unannouncedLogged = true
      this.#logger.warn(
        `pipeline-status: the safety poll found version ${version} of run ${runId}, which no LISTEN notification announced, ` +
          `so its live streams were up to live.safetyPollIntervalMs (${this.#safetyPollIntervalMs} ms) late. ` +
          "Most likely an instance writes without notifyChannel: give every writing instance's PrismaStore the same notifyChannel as createPgRunListener's channel; " +
          'otherwise a notification was lost (a writer crashed between commit and its notification batch, or its batch failed). Logged once per process (docs/live-status.md)',
        { runId, version },
      )
    }
    this.#unannounced.clear()
  }
}
