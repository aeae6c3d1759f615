import { describe, expect, it } from 'vitest'
import { MemoryStore } from './memory-store.js'
import { newRun } from './state-machine.js'
import type { RunState } from './state.js'
import type { Store } from './store.js'
import { OPTIMISTIC_ATTEMPTS, RunLanes, storeWrites, UNDER_LOCK } from './store-writes.js'

const now = new Date('2026-01-01T00:00:00Z')
const failed = (run: RunState): RunState => ({ ...run, status: 'FAILED', error: 'x', updatedAt: now })

/** A MemoryStore seen through a plain object with only the methods named in `keep`. */
function only(store: MemoryStore, keep: ReadonlyArray<keyof Store<MemoryStore>>): Store<MemoryStore> {
  const view: Record<string, unknown> = {}
  for (const name of ['transaction', 'insertRun', 'getRun', ...keep] as const) {
    const method = store[name] as (...args: unknown[]) => unknown
    view[name] = (...args: unknown[]) => method.apply(store, args)
  }
  return view as unknown as Store<MemoryStore>
}

describe('storeWrites', () => {
  it('chooses a store’s protocol once and keeps it', async () => {
    const store = new MemoryStore()
    expect(storeWrites(store)).toBe(storeWrites(store))
    await store.insertRun(newRun('r', now))
    const attempt = await storeWrites(store).onRun('r', ({ run }) => ({ write: failed(run), result: 'written' }))
    expect(attempt).toEqual({ found: true, result: 'written' })
    expect(await store.readRun('r')).toMatchObject({ run: { status: 'FAILED' }, version: 1 })
    expect(await storeWrites(store).onRun('unknown', () => UNDER_LOCK)).toEqual({ found: false })
  })

  it('a store without the optimistic methods gets the locking protocol: every write goes under the lock', async () => {
    const memory = new MemoryStore()
    await memory.insertRun(newRun('r', now))
    const store = only(memory, [])
    let decided = 0
    const decide = () => {
      decided++
      return { done: 'never' }
    }
    expect(await storeWrites(store).onRun('r', decide)).toBeUndefined()
    expect(await storeWrites(store).onRunStage('r', 1, decide)).toBeUndefined()
    expect(decided).toBe(0)
    // Without touchRun a heartbeat reads the run as stored and records nothing.
    const touched = await storeWrites(store).touchRun({ runId: 'r', at: now, stageNumber: 1 })
    expect(touched).toEqual({ run: (await memory.getRun('r'))?.run, version: 0, stage: undefined })
    expect(touched?.run.lastActivityAt ?? null).toBeNull()
  })

  it('an attempt that says UNDER_LOCK writes nothing, and every lost race ends under the lock after the last attempt', async () => {
    const memory = new MemoryStore()
    await memory.insertRun(newRun('r', now))
    const writes = storeWrites(only(memory, ['readRun', 'writeRun', 'readRunStage', 'writeRunStage']))
    expect(await writes.onRun('r', () => UNDER_LOCK)).toBeUndefined()
    let attempts = 0
    // Each attempt's write is preceded by another write of the run, so each one loses its race.
    const racing = await writes.onRun('r', ({ run }) => {
      attempts++
      void memory.writeRun({ run, expectedVersion: attempts - 1, version: attempts })
      return { write: failed(run), result: 'lost' }
    })
    expect(racing).toBeUndefined()
    expect(attempts).toBe(OPTIMISTIC_ATTEMPTS)
    expect((await memory.readRun('r'))?.run.status).toBe('PENDING')
  })

  it('a run-and-stage write reuses the caller’s first read and reads again only after a lost race', async () => {
    const memory = new MemoryStore()
    await memory.insertRun(newRun('r', now))
    const first = await memory.readRunStage('r', 1)
    const stale = first && { ...first, version: first.version + 7 }
    const reads: number[] = []
    const stage = { stageNumber: 1, stageName: 'one', status: 'PROCESSING' as const, output: null, completedAt: null, createdAt: now, updatedAt: now }
    const attempt = await storeWrites(memory).onRunStage(
      'r',
      1,
      (read) => {
        reads.push(read.version)
        return { write: { run: { ...read.run, status: 'PROCESSING' }, stage }, result: read.version }
      },
      stale,
    )
    // The first read was stale (its version is not the stored one), so it lost and read again.
    expect(reads).toEqual([7, 0])
    expect(attempt).toEqual({ found: true, result: 0 })
    expect(await memory.getRun('r')).toMatchObject({ run: { status: 'PROCESSING' }, stages: [{ stageName: 'one' }], version: 1 })
  })
})

describe('RunLanes: one process’s writes to one run go one at a time', () => {
  it('runs the writes to one run in order, others alongside, and forgets a run once its writes end', async () => {
    const lanes = new RunLanes()
    const order: string[] = []
    let releaseFirst!: () => void
    const first = lanes.run('a', async () => {
      order.push('a1 start')
      await new Promise<void>((resolve) => (releaseFirst = resolve))
      order.push('a1 end')
      return 1
    })
    const second = lanes.run('a', async () => {
      order.push('a2')
      return 2
    })
    const other = lanes.run('b', async () => {
      order.push('b1')
      return 3
    })
    expect(await other).toBe(3)
    expect(order).toEqual(['a1 start', 'b1'])
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(lanes.size).toBe(1)
    releaseFirst()
    expect(await Promise.all([first, second])).toEqual([1, 2])
    expect(order).toEqual(['a1 start', 'b1', 'a1 end', 'a2'])
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(lanes.size).toBe(0)
  })

  it('a write that fails rejects its own caller only; the next write to the run still runs', async () => {
    const lanes = new RunLanes()
    const failing = lanes.run('a', async () => {
      throw new Error('database went away')
    })
    const next = lanes.run('a', async () => 'written')
    await expect(failing).rejects.toThrow('database went away')
    expect(await next).toBe('written')
  })

  it('concurrent stage writes to one run in one process never lose a race, so none goes under the lock', async () => {
    const memory = new MemoryStore()
    await memory.insertRun(newRun('r', now))
    const writes = storeWrites(memory)
    let reads = 0
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        writes.onRunStage('r', i + 1, ({ run, version }) => {
          reads++
          const stage = { stageNumber: i + 1, stageName: `Stage ${i + 1}`, status: 'PROCESSING' as const, output: null, createdAt: now, updatedAt: now }
          return { write: { run: { ...run, updatedAt: now }, stage: stage as never }, result: version }
        }),
      ),
    )
    // Each write read the version the one before it wrote: 0, 1, …, 19, and nothing was read twice.
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => ({ found: true, result: i })))
    expect(reads).toBe(20)
    expect(await memory.readRun('r')).toMatchObject({ version: 20 })
  })
})
