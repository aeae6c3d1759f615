/**
 * The output stream's own rules, with a fake sender: batching by time and size, chunks of at most
 * 64 KiB cut between code points, one chunk in flight, the buffer's bound, and the stop after a
 * refusal with one log line.
 */
import { describe, expect, it } from 'vitest'
import { MAX_OUTPUT_CHUNK_BYTES } from '../contract/output-chunks.js'
import { type ChunkResult, OutputStream, StageOutputs, utf8CutIndex } from './output-writer.js'
import type { Logger } from './logger.js'

const bytes = (text: string) => new TextEncoder().encode(text).byteLength

function recording(): Logger & { lines: string[] } {
  const lines: string[] = []
  const record = (message: string) => void lines.push(message)
  return { lines, info: record, warn: record, error: record, debug: record }
}

/** A sender that records chunks; `gate` holds each answer until released, `answer` decides it. */
function fakeSender(answer: (seq: number, text: string) => ChunkResult = () => ({ state: 'sent' })) {
  const sent: { seq: number; text: string }[] = []
  let inFlight = 0
  let maxInFlight = 0
  let release: (() => void) | undefined
  let held = false
  const send = async (seq: number, text: string): Promise<ChunkResult> => {
    sent.push({ seq, text })
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    if (held) await new Promise<void>((resolve) => (release = resolve))
    inFlight--
    return answer(seq, text)
  }
  return {
    sent,
    send,
    get maxInFlight() {
      return maxInFlight
    },
    hold() {
      held = true
    },
    releaseAll() {
      held = false
      release?.()
    },
  }
}

