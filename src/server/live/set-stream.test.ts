/**
 * Streamed output on set streams: a `full` member's chunks become `output` events (`id:`
 * `runId:version`) under the rule of the run's own stream (`StageDiff`: chunks first when the
 * subscriber can append them, else the update first; updates without chunk-only text); the
 * `summary` view sends none. The watcher is replaced by a hand-driven one, so every batch is exact.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { SetStreamView } from '../../contract/live-status.js'
import type { RunSummary } from '../../contract/run-list.js'
import { toStatusResponse } from '../../core/state-to-records.js'
import type { OutputChunkRow, RunSnapshot } from '../../core/state.js'
import { chunk, NOW, run, snapshot, stage } from '../../../test/support/state-fixtures.js'
import { readSink } from '../../../test/support/sink-reader.js'
import type { RunListener, RunWatcher } from './run-watcher.js'
import type { RunWindows } from './run-window.js'
import type { StreamClosed } from './event-stream.js'
import { SetStreams } from './set-stream.js'
import { CredentialExpiry } from './credential-expiry.js'


/** The summary view's item, cut to what these tests read. */
const summary = (snapshot: RunSnapshot) => ({ id: snapshot.run.id, status: snapshot.run.status, version: snapshot.version }) as unknown as RunSummary

/** A `run=` stream of `run_1` in `view`, whose watcher the test drives; `takesChunks`: whether it asked for chunks. */
/** `expiresAt`: the credential's expiry (ms); `now`: the clock the expiry is judged by (the fake `Date.now` by default). */
async function open(
  first: RunSnapshot,
  view: SetStreamView,
  admits: (snapshot: RunSnapshot) => boolean = () => true,
  credential: { expiresAt?: number; now?: () => number } = {},
) {
  const expiry = new CredentialExpiry(credential.now ?? (() => Date.now()))
  let listener: RunListener | undefined
  let takesChunks = false
  const closedFor: StreamClosed[] = []
  const watcher = {
    watch: (_runId: string, taker: RunListener) => {
      listener = taker
      takesChunks = taker.sentVersion !== undefined
      return { seen: () => {}, stop: () => {} }
    },
  }
  const streams = new SetStreams(
    watcher as unknown as RunWatcher,
    {} as RunWindows,
    {
      keepAliveMs: 60_000,
      maxBufferedBytes: 1 << 20,
      onSlowStream: () => {},
      retryMs: 1000,
      statusDocument: toStatusResponse,
      summary,
      onClosed: (details: StreamClosed) => void closedFor.push(details),
      expiry,
    },
    async () => null,
  )
  const body = await streams.openRuns([{ runId: 'run_1', read: async () => first, admits }], view, new AbortController().signal, credential.expiresAt)
  const { take, closed, comments } = readSink(body)
  return {
    deliver: (next: RunSnapshot, chunks: OutputChunkRow[]) => listener!.take(next, chunks),
    deliverWhole: (next: RunSnapshot) => listener!.takeWhole!(next),
    take,
    closed,
    comments,
    closedFor,
    takesChunks: () => takesChunks,
    streams,
    expiry,
  }
}

