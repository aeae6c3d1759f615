/**
 * What a long streamed text costs the live streams, over real HTTP (the real handlers on a
 * MemoryStore whose reads are counted): a summary-view set stream gets no event for a chunk (a
 * chunk changes nothing a summary shows but its version), only the status changes, at once and
 * with the newest version; and with subscribers of every kind following a 200-chunk stage, no
 * read during the chunks carries the streamed text: one text-less run read per chunk and each
 * chunk's bytes read once, however long the text already is. The text the streams deliver is
 * byte for byte what was sent.
 */
import { MemoryStore, type RunSnapshot, type Store } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it } from 'vitest'
import { LIVE_SECRET, type LiveServer, postJson, startLiveServer } from './live-server.js'
import { openSse, type SseConnection } from './sse-reader.js'

let server: LiveServer | undefined
afterEach(async () => {
  await server?.close()
  server = undefined
})

/** What the handlers read from the store. */
interface Reads {
  /** Run reads (`getRun`, one per id of `getRuns`) that carry the streamed text, and its UTF-8 bytes. */
  withText: number
  textBytes: number
  /** Run reads without the streamed text (`streamedText: false`), and the `getRuns` calls. */
  withoutText: number
  getRunsCalls: number
  /** `getOutputChunksSince` calls, the UTF-8 bytes of the chunks they returned, and the lowest `seq` returned. */
  chunkReads: number
  chunkBytes: number
  lowestSeq: number
}

const emptyReads = (): Reads => ({ withText: 0, textBytes: 0, withoutText: 0, getRunsCalls: 0, chunkReads: 0, chunkBytes: 0, lowestSeq: Infinity })

