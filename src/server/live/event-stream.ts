/**
 * One live status stream (`GET {base}/{runId}/events`) as a `text/event-stream` body, and the
 * registry of a handlers instance's open streams (keep-alive comments, the cap, shutdown).
 * Edge-safe: Web streams and timers only. Not importable outside this package.
 */
import { LIVE_EVENTS } from '../../contract/live-status.js'
import type { RunEndEvent, RunSnapshotEvent, RunUpdateEvent } from '../../contract/live-status.js'
import type { StageOutputRecord } from '../../contract/records.js'
import { isFinalStatus } from '../../contract/status.js'
import { toStatusResponse } from '../../core/state-to-records.js'
import type { RunSnapshot } from '../../core/state.js'
import type { RunWatcher } from './run-watcher.js'
import { unrefTimer } from '../../internal/unref-timer.js'

/**
 * The comment a stream sends right after `retry:`, announcing its keep-alive interval in
 * milliseconds (`: keep-alive-ms 15000`): a subscriber that hears nothing for about three of them
 * takes the connection as lost. A comment, so every SSE client that does not know it ignores it.
 */
export const KEEP_ALIVE_ANNOUNCEMENT = 'keep-alive-ms'

/** The query parameter by which a subscriber asks for `update` events without unchanged outputs. */
export const OUTPUTS_PARAMETER = 'outputs'

/** What a handlers instance's streams have done so far (see `PipelineStatusHandlers.liveStats`). */
export interface LiveStreamStats {
  /** Streams open now. */
  openStreams: number
  /** Streams closed because their reader fell behind by more than the send buffer's bound. */
  slowStreamsClosed: number
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
}

/** The open streams of one handlers instance. */
export class EventStreams {
  readonly #streams = new Set<OpenStream>()
  readonly #watcher: RunWatcher
  readonly #settings: EventStreamSettings
  #keepAlive: ReturnType<typeof setInterval> | undefined
  #closed = false
  #slowStreamsClosed = 0

  constructor(watcher: RunWatcher, settings: EventStreamSettings) {
    this.#watcher = watcher
    this.#settings = settings
  }

  /** How many streams are open. */
  get size(): number {
    return this.#streams.size
  }

  /** Open streams and slow streams closed so far. */
  stats(): LiveStreamStats {
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
   * judged afresh.
   */
  async open(
    runId: string,
    read: () => Promise<RunSnapshot | null>,
    signal: AbortSignal,
    omitUnchangedOutputs = false,
    admits: (snapshot: RunSnapshot) => boolean = () => true,
  ): Promise<ReadableStream<Uint8Array> | null> {
    const stream = new OpenStream(this.#settings, omitUnchangedOutputs, () => this.#forget(stream), (bufferedBytes) => {
      this.#slowStreamsClosed += 1
      this.#settings.onSlowStream({ runId, bufferedBytes, maxBufferedBytes: this.#settings.maxBufferedBytes })
    })
    // Subscribe before the first read, so nothing falls between them.
    stream.watch = this.#watcher.watch(runId, (snapshot) => (admits(snapshot) ? stream.deliver(snapshot) : stream.close()))
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
    if (signal.aborted) {
      stream.close()
    } else {
      signal.addEventListener('abort', () => stream.close(), { once: true })
      this.#armKeepAlive()
    }
    stream.start(snapshot)
    return stream.body
  }

