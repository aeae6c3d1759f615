import { describe, expect, it } from 'vitest'
import { errorMessage } from './error-message.js'

describe('errorMessage', () => {
  it("gives an error's message, and a thrown string as itself", () => {
    expect(errorMessage(new Error('connect ECONNREFUSED 127.0.0.1:5432'))).toBe('connect ECONNREFUSED 127.0.0.1:5432')
    expect(errorMessage(new TypeError(''))).toBe('')
    expect(errorMessage('the probe timed out')).toBe('the probe timed out')
  })

  it('reads the message of an object that is not an Error (another realm, a driver), and shows the rest as strings', () => {
    expect(errorMessage({ message: 'terminating connection', code: '57P01' })).toBe('terminating connection')
    expect(errorMessage({ message: 42 })).toBe('42')
    expect(errorMessage({ code: '57P01' })).toBe('[object Object]')
    expect(errorMessage(undefined)).toBe('undefined')
    expect(errorMessage(null)).toBe('null')
    expect(errorMessage(7)).toBe('7')
  })
})
