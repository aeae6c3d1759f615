import { describe, expect, it } from 'vitest'
import { decideMetadataPatch, decideTags, mergePatch } from './run-labels.js'
import { newRun } from './state-machine.js'

const NOW = new Date('2026-12-06T10:00:00.000Z')

describe('mergePatch (RFC 7396)', () => {
  // The test cases of RFC 7396, Appendix A.
  it.each([
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ])('merges %j with %j into %j', (target, patch, result) => {
    expect(mergePatch(target, patch)).toEqual(result)
  })

  it('keeps a member named __proto__ a member, and changes neither argument', () => {
    const target = { a: { b: 1 } }
    const patch = JSON.parse('{"__proto__": {"polluted": true}, "a": {"c": 2}}') as Record<string, unknown>
    const merged = mergePatch(target, patch) as Record<string, unknown>
    expect(Object.hasOwn(merged, '__proto__')).toBe(true)
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
    expect(target).toEqual({ a: { b: 1 } })
    expect(merged['a']).toEqual({ b: 1, c: 2 })
  })
})

describe('decideTags and decideMetadataPatch', () => {
  it('removes first, then adds, keeps order, and calls a change that changes nothing a duplicate', () => {
    const run = { ...newRun('r', NOW), tags: ['a', 'b'] }
    const applied = decideTags(run, { add: ['b', 'c', 'c'], remove: ['b'] })
    expect(applied).toMatchObject({ outcome: 'applied', run: { tags: ['a', 'b', 'c'] } })
    expect(decideTags(run, { add: ['a'] })).toEqual({ outcome: 'duplicate', run })
    expect(decideTags(run, { add: Array.from({ length: 19 }, (_, i) => `t${i}`) })).toMatchObject({ outcome: 'invalid', field: 'tags' })
  })

  it('refuses metadata over 16 KiB after the merge, naming metadata', () => {
    const run = { ...newRun('r', NOW), metadata: { a: 'x'.repeat(10_000) } }
    expect(decideMetadataPatch(run, { b: 'y'.repeat(10_000) })).toMatchObject({ outcome: 'invalid', field: 'metadata' })
    expect(decideMetadataPatch(run, { a: null, b: 'y'.repeat(10_000) })).toMatchObject({ outcome: 'applied', run: { metadata: { b: 'y'.repeat(10_000) } } })
    expect(decideMetadataPatch(run, { gone: null })).toEqual({ outcome: 'duplicate', run })
  })
})
