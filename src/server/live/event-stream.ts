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
   * judged afresh. The stream's bytes go to the sink its body is attached to: a Web stream
   * ({@link EventStreamBody.readable}) or a Node response written directly.
   */
  async open(
    runId: string,
    read: () => Promise<RunSnapshot | null>,
    signal: AbortSignal,
    omitUnchangedOutputs = false,
    admits: (snapshot: RunSnapshot) => boolean = () => true,
  ): Promise<EventStreamBody | null> {
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

/**
 * Where an open stream's text goes: a Web stream ({@link EventStreamBody.readable}), or an
 * adapter's own response written directly (the Node bridge), so that an idle stream holds no Web
 * stream, reader or pending read.
 */
export interface EventSink {
  /** Bytes written and not yet taken by the reader (what the stream's bound is checked against). */
  readonly bufferedBytes: number
  /** Writes `text`; returns its size in bytes. May throw when the reader is gone (the stream then closes). */
  write(text: string): number
  /** Ends after what was written. */
  end(): void
  /** Ends at once, dropping what is unsent (a reader too far behind). */
  abort(reason: Error): void
}

/** An open stream's body, before it is attached: as a Web stream, or to a sink of the adapter's. */
export interface EventStreamBody {
  /** The body as a Web stream (its first call attaches it; call one of the two once). */
  readable(): ReadableStream<Uint8Array>
  /** Sends the stream to `sink`; returns what to call when the reader went away. */
  attach(sink: EventSink): () => void
}

/** The Web stream sink: text encoded into the stream's queue, which is counted in bytes. */
function webStreamBody(maxBufferedBytes: number, onCancel: () => void): { readable: ReadableStream<Uint8Array>; sink: EventSink } {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  const readable = new ReadableStream<Uint8Array>(
    {
      start: (c) => {
        controller = c
      },
      // The client went away (or the adapter stopped reading).
      cancel: onCancel,
    },
    // Counted in bytes, so `desiredSize` tells how much the reader has not taken yet.
    { highWaterMark: maxBufferedBytes, size: (chunk) => chunk.byteLength },
  )
  const sink: EventSink = {
    get bufferedBytes() {
      // desiredSize is the bound minus what the reader has not taken yet.
      return maxBufferedBytes - (controller.desiredSize ?? maxBufferedBytes)
    },
    write(text) {
      const bytes = encoder.encode(text)
      controller.enqueue(bytes)
      return bytes.byteLength
    },
    end() {
      try {
        controller.close()
      } catch {
        // Already cancelled by the reader.
      }
    },
    abort(reason) {
      try {
        // error() frees the queued bytes at once; close() would keep them for a reader that may never come.
        controller.error(reason)
      } catch {
        // Already cancelled by the reader.
      }
    },
  }
  return { readable, sink }
}

/** What a stream last sent of one stage: the output apart, so it is compared, never copied. */
interface SentStage {
  /** The stage without its output, as JSON. */
  rest: string
  /** The output as sent (the snapshot's own string, shared by every stream of the run). */
  output: string | null
}

/** One subscriber's stream: what it sent last decides what the next `update` holds. */
class OpenStream implements EventStreamBody {
  watch: { seen(version: number): void; stop(): void } | undefined
  /** Where the text goes once attached; until then it waits in `#early` (the snapshot). */
  #sink: EventSink | undefined
  #early: string[] | undefined = []
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
  }

  readable(): ReadableStream<Uint8Array> {
    const { readable, sink } = webStreamBody(this.#maxBufferedBytes, () => this.close())
    this.attach(sink)
    return readable
  }

  attach(sink: EventSink): () => void {
    if (this.#sink) throw new Error('A live stream body is attached once')
    this.#sink = sink
    const early = this.#early ?? []
    this.#early = undefined
    try {
      for (const text of early) sink.write(text)
    } catch {
      this.close()
    }
    if (this.#closed) sink.end()
    return () => this.close()
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
    // Not attached yet: the body ends as soon as it is (`attach`).
    if (discard) this.#sink?.abort(new Error('The subscriber fell too far behind; closed to bound the send buffer'))
    else this.#sink?.end()
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
    const sink = this.#sink
    if (!sink) {
      // Before the adapter attached the body (the retry line and the snapshot): kept until then.
      this.#early?.push(text)
      return encoder.encode(text).byteLength
    }
    const buffered = sink.bufferedBytes
    if (buffered > this.#maxBufferedBytes + this.#snapshotBytes) {
      // Closing ends the response: the subscriber reconnects and starts again from a fresh snapshot.
      this.#onSlow(buffered)
      this.close(true)
      return 0
    }
    try {
      return sink.write(text)
    } catch {
      this.close()
      return 0
    }
  }
}
