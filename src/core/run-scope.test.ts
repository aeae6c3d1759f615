import { describe, expect, it } from 'vitest'
import { applyScope, MATCHES_NOTHING } from './run-list.js'
import { isRunScope } from './run-scope.js'

describe('applyScope', () => {
  const since = new Date('2026-01-01T00:00:00Z')

  it('no scope leaves the filter as it is', () => {
    const filter = { statuses: ['FAILED' as const], tags: ['a'], pipeline: 'report', createdAfter: since }
    expect(applyScope(filter, {})).toEqual(filter)
    expect(applyScope(filter, { tags: [] })).toEqual(filter)
  })

  it("tags are the union of the query's and the scope's: a run must carry all of them", () => {
    expect(applyScope({ tags: ['a', 'b'], createdAfter: since }, { tags: ['b', 'team:1'] })).toEqual({
      tags: ['a', 'b', 'team:1'],
      createdAfter: since,
    })
    expect(applyScope({}, { tags: ['team:1'] })).toEqual({ tags: ['team:1'] })
  })

  it("the scope's pipeline applies; a query naming another pipeline matches nothing", () => {
    expect(applyScope({}, { pipeline: 'report' })).toEqual({ pipeline: 'report' })
    expect(applyScope({ pipeline: 'report' }, { pipeline: 'report' })).toEqual({ pipeline: 'report' })
    expect(applyScope({ pipeline: 'ingest' }, { pipeline: 'report' })).toEqual(MATCHES_NOTHING)
    expect(applyScope({ pipeline: 'ingest', tags: ['x'] }, { pipeline: 'report', tags: ['x'] })).toEqual(MATCHES_NOTHING)
  })

})

describe('isRunScope', () => {
  it('takes objects with string tags and a string pipeline, nothing else', () => {
    expect(isRunScope({})).toBe(true)
    expect(isRunScope({ tags: ['a'], pipeline: 'report' })).toBe(true)
    expect(isRunScope({ tags: 'a' })).toBe(false)
    expect(isRunScope({ tags: [1] })).toBe(false)
    expect(isRunScope({ pipeline: 7 })).toBe(false)
    expect(isRunScope([])).toBe(false)
    expect(isRunScope(null)).toBe(false)
    expect(isRunScope('team:1')).toBe(false)
  })
})