  /** Ends every open stream cleanly (clients reconnect, elsewhere when this server is going away). */
  close(): void {
    this.#closed = true
    for (const stream of [...this.#streams]) stream.close()
    this.#stopKeepAlive()
  }

  #forget(stream: OpenStream): void {
    if (!this.#streams.delete(stream)) return
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

const encoder = new TextEncoder()

/** What a stream last sent of one stage: the output apart, so it is compared, never copied. */
interface SentStage {
  /** The stage without its output, as JSON. */
  rest: string
  /** The output as sent (the snapshot's own string, shared by every stream of the run). */
  output: string | null
}

/** One subscriber's stream: what it sent last decides what the next `update` holds. */
class OpenStream {
  readonly body: ReadableStream<Uint8Array>
  watch: { seen(version: number): void; stop(): void } | undefined
  #controller!: ReadableStreamDefaultController<Uint8Array>
  #version = -1
  #stages = new Map<number, SentStage>()
  #started = false
  #pending: RunSnapshot | undefined
  #closed = false
  /** Bytes of the snapshot this stream started with: allowed in its buffer on top of the bound. */
  #snapshotBytes = 0
  readonly #retryMs: number
  readonly #keepAliveMs: number
  readonly #maxBufferedBytes: number
  readonly #omitUnchangedOutputs: boolean
  readonly #statusDocument: (snapshot: RunSnapshot) => RunSnapshotEvent
  readonly #onClose: () => void
  readonly #onSlow: (bufferedBytes: number) => void

  constructor(
    settings: EventStreamSettings,
    omitUnchangedOutputs: boolean,
    onClose: () => void,
    onSlow: (bufferedBytes: number) => void,
  ) {
    this.#retryMs = settings.retryMs
    this.#keepAliveMs = settings.keepAliveMs
    this.#maxBufferedBytes = settings.maxBufferedBytes
    this.#omitUnchangedOutputs = omitUnchangedOutputs
    this.#statusDocument = settings.statusDocument
    this.#onClose = onClose
    this.#onSlow = onSlow
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller
        },
        // The client went away (or the adapter stopped reading).
        cancel: () => this.close(),
      },
      // Counted in bytes, so `desiredSize` tells how much the reader has not taken yet.
      { highWaterMark: settings.maxBufferedBytes, size: (chunk) => chunk.byteLength },
    )
  }


  /** Sends `retry:` and the snapshot, then what arrived meanwhile; `end` at once for a finished run. */
  start(snapshot: RunSnapshot): void {
    if (this.#closed) return
    this.#started = true
    this.#write(`retry: ${this.#retryMs}\n: ${KEEP_ALIVE_ANNOUNCEMENT} ${this.#keepAliveMs}\n\n`)
    const document = this.#statusDocument(snapshot)
    this.#remember(snapshot.version ?? 0, document.stages)
    this.watch?.seen(this.#version)
    this.#snapshotBytes = this.#event(LIVE_EVENTS.snapshot, document)
    if (isFinalStatus(snapshot.run.status)) return this.#end(document.run)
    const pending = this.#pending
    this.#pending = undefined
    if (pending) this.deliver(pending)
  }

  /** A newer stored state from the watcher: an `update` with what changed, then `end` if finished. */
  deliver(snapshot: RunSnapshot): void {
    if (this.#closed) return
    if (!this.#started) {
      this.#pending = snapshot
      return
    }
    const version = snapshot.version ?? 0
    if (version <= this.#version) return
    const document = toStatusResponse(snapshot)
    const changed: RunUpdateEvent['stages'] = []
    for (const stage of document.stages) {
      const sent = this.#stages.get(stage.stageNumber)
      const { output, ...rest } = stage
      const outputChanged = sent?.output !== output
      if (!outputChanged && sent?.rest === JSON.stringify(rest)) continue
      // An output this stream already sent is left out when the subscriber asked so (docs/contract.md).
      changed.push(outputChanged || !this.#omitUnchangedOutputs ? stage : rest)
    }
    const update: RunUpdateEvent = { run: document.run, stages: changed }
    this.#remember(version, document.stages)
    this.#event(LIVE_EVENTS.update, update)
    if (isFinalStatus(snapshot.run.status)) this.#end(document.run)
  }

  comment(text: string): void {
    if (this.#started) this.#write(`: ${text}\n\n`)
  }

  /** Ends the stream after what is queued; `discard` drops the queue instead (a reader too far behind). */
  close(discard = false): void {
    if (this.#closed) return
    this.#closed = true
    this.watch?.stop()
    this.#onClose()
    try {
      // error() frees the queued bytes at once; close() would keep them for a reader that may never come.
      if (discard) this.#controller.error(new Error('The subscriber fell too far behind; closed to bound the send buffer'))
      else this.#controller.close()
    } catch {
      // Already cancelled by the reader.
    }
  }

  #end(run: RunEndEvent['run']): void {
    const end: RunEndEvent = { run }
    this.#event(LIVE_EVENTS.end, end)
    this.close()
  }

  #remember(version: number, stages: StageOutputRecord[]): void {
    this.#version = version
    this.#stages = new Map(
      stages.map(({ output, ...rest }) => [rest.stageNumber, { rest: JSON.stringify(rest), output }]),
    )
  }

  /** Writes one event; returns its size in bytes. */
  #event(name: string, data: unknown): number {
    // JSON.stringify never emits a raw line break, so the data is one `data:` line.
    return this.#write(`event: ${name}\nid: ${this.#version}\ndata: ${JSON.stringify(data)}\n\n`)
  }

  /** Queues `text` unless the reader is too far behind (then the stream is closed); returns the bytes queued. */
  #write(text: string): number {
    if (this.#closed) return 0
    // desiredSize is the bound minus what the reader has not taken yet.
    const buffered = this.#maxBufferedBytes - (this.#controller.desiredSize ?? this.#maxBufferedBytes)
    if (buffered > this.#maxBufferedBytes + this.#snapshotBytes) {
      // Closing ends the response: the subscriber reconnects and starts again from a fresh snapshot.
      this.#onSlow(buffered)
      this.close(true)
      return 0
    }
    const bytes = encoder.encode(text)
    try {
      this.#controller.enqueue(bytes)
    } catch {
      this.close()
      return 0
    }
    return bytes.byteLength
  }
}
