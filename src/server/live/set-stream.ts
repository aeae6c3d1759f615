/**
 * Set streams (`GET {base}/events`, docs/live-status.md "Set streams"): one `text/event-stream`
 * body for many runs, and the registry of a handlers instance's open set streams (keep-alive
 * comments, slow readers, shutdown). Each member run is watched through the process's
 * {@link RunWatcher} (the same reads single-run streams get); a filter stream's membership comes
 * from its {@link RunWindows} window. The body is attached once, as a Web stream or to the Node
 * response directly, as a run's stream is (`event-sink.ts`). Edge-safe: Web streams and timers
 * only. Not importable outside this package.
 */
import { LIVE_EVENTS, type SetStreamView } from '../../contract/live-status.js'
import type { RunEndEvent, RunLeaveEvent, RunSnapshotEvent, SetStreamReadyEvent } from '../../contract/live-status.js'
import type { RunListFilter, RunSummary } from '../../contract/run-list.js'
import { isFinalStatus } from '../../contract/status.js'
import type { RunWindowEntry } from '../../core/run-list.js'
import type { OutputChunkRow, RunSnapshot } from '../../core/state.js'
import { toStatusResponse } from '../../core/state-to-records.js'
import { unrefTimer } from '../../internal/unref-timer.js'
import type { StreamClosed, StreamCounts } from './event-stream.js'
import { closedComment, KEEP_ALIVE_ANNOUNCEMENT } from './event-stream.js'
import { type EventStreamBody, SinkBody } from './event-sink.js'
import type { CredentialExpiry, ExpiringStream } from './credential-expiry.js'
import type { RunWatch, RunWatcher } from './run-watcher.js'
import type { RunWindows, WindowFollow } from './run-window.js'
import { StageDiff, streamedStages } from './stage-diff.js'

/** Settings of the set streams of one handlers instance (those of single-run streams, plus the summary). */
export interface SetStreamSettings {
  /** Milliseconds between keep-alive comment lines. */
  keepAliveMs: number
  /** Bytes a stream may hold unsent, beyond its first snapshots, before it is closed as too slow. */
  maxBufferedBytes: number
  /** Told once per closed slow stream (log it). */
  onSlowStream: (details: { bufferedBytes: number; maxBufferedBytes: number }) => void
  /** The `retry:` sent to clients, in milliseconds. */
  retryMs: number
  /** The status document of a snapshot, exactly as `GET /status` answers it. */
  statusDocument: (snapshot: RunSnapshot) => RunSnapshotEvent
  /** The run's list item, exactly as `GET /runs` lists it. */
  summary: (snapshot: RunSnapshot) => RunSummary
  /** Told when a stream opens (`1`) and when it closes (`-1`), for the open-streams metric. */
  onStreamsChanged?: ((delta: 1 | -1) => void) | undefined
  /** Told each time the server ends a set stream for a `StreamClosedCause` (log it once per cause). */
  onClosed: (details: StreamClosed) => void
  /** Ends streams whose credential expires, at its expiry (one per handlers instance, shared with run streams). */
  expiry: CredentialExpiry
}

/** How a `run=` stream reads and judges one listed run (the grant of its own stream). */
export interface ListedRun {
  readonly runId: string
  /** Reads the run through the caller's grant: `null` for an unknown run; throws a refusal. */
  read(): Promise<RunSnapshot | null>
  /** Whether the grant still covers the run as it now is; a change it does not admit closes the stream. */
  admits(snapshot: RunSnapshot): boolean
}

/** Thrown by {@link SetStreams.openRuns} for a listed run that does not exist (the route answers 404). */
export class ListedRunNotFound extends Error {
  override readonly name = 'ListedRunNotFound'
  constructor(readonly runId: string) {
    super(`Run ${runId} not found`)
  }
}

/** The open set streams of one handlers instance. */
export class SetStreams {
  readonly #streams = new Set<SetStream>()
  readonly #watcher: RunWatcher
  readonly #windows: RunWindows
  readonly #settings: SetStreamSettings
  readonly #read: (runId: string) => Promise<RunSnapshot | null>
  #keepAlive: ReturnType<typeof setInterval> | undefined
  #slowStreamsClosed = 0

