/**
 * Where a live stream's text goes, for both kinds of stream (a run's, `GET {base}/{runId}/events`,
 * and a set's, `GET {base}/events`): the body is attached once, either as a Web stream
 * ({@link EventStreamBody.readable}, the fetch handlers) or to an {@link EventSink} an adapter
 * implements on its own response (the Node bridge, `src/server/http/direct-events.ts`), so that an
 * idle stream holds no Web stream, reader or pending read (bench/README.md, "Idle streams").
 * Edge-safe: Web streams only. Not importable outside this package.
 */

const encoder = new TextEncoder()

/**
 * Where an open stream's text goes: a Web stream ({@link EventStreamBody.readable}), or an
 * adapter's own response written directly (the Node bridge).
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

/**
 * The body side of an open stream, run's or set's: text written before the adapter attaches the
 * body (the retry line, the first snapshots) waits in memory until then; afterwards each write
 * goes to the sink. The stream itself decides when its reader is too far behind
 * ({@link SinkBody.bufferedBytes}) and ends the body with {@link SinkBody.endBody}.
 */
export abstract class SinkBody implements EventStreamBody {
  #sink: EventSink | undefined
  #early: string[] | undefined = []
  #ended = false
  readonly #maxBufferedBytes: number

  /** `maxBufferedBytes`: the Web stream body's queue bound (the stream's own bound on what is unsent). */
  constructor(maxBufferedBytes: number) {
    this.#maxBufferedBytes = maxBufferedBytes
  }

  /** Closes the stream (the reader went away, or a write to it failed). */
  abstract close(): void

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
    // Ended before it was attached (a finished run, a shutdown): the body ends after what was written.
    if (this.#ended) sink.end()
    return () => this.close()
  }

  /** Bytes written and not yet taken by the reader; 0 before the body is attached. */
  protected get bufferedBytes(): number {
    return this.#sink?.bufferedBytes ?? 0
  }

  /** Writes `text` (kept until the body is attached); returns its size in bytes, 0 when the reader is gone (then the stream closes). */
  protected writeBody(text: string): number {
    const sink = this.#sink
    if (!sink) {
      // Before the adapter attached the body: kept until then.
      this.#early?.push(text)
      return utf8Length(text)
    }
    try {
      return sink.write(text)
    } catch {
      this.close()
      return 0
    }
  }

  /** Ends the body after what was written; `discard` drops what is unsent instead (a reader too far behind). */
  protected endBody(discard: boolean): void {
    if (this.#ended) return
    this.#ended = true
    // Not attached yet: the body ends as soon as it is (`attach`).
    if (discard) this.#sink?.abort(new Error('The subscriber fell too far behind; closed to bound the send buffer'))
    else this.#sink?.end()
  }
}

/**
 * The UTF-8 size of `text` in bytes, as `TextEncoder` would encode it (a lone surrogate as the
 * 3-byte replacement character), without encoding it: a stream's first snapshot is kilobytes,
 * and an encoded copy of it per opened stream only to count it was garbage.
 */
export function utf8Length(text: string): number {
  let bytes = text.length
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x80) continue
    if (code < 0x800) {
      bytes += 1
    } else if (code >= 0xd800 && code <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A surrogate pair: two UTF-16 units, four bytes.
      bytes += 2
      i += 1
    } else {
      bytes += 2
    }
  }
  return bytes
}
