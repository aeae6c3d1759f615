/**
 * The reads of a dirty window (run-window.ts): in LISTEN mode the first mark after a quiet period
 * reads at the next turn, with no tick; later marks are folded into at most one read per
 * DIRTY_READ_INTERVAL_MS, in polling mode too (own changes); the tick still reads every window; close() and the last stream's
 * stop leave no timer. The clock is vitest's fake one, so every count is exact; the watcher is a
 * hand-driven stand-in.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { RunListRequest, RunWindowEntry } from '../../core/run-list.js'
import type { Store } from '../../core/store.js'
import { quiet } from '../../../test/support/loggers.js'
import type { RunWatcher } from './run-watcher.js'
import { DIRTY_READ_INTERVAL_MS, RunWindows } from './run-window.js'

/** Windows over a store whose window queries are counted, and a watcher whose changes and mode the test drives. */
function windows(options: { listening: boolean; pollIntervalMs?: number }) {
  const queries: RunListRequest[] = []
  /** When each query was made (`Date.now()`, the fake clock). */
  const times: number[] = []
  let members: RunWindowEntry[] = []
  const store = {
    listRunWindow: async (request: RunListRequest) => {
      queries.push(request)
      times.push(Date.now())
      return members
    },
  } as unknown as Store<unknown>
  let change: ((runId: string, version: number | undefined) => void) | undefined
  const watcher = {
    listening: options.listening,
    onChange: (listener: typeof change) => {
      change = listener
      return () => void (change = undefined)
    },
    hint: () => {},
  }
  const runWindows = new RunWindows({ store, watcher: watcher as unknown as RunWatcher, pollIntervalMs: options.pollIntervalMs ?? 60_000, safetyPollIntervalMs: 600_000, logger: quiet })
  return {
    runWindows,
    queries,
    times,
    watcher,
    setMembers: (entries: RunWindowEntry[]) => void (members = entries),
    change: (runId: string) => change?.(runId, 1),
  }
}

beforeEach(() => {
  vi.useFakeTimers()
})

afterEach(() => {
  vi.useRealTimers()
})

describe('a dirty window', () => {
  it('LISTEN: the first mark reads at the next turn, with no tick; 200 marks of one turn are one read', async () => {
    const test = windows({ listening: true })
    const seen: string[][] = []
    const follow = test.runWindows.follow({ tags: ['a'] }, 10, (entries) => seen.push(entries.map((entry) => entry.id)))
    await follow.first
    expect(test.queries).toHaveLength(1)

    test.setMembers([{ id: 'joined', version: 0 }])
    for (let change = 0; change < 200; change++) test.change(`elsewhere-${change}`)
    // Nothing read within the turn of the marks...
    expect(test.queries).toHaveLength(1)
    // ...one read at the next turn: no clock has advanced, so no tick brought it.
    await vi.advanceTimersByTimeAsync(0)
    expect(test.queries).toHaveLength(2)
    expect(seen).toEqual([[], ['joined']])
    // Nothing left to read for those marks (the next tick is 60 s away).
    await vi.advanceTimersByTimeAsync(10 * DIRTY_READ_INTERVAL_MS)
    expect(test.queries).toHaveLength(2)
    // A member's change does not mark the window; a member that stops matching does.
    test.change('joined')
    await vi.advanceTimersByTimeAsync(0)
    expect(test.queries).toHaveLength(2)
    follow.dirty()
    await vi.advanceTimersByTimeAsync(0)
    expect(test.queries).toHaveLength(3)
    follow.stop()
    test.runWindows.close()
  })

  it.each([
    ['no tick within the second', 60_000, []],
    // The ticks at 500, 750 and 1000 read no dirty window beside its dirty reads (they did: 24
    // reads a second); the first tick (250) is the full read after the mode became LISTEN.
    ['the default 250 ms tick', 250, [250]],
  ])('LISTEN: a mark per millisecond for a second costs one read per DIRTY_READ_INTERVAL_MS, the first at once (%s)', async (_, pollIntervalMs, fullReads) => {
    const test = windows({ listening: true, pollIntervalMs })
    const follow = test.runWindows.follow({}, 10, () => {})
    await follow.first
    const before = test.queries.length
    const start = Date.now()
    for (let ms = 0; ms < 1000; ms++) {
      test.change(`elsewhere-${ms}`)
      await vi.advanceTimersByTimeAsync(1)
    }
    await vi.advanceTimersByTimeAsync(DIRTY_READ_INTERVAL_MS)
    // The first mark's read at once (the next turn, 0 ms on this clock), then one every interval
    // (0, 50, ..., 950), and one for the marks after 950 at 1000.
    const reads = test.times.slice(before).map((time) => time - start)
    const dirtyReads = Array.from({ length: 1000 / DIRTY_READ_INTERVAL_MS + 1 }, (_, index) => index * DIRTY_READ_INTERVAL_MS)
    expect(reads).toEqual([...dirtyReads, ...fullReads].sort((a, b) => a - b))
    follow.stop()
    test.runWindows.close()
  })

  it("polling: this process's own change is read at the next turn too, and every window again at the tick", async () => {
    const test = windows({ listening: false })
    const follow = test.runWindows.follow({}, 10, () => {})
    await follow.first
    test.change('elsewhere')
    expect(test.queries).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(0)
    expect(test.queries).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(59_999)
    expect(test.queries).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(1)
    expect(test.queries).toHaveLength(3)
    follow.stop()
    test.runWindows.close()
  })

  it('close() clears the tick and a pending read; the last stream stopping clears its pending read', async () => {
    const test = windows({ listening: true })
    const first = test.runWindows.follow({ tags: ['a'] }, 10, () => {})
    const second = test.runWindows.follow({ tags: ['b'] }, 10, () => {})
    await Promise.all([first.first, second.first])
    // Both windows read at once, then marked again within the interval: two pending reads and the tick.
    test.change('elsewhere-1')
    await vi.advanceTimersByTimeAsync(0)
    test.change('elsewhere-2')
    expect(vi.getTimerCount()).toBe(3)
    first.stop()
    expect(vi.getTimerCount()).toBe(2)
    const queries = test.queries.length
    test.runWindows.close()
    expect(vi.getTimerCount()).toBe(0)
    // A change after close starts nothing.
    test.change('elsewhere-3')
    await vi.advanceTimersByTimeAsync(10 * DIRTY_READ_INTERVAL_MS)
    expect(test.queries).toHaveLength(queries)
    expect(vi.getTimerCount()).toBe(0)
  })
})