  /** `read` reads a run that joins a filter stream (the store's `getRun`). */
  constructor(watcher: RunWatcher, windows: RunWindows, settings: SetStreamSettings, read: (runId: string) => Promise<RunSnapshot | null>) {
    this.#watcher = watcher
    this.#windows = windows
    this.#settings = settings
    this.#read = read
  }

  /** How many set streams are open. */
  get size(): number {
    return this.#streams.size
  }

  /** Open set streams and slow ones closed so far. */
  stats(): StreamCounts {
    return { openStreams: this.#streams.size, slowStreamsClosed: this.#slowStreamsClosed }
  }

  /**
   * Opens a stream of the window of `filter` (scope ANDed in) and `limit`. Resolves with the body
   * once the first membership's snapshots are queued (then `ready`); rejects when the first
   * window query or a member's read failed (nothing stays open). `expiresAt`: when the caller's
   * credential expires (ms since the epoch; a tag read token, or the session's expiry `authorize`
   * answered with), the stream ends then.
   */
  async openFilter(
    filter: RunListFilter,
    limit: number,
    view: SetStreamView,
    signal: AbortSignal,
    matches: (snapshot: RunSnapshot) => boolean,
    expiresAt?: number,
  ): Promise<EventStreamBody> {
    const stream = this.#create(view)
    let follow: WindowFollow | undefined
    stream.onMismatch = () => follow?.dirty()
    stream.matches = matches
    follow = this.#windows.follow(filter, limit, (entries) => stream.membership(entries))
    stream.onStop = () => follow?.stop()
    try {
      await follow.first
      await stream.started
    } catch (error) {
      stream.close()
      throw error
    }
    return this.#started(stream, signal, expiresAt)
  }

  /**
   * Opens a stream of the listed runs: watches each, then reads each through its grant, so no
   * change falls between. Rejects with the first refusal, or {@link ListedRunNotFound}, before
   * anything is sent. The stream closes after every listed run ended. `expiresAt`: when the
   * caller's credential expires (ms since the epoch; a read token, or the session's expiry
   * `authorize` answered with; the earliest of the listed runs' grants), the stream ends then.
   */
  async openRuns(runs: readonly ListedRun[], view: SetStreamView, signal: AbortSignal, expiresAt?: number): Promise<EventStreamBody> {
    const stream = this.#create(view)
    stream.closeWhenAllEnded = true
    try {
      await stream.joinListed(runs)
    } catch (error) {
      stream.close()
      throw error
    }
    return this.#started(stream, signal, expiresAt)
  }

  /** Ends every open set stream cleanly (clients reconnect elsewhere). */
  close(): void {
    for (const stream of [...this.#streams]) stream.close()
    this.#stopKeepAlive()
  }

  #create(view: SetStreamView): SetStream {
    const stream = new SetStream(this.#watcher, this.#read, this.#settings, view, () => this.#forget(stream), (bufferedBytes) => {
      this.#slowStreamsClosed += 1
      this.#settings.onSlowStream({ bufferedBytes, maxBufferedBytes: this.#settings.maxBufferedBytes })
    })
    this.#streams.add(stream)
    this.#settings.onStreamsChanged?.(1)
    return stream
  }

  #started(stream: SetStream, signal: AbortSignal, expiresAt: number | undefined): EventStreamBody {
    if (signal.aborted) stream.close()
    else {
      signal.addEventListener('abort', () => stream.close(), { once: true })
      this.#armKeepAlive()
    }
    stream.closeIfAllEnded()
    // Only a credential with an expiry costs anything: one entry in the instance's expiry map.
    if (expiresAt !== undefined && !stream.closed) this.#settings.expiry.add(stream, expiresAt)
    return stream
  }

