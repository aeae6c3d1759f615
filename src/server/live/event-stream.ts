/**
 * One live status stream (`GET {base}/{runId}/events`) as a `text/event-stream` body, and the
 * registry of a handlers instance's open streams (keep-alive comments, the cap, shutdown).
 * Edge-safe: Web streams and timers only. Not importable outside this package.
 */
import { LIVE_EVENTS } from '../../contract/live-status.js'
import type { RunEndEvent, RunSnapshotEvent, RunUpdateEvent } from '../../contract/live-status.js'
import type { StageOutputRecord } from '../../contract/records.js'
import { isFinalStatus } from '../../contract/status.js'
import { toStatusResponse } from '../../internal/state-to-records.js'
import type { RunSnapshot } from '../../core/state.js'
import type { RunWatcher } from './run-watcher.js'

/** Settings of the live streams of one handlers instance. */
export interface EventStreamSettings {
  /** Milliseconds between keep-alive comment lines. */
  keepAliveMs: number
  /** The `retry:` sent to clients, in milliseconds. */
  retryMs: number
  /** The status document of a snapshot, exactly as `GET /status` answers it (with the catalogue). */
  statusDocument: (snapshot: RunSnapshot) => RunSnapshotEvent
}

/** The open streams of one handlers instance. */
export class EventStreams {
  readonly #streams = new Set<OpenStream>()
  readonly #watcher: RunWatcher
  readonly #settings: EventStreamSettings
  #keepAlive: ReturnType<typeof setInterval> | undefined
  #closed = false

  constructor(watcher: RunWatcher, settings: EventStreamSettings) {
    this.#watcher = watcher
    this.#settings = settings
  }

  /** How many streams are open. */
  get size(): number {
    return this.#streams.size
  }

  /** Whether {@link EventStreams.close} was called. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * Opens a stream of `runId`: watches the run first, then reads it (`read`), so that a change
   * between the two is never missed. Resolves with the body once the snapshot is known; `null`
   * for an unknown run (nothing stays open).
   */
  async open(runId: string, read: () => Promise<RunSnapshot | null>, signal: AbortSignal): Promise<ReadableStream<Uint8Array> | null> {
    const stream = new OpenStream(this.#settings, () => this.#forget(stream))
    // Subscribe before the first read, so nothing falls between them.
    stream.watch = this.#watcher.watch(runId, (snapshot) => stream.deliver(snapshot))
    this.#streams.add(stream)
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
    this.#streams.delete(stream)
    if (this.#streams.size === 0) this.#stopKeepAlive()
  }

  /** One timer for all streams, however many there are. */
  #armKeepAlive(): void {
    if (this.#keepAlive !== undefined || this.#closed) return
    this.#keepAlive = setInterval(() => {
      for (const stream of this.#streams) stream.comment('keep-alive')
    }, this.#settings.keepAliveMs)
    ;(this.#keepAlive as { unref?: () => void }).unref?.()
  }

  #stopKeepAlive(): void {
    if (this.#keepAlive !== undefined) clearInterval(this.#keepAlive)
    this.#keepAlive = undefined
  }
}

const encoder = new TextEncoder()

/** One subscriber's stream: what it sent last decides what the next `update` holds. */
class OpenStream {
  readonly body: ReadableStream<Uint8Array>
  watch: { seen(version: number): void; stop(): void } | undefined
  #controller!: ReadableStreamDefaultController<Uint8Array>
  #version = -1
  #stages = new Map<number, string>()
  #started = false
  #pending: RunSnapshot | undefined
  #closed = false
  readonly #retryMs: number
  readonly #statusDocument: (snapshot: RunSnapshot) => RunSnapshotEvent
  readonly #onClose: () => void

  constructor(settings: EventStreamSettings, onClose: () => void) {
    this.#retryMs = settings.retryMs
    this.#statusDocument = settings.statusDocument
    this.#onClose = onClose
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller
      },
      // The client went away (or the adapter stopped reading).
      cancel: () => this.close(),
    })
  }

  /** Sends `retry:` and the snapshot, then what arrived meanwhile; `end` at once for a finished run. */
  start(snapshot: RunSnapshot): void {
    if (this.#closed) return
    this.#started = true
    this.#write(`retry: ${this.#retryMs}\n\n`)
    const document = this.#statusDocument(snapshot)
    this.#remember(snapshot.version ?? 0, document.stages)
    this.watch?.seen(this.#version)
    this.#event(LIVE_EVENTS.snapshot, document)
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
    const changed: StageOutputRecord[] = document.stages.filter(
      (stage) => this.#stages.get(stage.stageNumber) !== JSON.stringify(stage),
    )
    const update: RunUpdateEvent = { run: document.run, stages: changed }
    this.#remember(version, document.stages)
    this.#event(LIVE_EVENTS.update, update)
    if (isFinalStatus(snapshot.run.status)) this.#end(document.run)
  }

  comment(text: string): void {
    if (this.#started) this.#write(`: ${text}\n\n`)
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.watch?.stop()
    this.#onClose()
    try {
      this.#controller.close()
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
    this.#stages = new Map(stages.map((stage) => [stage.stageNumber, JSON.stringify(stage)]))
  }

  #event(name: string, data: unknown): void {
    // JSON.stringify never emits a raw line break, so the data is one `data:` line.
    this.#write(`event: ${name}\nid: ${this.#version}\ndata: ${JSON.stringify(data)}\n\n`)
  }

  #write(text: string): void {
    if (this.#closed) return
    try {
      this.#controller.enqueue(encoder.encode(text))
    } catch {
      this.close()
    }
  }
}
