import { describe, expect, it } from 'vitest'
import { isRunScope, scopeFilter } from './run-scope.js'

describe('scopeFilter', () => {
  const since = new Date('2026-01-01T00:00:00Z')

  it('no scope leaves the filter as it is', () => {
    const filter = { statuses: ['FAILED' as const], tags: ['a'], pipeline: 'report', createdAfter: since }
    expect(scopeFilter(filter, {})).toEqual(filter)
    expect(scopeFilter(filter, { tags: [] })).toEqual(filter)
  })

  it("tags are the union of the query's and the scope's: a run must carry all of them", () => {
    expect(scopeFilter({ tags: ['a', 'b'], createdAfter: since }, { tags: ['b', 'team:1'] })).toEqual({
      tags: ['a', 'b', 'team:1'],
      createdAfter: since,
    })
    expect(scopeFilter({}, { tags: ['team:1'] })).toEqual({ tags: ['team:1'] })
  })

  it("the scope's pipeline applies; a query naming another pipeline matches nothing", () => {
    expect(scopeFilter({}, { pipeline: 'report' })).toEqual({ pipeline: 'report' })
    expect(scopeFilter({ pipeline: 'report' }, { pipeline: 'report' })).toEqual({ pipeline: 'report' })
    expect(scopeFilter({ pipeline: 'ingest' }, { pipeline: 'report' })).toBe('empty')
    expect(scopeFilter({ pipeline: 'ingest', tags: ['x'] }, { pipeline: 'report', tags: ['x'] })).toBe('empty')
  })

  it('more than 20 distinct required tags match nothing (no run carries them)', () => {
    const query = Array.from({ length: 20 }, (_, index) => `q${index}`)
    expect(scopeFilter({ tags: query }, { tags: ['q0'] })).toEqual({ tags: query })
    expect(scopeFilter({ tags: query }, { tags: ['team:1'] })).toBe('empty')
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