describe('a set stream with streamed output', () => {
  it('full view: a joining snapshot carries the text so far; chunks alone are output events naming the run, id runId:version', async () => {
    const stream = await open(snapshot(3, [stage({ outputSeq: 0, output: 't0', streamedOutput: true })]), 'full')
    expect(stream.takesChunks()).toBe(true)
    const first = await stream.take()
    expect(first.map((event) => event.event)).toEqual(['snapshot', 'ready'])
    expect((first[0]!.data['stages'] as unknown[])[0]).toMatchObject({ output: 't0', outputSeq: 0 })
    stream.deliver(snapshot(5, [stage({ outputSeq: 2, streamedOutput: true })], { streamedText: false }), [chunk(0, 3), chunk(1, 4), chunk(2, 5)])
    expect((await stream.take()).map((event) => [event.event, event.id, event.data])).toEqual([
      ['output', 'run_1:4', { runId: 'run_1', stageNumber: 1, seq: 1, text: 't1' }],
      ['output', 'run_1:5', { runId: 'run_1', stageNumber: 1, seq: 2, text: 't2' }],
    ])
    stream.streams.close()
  })

  it('full view: chunks first and the update after them without the text; the update first when the stage restarted meanwhile', async () => {
    const stream = await open(snapshot(3, [stage({ outputSeq: 0, output: 't0', streamedOutput: true })]), 'full')
    await stream.take()
    stream.deliver(snapshot(5, [stage({ outputSeq: 1, streamedOutput: true, progress: { seq: 1, percent: 10 } })], { streamedText: false }), [chunk(1, 4)])
    const appended = await stream.take()
    expect(appended.map((event) => [event.event, event.id])).toEqual([
      ['output', 'run_1:4'],
      ['update', 'run_1:5'],
    ])
    const updated = (appended[1]!.data['stages'] as Array<Record<string, unknown>>)[0]
    expect(updated).toMatchObject({ outputSeq: 1 })
    expect(updated).not.toHaveProperty('output')
    // Attempt 2 restarted the output at 6; its chunks 0 and 1 at 7 and 8.
    stream.deliver(snapshot(8, [stage({ attempt: 2, outputSeq: 1, streamedOutput: true })], { streamedText: false }), [chunk(0, 7, 'n0'), chunk(1, 8, 'n1')])
    const restarted = await stream.take()
    expect(restarted.map((event) => [event.event, event.id])).toEqual([
      ['update', 'run_1:6'],
      ['output', 'run_1:7'],
      ['output', 'run_1:8'],
    ])
    expect((restarted[0]!.data['stages'] as unknown[])[0]).toMatchObject({ attempt: 2, outputSeq: null, output: null })
    stream.streams.close()
  })

  it('full view: closes (the reconnect starts afresh) when a stage created and finished meanwhile was read without its text, saying why', async () => {
    const stream = await open(snapshot(1, []), 'full')
    await stream.take()
    stream.deliver(snapshot(4, [stage({ status: 'COMPLETED', completedAt: NOW, outputSeq: 0, streamedOutput: true })], { streamedText: false }), [chunk(0, 3)])
    expect(await stream.take()).toEqual([])
    expect(stream.closed()).toBe(true)
    // Never silent: the comment names the cause and the run before the end, and the handlers are told.
    expect(stream.comments().at(-1)).toBe('closed update-unavailable run_1')
    expect(stream.closedFor).toEqual([{ cause: 'update-unavailable', runId: 'run_1', version: 4, stream: 'set' }])
  })

  it('summary view: takes no chunks, sends nothing for a chunk, and the next change carries the version it learnt', async () => {
    const stream = await open(snapshot(3, [stage({ outputSeq: 0, output: 't0', streamedOutput: true })]), 'summary')
    expect(stream.takesChunks()).toBe(false)
    await stream.take()
    // Chunks change nothing a summary shows but its version: no event.
    stream.deliver(snapshot(4, [stage({ outputSeq: 1, output: null, streamedOutput: true })], { streamedText: false }), [])
    stream.deliver(snapshot(5, [stage({ outputSeq: 2, output: null, streamedOutput: true })], { streamedText: false }), [])
    expect(await stream.take()).toEqual([])
    // A status change goes at once, with the newest version.
    const finished = snapshot(6, [stage({ status: 'COMPLETED', completedAt: NOW, outputSeq: 2, output: null, streamedOutput: true })], { streamedText: false })
    stream.deliver({ ...finished, run: { ...finished.run, status: 'COMPLETED', completedAt: NOW } }, [])
    const events = await stream.take()
    expect(events.map((event) => [event.event, event.id, event.data['version'] ?? null])).toEqual([
      ['update', 'run_1:6', 6],
      ['end', 'run_1:6', null],
    ])
    stream.streams.close()
  })
})

describe('a run= set stream whose grant no longer covers a listed run', () => {
  const tagged = (snapshot: RunSnapshot) => snapshot.run.tags?.includes('team:a') === true
  const withTags = (version: number, tags: string[]): RunSnapshot => ({ ...snapshot(version, []), run: { ...run, tags } })

  it.each(['full', 'summary'] as const)('%s view: ends without sending the change, after a comment naming the cause and the run', async (view) => {
    const stream = await open(withTags(1, ['team:a']), view, tagged)
    expect((await stream.take()).map((event) => event.event)).toEqual(['snapshot', 'ready'])
    stream.deliver(withTags(2, ['nightly']), [])
    expect(await stream.take()).toEqual([])
    expect(stream.closed()).toBe(true)
    expect(stream.comments().at(-1)).toBe('closed not-admitted run_1')
    expect(stream.closedFor).toEqual([{ cause: 'not-admitted', runId: 'run_1', version: 2, stream: 'set' }])
  })

  it('full view: says so too when the change reaches it as a whole snapshot (a long catch-up)', async () => {
    const stream = await open(withTags(1, ['team:a']), 'full', tagged)
    await stream.take()
    stream.deliverWhole(withTags(2, ['nightly']))
    expect(await stream.take()).toEqual([])
    expect(stream.comments().at(-1)).toBe('closed not-admitted run_1')
    expect(stream.closedFor).toEqual([{ cause: 'not-admitted', runId: 'run_1', version: 2, stream: 'set' }])
  })
})