  #forget(stream: SetStream): void {
    if (!this.#streams.delete(stream)) return
    this.#settings.expiry.delete(stream)
    this.#settings.onStreamsChanged?.(-1)
    if (this.#streams.size === 0) this.#stopKeepAlive()
  }

  #armKeepAlive(): void {
    if (this.#keepAlive !== undefined) return
    this.#keepAlive = setInterval(() => {
      for (const stream of this.#streams) stream.comment('keep-alive')
    }, this.#settings.keepAliveMs)
    unrefTimer(this.#keepAlive)
  }

  #stopKeepAlive(): void {
    if (this.#keepAlive !== undefined) clearInterval(this.#keepAlive)
    this.#keepAlive = undefined
  }
}

/** How many runs a stream reads at once when runs join (a window of 200 must not take the whole pool). */
const READS_AT_ONCE = 8

/** `read` of every item, at most {@link READS_AT_ONCE} at a time, settled in the items' order. */
async function readAll<T, R>(items: readonly T[], read: (item: T) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      try {
        results[index] = { status: 'fulfilled', value: await read(items[index] as T) }
      } catch (reason) {
        results[index] = { status: 'rejected', reason }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(READS_AT_ONCE, items.length) }, worker))
  return results
}

/** One run of a set stream. */
interface Member {
  readonly runId: string
  watch: RunWatch | undefined
  /** Its snapshot was sent; before that, changes wait in `pending`. */
  live: boolean
  pending: { snapshot: RunSnapshot; chunks: readonly OutputChunkRow[] } | undefined
  /** `end` was sent for this membership. */
  ended: boolean
  /**
   * What this stream sent of the run: the version (-1 before the snapshot) and, in the full
   * view, its stages, so that updates and `output` events follow the run's own stream's rule.
   */
  readonly sent: StageDiff
  /** Summary view: the summary last sent, as JSON without its `version` (what an `update` would change). */
  shown: string | undefined
  admits: (snapshot: RunSnapshot) => boolean
}

/** What a summary shows besides its version: a change that leaves it alike (a chunk, a progress tick) sends nothing. */
function shownOf(summary: RunSummary): string {
  const { version: _version, ...shown } = summary
  return JSON.stringify(shown)
}

/** One subscriber's set stream. */
class SetStream extends SinkBody implements ExpiringStream {
  /** Settles when the first membership was sent (snapshots, then `ready`). */
  readonly started: Promise<void>
  /** Filter streams: whether a run still matches the filter; a member that does not marks the window dirty. */
  matches: ((snapshot: RunSnapshot) => boolean) | undefined
  onMismatch: (() => void) | undefined
  onStop: (() => void) | undefined
  /** `run=` streams close after every listed run ended. */
  closeWhenAllEnded = false
  readonly #members = new Map<string, Member>()
  readonly #watcher: RunWatcher
  readonly #read: (runId: string) => Promise<RunSnapshot | null>
  readonly #settings: SetStreamSettings
  readonly #view: SetStreamView
  readonly #onClose: () => void
  readonly #onSlow: (bufferedBytes: number) => void
  /** Memberships are applied one after the other, so joins and leaves are never reordered. */
  #chain: Promise<void> = Promise.resolve()
  #ready = false
  #resolveStarted!: () => void
  #rejectStarted!: (error: unknown) => void
  #closed = false
  /** Bytes sent before `ready` (the first snapshots): allowed in the buffer on top of the bound. */
  #firstBytes = 0

  constructor(
    watcher: RunWatcher,
    read: (runId: string) => Promise<RunSnapshot | null>,
    settings: SetStreamSettings,
    view: SetStreamView,
    onClose: () => void,
    onSlow: (bufferedBytes: number) => void,
  ) {
    super(settings.maxBufferedBytes)
    this.#watcher = watcher
    this.#read = read
    this.#settings = settings
    this.#view = view
    this.#onClose = onClose
    this.#onSlow = onSlow
    this.started = new Promise((resolve, reject) => {
      this.#resolveStarted = resolve
      this.#rejectStarted = reject
    })
    // A rejection nobody awaits (a stream closed before its start) must not be unhandled.
    this.started.catch(() => undefined)
    this.#firstBytes += this.#write(`retry: ${settings.retryMs}\n: ${KEEP_ALIVE_ANNOUNCEMENT} ${settings.keepAliveMs}\n\n`)
  }

