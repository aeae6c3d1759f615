import { describe, expect, it } from 'vitest'
import { suggestScheme } from './missing-scheme.js'

describe('suggestScheme', () => {
  it('says what a URL without its scheme meant: http for this machine, https for any other host', () => {
    expect(suggestScheme('localhost:5120')).toBe('http://localhost:5120')
    expect(suggestScheme(' 127.0.0.1:8080/api ')).toBe('http://127.0.0.1:8080/api')
    expect(suggestScheme('[::1]:3000')).toBe('http://[::1]:3000')
    expect(suggestScheme('app.example.com/tenant')).toBe('https://app.example.com/tenant')
    expect(suggestScheme('myhost:8080')).toBe('https://myhost:8080')
  })

  it('leaves URLs with a scheme and relative paths alone', () => {
    for (const url of ['http://localhost:5120', 'https://app.example.com', '/api/pipeline', 'api/pipeline', '', 'not a url']) {
      expect(suggestScheme(url)).toBeUndefined()
    }
  })
})
