import { describe, expect, it } from 'vitest'
import { KnownVersions, presentedVersion } from './known-versions.js'

describe('KnownVersions', () => {
  it('keeps the newest version of each run: an older one never lowers it', () => {
    const known = new KnownVersions(10)
    known.note('a', 3)
    known.note('a', 2)
    expect(known.get('a')).toBe(3)
    known.note('a', 5)
    expect(known.get('a')).toBe(5)
    expect(known.get('b')).toBeUndefined()
  })

  it('is bounded: past the bound the run touched longest ago is forgotten', () => {
    const known = new KnownVersions(2)
    known.note('a', 1)
    known.note('b', 1)
    expect(known.get('a')).toBe(1) // a is now the most recently touched
    known.note('c', 1)
    expect(known.size).toBe(2)
    expect(known.get('b')).toBeUndefined()
    expect(known.get('a')).toBe(1)
    expect(known.get('c')).toBe(1)
  })

  it('ignores versions that are not whole numbers of 0 or more', () => {
    const known = new KnownVersions(2)
    known.note('a', -1)
    known.note('a', Number.NaN)
    known.note('a', 1.5)
    expect(known.size).toBe(0)
  })
})

describe('presentedVersion', () => {
  it('reads If-None-Match (quoted, weak, lists: the highest) and Last-Event-ID', () => {
    expect(presentedVersion('"7"')).toBe(7)
    expect(presentedVersion('W/"7"')).toBe(7)
    expect(presentedVersion('"3", W/"9", "x"')).toBe(9)
    expect(presentedVersion('12')).toBe(12)
  })

  it('is undefined for anything else', () => {
    expect(presentedVersion(null)).toBeUndefined()
    expect(presentedVersion('*')).toBeUndefined()
    expect(presentedVersion('"abc"')).toBeUndefined()
    expect(presentedVersion('-1')).toBeUndefined()
    expect(presentedVersion('"1e3"')).toBeUndefined()
    expect(presentedVersion('1234567890123456')).toBeUndefined()
  })
})
