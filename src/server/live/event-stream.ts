/**
 * One live status stream (`GET {base}/{runId}/events`) as a `text/event-stream` body, and the
 * registry of a handlers instance's open streams (keep-alive comments, the cap, shutdown).
 * Edge-safe: Web streams and timers only. Not importable outside this package.
 */
import { LIVE_EVENTS, STREAM_CLOSED_CAUSES, type StreamClosedCause } from '../../contract/live-status.js'
import type { RunEndEvent, RunSnapshotEvent } from '../../contract/live-status.js'
import { isFinalStatus } from '../../contract/status.js'
import { toStatusResponse } from '../../core/state-to-records.js'
import type { OutputChunkRow, RunSnapshot } from '../../core/state.js'
import type { ReplayTooLong, RunListener, RunWatch, RunWatcher } from './run-watcher.js'
import { StageDiff, streamedStages } from './stage-diff.js'
import { unrefTimer } from '../../internal/unref-timer.js'
import { type EventStreamBody, SinkBody } from './event-sink.js'
import type { CredentialExpiry, ExpiringStream } from './credential-expiry.js'

/**
 * The comment a stream sends right after `retry:`, announcing its keep-alive interval in
 * milliseconds (`: keep-alive-ms 15000`): a subscriber that hears nothing for about three of them
 * takes the connection as lost. A comment, so every SSE client that does not know it ignores it.
 */
export const KEEP_ALIVE_ANNOUNCEMENT = 'keep-alive-ms'

/**
 * The comment a stream sends right before the server ends it for a cause other than the run's
 * end, shutdown or a slow reader: `: closed <cause> <runId>` ({@link StreamClosedCause}; a set
 * stream whose credential expired, or whose membership failed, names no run:
 * `: closed credential-expired`, `: closed membership-failed`). A comment, not an event: the
 * protocol's one closing event, `end`, means the run finished (the subscriber
 * stops for good), while after these the subscriber stops where reconnecting cannot help
 * (`deleted`, `not-admitted`, an expired read token) and otherwise reconnects as after any drop.
 */
export const CLOSED_ANNOUNCEMENT = 'closed'

/**
 * What a stream tells its handlers when the server ended it for a {@link StreamClosedCause} (the
 * causes, with what each means, are the contract's `STREAM_CLOSED_CAUSES`, which the OpenAPI
 * document describes them from).
 */
export type StreamClosed =
  | {
      cause: 'not-admitted' | 'update-unavailable'
      /** The run whose change ended the stream (a set stream's member). */
      runId: string
      /** The version of the run that was not sent. */
      version: number
      /** A run's own stream or a set stream. */
      stream: 'run' | 'set'
    }
  | {
      cause: 'credential-expired'
      /** A run's own stream: its run; a set stream: `undefined` (the credential ended it, not a member). */
      runId: string | undefined
      /** When the credential expired, in ms since the epoch. */
      expiresAt: number
      stream: 'run' | 'set'
    }
  | {
      cause: 'deleted'
      /** The run that is no longer stored (a set stream's member). */
      runId: string
      stream: 'run' | 'set'
    }
  | {
      cause: 'membership-failed'
      /** No run: the stream's membership failed, not one of its runs. */
      runId: undefined
      /** What applying the membership threw. */
      error: unknown
      stream: 'set'
    }

/** The comment line of a {@link StreamClosed}, written right before the stream ends; `runId` is left out when `undefined`. */
export function closedComment(cause: StreamClosedCause, runId: string | undefined): string {
  // Run ids hold no line break (the `POST /runs` rule), so the comment is one line.
  return runId === undefined ? `: ${CLOSED_ANNOUNCEMENT} ${cause}\n\n` : `: ${CLOSED_ANNOUNCEMENT} ${cause} ${runId}\n\n`
}

/** The query parameter by which a subscriber asks for `update` events without unchanged outputs. */
export const OUTPUTS_PARAMETER = 'outputs'

/** What a handlers instance's streams have done so far (see `PipelineStatusHandlers.liveStats`). */
export interface LiveStreamStats {
  /** Streams open now. */
  openStreams: number
  /** Streams closed because their reader fell behind by more than the send buffer's bound. */
  slowStreamsClosed: number
  /**
   * Streams (a run's own and set streams) the server ended before their run's end for a cause of
   * its own, by cause (each sent `: closed <cause>`; only the first of each cause is logged, so
   * this is how a recurrence shows): `not-admitted`, `update-unavailable`, `credential-expired`,
   * `deleted`, `membership-failed`. Every cause is present, 0 until one happens.
   */
  closedStreams: Record<StreamClosedCause, number>
}

