/**
 * The order of a run stream's events when chunks and other changes reach it together (one read
 * of the watcher), decided per batch: chunks first when the subscriber can append them as they
 * are, else the update first with each stage's `outputSeq` as it was before its first chunk.
 * The watcher is replaced by a hand-driven one, so every batch is exact.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { toStatusResponse } from '../../core/state-to-records.js'
import type { OutputChunkRow, RunSnapshot } from '../../core/state.js'
import { chunk, NOW, run, snapshot, stage } from '../../../test/support/state-fixtures.js'
import { readSink, type SentEvent } from '../../../test/support/sink-reader.js'
import { CredentialExpiry } from './credential-expiry.js'
import { EventStreams, type StreamClosed } from './event-stream.js'
import type { RunListener, RunWatcher } from './run-watcher.js'


/** `expiresAt`: the credential's expiry (ms); `now`: the clock the expiry is judged by (the fake `Date.now` by default). */
async function open(
  first: RunSnapshot,
  resume?: { from: number; chunks: OutputChunkRow[] },
  admits?: (snapshot: RunSnapshot) => boolean,
  credential: { expiresAt?: number; now?: () => number; expiry?: CredentialExpiry } = {},
) {
  let listener: RunListener | undefined
  const closedFor: StreamClosed[] = []
  const expiry = credential.expiry ?? new CredentialExpiry(credential.now ?? (() => Date.now()))
  const watcher = { watch: (_runId: string, taker: RunListener) => ((listener = taker), { seen: () => {}, stop: () => {} }) }
  const streams = new EventStreams(watcher as unknown as RunWatcher, {
    keepAliveMs: 60_000,
    maxBufferedBytes: 1 << 20,
    onSlowStream: () => {},
    retryMs: 1000,
    statusDocument: toStatusResponse,
    maxReplayedChunks: 1000,
    onReplayTooLong: () => {},
    onClosed: (details: StreamClosed) => void closedFor.push(details),
    expiry,
  })
  const body = await streams.open(
    'run_1',
    async () => first,
    new AbortController().signal,
    true,
    admits,
    resume && { from: resume.from, chunksSince: async () => resume.chunks },
    credential.expiresAt,
  )
  const { take, closed, comments } = readSink(body!)
  return {
    deliver: (next: RunSnapshot, chunks: OutputChunkRow[]) => listener!.take(next, chunks),
    deliverWhole: (next: RunSnapshot) => listener!.takeWhole!(next),
    take,
    closed,
    comments,
    closedFor,
    streams,
    expiry,
  }
}

