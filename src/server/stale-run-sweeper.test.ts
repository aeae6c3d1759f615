import { afterEach, describe, expect, it, vi } from 'vitest'
import { DEFAULT_STAGES } from '../contract/stages.js'
import { MemoryStore } from '../core/memory-store.js'
import { applyStageUpdate, createRun } from '../core/operations.js'
import type { RunState } from '../core/state.js'
import { type Store, StoreUnavailableError } from '../core/store.js'
import { ServerConfigurationError } from './configuration-error.js'
import { createStaleRunSweeper, MAX_BATCHES_PER_SWEEP, type StaleRunSweeperOptions } from './stale-run-sweeper.js'
import { quiet, recordingLogger } from '../../test/support/loggers.js'

const MINUTE = 60_000
const T0 = new Date('2026-01-01T00:00:00.000Z')

/** A clock the test moves by hand. */
function manualClock() {
  let time = T0.getTime()
  return {
    now: () => new Date(time),
    advance: (ms: number) => void (time += ms),
  }
}


/** Starts a run whose stage 1 is PROCESSING at the clock's current time. */
async function startRun(store: MemoryStore, id: string, now: Date): Promise<void> {
  await createRun(store, { id, now })
  await applyStageUpdate(
    store,
    id,
    { stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING' },
    { stages: DEFAULT_STAGES, now },
  )
}

function lines(logger: ReturnType<typeof recordingLogger>): string[] {
  return logger.lines.map((line) => line.message)
}

async function statusOf(store: MemoryStore, id: string) {
  return (await store.getRun(id))?.run.status
}

/** A store that wraps a MemoryStore and lets a test intercept `listStaleRuns`. */
function interceptedStore(
  inner: MemoryStore,
  list: (updatedBefore: Date, limit: number) => Promise<RunState[]>,
): Store<MemoryStore> {
  return {
    transaction: (fn) => inner.transaction(fn),
    insertRun: (run) => inner.insertRun(run),
    getRun: (runId) => inner.getRun(runId),
    listStaleRuns: list,
  }
}

afterEach(() => {
  vi.useRealTimers()
  vi.restoreAllMocks()
})

describe('createStaleRunSweeper configuration', () => {
  const store = new MemoryStore()

  it.each([
    ['no staleAfterMs', { store } as unknown as StaleRunSweeperOptions, /staleAfterMs must be a positive number of milliseconds/],
    ['staleAfterMs 0', { store, staleAfterMs: 0 }, /staleAfterMs must be a positive number/],
    ['a negative staleAfterMs', { store, staleAfterMs: -5 }, /staleAfterMs must be a positive number/],
    ['staleAfterMs NaN', { store, staleAfterMs: Number.NaN }, /staleAfterMs must be a positive number/],
    ['staleAfterMs as a string', { store, staleAfterMs: '15m' } as unknown as StaleRunSweeperOptions, /got "15m" \(a string\)/],
    ['intervalMs 0', { store, staleAfterMs: MINUTE, intervalMs: 0 }, /intervalMs must be a positive whole number/],
    ['a fractional intervalMs', { store, staleAfterMs: MINUTE, intervalMs: 1.5 }, /intervalMs must be a positive whole number/],
    ['an intervalMs beyond setTimeout', { store, staleAfterMs: MINUTE, intervalMs: 2 ** 31 }, /intervalMs must be at most/],
    ['batchSize 0', { store, staleAfterMs: MINUTE, batchSize: 0 }, /batchSize must be a positive whole number/],
    ['neither store nor prisma', { staleAfterMs: MINUTE } as unknown as StaleRunSweeperOptions, /Pass `store`/],
    [
      'both store and prisma',
      { store, prisma: {}, staleAfterMs: MINUTE } as unknown as StaleRunSweeperOptions,
      /either `store` or `prisma`/,
    ],
    [
      'a store without listStaleRuns',
      {
        store: { transaction: store.transaction.bind(store), insertRun: store.insertRun.bind(store), getRun: store.getRun.bind(store) },
        staleAfterMs: MINUTE,
      },
      /cannot list stale runs/,
    ],
  ])('throws ServerConfigurationError for %s', (_, options, message) => {
    expect(() => createStaleRunSweeper(options)).toThrow(ServerConfigurationError)
    expect(() => createStaleRunSweeper(options)).toThrow(message)
  })
})

describe('sweep()', () => {
  it('fails the runs without an update for staleAfterMs, with the reason, and leaves the others', async () => {
    const store = new MemoryStore()
    const clock = manualClock()
    const logger = recordingLogger()
    const { lines } = logger
    const stale: string[] = []
    await startRun(store, 'silent', clock.now())
    clock.advance(10 * MINUTE)
    await startRun(store, 'recent', clock.now())
    clock.advance(6 * MINUTE)

    const sweeper = createStaleRunSweeper({
      store,
      staleAfterMs: 15 * MINUTE,
      clock: clock.now,
      logger,
      onRunStale: async (run) => {
        expect(await statusOf(store, run.id)).toBe('FAILED')
        stale.push(run.id)
      },
    })
    const failed = await sweeper.sweep()

    expect(failed).toEqual([
      expect.objectContaining({
        id: 'silent',
        status: 'FAILED',
        error: 'No update for more than 15 minutes: the runner stopped reporting',
        completedAt: clock.now(),
        completionReceivedAt: null,
      }),
    ])
    expect(stale).toEqual(['silent'])
    expect(await statusOf(store, 'recent')).toBe('PROCESSING')
    expect(lines).toEqual([
      { level: 'warn', message: expect.stringContaining('failed stale run silent'), details: { runId: 'silent' } },
    ])
    expect(await sweeper.sweep()).toEqual([])
  })

  it('takes batches of batchSize, oldest first, while they come back full: one sweep fails them all', async () => {
    const store = new MemoryStore()
    const clock = manualClock()
    const ids = ['a', 'b', 'c', 'd', 'e']
    for (const id of ids) {
      await startRun(store, id, clock.now())
      clock.advance(1_000)
    }
    clock.advance(20 * MINUTE)
    const inner = store
    const limits: number[] = []
    const counted = interceptedStore(inner, (updatedBefore, limit) => {
      limits.push(limit)
      return inner.listStaleRuns(updatedBefore, limit)
    })
    const logger = recordingLogger()
    const sweeper = createStaleRunSweeper({ store: counted, staleAfterMs: 15 * MINUTE, batchSize: 2, clock: clock.now, logger })
    expect((await sweeper.sweep()).map((run) => run.id)).toEqual(ids)
    // 2 + 2 full batches, then 1: drained, no backlog.
    expect(limits).toEqual([2, 2, 2])
    expect(lines(logger).filter((message) => message.includes('more stale runs remain'))).toEqual([])
    expect(await sweeper.sweep()).toEqual([])
  })

  it('stops at MAX_BATCHES_PER_SWEEP full batches, logs the backlog once with the fix, and the next sweep goes on', async () => {
    const store = new MemoryStore()
    const clock = manualClock()
    const total = 2 * MAX_BATCHES_PER_SWEEP + 5
    for (let i = 0; i < total; i++) await startRun(store, `run-${String(i).padStart(3, '0')}`, clock.now())
    clock.advance(20 * MINUTE)
    const logger = recordingLogger()
    const sweeper = createStaleRunSweeper({ store, staleAfterMs: 15 * MINUTE, batchSize: 2, intervalMs: MINUTE, clock: clock.now, logger })

    const first = await sweeper.sweep()
    expect(first).toHaveLength(2 * MAX_BATCHES_PER_SWEEP)
    const backlog = logger.lines.filter((line) => line.message.includes('more stale runs remain'))
    expect(backlog).toEqual([
      {
        level: 'warn',
        message:
          'pipeline-status: the stale-run sweep failed 20 runs in 10 batches of 2 (its most per sweep) and more stale runs remain for the next sweep; ' +
          'if this repeats, raise batchSize (now 2) or lower intervalMs (now 60000 ms)',
        details: { failed: 20, batches: 10, batchSize: 2, intervalMs: MINUTE },
      },
    ])

    const second = await sweeper.sweep()
    expect(second).toHaveLength(5)
    expect(new Set([...first, ...second].map((run) => run.id)).size).toBe(total)
    expect(logger.lines.filter((line) => line.message.includes('more stale runs remain'))).toHaveLength(1)
  })

  it('two sweepers on one MemoryStore, racing over 25 runs in batches of 2, fail each exactly once', async () => {
    const store = new MemoryStore()
    const clock = manualClock()
    const ids = Array.from({ length: 25 }, (_, i) => `run-${String(i).padStart(2, '0')}`)
    for (const id of ids) await startRun(store, id, clock.now())
    clock.advance(20 * MINUTE)
    const ended: string[] = []
    const sweeperOf = () =>
      createStaleRunSweeper({ store, staleAfterMs: 15 * MINUTE, batchSize: 2, clock: clock.now, logger: quiet, onRunEnded: ({ run }) => void ended.push(run.id) })
    const [a, b] = [sweeperOf(), sweeperOf()]
    // Both list the same oldest runs, so together they may stop at the bound with some left:
    // a second round of both sweeps finishes them.
    const failed = [...(await Promise.all([a.sweep(), b.sweep()])), ...(await Promise.all([a.sweep(), b.sweep()]))].flat()
    expect(failed).toHaveLength(25)
    expect(failed.map((run) => run.id).sort()).toEqual(ids)
    expect(ended.sort()).toEqual(ids)
    for (const id of ids) expect(await statusOf(store, id)).toBe('FAILED')
  })

  it('logs no backlog when the last allowed batch was full but nothing is left (an exact fit)', async () => {
    const store = new MemoryStore()
    const clock = manualClock()
    for (let i = 0; i < 2 * MAX_BATCHES_PER_SWEEP; i++) await startRun(store, `run-${i}`, clock.now())
    clock.advance(20 * MINUTE)
    const logger = recordingLogger()
    const sweeper = createStaleRunSweeper({ store, staleAfterMs: 15 * MINUTE, batchSize: 2, clock: clock.now, logger })
    expect(await sweeper.sweep()).toHaveLength(2 * MAX_BATCHES_PER_SWEEP)
    expect(lines(logger).filter((message) => message.includes('more stale runs remain'))).toEqual([])
    expect(lines(logger)).toHaveLength(2 * MAX_BATCHES_PER_SWEEP) // one per failed run, nothing else
  })

  it('logs a throwing onRunStale and goes on with the next run', async () => {
    const store = new MemoryStore()
    const clock = manualClock()
    const logger = recordingLogger()
    const { lines } = logger
    await startRun(store, 'a', clock.now())
    await startRun(store, 'b', clock.now())
    clock.advance(MINUTE + 1)
    const sweeper = createStaleRunSweeper({
      store,
      staleAfterMs: MINUTE,
      clock: clock.now,
      logger,
      onRunStale: (run) => {
        if (run.id === 'a') throw new Error('pager is down')
      },
    })
    expect((await sweeper.sweep()).map((run) => run.id)).toEqual(['a', 'b'])
    expect(await statusOf(store, 'b')).toBe('FAILED')
    const errors = lines.filter((line) => line.level === 'error')
    expect(errors).toHaveLength(1)
    expect(errors[0]?.message).toContain('onRunStale threw for run a')
    expect((errors[0]?.details?.['error'] as Error).message).toBe('pager is down')
  })

  it('throws store errors to the caller; an overlapping call still sweeps after a failed one', async () => {
    const inner = new MemoryStore()
    let listings = 0
    let fail = true
    let failNext = false
    const store = interceptedStore(inner, async (updatedBefore, limit) => {
      listings++
      if (fail) throw new StoreUnavailableError()
      if (failNext) {
        failNext = false
        throw new StoreUnavailableError()
      }
      return inner.listStaleRuns(updatedBefore, limit)
    })
    const sweeper = createStaleRunSweeper({ store, staleAfterMs: MINUTE })
    await expect(sweeper.sweep()).rejects.toBeInstanceOf(StoreUnavailableError)
    // The database is back by the time the waiting call sweeps: only the next listing fails.
    fail = false
    failNext = true
    const failing = sweeper.sweep()
    const after = sweeper.sweep()
    await expect(failing).rejects.toBeInstanceOf(StoreUnavailableError)
    expect(await after).toEqual([])
    expect(listings).toBe(3)
  })
})

describe('start() and stop()', () => {
  it('sweeps at once, then every intervalMs after the previous sweep, until stopped', async () => {
    vi.useFakeTimers()
    const store = new MemoryStore()
    const clock = manualClock()
    const sweeper = createStaleRunSweeper({ store, staleAfterMs: 15 * MINUTE, intervalMs: MINUTE, clock: clock.now, logger: quiet })

    await startRun(store, 'first', clock.now())
    clock.advance(16 * MINUTE)
    sweeper.start()
    sweeper.start() // a second start changes nothing
    await vi.advanceTimersByTimeAsync(0)
    expect(await statusOf(store, 'first')).toBe('FAILED')

    await startRun(store, 'second', clock.now())
    clock.advance(16 * MINUTE)
    expect(vi.getTimerCount()).toBe(1)
    await vi.advanceTimersByTimeAsync(MINUTE)
    expect(await statusOf(store, 'second')).toBe('FAILED')

    await sweeper.stop()
    expect(vi.getTimerCount()).toBe(0)
    await startRun(store, 'after-stop', clock.now())
    clock.advance(16 * MINUTE)
    await vi.advanceTimersByTimeAsync(10 * MINUTE)
    expect(await statusOf(store, 'after-stop')).toBe('PROCESSING')

    // Started again, it picks up where it left off.
    sweeper.start()
    await vi.advanceTimersByTimeAsync(0)
    expect(await statusOf(store, 'after-stop')).toBe('FAILED')
    await sweeper.stop()
  })

  it('logs errors of timed sweeps and retries at the next interval, never throwing from the timer', async () => {
    vi.useFakeTimers()
    const inner = new MemoryStore()
    const clock = manualClock()
    const logger = recordingLogger()
    const { lines } = logger
    const failures: unknown[] = [new StoreUnavailableError(), new Error('syntax error at or near "FROM"')]
    const store = interceptedStore(inner, async (updatedBefore, limit) => {
      const failure = failures.shift()
      if (failure) throw failure
      return inner.listStaleRuns(updatedBefore, limit)
    })
    await startRun(inner, 'r', clock.now())
    clock.advance(16 * MINUTE)
    const sweeper = createStaleRunSweeper({ store, staleAfterMs: 15 * MINUTE, intervalMs: MINUTE, clock: clock.now, logger })
    const unhandled = vi.fn()
    process.on('unhandledRejection', unhandled)
    try {
      sweeper.start()
      await vi.advanceTimersByTimeAsync(0)
      expect(lines.map((line) => line.level)).toEqual(['warn'])
      expect(lines[0]?.message).toContain('database unavailable during the stale-run sweep')
      expect(lines[0]?.details?.['error']).toBeInstanceOf(StoreUnavailableError)

      await vi.advanceTimersByTimeAsync(MINUTE)
      expect(lines.map((line) => line.level)).toEqual(['warn', 'error'])
      expect(lines[1]?.message).toContain('the stale-run sweep failed')
      expect(await statusOf(inner, 'r')).toBe('PROCESSING')

      await vi.advanceTimersByTimeAsync(MINUTE)
      expect(await statusOf(inner, 'r')).toBe('FAILED')
      await sweeper.stop()
    } finally {
      process.off('unhandledRejection', unhandled)
    }
    expect(unhandled).not.toHaveBeenCalled()
  })

  it('is single-flight: a sweep() during another waits for it, then sweeps, so no run is reported twice', async () => {
    const inner = new MemoryStore()
    const clock = manualClock()
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => (release = resolve))
    let lists = 0
    let concurrent = 0
    let maxConcurrent = 0
    const store = interceptedStore(inner, async (updatedBefore, limit) => {
      lists += 1
      concurrent += 1
      maxConcurrent = Math.max(maxConcurrent, concurrent)
      await gate
      concurrent -= 1
      return inner.listStaleRuns(updatedBefore, limit)
    })
    await startRun(inner, 'a', clock.now())
    await startRun(inner, 'b', clock.now())
    clock.advance(16 * MINUTE)
    const ended: string[] = []
    const sweeper = createStaleRunSweeper({
      store,
      staleAfterMs: 15 * MINUTE,
      clock: clock.now,
      logger: quiet,
      onRunEnded: ({ run }) => void ended.push(run.id),
    })
    const first = sweeper.sweep()
    const second = sweeper.sweep()
    await new Promise((resolve) => setImmediate(resolve))
    expect(lists).toBe(1)
    release()
    const [firstFailed, secondFailed] = await Promise.all([first, second])
    expect(firstFailed.map((run) => run.id).sort()).toEqual(['a', 'b'])
    expect(secondFailed).toEqual([])
    expect([lists, maxConcurrent]).toEqual([2, 1])
    expect(ended.sort()).toEqual(['a', 'b'])
  })

  it('stop() waits for the sweep in progress', async () => {
    const inner = new MemoryStore()
    const clock = manualClock()
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => (release = resolve))
    let listed: () => void = () => {}
    const listing = new Promise<void>((resolve) => (listed = resolve))
    const store = interceptedStore(inner, async (updatedBefore, limit) => {
      listed()
      await gate
      return inner.listStaleRuns(updatedBefore, limit)
    })
    await startRun(inner, 'r', clock.now())
    clock.advance(16 * MINUTE)
    const sweeper = createStaleRunSweeper({ store, staleAfterMs: 15 * MINUTE, clock: clock.now, logger: quiet })
    sweeper.start()
    await listing

    let stopped = false
    const stopping = sweeper.stop().then(() => void (stopped = true))
    await new Promise((resolve) => setImmediate(resolve))
    expect(stopped).toBe(false)
    release()
    await stopping
    expect(await statusOf(inner, 'r')).toBe('FAILED')
  })

  it('does not keep the process alive: its timer is unref’d', async () => {
    const spy = vi.spyOn(globalThis, 'setTimeout')
    const sweeper = createStaleRunSweeper({ store: new MemoryStore(), staleAfterMs: MINUTE })
    sweeper.start()
    const timer = spy.mock.results.at(-1)?.value as NodeJS.Timeout
    expect(timer.hasRef()).toBe(false)
    await sweeper.stop()
  })
})

