import { describe, expect, it } from 'vitest'
import { networkCause, networkCauseWithAddress } from './network-cause.js'

/** The shapes undici's fetch rejects with (a TypeError whose cause is the socket error), as measured on Node 24. */
const fetchFailed = (cause: unknown) => new TypeError('fetch failed', { cause })
const system = (message: string, fields: Record<string, unknown>) => Object.assign(new Error(message), fields)

describe('network causes', () => {
  it('names the code and the address a connection was refused at', () => {
    const error = fetchFailed(system('connect ECONNREFUSED 127.0.0.1:5199', { code: 'ECONNREFUSED', address: '127.0.0.1', port: 5199 }))
    expect(networkCause(error)).toBe('ECONNREFUSED')
    expect(networkCauseWithAddress(error)).toBe('ECONNREFUSED 127.0.0.1:5199')
  })

  it('names the host a lookup failed for', () => {
    const error = fetchFailed(system('getaddrinfo ENOTFOUND app.example.invalid', { code: 'ENOTFOUND', hostname: 'app.example.invalid' }))
    expect(networkCauseWithAddress(error)).toBe('ENOTFOUND app.example.invalid')
  })

  it('names every address tried when Node reports them together', () => {
    const each = [
      system('connect ECONNREFUSED ::1:5199', { code: 'ECONNREFUSED', address: '::1', port: 5199 }),
      system('connect ECONNREFUSED 127.0.0.1:5199', { code: 'ECONNREFUSED', address: '127.0.0.1', port: 5199 }),
    ]
    const error = fetchFailed(Object.assign(new AggregateError(each, ''), { code: 'ECONNREFUSED' }))
    expect(networkCauseWithAddress(error)).toBe('ECONNREFUSED ::1:5199, 127.0.0.1:5199')
  })

  it('is the code alone without an address, and nothing without a system error', () => {
    expect(networkCauseWithAddress(fetchFailed(system('read ECONNRESET', { code: 'ECONNRESET' })))).toBe('ECONNRESET')
    expect(networkCauseWithAddress(new TypeError('fetch failed'))).toBeUndefined()
    expect(networkCause(new TypeError('fetch failed'))).toBe('fetch failed')
  })
})