describe('a run stream with streamed output', () => {
  it('sends a batch of chunks only as output events, in version order', async () => {
    const stream = await open(snapshot(3, [stage({ outputSeq: 0, output: 't0', streamedOutput: true })]))
    expect((await stream.take()).map((event) => event.event)).toEqual(['snapshot'])
    stream.deliver(snapshot(5, [stage({ outputSeq: 2, outputBytes: 6, streamedOutput: true })], { streamedText: false }), [chunk(1, 4), chunk(2, 5)])
    expect((await stream.take()).map((event) => [event.event, event.id, event.data['seq']])).toEqual([
      ['output', '4', 1],
      ['output', '5', 2],
    ])
    stream.streams.close()
  })

  it('sends the chunks first and the update after them when the subscriber can append them; the update leaves the text out', async () => {
    const stream = await open(snapshot(3, [stage({ outputSeq: 0, output: 't0', streamedOutput: true })]))
    await stream.take()
    // Chunk 1 at version 4, then the stage completed without an output of its own at 5.
    stream.deliver(snapshot(5, [stage({ status: 'COMPLETED', completedAt: NOW, outputSeq: 1, streamedOutput: true })], { streamedText: false }), [chunk(1, 4)])
    const events = await stream.take()
    expect(events.map((event) => [event.event, event.id])).toEqual([
      ['output', '4'],
      ['update', '5'],
    ])
    const stages = events[1]!.data['stages'] as Array<Record<string, unknown>>
    expect(stages[0]).toMatchObject({ status: 'COMPLETED', outputSeq: 1 })
    expect(stages[0]).not.toHaveProperty('output')
    stream.streams.close()
  })

  it('sends the update first, as before the chunks, when the stage was created or restarted meanwhile', async () => {
    const stream = await open(snapshot(1, []))
    await stream.take()
    // Stage 1 created at 2, chunks 0 and 1 at 3 and 4.
    stream.deliver(snapshot(4, [stage({ outputSeq: 1, streamedOutput: true })], { streamedText: false }), [chunk(0, 3), chunk(1, 4)])
    const events = await stream.take()
    expect(events.map((event) => [event.event, event.id])).toEqual([
      ['update', '2'],
      ['output', '3'],
      ['output', '4'],
    ])
    expect((events[0]!.data['stages'] as unknown[])[0]).toMatchObject({ stageNumber: 1, outputSeq: null, output: null })
    // The next chunk alone is an output event again.
    stream.deliver(snapshot(5, [stage({ outputSeq: 2, streamedOutput: true })], { streamedText: false }), [chunk(2, 5)])
    expect((await stream.take()).map((event) => [event.event, event.id])).toEqual([['output', '5']])
    stream.streams.close()
  })

  it('closes the stream (the subscriber resumes exactly) when a stage created and finished meanwhile was read without its text, saying why', async () => {
    const stream = await open(snapshot(1, []))
    await stream.take()
    stream.deliver(snapshot(4, [stage({ status: 'COMPLETED', completedAt: NOW, outputSeq: 0, streamedOutput: true })], { streamedText: false }), [chunk(0, 3)])
    expect(await stream.take()).toEqual([])
    expect(stream.closed()).toBe(true)
    // Never silent: the subscriber reads the cause before the end, and the handlers are told (they log it).
    expect(stream.comments().at(-1)).toBe('closed update-unavailable run_1')
    expect(stream.closedFor).toEqual([{ cause: 'update-unavailable', runId: 'run_1', version: 4, stream: 'run' }])
  })

  it('resumes after a version with one update (id: the version before the first chunk) and the chunks after it', async () => {
    const current = snapshot(9, [stage({ outputSeq: 4, output: 't0t1t2t3t4', streamedOutput: true }), stage({ stageNumber: 2, status: 'PROCESSING', output: 'stored' })])
    const stream = await open(current, { from: 6, chunks: [chunk(2, 7), chunk(3, 8), chunk(4, 9)] })
    const events = await stream.take()
    expect(events.map((event) => [event.event, event.id])).toEqual([
      ['update', '6'],
      ['output', '7'],
      ['output', '8'],
      ['output', '9'],
    ])
    const stages = events[0]!.data['stages'] as Array<Record<string, unknown>>
    expect(stages[0]).toMatchObject({ stageNumber: 1, outputSeq: 1 })
    expect(stages[0]).not.toHaveProperty('output')
    expect(stages[1]).toMatchObject({ stageNumber: 2, output: 'stored' })
    stream.streams.close()
  })

  /** What a subscriber appending every event holds of stage 1: an update's output replaces, each output event appends. */
  const appended = (events: SentEvent[]) =>
    events.reduce((text, event) => {
      if (event.event === 'output') return text + String(event.data['text'])
      const stage = (event.data['stages'] as Array<Record<string, unknown>> | undefined)?.find((candidate) => candidate['stageNumber'] === 1)
      return typeof stage?.['output'] === 'string' ? stage['output'] : text
    }, '')

  it('a resume after a stage finished without an output of its own sends its whole text once: the update, none of the chunks it holds', async () => {
    // Chunk 0 "AAA " at 2 (the subscriber's last id), chunk 1 "BBB" at 3, COMPLETED at 4.
    const current = snapshot(4, [stage({ status: 'COMPLETED', completedAt: NOW, outputSeq: 1, output: 'AAA BBB', streamedOutput: true })])
    const stream = await open(current, { from: 2, chunks: [chunk(1, 3, 'BBB')] })
    const events = await stream.take()
    expect(events.map((event) => [event.event, event.id])).toEqual([['update', '4']])
    expect((events[0]!.data['stages'] as unknown[])[0]).toMatchObject({ status: 'COMPLETED', output: 'AAA BBB', outputSeq: 1 })
    expect(appended(events)).toBe('AAA BBB')
    stream.streams.close()
  })

  it('live: a stage created, streamed and finished between two reads comes whole in the update, its chunks not sent after it', async () => {
    const stream = await open(snapshot(1, []))
    await stream.take()
    stream.deliver(snapshot(5, [stage({ status: 'COMPLETED', completedAt: NOW, outputSeq: 1, output: 'AAA BBB', streamedOutput: true })]), [chunk(0, 3, 'AAA '), chunk(1, 4, 'BBB')])
    const events = await stream.take()
    expect(events.map((event) => [event.event, event.id])).toEqual([['update', '5']])
    expect(appended(events)).toBe('AAA BBB')
    stream.streams.close()
  })
})

