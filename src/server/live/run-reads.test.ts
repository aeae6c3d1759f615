import { describe, expect, it } from 'vitest'
import { MemoryStore } from '../../core/memory-store.js'
import { newRun } from '../../core/state-machine.js'
import type { Store } from '../../core/store.js'
import { MAX_RUNS_PER_READ, RunReads } from './run-reads.js'

const now = new Date('2026-12-07T00:00:00Z')

/** A MemoryStore that counts its getRun and getRuns calls (and the ids each getRuns asked for). */
function counted(store: MemoryStore, failGetRuns = false) {
  const calls = { getRun: 0, getRuns: [] as string[][] }
  const view = {
    getRun: (id: string) => {
      calls.getRun++
      return store.getRun(id)
    },
    getRuns: (ids: readonly string[], options?: { streamedText?: boolean }) => {
      calls.getRuns.push([...ids])
      return failGetRuns ? Promise.reject(new Error('connection ended')) : store.getRuns(ids, options)
    },
  }
  return { store: view as unknown as Store<unknown>, calls }
}

describe('RunReads: the live streams read the runs of one turn in one call', () => {
  it('reads the runs asked for in one turn with one getRuns, a run asked twice once, unknown ones as null', async () => {
    const memory = new MemoryStore()
    for (const id of ['a', 'b', 'c']) await memory.insertRun(newRun(id, now))
    const { store, calls } = counted(memory)
    const reads = new RunReads(store)
    const results = await Promise.all([reads.read('a', true), reads.read('b', true), reads.read('a', true), reads.read('nope', true), reads.read('c', false)])
    expect(results.map((snapshot) => snapshot?.run.id ?? null)).toEqual(['a', 'b', 'a', null, 'c'])
    // One call with text, one without; none one by one.
    expect(calls.getRuns).toEqual([['a', 'b', 'nope'], ['c']])
    expect(calls.getRun).toBe(0)
    expect(results[4]?.streamedText).toBe(false)
    // The next turn is a new batch.
    expect((await reads.read('b', true))?.run.id).toBe('b')
    expect(calls.getRuns).toHaveLength(3)
  })

  it(`asks for at most ${MAX_RUNS_PER_READ} runs per call`, async () => {
    const memory = new MemoryStore()
    const ids = Array.from({ length: MAX_RUNS_PER_READ * 2 + 5 }, (_, i) => `r${i}`)
    for (const id of ids) await memory.insertRun(newRun(id, now))
    const { store, calls } = counted(memory)
    const reads = new RunReads(store)
    const results = await Promise.all(ids.map((id) => reads.read(id, true)))
    expect(results.every((snapshot, i) => snapshot?.run.id === ids[i])).toBe(true)
    expect(calls.getRuns.map((batch) => batch.length)).toEqual([MAX_RUNS_PER_READ, MAX_RUNS_PER_READ, 5])
  })

  it('a failed read rejects every caller of its runs with the store’s error', async () => {
    const memory = new MemoryStore()
    await memory.insertRun(newRun('a', now))
    const reads = new RunReads(counted(memory, true).store)
    const results = await Promise.allSettled([reads.read('a', true), reads.read('b', true)])
    expect(results.map((result) => (result.status === 'rejected' ? (result.reason as Error).message : 'ok'))).toEqual(['connection ended', 'connection ended'])
  })

  it('a store without getRuns is read one getRun per run', async () => {
    const memory = new MemoryStore()
    await memory.insertRun(newRun('a', now))
    const calls = { getRun: 0 }
    const store = { getRun: (id: string) => (calls.getRun++, memory.getRun(id)) } as unknown as Store<unknown>
    const reads = new RunReads(store)
    expect((await reads.read('a', true))?.run.id).toBe('a')
    expect(await reads.read('b', false)).toBeNull()
    expect(calls.getRun).toBe(2)
  })
})