/** What one kind of stream (runs' own, set streams) counts; the handlers add the rest. */
export type StreamCounts = Pick<LiveStreamStats, 'openStreams' | 'slowStreamsClosed'>

/** The stats of handlers that have streamed nothing yet: every count 0, every cause present. */
export function emptyLiveStats(): LiveStreamStats {
  return { openStreams: 0, slowStreamsClosed: 0, closedStreams: zeroClosedStreams() }
}

/** Every cause of `STREAM_CLOSED_CAUSES` at 0. */
export function zeroClosedStreams(): Record<StreamClosedCause, number> {
  return Object.fromEntries(Object.keys(STREAM_CLOSED_CAUSES).map((cause) => [cause, 0])) as Record<StreamClosedCause, number>
}

/** Settings of the live streams of one handlers instance. */
export interface EventStreamSettings {
  /** Milliseconds between keep-alive comment lines. */
  keepAliveMs: number
  /** Bytes a stream may hold unsent, beyond its snapshot, before it is closed as too slow. */
  maxBufferedBytes: number
  /** Told once per closed slow stream (log it); the count is kept here. */
  onSlowStream: (details: { runId: string; bufferedBytes: number; maxBufferedBytes: number }) => void
  /** The `retry:` sent to clients, in milliseconds. */
  retryMs: number
  /** The status document of a snapshot, exactly as `GET /status` answers it (with the catalogue). */
  statusDocument: (snapshot: RunSnapshot) => RunSnapshotEvent
  /** Told when a stream opens (`1`) and when it closes (`-1`), for the open-streams metric. */
  onStreamsChanged?: ((delta: 1 | -1) => void) | undefined
  /**
   * The most chunks a resume replays (`live.maxReplayedChunks`, a whole number from 1): a
   * `Last-Event-ID` with more chunks after it up to the run's version gets a fresh snapshot.
   */
  maxReplayedChunks: number
  /** Told each time a resume got a snapshot because it had more chunks to replay (log it once). */
  onReplayTooLong: (details: ReplayTooLong) => void
  /** Told each time the server ends a stream for a {@link StreamClosedCause} (log it once per cause). */
  onClosed: (details: StreamClosed) => void
  /** Ends streams whose credential expires, at its expiry (one per handlers instance, shared with set streams). */
  expiry: CredentialExpiry
}

/**
 * A reconnect's `Last-Event-ID`, when it is a version the stream may resume from: `from` (the
 * subscriber has every event up to it) and how to read the run's chunks after it
 * (`Store.getOutputChunksSince`: at most `limit`, in version order). The stream resumes only
 * when `from` is at most the run's version as read and at most `maxReplayedChunks` chunks lie
 * between the two; otherwise it sends a snapshot.
 */
export interface StreamResume {
  from: number
  chunksSince: (version: number, limit: number) => Promise<OutputChunkRow[]>
}

/**
 * The version a `Last-Event-ID` names when a run's stream may resume from it: a whole number
 * (the run version an event of this stream carried), else `undefined` (a fresh snapshot).
 */
export function resumeVersion(lastEventId: string | null): number | undefined {
  if (lastEventId === null || !/^(0|[1-9][0-9]{0,14})$/.test(lastEventId)) return undefined
  return Number(lastEventId)
}

/** The default of `EventStreams.open`'s `admits`: one function for every stream. */
const admitAll = (): boolean => true

/** The open streams of one handlers instance. */
export class EventStreams {
  readonly #streams = new Set<OpenStream>()
  readonly #watcher: RunWatcher
  readonly #settings: EventStreamSettings
  #keepAlive: ReturnType<typeof setInterval> | undefined
  #closed = false
  #slowStreamsClosed = 0

