import { describe, expect, it } from 'vitest'
import { DEFAULT_STAGES } from '../contract/index.js'
import { MemoryStore } from './memory-store.js'
import { applyStageUpdate, completeRun, createRun, getRunSnapshot } from './operations.js'

const now = new Date('2026-01-01T00:00:00.000Z')
const options = { stages: DEFAULT_STAGES, now }
const update = (stageNumber: number, status: 'PROCESSING' | 'COMPLETED' | 'FAILED', output?: string) => ({
  stageNumber,
  stageName: `Stage ${stageNumber}`,
  status,
  ...(output === undefined ? {} : { output }),
})

describe('MemoryStore through the shared operations', () => {
  it('creates runs idempotently', async () => {
    const store = new MemoryStore()
    const first = await createRun(store, { id: 'r1', now })
    const again = await createRun(store, { id: 'r1', now: new Date() })
    expect(first.created).toBe(true)
    expect(again).toEqual({ created: false, run: first.run })
    const generated = await createRun(store, { now })
    expect(generated.run.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(store.runIds()).toEqual(['r1', generated.run.id])
  })

  it('answers not_found for an unknown run', async () => {
    const store = new MemoryStore()
    expect(await applyStageUpdate(store, 'nope', update(1, 'PROCESSING'), options)).toEqual({ outcome: 'not_found' })
    expect(await completeRun(store, 'nope', { status: 'COMPLETED' }, { now })).toEqual({ outcome: 'not_found' })
    expect(await getRunSnapshot(store, 'nope')).toBeNull()
  })

  it('runs a five-stage pipeline to COMPLETED and keeps stages in order', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'r', now })
    for (const n of [5, 3, 1, 2, 4]) {
      await applyStageUpdate(store, 'r', update(n, 'PROCESSING'), options)
    }
    for (const n of [1, 2, 3, 4, 5]) {
      await applyStageUpdate(store, 'r', update(n, 'COMPLETED', `out ${n}`), options)
    }
    const snapshot = await getRunSnapshot(store, 'r')
    expect(snapshot?.run.status).toBe('COMPLETED')
    expect(snapshot?.stages.map((s) => [s.stageNumber, s.status, s.output])).toEqual(
      [1, 2, 3, 4, 5].map((n) => [n, 'COMPLETED', `out ${n}`]),
    )
  })

  it('rolls back every write of a transaction that throws, including a throwing hook', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'r', now })
    await expect(
      completeRun(store, 'r', { status: 'COMPLETED' }, {
        now,
        onRunCompleted: () => {
          throw new Error('results table is down')
        },
      }),
    ).rejects.toThrow('results table is down')
    expect((await getRunSnapshot(store, 'r'))?.run.status).toBe('PENDING')

    const calls: string[] = []
    const retried = await completeRun(store, 'r', { status: 'COMPLETED' }, {
      now,
      onRunCompleted: (tx, run) => {
        expect(tx).toBe(store)
        calls.push(run.status)
      },
    })
    expect(retried.outcome).toBe('applied')
    expect(calls).toEqual(['COMPLETED'])
  })

  it('serialises concurrent transactions so a hook runs once per run', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'r', now })
    let hooks = 0
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        i % 2 === 0
          ? completeRun(store, 'r', { status: 'COMPLETED' }, { now, onRunCompleted: () => void hooks++ })
          : applyStageUpdate(store, 'r', update(5, 'COMPLETED'), options),
      ),
    )
    expect(hooks).toBe(1)
    expect(results.filter((r) => r.outcome === 'applied')).toHaveLength(2)
  })

  it('reset removes everything', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'r', now })
    store.reset()
    expect(store.runIds()).toEqual([])
  })
})