describe('a run stream whose credential no longer covers the run', () => {
  /** A tag token's grant: the run must carry `team:a` as stored. */
  const tagged = (snapshot: RunSnapshot) => snapshot.run.tags?.includes('team:a') === true
  const withTags = (version: number, tags: string[]): RunSnapshot => ({ ...snapshot(version, []), run: { ...run, tags } })

  it('ends without sending the change, after a comment naming the cause, and tells the handlers once', async () => {
    const stream = await open(withTags(1, ['team:a']), undefined, tagged)
    expect((await stream.take()).map((event) => event.event)).toEqual(['snapshot'])
    stream.deliver(withTags(2, ['nightly']), [])
    expect(await stream.take()).toEqual([])
    expect(stream.closed()).toBe(true)
    expect(stream.comments().at(-1)).toBe('closed not-admitted run_1')
    expect(stream.closedFor).toEqual([{ cause: 'not-admitted', runId: 'run_1', version: 2, stream: 'run' }])
    // A later change of the closed stream says nothing more.
    stream.deliver(withTags(3, ['nightly']), [])
    expect(stream.closedFor).toHaveLength(1)
  })

  it('says so too when the change reaches it as a whole snapshot (a long catch-up)', async () => {
    const stream = await open(withTags(1, ['team:a']), undefined, tagged)
    await stream.take()
    stream.deliverWhole(withTags(2, ['nightly']))
    expect(await stream.take()).toEqual([])
    expect(stream.closed()).toBe(true)
    expect(stream.comments().at(-1)).toBe('closed not-admitted run_1')
    expect(stream.closedFor).toEqual([{ cause: 'not-admitted', runId: 'run_1', version: 2, stream: 'run' }])
  })
})

describe('a run stream whose credential expires', () => {
  // Fake timers and clock; setImmediate stays real (the sink reader waits on it).
  const T0 = Date.parse('2026-12-08T10:00:00.000Z')
  const fakeTimers = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'], now: T0 })
  afterEach(() => void vi.useRealTimers())

  it('ends at the expiry, with or without a change, after a comment naming the cause; the handlers are told once', async () => {
    fakeTimers()
    const stream = await open(snapshot(1, []), undefined, undefined, { expiresAt: T0 + 60_000 })
    expect((await stream.take()).map((event) => event.event)).toEqual(['snapshot'])
    expect(stream.expiry.size).toBe(1)
    vi.advanceTimersByTime(59_999)
    expect(stream.closed()).toBe(false)
    vi.advanceTimersByTime(1)
    expect(stream.closed()).toBe(true)
    expect(await stream.take()).toEqual([])
    expect(stream.comments().at(-1)).toBe('closed credential-expired run_1')
    expect(stream.closedFor).toEqual([{ cause: 'credential-expired', runId: 'run_1', expiresAt: T0 + 60_000, stream: 'run' }])
    expect(stream.expiry.size).toBe(0)
    // A later change of the closed stream says nothing more.
    stream.deliver(snapshot(2, []), [])
    expect(stream.closedFor).toHaveLength(1)
  })

  it('a change that reaches it after the expiry, before the timer ran, is not sent: the stream ends then', async () => {
    let now = T0
    const stream = await open(snapshot(1, []), undefined, undefined, { expiresAt: T0 + 60_000, now: () => now })
    await stream.take()
    now = T0 + 60_000
    stream.deliver(snapshot(2, []), [])
    expect(await stream.take()).toEqual([])
    expect(stream.closed()).toBe(true)
    expect(stream.comments().at(-1)).toBe('closed credential-expired run_1')
    expect(stream.closedFor).toEqual([{ cause: 'credential-expired', runId: 'run_1', expiresAt: T0 + 60_000, stream: 'run' }])
    expect(stream.expiry.size).toBe(0)
  })

  it('one timer for every stream, armed for the earliest expiry: each stream ends at its own', async () => {
    fakeTimers()
    // Both registries share one expiry, as the handlers' run and set streams do.
    const expiry = new CredentialExpiry(() => Date.now())
    const late = await open(snapshot(1, []), undefined, undefined, { expiresAt: T0 + 120_000, expiry })
    const early = await open(snapshot(1, []), undefined, undefined, { expiresAt: T0 + 30_000, expiry })
    await late.take()
    await early.take()
    vi.advanceTimersByTime(30_000)
    expect([early.closed(), late.closed()]).toEqual([true, false])
    expect(expiry.size).toBe(1)
    vi.advanceTimersByTime(89_999)
    expect(late.closed()).toBe(false)
    vi.advanceTimersByTime(1)
    expect(late.closed()).toBe(true)
    // The expiry timer stopped with its last stream, as did the keep-alives.
    expect(vi.getTimerCount()).toBe(0)
  })

  it('a stream whose credential has no expiry is never registered and never ends for it', async () => {
    fakeTimers()
    const stream = await open(snapshot(1, []))
    await stream.take()
    expect(stream.expiry.size).toBe(0)
    vi.advanceTimersByTime(24 * 3600_000)
    expect(stream.closed()).toBe(false)
    expect(stream.closedFor).toEqual([])
    stream.streams.close()
  })
})
