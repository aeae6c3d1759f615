/**
 * `utf8Length`: what a stream counts for text written before its body is attached (its first
 * snapshot), which the slow-reader bound allows on top of `maxBufferedBytes`; it must be the
 * size `TextEncoder` gives, surrogates included.
 */
import { describe, expect, it } from 'vitest'
import { utf8Length } from './event-sink.js'

const encoded = (text: string): number => new TextEncoder().encode(text).byteLength

describe('utf8Length', () => {
  it('counts 1, 2, 3 and 4-byte characters as TextEncoder encodes them', () => {
    expect(utf8Length('')).toBe(0)
    expect(utf8Length('event: snapshot\n')).toBe(16)
    expect(utf8Length('é')).toBe(2)
    expect(utf8Length('€')).toBe(3)
    expect(utf8Length('😀')).toBe(4)
    expect(utf8Length('a😀b日本')).toBe(12)
  })

  it('counts a lone surrogate as the 3-byte replacement character, as TextEncoder does', () => {
    for (const text of ['\ud800', '\udc00x', 'x\ud800', '\ud800\ud800\udc00', '\udbff']) expect(utf8Length(text)).toBe(encoded(text))
    expect(utf8Length('\ud800\ud800\udc00')).toBe(7)
  })

  it('agrees with TextEncoder on every UTF-16 code unit, alone and before a low surrogate', () => {
    let text = ''
    for (let code = 0; code < 0x10000; code += 1) text += String.fromCharCode(code, 0xdc00 + (code % 0x400))
    expect(utf8Length(text)).toBe(encoded(text))
  })
})