describe('the stale-run sweeper: retention and onRunEnded', () => {
  it('refuses a retention it cannot apply, at creation', () => {
    const store = new MemoryStore()
    expect(() => createStaleRunSweeper({ store, staleAfterMs: MINUTE, retention: { COMPLETED: 0 } })).toThrow(ServerConfigurationError)
    expect(() =>
      createStaleRunSweeper({ store, staleAfterMs: MINUTE, retention: { DONE: MINUTE } as unknown as { COMPLETED: number } }),
    ).toThrow(/unknown status DONE/)
    const withoutDelete: Store<MemoryStore> = {
      transaction: (fn) => store.transaction(fn),
      insertRun: (run) => store.insertRun(run),
      getRun: (runId) => store.getRun(runId),
      listStaleRuns: (before, limit) => store.listStaleRuns(before, limit),
    }
    expect(() => createStaleRunSweeper({ store: withoutDelete, staleAfterMs: MINUTE, retention: { FAILED: MINUTE } })).toThrow(
      /deleteFinishedRuns/,
    )
  })

  it('a timed sweep fails stale runs with onRunEnded, then deletes expired ones', async () => {
    const store = new MemoryStore()
    const clock = manualClock()
    const ended: string[] = []
    await startRun(store, 'stale', clock.now())
    const sweeper = createStaleRunSweeper({
      store,
      staleAfterMs: MINUTE,
      clock: clock.now,
      logger: quiet,
      retention: { FAILED: MINUTE },
      onRunEnded: ({ run, how }) => void ended.push(`${run.id}:${how}`),
    })
    clock.advance(2 * MINUTE)
    expect((await sweeper.sweep()).map((run) => run.id)).toEqual(['stale'])
    expect(ended).toEqual(['stale:swept_as_stale'])
    expect(await sweeper.purge()).toEqual({ FAILED: 0 })
    clock.advance(2 * MINUTE)
    expect(await sweeper.purge()).toEqual({ FAILED: 1 })
    expect(await store.getRun('stale')).toBeNull()
  })
})
