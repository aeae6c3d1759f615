import { describe, expect, it } from 'vitest'
import { isJsonMediaType } from './media-type.js'

describe('isJsonMediaType', () => {
  it('accepts JSON and +json types with parameters in any case', () => {
    for (const type of ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', ' application/json ', 'application/problem+json']) {
      expect(isJsonMediaType(type), type).toBe(true)
    }
  })

  it('refuses everything else', () => {
    for (const type of [null, '', 'text/json', 'application/jsonx', 'application/+json', 'application', 'text/plain', 'multipart/form-data']) {
      expect(isJsonMediaType(type), String(type)).toBe(false)
    }
  })
})
