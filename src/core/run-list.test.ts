import { describe, expect, it } from 'vitest'
import { decodeRunListCursor, encodeRunListCursor } from '../contract/run-list-query.js'
import { MemoryStore } from './memory-store.js'
import { applyScope, compareRunsForList, summarizeRun, toRunListItem } from './run-list.js'
import type { RunState, StageState } from './state.js'

const at = new Date('2026-12-01T00:00:00.000Z')
const run = (id: string, fields: Partial<RunState> = {}): RunState => ({
  id, status: 'PROCESSING', error: null, completedAt: null, completionReceivedAt: null, createdAt: at, updatedAt: at, ...fields,
})
const stage = (stageNumber: number, status: StageState['status']): StageState => ({
  stageNumber, stageName: `S${stageNumber}`, status, output: 'x', completedAt: null, createdAt: at, updatedAt: at,
})

describe('applyScope', () => {
  it('ANDs the scope in: tags joined, the pipeline taken, another pipeline matches nothing', () => {
    expect(applyScope({ tags: ['a'] }, {})).toEqual({ tags: ['a'] })
    expect(applyScope({ tags: ['a'] }, { tags: ['team', 'a'] })).toEqual({ tags: ['a', 'team'] })
    expect(applyScope({ statuses: ['FAILED'] }, { pipeline: 'report' })).toEqual({ statuses: ['FAILED'], pipeline: 'report' })
    expect(applyScope({ pipeline: 'report' }, { pipeline: 'report' })).toEqual({ pipeline: 'report' })
    expect(applyScope({ pipeline: 'ingest' }, { pipeline: 'report' })).toEqual({ statuses: [] })
  })

  it('leaves a scoped MemoryStore list and count empty when the query names another pipeline', async () => {
    const store = new MemoryStore()
    await store.insertRun(run('r1', { pipeline: 'ingest' }))
    const filter = applyScope({ pipeline: 'ingest' }, { pipeline: 'report' })
    expect(await store.listRuns({ filter, limit: 10 })).toEqual([])
    expect(await store.countRuns({ filter, groupBy: 'status' })).toEqual({})
  })
})

describe('the list order', () => {
  it('is createdAt desc, then id desc in code-unit order', () => {
    const ids = ['b', 'B', '_', 'a', '~', '0'].map((id) => run(id))
    expect(ids.sort(compareRunsForList).map((r) => r.id)).toEqual(['~', 'b', 'a', '_', 'B', '0'])
    expect([run('old', { createdAt: new Date(0) }), run('new')].sort(compareRunsForList).map((r) => r.id)).toEqual(['new', 'old'])
  })
})

describe('summarizeRun', () => {
  it('takes the highest-numbered PROCESSING stage and counts PENDING from the catalogue length', () => {
    const item = toRunListItem(run('r'), 4, [stage(1, 'COMPLETED'), stage(3, 'PROCESSING'), stage(2, 'PROCESSING')])
    expect(summarizeRun(item, 7)).toMatchObject({
      currentStage: 3,
      version: 4,
      stageCounts: { PENDING: 4, PROCESSING: 2, COMPLETED: 1, FAILED: 0, CANCELLED: 0 },
    })
    expect(summarizeRun(item, 2).stageCounts.PENDING).toBe(0)
  })
})

describe('the cursor', () => {
  it('is bound to the filters and the scope, in any order of their values', () => {
    const cursor = encodeRunListCursor({ createdAt: at, id: 'r:1' }, { tags: ['a', 'b'] }, { tags: ['t'] })
    expect(decodeRunListCursor(cursor, { tags: ['b', 'a'] }, { tags: ['t'] })).toEqual({ ok: true, value: { createdAt: at, id: 'r:1' } })
    expect(decodeRunListCursor(cursor, { tags: ['a', 'b'] }, {})).toMatchObject({ ok: false, code: 'invalid_cursor', parameter: 'cursor' })
    expect(decodeRunListCursor(cursor, { tags: ['a'] }, { tags: ['t'] })).toMatchObject({ ok: false, code: 'invalid_cursor' })
  })
})