  /** A filter stream's window was read: leaves, then joins in the list's order (newest first). */
  membership(entries: readonly RunWindowEntry[]): void {
    this.#chain = this.#chain.then(() => this.#applyMembership(entries)).catch((error: unknown) => this.#fail(error))
  }

  /** A `run=` stream's runs: watched first, then read through their grants, then sent. */
  async joinListed(runs: readonly ListedRun[]): Promise<void> {
    const members = runs.map((run) => this.#member(run.runId, run.admits))
    const results = await readAll(runs, (run) => run.read())
    // The first refusal (or unknown run) in the order given answers the request.
    const snapshots = results.map((result, index) => {
      if (result.status === 'rejected') throw result.reason
      if (!result.value) throw new ListedRunNotFound(runs[index]!.runId)
      return result.value
    })
    members.forEach((member, index) => this.#sendSnapshot(member, snapshots[index]!))
    this.#sendReady()
  }

  comment(text: string): void {
    if (this.#ready) this.#write(`: ${text}\n\n`)
  }

  /** A `run=` stream whose every run has ended closes (after its events). */
  closeIfAllEnded(): void {
    if (!this.closeWhenAllEnded || this.#closed) return
    for (const member of this.#members.values()) if (!member.ended) return
    this.close()
  }

  /** Whether the stream has closed. */
  get closed(): boolean {
    return this.#closed
  }

  /** The caller's credential expired at `expiresAt` (`CredentialExpiry`): the stream ends, saying why, naming no run. */
  expire(expiresAt: number): void {
    this.#closeFor({ cause: 'credential-expired', runId: undefined, expiresAt, stream: 'set' })
  }

  /** Whether the credential expired (the timer may not have run yet): then the stream ends, the change unsent. */
  #expiredNow(): boolean {
    const expiresAt = this.#settings.expiry.expiredAt(this)
    if (expiresAt === undefined) return false
    this.expire(expiresAt)
    return true
  }

  /** Ends the stream after what is queued; `discard` drops the queue instead (a reader too far behind). */
  override close(discard = false): void {
    if (this.#closed) return
    this.#closed = true
    for (const member of this.#members.values()) member.watch?.stop()
    this.#members.clear()
    this.onStop?.()
    this.#onClose()
    this.#rejectStarted(new Error('The set stream closed before its first membership was sent'))
    this.endBody(discard)
  }

  async #applyMembership(entries: readonly RunWindowEntry[]): Promise<void> {
    if (this.#closed) return
    const wanted = new Set(entries.map((entry) => entry.id))
    for (const member of [...this.#members.values()]) {
      if (wanted.has(member.runId)) continue
      member.watch?.stop()
      this.#members.delete(member.runId)
      const leave: RunLeaveEvent = { runId: member.runId }
      if (member.live) this.#event(LIVE_EVENTS.leave, `${member.runId}:${member.sent.version}`, leave)
    }
    const joining = entries.filter((entry) => !this.#members.has(entry.id)).map((entry) => this.#member(entry.id, () => true))
    if (joining.length > 0) {
      const snapshots = await readAll(joining, (member) => this.#read(member.runId))
      if (this.#closed) return
      let failed: unknown
      joining.forEach((member, index) => {
        const result = snapshots[index]!
        if (this.#members.get(member.runId) !== member) return
        if (result.status === 'fulfilled' && result.value) return this.#sendSnapshot(member, result.value)
        // Deleted meanwhile, or its read failed: not a member; a later window read decides again.
        member.watch?.stop()
        this.#members.delete(member.runId)
        if (result.status === 'rejected') failed ??= result.reason
      })
      if (failed !== undefined) {
        if (!this.#ready) throw failed
        this.onMismatch?.()
      }
    }
    if (!this.#ready) this.#sendReady()
  }

  /**
   * A membership could not be applied: before `ready` the request answers the error; after it
   * the stream ends, saying why (the handlers are told, they log it; the subscriber gets the
   * `: closed membership-failed` comment and reconnects to fresh snapshots).
   */
  #fail(error: unknown): void {
    if (!this.#ready) return this.#rejectStarted(error)
    this.#closeFor({ cause: 'membership-failed', runId: undefined, error, stream: 'set' })
  }

  /** Registers a member and watches it first, so no change falls between its read and its watch. */
  #member(runId: string, admits: (snapshot: RunSnapshot) => boolean): Member {
    const member: Member = { runId, watch: undefined, live: false, pending: undefined, ended: false, sent: new StageDiff(), shown: undefined, admits }
    this.#members.set(runId, member)
    // The full view takes the run's streamed-output chunks after the version it sent (`output`
    // events); the summary view shows no text, so it takes neither chunks nor text.
    member.watch =
      this.#view === 'full'
        ? this.#watcher.watch(runId, {
            take: (snapshot, chunks) => this.#deliver(member, snapshot, chunks),
            takeWhole: (snapshot) => this.#deliverWhole(member, snapshot),
            gone: () => this.#gone(member),
            get sentVersion() {
              return member.sent.version
            },
          })
        : this.#watcher.watch(runId, { take: (snapshot) => this.#deliver(member, snapshot, []), gone: () => this.#gone(member) })
    return member
  }

  #sendSnapshot(member: Member, snapshot: RunSnapshot): void {
    if (this.#closed) return
    const version = snapshot.version ?? 0
    member.live = true
    const id = `${member.runId}:${version}`
    if (this.#view === 'summary') {
      member.sent.remember(version, [], new Set())
      const summary = this.#settings.summary(snapshot)
      member.shown = shownOf(summary)
      this.#count(this.#event(LIVE_EVENTS.snapshot, id, summary))
    } else {
      // The text so far and `outputSeq` (the read has the streamed text); chunks after it follow.
      const document = this.#settings.statusDocument(snapshot)
      member.sent.remember(version, document.stages, streamedStages(snapshot))
      this.#count(this.#event(LIVE_EVENTS.snapshot, id, document))
    }
    // After the version is recorded: the watcher hands this member reads (and chunks) from it on.
    member.watch?.seen(version)
    if (isFinalStatus(snapshot.run.status) && !member.ended) this.#end(member, snapshot)
    const pending = member.pending
    member.pending = undefined
    if (pending) this.#deliver(member, pending.snapshot, pending.chunks)
  }

  #sendReady(): void {
    const ready: SetStreamReadyEvent = { runs: this.#members.size }
    this.#count(this.#write(`event: ${LIVE_EVENTS.ready}\ndata: ${JSON.stringify(ready)}\n\n`))
    this.#ready = true
    this.#resolveStarted()
  }

  /**
   * A newer stored state of a member from the watcher, with its chunks after the version this
   * stream sent (full view): summary view, an `update` when the summary shows a change besides
   * its `version` (none for a chunk); full view, the `output` events and the
   * `update` as the run's own stream sends them ({@link StageDiff.changes}); then `end` when it
   * finished. A full-view update that cannot be made (a stage created or restarted, streamed and
   * finished between two reads, read without its text) closes the stream, saying why: the
   * reconnect sends fresh snapshots. So does a change the member's grant no longer admits.
   */
  #deliver(member: Member, snapshot: RunSnapshot, chunks: readonly OutputChunkRow[]): void {
    if (this.#closed || this.#members.get(member.runId) !== member) return
    if (!member.live) {
      member.pending = { snapshot, chunks }
      return
    }
    const version = snapshot.version ?? 0
    if (version <= member.sent.version) return
    if (this.#expiredNow()) return
    if (!member.admits(snapshot)) return this.#closeFor({ cause: 'not-admitted', runId: member.runId, version, stream: 'set' })
    if (this.#view === 'summary') {
      // The version is learnt either way (later ids, `leave` and `end` carry it); an `update` goes
      // only when something the summary shows changed: a chunk or a progress tick sends nothing.
      member.sent.remember(version, [], new Set())
      const summary = this.#settings.summary(snapshot)
      const shown = shownOf(summary)
      if (shown !== member.shown) {
        member.shown = shown
        this.#event(LIVE_EVENTS.update, `${member.runId}:${version}`, summary)
      }
    } else {
      const events = member.sent.changes(snapshot, chunks)
      if (!events) return this.#closeFor({ cause: 'update-unavailable', runId: member.runId, version, stream: 'set' })
      for (const planned of events) this.#event(planned.event, `${member.runId}:${planned.version}`, planned.data)
    }
    if (isFinalStatus(snapshot.run.status) && !member.ended) this.#end(member, snapshot)
    // The update first, then the window decides whether it leaves (a tag removed, a status filter left).
    if (this.matches && !this.matches(snapshot)) this.onMismatch?.()
  }

  /**
   * The watcher found this full-view member more than `live.maxReplayedChunks` chunks behind and
   * read it with its streamed text: the member gets a fresh `snapshot` (as when it joined), then
   * `end` if finished; the window then decides whether it still matches.
   */
  #deliverWhole(member: Member, snapshot: RunSnapshot): void {
    if (this.#closed || this.#members.get(member.runId) !== member || !member.live) return
    if ((snapshot.version ?? 0) <= member.sent.version) return
    if (this.#expiredNow()) return
    if (!member.admits(snapshot)) return this.#closeFor({ cause: 'not-admitted', runId: member.runId, version: snapshot.version ?? 0, stream: 'set' })
    this.#sendSnapshot(member, snapshot)
    if (this.matches && !this.matches(snapshot)) this.onMismatch?.()
  }

  /**
   * A member is no longer stored (deleted). A finished one is dropped (its `end` was sent; the
   * retention sweep deletes finished runs); a filter stream's window is read again, so it leaves;
   * an unfinished one of a `run=` stream ends the stream, saying why. Before its snapshot, its
   * own read decides.
   */
  #gone(member: Member): void {
    if (this.#closed || this.#members.get(member.runId) !== member || !member.live) return
    if (member.ended) {
      member.watch?.stop()
      member.watch = undefined
      return
    }
    if (this.closeWhenAllEnded) return this.#closeFor({ cause: 'deleted', runId: member.runId, stream: 'set' })
    this.onMismatch?.()
  }

  /**
   * Ends the stream for `details.cause`, naming the member run it is about (a change unsent, or the
   * run deleted) or none (the credential expired, a membership failed): the handlers are told (they
   * log it), and the subscriber gets the `: closed` comment before the end.
   */
  #closeFor(details: StreamClosed): void {
    if (this.#closed) return
    this.#settings.onClosed(details)
    this.#write(closedComment(details.cause, details.runId))
    this.close()
  }

  #end(member: Member, snapshot: RunSnapshot): void {
    member.ended = true
    const end: RunEndEvent = { run: toStatusResponse(snapshot).run }
    this.#event(LIVE_EVENTS.end, `${member.runId}:${member.sent.version}`, end)
    if (this.#ready) this.closeIfAllEnded()
  }

  /** Before `ready`, bytes count towards the first snapshots' allowance. */
  #count(bytes: number): void {
    if (!this.#ready) this.#firstBytes += bytes
  }

  /** Writes one event; returns its size in bytes. */
  #event(name: string, id: string, data: unknown): number {
    // JSON.stringify never emits a raw line break, so the data is one `data:` line; run ids hold none either.
    return this.#write(`event: ${name}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`)
  }

  /** Queues `text` unless the reader is too far behind (then the stream is closed); returns the bytes queued. */
  #write(text: string): number {
    if (this.#closed) return 0
    const max = this.#settings.maxBufferedBytes
    // Before the body is attached (the first snapshots) nothing counts as buffered.
    const buffered = this.bufferedBytes
    if (this.#ready && buffered > max + this.#firstBytes) {
      this.#onSlow(buffered)
      this.close(true)
      return 0
    }
    return this.writeBody(text)
  }
}
