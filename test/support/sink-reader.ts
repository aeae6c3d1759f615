/**
 * The reader the live streams' unit tests (`src/server/live/{event,set}-stream.test.ts`) attach a
 * stream's body to: a sink that keeps what is written as it is written, so there is no reader and
 * no pause to wait out, and the Server-Sent Events it holds parsed on demand.
 */
import type { EventStreamBody } from '../../src/server/live/event-sink.js'

/** One event as written: its `event:` and `id:` fields, and its `data:` parsed. */
export interface SentEvent {
  event: string
  id: string
  data: Record<string, unknown>
}

/** A body attached to an in-memory sink. */
export interface SinkReader {
  /** Every event written since the previous take (after the work already queued, all in memory, has run). */
  take(): Promise<SentEvent[]>
  /** Whether the stream ended or was aborted. */
  closed(): boolean
  /** Every comment line written so far, without its leading `: ` (`keep-alive-ms 60000`, `closed …`). */
  comments(): string[]
}

/** Attaches `body` to an in-memory sink and reads the events written to it. */
export function readSink(body: EventStreamBody): SinkReader {
  let written = ''
  let all = ''
  let done = false
  body.attach({
    bufferedBytes: 0,
    write: (text) => {
      written += text
      all += text
      return new TextEncoder().encode(text).byteLength
    },
    end: () => void (done = true),
    abort: () => void (done = true),
  })
  let buffered = ''
  return {
    take: async () => {
      await new Promise<void>((resolve) => setImmediate(resolve))
      buffered += written
      written = ''
      const blocks = buffered.split('\n\n')
      buffered = blocks.pop() ?? ''
      const events: SentEvent[] = []
      for (const block of blocks) {
        const fields = Object.fromEntries(block.split('\n').filter((line) => !line.startsWith(':') && line.includes(': ')).map((line) => [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)]))
        if (fields['event']) events.push({ event: fields['event'], id: fields['id'] ?? '', data: JSON.parse(fields['data'] ?? 'null') as Record<string, unknown> })
      }
      return events
    },
    closed: () => done,
    comments: () => all.split('\n').filter((line) => line.startsWith(': ')).map((line) => line.slice(2)),
  }
}