describe('a set stream whose credential expires', () => {
  // Fake timers and clock; setImmediate stays real (the sink reader waits on it).
  const T0 = Date.parse('2026-12-08T10:00:00.000Z')
  afterEach(() => void vi.useRealTimers())

  it.each(['full', 'summary'] as const)('%s view: ends at the expiry, after a comment naming the cause and no run; the handlers are told once', async (view) => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'], now: T0 })
    const stream = await open(snapshot(1, []), view, undefined, { expiresAt: T0 + 60_000 })
    expect((await stream.take()).map((event) => event.event)).toEqual(['snapshot', 'ready'])
    vi.advanceTimersByTime(59_999)
    expect(stream.closed()).toBe(false)
    vi.advanceTimersByTime(1)
    expect(stream.closed()).toBe(true)
    expect(await stream.take()).toEqual([])
    expect(stream.comments().at(-1)).toBe('closed credential-expired')
    expect(stream.closedFor).toEqual([{ cause: 'credential-expired', runId: undefined, expiresAt: T0 + 60_000, stream: 'set' }])
    expect(stream.expiry.size).toBe(0)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('a change that reaches it after the expiry, before the timer ran, is not sent: the stream ends then', async () => {
    let now = T0
    const stream = await open(snapshot(1, []), 'full', undefined, { expiresAt: T0 + 60_000, now: () => now })
    await stream.take()
    now = T0 + 60_000
    stream.deliver(snapshot(2, []), [])
    expect(await stream.take()).toEqual([])
    expect(stream.closed()).toBe(true)
    expect(stream.comments().at(-1)).toBe('closed credential-expired')
    expect(stream.closedFor).toEqual([{ cause: 'credential-expired', runId: undefined, expiresAt: T0 + 60_000, stream: 'set' }])
  })

  it('a stream whose credential has no expiry is never registered and never ends for it', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'], now: T0 })
    const stream = await open(snapshot(1, []), 'full')
    await stream.take()
    expect(stream.expiry.size).toBe(0)
    vi.advanceTimersByTime(24 * 3600_000)
    expect(stream.closed()).toBe(false)
    expect(stream.closedFor).toEqual([])
    stream.streams.close()
  })
})

describe('a filter set stream whose membership fails after ready', () => {
  it('ends with `: closed membership-failed` naming no run, and the handlers are told (with the error), not silently', async () => {
    const closedFor: StreamClosed[] = []
    let listener: ((entries: ReadonlyArray<{ id: string; version: number }>) => void) | undefined
    const windows = {
      follow: (_filter: unknown, _limit: number, taker: typeof listener) => {
        listener = taker
        // The first membership: run_1 alone.
        return { first: Promise.resolve().then(() => taker!([{ id: 'run_1', version: 1 }])), dirty: () => {}, stop: () => {} }
      },
    }
    const watcher = { watch: () => ({ seen: () => {}, stop: () => {} }) }
    const failure = new Error('the status document of run_2 could not be made')
    const streams = new SetStreams(
      watcher as unknown as RunWatcher,
      windows as unknown as RunWindows,
      {
        keepAliveMs: 60_000,
        maxBufferedBytes: 1 << 20,
        onSlowStream: () => {},
        retryMs: 1000,
        // A run joining later whose snapshot cannot be made: the membership fails after `ready`.
        statusDocument: (joining) => {
          if (joining.run.id === 'run_2') throw failure
          return toStatusResponse(joining)
        },
        summary,
        onClosed: (details: StreamClosed) => void closedFor.push(details),
        expiry: new CredentialExpiry(() => Date.now()),
      },
      async (runId) => ({ ...snapshot(1, []), run: { ...run, id: runId } }),
    )
    const body = await streams.openFilter({}, 50, 'full', new AbortController().signal, () => true)
    const stream = readSink(body)
    expect((await stream.take()).map((event) => event.event)).toEqual(['snapshot', 'ready'])
    listener!([
      { id: 'run_2', version: 1 },
      { id: 'run_1', version: 1 },
    ])
    expect(await stream.take()).toEqual([])
    expect(stream.closed()).toBe(true)
    expect(stream.comments().at(-1)).toBe('closed membership-failed')
    expect(closedFor).toEqual([{ cause: 'membership-failed', runId: undefined, error: failure, stream: 'set' }])
    expect(streams.size).toBe(0)
  })
})