  /** What every stream of this instance tells it: made once per instance, not per stream. */
  readonly #registry: StreamRegistry = {
    forget: (stream) => this.#forget(stream),
    slow: (runId, bufferedBytes) => {
      this.#slowStreamsClosed += 1
      this.#settings.onSlowStream({ runId, bufferedBytes, maxBufferedBytes: this.#settings.maxBufferedBytes })
    },
    closedFor: (details) => this.#settings.onClosed(details),
    expiredAt: (stream) => this.#settings.expiry.expiredAt(stream),
  }

  constructor(watcher: RunWatcher, settings: EventStreamSettings) {
    this.#watcher = watcher
    this.#settings = settings
  }

  /** How many streams are open. */
  get size(): number {
    return this.#streams.size
  }

  /** Open streams and slow streams closed so far. */
  stats(): StreamCounts {
    return { openStreams: this.#streams.size, slowStreamsClosed: this.#slowStreamsClosed }
  }

  /** Whether {@link EventStreams.close} was called. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * Opens a stream of `runId`: watches the run first, then reads it (`read`), so that a change
   * between the two is never missed. Resolves with the body once the snapshot is known; `null`
   * for an unknown run (nothing stays open). `omitUnchangedOutputs`: `update` events leave out a
   * stage's `output` when this stream already sent that output (the subscriber asked for it).
   * `admits`: whether the caller's credential still covers the run as it now is (a tag read
   * token, the run's tags); a change it does not admit ends the stream, and the reconnect is
   * judged afresh. `expiresAt`: when the credential expires (ms since the epoch; a read token, or
   * the session's expiry `authorize` answered with), the stream ends then (`credential-expired`);
   * without it, never for that. The stream's bytes go to the sink its body is attached to: a Web stream ({@link EventStreamBody.readable}) or a Node
   * response written directly (`event-sink.ts`).
   */
  async open(
    runId: string,
    read: () => Promise<RunSnapshot | null>,
    signal: AbortSignal,
    omitUnchangedOutputs = false,
    admits: (snapshot: RunSnapshot) => boolean = admitAll,
    resume?: StreamResume,
    expiresAt?: number,
  ): Promise<EventStreamBody | null> {
    // The stream is its own watch listener and abort listener: an idle stream keeps no closures.
    const stream = new OpenStream(this.#settings, this.#registry, runId, omitUnchangedOutputs, admits)
    // Subscribe before the first read, so nothing falls between them.
    stream.watch = this.#watcher.watch(runId, stream)
    this.#streams.add(stream)
    this.#settings.onStreamsChanged?.(1)
    let snapshot: RunSnapshot | null
    try {
      snapshot = await read()
    } catch (error) {
      stream.close()
      throw error
    }
    if (!snapshot) {
      stream.close()
      return null
    }
    // A resume the server can serve: the chunks after the subscriber's version, up to the
    // snapshot's, when there are at most maxReplayedChunks of them (one more is read to know; in
    // version order, so every chunk up to the snapshot's version comes before any later one).
    // More: the snapshot as read, which carries the text so far.
    let resumed: { from: number; chunks: readonly OutputChunkRow[] } | undefined
    const version = snapshot.version
    if (resume && version !== undefined && resume.from <= version) {
      const max = this.#settings.maxReplayedChunks
      let chunks: OutputChunkRow[]
      try {
        chunks = (await resume.chunksSince(resume.from, max + 1)).filter((chunk) => chunk.version <= version)
      } catch (error) {
        stream.close()
        throw error
      }
      if (chunks.length <= max) resumed = { from: resume.from, chunks }
      else this.#settings.onReplayTooLong({ cause: 'resume', runId, from: resume.from, version, maxReplayedChunks: max })
    }
    if (signal.aborted) {
      stream.close()
    } else {
      signal.addEventListener('abort', stream, { once: true })
      this.#armKeepAlive()
    }
    stream.start(snapshot, resumed)
    // Only a credential with an expiry costs anything: one entry in the instance's expiry map.
    if (expiresAt !== undefined && !stream.closed) this.#settings.expiry.add(stream, expiresAt)
    return stream
  }

  /** Ends every open stream cleanly (clients reconnect, elsewhere when this server is going away). */
  close(): void {
    this.#closed = true
    for (const stream of [...this.#streams]) stream.close()
    this.#stopKeepAlive()
  }

  #forget(stream: OpenStream): void {
    if (!this.#streams.delete(stream)) return
    this.#settings.expiry.delete(stream)
    this.#settings.onStreamsChanged?.(-1)
    if (this.#streams.size === 0) this.#stopKeepAlive()
  }

  /** One timer for all streams, however many there are. */
  #armKeepAlive(): void {
    if (this.#keepAlive !== undefined || this.#closed) return
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

/**
 * What an {@link OpenStream} tells its {@link EventStreams}: it closed, it was closed as too slow,
 * or for a cause; and what it asks: whether its credential expired (through the registry, so a
 * stream holds no expiry of its own).
 */
interface StreamRegistry {
  forget(stream: OpenStream): void
  slow(runId: string, bufferedBytes: number): void
  closedFor(details: StreamClosed): void
  expiredAt(stream: OpenStream): number | undefined
}

/**
 * One subscriber's stream: what it sent last decides what the next `update` holds. It is its
 * run's watch listener (`take`, `sentVersion`) and its request signal's abort listener
 * (`handleEvent`), so an idle stream holds no closures of its own.
 */
class OpenStream extends SinkBody implements RunListener, EventListenerObject, ExpiringStream {
  watch: RunWatch | undefined
  /** What this stream sent of its run: the version and the stages. */
  readonly #sent: StageDiff
  #started = false
  #pending: { snapshot: RunSnapshot; chunks: readonly OutputChunkRow[] } | undefined
  #closed = false
  /** Bytes of the snapshot this stream started with: allowed in its buffer on top of the bound. */
  #snapshotBytes = 0
  readonly #retryMs: number
  readonly #keepAliveMs: number
  readonly #maxBufferedBytes: number
  readonly #statusDocument: (snapshot: RunSnapshot) => RunSnapshotEvent
  readonly #registry: StreamRegistry
  readonly #runId: string
  /** Whether the caller's credential still covers the run as it now is (see `EventStreams.open`). */
  readonly #admits: (snapshot: RunSnapshot) => boolean

  constructor(
    settings: EventStreamSettings,
    registry: StreamRegistry,
    runId: string,
    omitUnchangedOutputs: boolean,
    admits: (snapshot: RunSnapshot) => boolean,
  ) {
    super(settings.maxBufferedBytes)
    this.#retryMs = settings.retryMs
    this.#keepAliveMs = settings.keepAliveMs
    this.#maxBufferedBytes = settings.maxBufferedBytes
    this.#sent = new StageDiff(omitUnchangedOutputs)
    this.#statusDocument = settings.statusDocument
    this.#registry = registry
    this.#runId = runId
    this.#admits = admits
  }

  /** The watcher's newer state of the run: delivered if the credential still admits it, else the stream ends. */
  take(snapshot: RunSnapshot, chunks: readonly OutputChunkRow[]): void {
    if (this.#expiredNow()) return
    if (this.#admits(snapshot)) this.deliver(snapshot, chunks)
    else this.#closeFor({ cause: 'not-admitted', runId: this.#runId, version: snapshot.version ?? 0, stream: 'run' })
  }

  /** Whether the credential expired (the timer may not have run yet): then the stream ends, the change unsent. */
  #expiredNow(): boolean {
    const expiresAt = this.#registry.expiredAt(this)
    if (expiresAt === undefined) return false
    this.expire(expiresAt)
    return true
  }

  /** The credential expired at `expiresAt` (`CredentialExpiry`): the stream ends, saying why. */
  expire(expiresAt: number): void {
    this.#closeFor({ cause: 'credential-expired', runId: this.#runId, expiresAt, stream: 'run' })
  }

  /** Whether the stream has closed. */
  get closed(): boolean {
    return this.#closed
  }

  /** The run is no longer stored (the watcher read none): the stream ends, saying why. Before its start, its own read decides (404). */
  gone(): void {
    if (this.#started) this.#closeFor({ cause: 'deleted', runId: this.#runId, stream: 'run' })
  }

  /**
   * The watcher found this stream more than `live.maxReplayedChunks` chunks behind and read the
   * run with its streamed text: sent as a fresh `snapshot` (the subscriber replaces its state),
   * then `end` if finished. Its bytes are allowed in the buffer as the first snapshot's are.
   */
  takeWhole(snapshot: RunSnapshot): void {
    if (this.#expiredNow()) return
    if (!this.#admits(snapshot)) return this.#closeFor({ cause: 'not-admitted', runId: this.#runId, version: snapshot.version ?? 0, stream: 'run' })
    // Not started: the watcher hands it nothing before its own snapshot (it reads again at `seen`).
    if (this.#closed || !this.#started) return
    const version = snapshot.version ?? 0
    if (version <= this.#sent.version) return
    const document = this.#statusDocument(snapshot)
    this.#sent.remember(version, document.stages, streamedStages(snapshot))
    this.#snapshotBytes = Math.max(this.#snapshotBytes, this.#event(LIVE_EVENTS.snapshot, document, version))
    if (isFinalStatus(snapshot.run.status)) this.#end(toStatusResponse(snapshot).run)
  }

  /** The request's signal aborted (the client went away): the stream closes. */
  handleEvent(): void {
    this.close()
  }

  /** The version this stream has sent the state of (-1 before its first event): the watcher reads chunks after it. */
  get sentVersion(): number {
    return this.#sent.version
  }

  /**
   * Sends `retry:` and the snapshot, then what arrived meanwhile; `end` at once for a finished
   * run. With `resumed` (a reconnect whose `Last-Event-ID` the server can serve) no snapshot: an
   * `update` with the run and every stage (streamed text left out), then every chunk after
   * `resumed.from` as `output` events, in version order.
   */
  start(snapshot: RunSnapshot, resumed?: { from: number; chunks: readonly OutputChunkRow[] }): void {
    if (this.#closed) return
    this.#started = true
    this.#write(`retry: ${this.#retryMs}\n: ${KEEP_ALIVE_ANNOUNCEMENT} ${this.#keepAliveMs}\n\n`)
    const version = snapshot.version ?? 0
    if (resumed) {
      // Nothing of this stream was sent: every stage goes into the update, as after a snapshot at `from`.
      this.#sent.resumeAt(resumed.from)
      this.#snapshotBytes = this.#changes(snapshot, resumed.chunks, true)
      this.watch?.seen(this.#sent.version)
    } else {
      const document = this.#statusDocument(snapshot)
      this.#sent.remember(version, document.stages, streamedStages(snapshot))
      this.watch?.seen(version)
      this.#snapshotBytes = this.#event(LIVE_EVENTS.snapshot, document, version)
    }
    if (isFinalStatus(snapshot.run.status)) return this.#end(toStatusResponse(snapshot).run)
    const pending = this.#pending
    this.#pending = undefined
    if (pending) this.deliver(pending.snapshot, pending.chunks)
  }

  /**
   * A newer stored state from the watcher, with the run's chunks after the version this stream
   * sent: `output` events for the chunks and an `update` with what else changed, in version
   * order, then `end` if finished.
   */
  deliver(snapshot: RunSnapshot, chunks: readonly OutputChunkRow[] = []): void {
    if (this.#closed) return
    if (!this.#started) {
      this.#pending = { snapshot, chunks }
      return
    }
    const version = snapshot.version ?? 0
    if (version <= this.#sent.version) return
    this.#changes(snapshot, chunks, false)
    if (isFinalStatus(snapshot.run.status)) this.#end(toStatusResponse(snapshot).run)
  }

  /**
   * Sends what changed from the version this stream sent to the snapshot's, as {@link StageDiff}
   * plans it (chunks as `output` events and the `update`, in their order, `id:` each one's
   * version); closes the stream, saying why, when that update cannot be made (the subscriber
   * resumes). Returns the bytes written.
   */
  #changes(snapshot: RunSnapshot, chunks: readonly OutputChunkRow[], resuming: boolean): number {
    const events = this.#sent.changes(snapshot, chunks, resuming)
    if (!events) {
      this.#closeFor({ cause: 'update-unavailable', runId: this.#runId, version: snapshot.version ?? 0, stream: 'run' })
      return 0
    }
    let bytes = 0
    for (const planned of events) bytes += this.#event(planned.event, planned.data, planned.version)
    return bytes
  }

  comment(text: string): void {
    if (this.#started) this.#write(`: ${text}\n\n`)
  }

  /** Ends the stream after what is queued; `discard` drops the queue instead (a reader too far behind). */
  override close(discard = false): void {
    if (this.#closed) return
    this.#closed = true
    this.watch?.stop()
    this.#registry.forget(this)
    this.endBody(discard)
  }

  /**
   * Ends the stream for `details.cause` (a change unsent, or the credential expired): the handlers
   * are told (they log it), and the subscriber gets the `: closed` comment before the end (see
   * {@link CLOSED_ANNOUNCEMENT}).
   */
  #closeFor(details: StreamClosed): void {
    if (this.#closed) return
    this.#registry.closedFor(details)
    this.#write(closedComment(details.cause, this.#runId))
    this.close()
  }

  #end(run: RunEndEvent['run']): void {
    const end: RunEndEvent = { run }
    this.#event(LIVE_EVENTS.end, end)
    this.close()
  }

  /** Writes one event, `id:` `id` (the version this stream sent, by default); returns its size in bytes. */
  #event(name: string, data: unknown, id: number = this.#sent.version): number {
    // JSON.stringify never emits a raw line break, so the data is one `data:` line.
    return this.#write(`event: ${name}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`)
  }

  /** Queues `text` unless the reader is too far behind (then the stream is closed); returns the bytes queued. */
  #write(text: string): number {
    if (this.#closed) return 0
    // Before the body is attached (the retry line and the snapshot) nothing counts as buffered.
    const buffered = this.bufferedBytes
    if (buffered > this.#maxBufferedBytes + this.#snapshotBytes) {
      // Closing ends the response: the subscriber reconnects and starts again from a fresh snapshot.
      this.#registry.slow(this.#runId, buffered)
      this.close(true)
      return 0
    }
    return this.writeBody(text)
  }
}