/** `memory` with its reads counted into `reads`; `getRunDelayMs` holds each `getRun` (a stream's own snapshot read) that long. */
function countingStore(memory: MemoryStore, reads: Reads, getRunDelayMs = 0): Store<unknown> {
  const count = (withText: boolean, snapshots: readonly (RunSnapshot | null)[]) => {
    for (const snapshot of snapshots) {
      if (!snapshot) continue
      if (!withText) {
        reads.withoutText += 1
        continue
      }
      reads.withText += 1
      for (const stage of snapshot.stages) if (stage.streamedOutput) reads.textBytes += Buffer.byteLength(stage.output ?? '')
    }
  }
  return new Proxy(memory, {
    get(target, property) {
      if (property === 'getRun') {
        return async (runId: string, options?: { streamedText?: boolean }) => {
          if (getRunDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, getRunDelayMs))
          const snapshot = await target.getRun(runId, options)
          count(options?.streamedText !== false, [snapshot])
          return snapshot
        }
      }
      if (property === 'getRuns') {
        return async (runIds: readonly string[], options?: { streamedText?: boolean }) => {
          reads.getRunsCalls += 1
          const snapshots = await target.getRuns(runIds, options)
          count(options?.streamedText !== false, [...snapshots.values()])
          return snapshots
        }
      }
      if (property === 'getOutputChunksSince') {
        return async (runId: string, version: number, limit?: number) => {
          const chunks = await target.getOutputChunksSince(runId, version, limit)
          reads.chunkReads += 1
          for (const chunk of chunks) {
            reads.chunkBytes += Buffer.byteLength(chunk.text)
            reads.lowestSeq = Math.min(reads.lowestSeq, chunk.seq)
          }
          return chunks
        }
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  }) as unknown as Store<unknown>
}

const headers = { 'X-Webhook-Secret': LIVE_SECRET }
/** About 1 KB of text for chunk `seq`, with multibyte characters (UTF-8 bytes differ from code units). */
const piece = (seq: number) => `chunk ${seq} — ü 日本 😀 ${'x'.repeat(1000)}\n`
const STAGE = { stageNumber: 1, stageName: 'Input Processing' }
const count = (stream: SseConnection, name: string) => stream.events.filter((event) => event.event === name).length
const countsOf = (stream: SseConnection) => Object.fromEntries(['snapshot', 'ready', 'update', 'output', 'end', 'leave'].map((name) => [name, count(stream, name)]))

describe('streamed output on the live streams: what a long text costs', () => {
  it('a summary-view set stream gets no event for any of 200 chunks, then exactly the status changes, with the newest version', async () => {
    const reads = emptyReads()
    // No version polling during the test: every read below is one this process's own writes caused.
    server = await startLiveServer({ pollIntervalMs: 600_000 }, { store: countingStore(new MemoryStore(), reads) })
    const { url } = server
    const runId = 'summary-chunks'
    await postJson(url, '/runs', { id: runId })
    const summary = await openSse(`${url}/events?run=${runId}&view=summary`, headers)
    await summary.waitFor((event) => event.event === 'ready')
    await postJson(url, `/${runId}/stage-update`, { ...STAGE, status: 'PROCESSING' })
    await summary.waitFor((event) => event.event === 'update')
    const before = { ...reads }
    for (let seq = 0; seq < 200; seq++) await postJson(url, `/${runId}/stages/1/output`, { seq, text: piece(seq) })
    // The stage's completion: the next thing the summary stream gets (events leave in version order).
    await postJson(url, `/${runId}/stage-update`, { ...STAGE, status: 'COMPLETED' })
    const completed = await summary.waitFor((event) => event.event === 'update' && (JSON.parse(event.data) as { stageCounts: { COMPLETED: number } }).stageCounts.COMPLETED === 1)
    await postJson(url, `/${runId}/complete`, { status: 'COMPLETED' })
    await summary.ended

    // Version 0 created, 1 the PROCESSING update, 2..201 the 200 chunks, 202 the stage's completion, 203 the run's.
    expect(summary.events.map((event) => [event.event, event.id])).toEqual([
      ['snapshot', `${runId}:0`],
      ['ready', undefined],
      ['update', `${runId}:1`],
      ['update', `${runId}:202`],
      ['update', `${runId}:203`],
      ['end', `${runId}:203`],
    ])
    expect(countsOf(summary)).toEqual({ snapshot: 1, ready: 1, update: 3, output: 0, end: 1, leave: 0 })
    expect((JSON.parse(completed.data) as { version: number; currentStage: number | null }).version).toBe(202)
    // The summary stream read no streamed text and no chunk while the 200 chunks were written.
    expect(reads.withText - before.withText).toBe(0)
    expect(reads.textBytes - before.textBytes).toBe(0)
    expect(reads.chunkReads - before.chunkReads).toBe(0)
  })

  it('200 chunks followed by a run stream, a full-view and a summary-view set stream: no text read, each chunk read once, text byte for byte', async () => {
    const reads = emptyReads()
    server = await startLiveServer({ pollIntervalMs: 600_000 }, { store: countingStore(new MemoryStore(), reads) })
    const { url } = server
    const runId = 'chunk-reads'
    await postJson(url, '/runs', { id: runId })
    await postJson(url, `/${runId}/stage-update`, { ...STAGE, status: 'PROCESSING' })
    const sent = [piece(0)]
    await postJson(url, `/${runId}/stages/1/output`, { seq: 0, text: piece(0) })

    const own = await openSse(`${url}/${runId}/events?outputs=changed`, headers)
    const full = await openSse(`${url}/events?run=${runId}&view=full`, headers)
    const summary = await openSse(`${url}/events?run=${runId}&view=summary`, headers)
    await own.waitFor((event) => event.event === 'snapshot')
    await full.waitFor((event) => event.event === 'ready')
    await summary.waitFor((event) => event.event === 'ready')
    // Each stream's snapshot read the text so far once (the snapshot carries it).
    expect(reads.withText).toBe(3)
    const before = { ...reads }

    let chunkBytes = 0
    for (let seq = 1; seq <= 200; seq++) {
      sent.push(piece(seq))
      chunkBytes += Buffer.byteLength(piece(seq))
      await postJson(url, `/${runId}/stages/1/output`, { seq, text: piece(seq) })
      const isChunk = (event: { event?: string | undefined; data: string }) => event.event === 'output' && (JSON.parse(event.data) as { seq: number }).seq === seq
      // Both chunk-taking streams have sent it before the next is written: each read below is one chunk's.
      await Promise.all([own.waitFor(isChunk), full.waitFor(isChunk)])
    }
    // Per chunk: one batched run read without the text, one chunk read returning that chunk alone.
    // Exact counts: nothing here grows with the text already streamed (200 KB by the end).
    expect(reads.withText - before.withText).toBe(0)
    expect(reads.textBytes - before.textBytes).toBe(0)
    expect(reads.getRunsCalls - before.getRunsCalls).toBe(200)
    expect(reads.withoutText - before.withoutText).toBe(200)
    expect(reads.chunkReads - before.chunkReads).toBe(200)
    expect(reads.chunkBytes - before.chunkBytes).toBe(chunkBytes)

    await postJson(url, `/${runId}/stage-update`, { ...STAGE, status: 'COMPLETED' })
    await postJson(url, `/${runId}/complete`, { status: 'COMPLETED' })
    await Promise.all([own.ended, full.ended, summary.ended])

    const text = sent.join('')
    for (const stream of [own, full]) {
      const snapshot = JSON.parse(stream.events.find((event) => event.event === 'snapshot')?.data ?? '{}') as { stages: { output: string | null }[] }
      const outputs = stream.events.filter((event) => event.event === 'output').map((event) => (JSON.parse(event.data) as { text: string }).text)
      expect(Buffer.from((snapshot.stages[0]?.output ?? '') + outputs.join(''), 'utf8').equals(Buffer.from(text, 'utf8'))).toBe(true)
      expect(count(stream, 'output')).toBe(200)
    }
    // The run's stream: snapshot, 200 outputs, the completion's update, the run's update, end.
    expect(countsOf(own)).toEqual({ snapshot: 1, ready: 0, update: 2, output: 200, end: 1, leave: 0 })
    expect(countsOf(full)).toEqual({ snapshot: 1, ready: 1, update: 2, output: 200, end: 1, leave: 0 })
    expect(countsOf(summary)).toEqual({ snapshot: 1, ready: 1, update: 2, output: 0, end: 1, leave: 0 })
  })

  it('streams opened while chunks flow get every chunk once, byte for byte, and no chunk read starts at the text\'s beginning', async () => {
    const reads = emptyReads()
    // Each stream's own snapshot read takes 40 ms, so chunks written meanwhile are read by the
    // watcher while the stream has sent nothing yet (before, its chunks were read from seq 0).
    server = await startLiveServer({ pollIntervalMs: 600_000 }, { store: countingStore(new MemoryStore(), reads, 40) })
    const { url } = server
    const runId = 'opening-while-streaming'
    await postJson(url, '/runs', { id: runId })
    await postJson(url, `/${runId}/stage-update`, { ...STAGE, status: 'PROCESSING' })
    const sent: string[] = []
    // 100 KB streamed before anyone follows the run.
    for (let seq = 0; seq < 100; seq++) {
      sent.push(piece(seq))
      await postJson(url, `/${runId}/stages/1/output`, { seq, text: piece(seq) })
    }
    const streams: SseConnection[] = []
    const writing = (async () => {
      for (let seq = 100; seq < 180; seq++) {
        sent.push(piece(seq))
        await postJson(url, `/${runId}/stages/1/output`, { seq, text: piece(seq) })
      }
    })()
    // Six streams open while the chunks are written: three run streams, three full-view set streams.
    for (let index = 0; index < 6; index++) {
      streams.push(await openSse(index % 2 === 0 ? `${url}/${runId}/events?outputs=changed` : `${url}/events?run=${runId}&view=full`, headers))
    }
    await writing
    await postJson(url, `/${runId}/stage-update`, { ...STAGE, status: 'COMPLETED' })
    await postJson(url, `/${runId}/complete`, { status: 'COMPLETED' })
    await Promise.all(streams.map((stream) => stream.ended))

    const text = sent.join('')
    for (const stream of streams) {
      const snapshot = JSON.parse(stream.events.find((event) => event.event === 'snapshot')?.data ?? '{}') as { stages: { output: string | null; outputSeq: number | null }[] }
      const outputs = stream.events.filter((event) => event.event === 'output').map((event) => JSON.parse(event.data) as { seq: number; text: string })
      // Each chunk after the snapshot's, once and in order, then the text is whole.
      expect(outputs.map((chunk) => chunk.seq)).toEqual(Array.from({ length: 179 - (snapshot.stages[0]?.outputSeq ?? -1) }, (_, i) => (snapshot.stages[0]?.outputSeq ?? -1) + 1 + i))
      expect(Buffer.from((snapshot.stages[0]?.output ?? '') + outputs.map((chunk) => chunk.text).join(''), 'utf8').equals(Buffer.from(text, 'utf8'))).toBe(true)
      expect(stream.events.at(-1)?.event).toBe('end')
    }
    // Every chunk read started after a version some stream had sent: none of the 100 streamed before.
    expect(reads.chunkReads).toBeGreaterThan(0)
    expect(reads.lowestSeq).toBeGreaterThanOrEqual(100)
  })
})
