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
  it('reads the runs asked for in one turn with one getRuns without their text, a run asked twice once, unknown ones as null', async () => {
    const memory = new MemoryStore()
    for (const id of ['a', 'b', 'c']) await memory.insertRun(newRun(id, now))
    const { store, calls } = counted(memory)
    const reads = new RunReads(store)
    const results = await Promise.all([reads.read('a'), reads.read('b'), reads.read('a'), reads.read('nope'), reads.read('c')])
    expect(results.map((snapshot) => snapshot?.run.id ?? null)).toEqual(['a', 'b', 'a', null, 'c'])
    // One call, none one by one; the live streams take the streamed text as chunks.
    expect(calls.getRuns).toEqual([['a', 'b', 'nope', 'c']])
    expect(calls.getRun).toBe(0)
    expect(results.filter(Boolean).map((snapshot) => snapshot?.streamedText)).toEqual([false, false, false, false])
    // The next turn is a new batch.
    expect((await reads.read('b'))?.run.id).toBe('b')
    expect(calls.getRuns).toHaveLength(2)
  })

  it(`asks for at most ${MAX_RUNS_PER_READ} runs per call`, async () => {
    const memory = new MemoryStore()
    const ids = Array.from({ length: MAX_RUNS_PER_READ * 2 + 5 }, (_, i) => `r${i}`)
    for (const id of ids) await memory.insertRun(newRun(id, now))
    const { store, calls } = counted(memory)
    const reads = new RunReads(store)
    const results = await Promise.all(ids.map((id) => reads.read(id)))
    expect(results.every((snapshot, i) => snapshot?.run.id === ids[i])).toBe(true)
    expect(calls.getRuns.map((batch) => batch.length)).toEqual([MAX_RUNS_PER_READ, MAX_RUNS_PER_READ, 5])
  })

  it('a failed read rejects every caller of its runs with the store’s error', async () => {
    const memory = new MemoryStore()
    await memory.insertRun(newRun('a', now))
    const reads = new RunReads(counted(memory, true).store)
    const results = await Promise.allSettled([reads.read('a'), reads.read('b')])
    expect(results.map((result) => (result.status === 'rejected' ? (result.reason as Error).message : 'ok'))).toEqual(['connection ended', 'connection ended'])
  })

  it('a store without getRuns is read one getRun per run', async () => {
    const memory = new MemoryStore()
    await memory.insertRun(newRun('a', now))
    const calls = { getRun: 0 }
    const store = { getRun: (id: string) => (calls.getRun++, memory.getRun(id)) } as unknown as Store<unknown>
    const reads = new RunReads(store)
    expect((await reads.read('a'))?.run.id).toBe('a')
    expect(await reads.read('b')).toBeNull()
    expect(calls.getRun).toBe(2)
  })
})