async function until(what: string, read: () => boolean, ceilingMs = 5_000): Promise<void> {
  const deadline = Date.now() + ceilingMs
  while (!read()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

describe('the output stream', () => {
  it('batches small writes by time into one chunk, and returns from write at once', async () => {
    const sender = fakeSender()
    const stream = new OutputStream({ send: sender.send, logger: recording(), label: 'Run r: stage 1', flushIntervalMs: 20 })
    for (const token of ['Hel', 'lo', ', ', 'wor', 'ld']) stream.write(token)
    expect(sender.sent).toEqual([])
    await until('the timed chunk', () => sender.sent.length === 1)
    expect(sender.sent).toEqual([{ seq: 0, text: 'Hello, world' }])
    stream.write('!')
    const summary = await stream.close()
    expect(sender.sent).toEqual([
      { seq: 0, text: 'Hello, world' },
      { seq: 1, text: '!' },
    ])
    expect(summary).toEqual({ chunks: 2, bytes: 13 })
  })

  it('sends at flushBytes without waiting out the interval', async () => {
    const sender = fakeSender()
    const stream = new OutputStream({ send: sender.send, logger: recording(), label: 'x', flushIntervalMs: 60_000, flushBytes: 10 })
    stream.write('0123456789AB')
    await until('the size-triggered chunk', () => sender.sent.length === 1)
    expect(sender.sent[0]).toEqual({ seq: 0, text: '0123456789AB' })
    await stream.close()
  })

  it('keeps one chunk in flight; what is written meanwhile goes out as the next chunk', async () => {
    const sender = fakeSender()
    sender.hold()
    const stream = new OutputStream({ send: sender.send, logger: recording(), label: 'x', flushIntervalMs: 0 })
    stream.write('a')
    await until('the first chunk', () => sender.sent.length === 1)
    for (const token of ['b', 'c', 'd']) stream.write(token)
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(sender.sent).toHaveLength(1)
    sender.releaseAll()
    const summary = await stream.close()
    expect(sender.sent.map((c) => c.text)).toEqual(['a', 'bcd'])
    expect(sender.sent.map((c) => c.seq)).toEqual([0, 1])
    expect(sender.maxInFlight).toBe(1)
    expect(summary.chunks).toBe(2)
  })

  it('cuts chunks at 64 KiB of UTF-8 between code points: never inside a surrogate pair', async () => {
    const sender = fakeSender()
    const stream = new OutputStream({ send: sender.send, logger: recording(), label: 'x', flushIntervalMs: 60_000 })
    // 'a' then emoji (4 bytes each): the 64 KiB boundary falls inside an emoji.
    const text = 'a' + '😀'.repeat(40_000) + 'é'.repeat(10)
    stream.write(text)
    await stream.close()
    expect(sender.sent.length).toBeGreaterThan(2)
    for (const chunk of sender.sent) {
      expect(bytes(chunk.text)).toBeLessThanOrEqual(MAX_OUTPUT_CHUNK_BYTES)
      expect(chunk.text).not.toMatch(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/)
    }
    expect(sender.sent.map((c) => c.text).join('')).toBe(text)
    expect(sender.sent.map((c) => c.seq)).toEqual(sender.sent.map((_, i) => i))
  })

  it('joins a surrogate pair split across two writes; replaces NUL and a lone surrogate', async () => {
    const sender = fakeSender()
    const stream = new OutputStream({ send: sender.send, logger: recording(), label: 'x', flushIntervalMs: 60_000 })
    stream.write('x\uD83D')
    stream.write('\uDE00y\u0000')
    stream.write('\uDC00z\uD83D')
    await stream.close()
    expect(sender.sent.map((c) => c.text).join('')).toBe('x😀y\uFFFD\uFFFDz\uFFFD')
  })

  it('stops after a refusal with one log line; later writes are dropped', async () => {
    const logger = recording()
    const sender = fakeSender((seq) => (seq === 1 ? { state: 'stopped', reason: 'HTTP 409 output_out_of_order (expectedSeq 0)' } : { state: 'sent' }))
    const stream = new OutputStream({ send: sender.send, logger, label: 'Run r: stage 2', flushIntervalMs: 0 })
    stream.write('one')
    await stream.flush()
    stream.write('two')
    await stream.flush()
    for (let i = 0; i < 50; i++) {
      stream.write(`more ${i}`)
      await stream.flush()
    }
    const summary = await stream.close()
    expect(sender.sent.map((c) => c.text)).toEqual(['one', 'two'])
    expect(summary).toEqual({ chunks: 1, bytes: 3, stopped: 'HTTP 409 output_out_of_order (expectedSeq 0)' })
    expect(stream.stopped).toBe(summary.stopped)
    expect(logger.lines).toHaveLength(1)
    expect(logger.lines[0]).toMatch(/^Run r: stage 2: streamed output stopped: HTTP 409 output_out_of_order.*Later write\(\) calls are dropped/)
  })

  it('bounds what waits: a write past maxBufferedBytes and later ones are dropped, what was accepted is still sent', async () => {
    const logger = recording()
    const sender = fakeSender()
    sender.hold()
    const stream = new OutputStream({ send: sender.send, logger, label: 'x', flushIntervalMs: 0, flushBytes: 1, maxBufferedBytes: 100 })
    stream.write('first')
    await until('the first chunk', () => sender.sent.length === 1)
    // Ten writes fill the 100-byte bound exactly; the eleventh passes it.
    for (let i = 0; i < 10; i++) stream.write('0123456789')
    expect(stream.stopped).toBeUndefined()
    stream.write('over')
    expect(stream.stopped).toMatch(/more than 100 bytes waited to be sent/)
    sender.releaseAll()
    await stream.flush()
    // Room again, but a write after the overflow is still dropped (the text would have a hole).
    stream.write('later')
    const summary = await stream.close()
    expect(sender.sent.map((c) => c.text).join('')).toBe('first' + '0123456789'.repeat(10))
    expect(sender.sent.map((c) => c.seq)).toEqual(sender.sent.map((_, i) => i))
    expect(summary.bytes).toBe(105)
    expect(summary.stopped).toMatch(/more than 100 bytes waited to be sent/)
    expect(logger.lines).toHaveLength(1)
    expect(logger.lines[0]).toMatch(/^x: streamed output truncated: .*the text written before is still sent/)
  })

  it('says so when one write alone is larger than maxBufferedBytes, not that the server is slow', async () => {
    const logger = recording()
    const sender = fakeSender()
    const stream = new OutputStream({ send: sender.send, logger, label: 'Run r: stage 4', flushIntervalMs: 0 })
    stream.write('# Report\n')
    // The newcomer trial's 1.2 MB write against the default 1 MiB bound, with nothing waiting before it.
    stream.write('x'.repeat(1_200_000))
    const reason = 'one write of 1200000 bytes is larger than maxBufferedBytes (1048576 bytes), the most text that may wait to be sent'
    expect(stream.stopped).toBe(reason)
    const summary = await stream.close()
    expect(summary).toEqual({ chunks: 1, bytes: 9, stopped: reason })
    expect(sender.sent.map((c) => c.text)).toEqual(['# Report\n'])
    expect(logger.lines).toEqual([
      `Run r: stage 4: streamed output truncated: ${reason}. This write and later ones are dropped; the text written before is still sent, then the stage's final status. ` +
        "Fix: write the text in pieces as it is produced, or raise maxBufferedBytes (the server keeps at most its maxStreamedOutputBytes of a stage attempt's streamed text, 1 MiB by default)",
    ])
    expect(logger.lines[0]).not.toMatch(/slower/)
  })

  it('drops writes after close, and a sender that throws stops the stream', async () => {
    const logger = recording()
    const stream = new OutputStream({ send: () => Promise.reject(new Error('boom')), logger, label: 'x', flushIntervalMs: 0 })
    stream.write('a')
    const summary = await stream.close()
    expect(summary.stopped).toBe('boom')
    stream.write('b')
    expect(logger.lines).toEqual([
      "x: streamed output stopped: boom. Later write() calls are dropped; the stage's final status and output are still sent. Fix: report this line as a bug of pipeline-status-sdk",
    ])
  })

  it('utf8CutIndex counts 1-4 bytes per code point', () => {
    expect(utf8CutIndex('aé€😀', 1)).toEqual({ index: 1, bytes: 1 })
    expect(utf8CutIndex('aé€😀', 3)).toEqual({ index: 2, bytes: 3 })
    expect(utf8CutIndex('aé€😀', 6)).toEqual({ index: 3, bytes: 6 })
    expect(utf8CutIndex('aé€😀', 9)).toEqual({ index: 3, bytes: 6 })
    expect(utf8CutIndex('aé€😀', 10)).toEqual({ index: 5, bytes: 10 })
  })
})

describe("runPipeline's per-attempt streams", () => {
  it('gives each attempt its own stream (seq from 0) and drops writes after its attempt was settled', async () => {
    const sender = fakeSender()
    const streams: OutputStream[] = []
    const warnings: string[] = []
    const outputs = new StageOutputs(
      3,
      () => {
        const stream = new OutputStream({ send: sender.send, logger: recording(), label: 'x', flushIntervalMs: 60_000 })
        streams.push(stream)
        return stream
      },
      (message) => warnings.push(message),
    )
    const first = outputs.writer()
    first('attempt 1')
    await outputs.settle()
    first('late')
    const second = outputs.writer()
    second('attempt 2')
    await outputs.settle()
    expect(sender.sent).toEqual([
      { seq: 0, text: 'attempt 1' },
      { seq: 0, text: 'attempt 2' },
    ])
    expect(streams).toHaveLength(2)
    expect(warnings).toEqual([])
  })
})
