import { describe, expect, it } from 'vitest'
import { MemoryStore } from '../core/memory-store.js'
import { HandlerConfigurationError } from './configuration-error.js'
import { createPipelineStatusHandlers } from './handlers.js'
import { createRunReadToken, verifyRunReadToken } from './run-read-token.js'

const SECRET = 'read-token-secret-for-unit-tests-0001'
const NOW = new Date('2026-01-01T00:00:00Z')

describe('run read tokens', () => {
  it('is valid for its run until it expires, then says expired', async () => {
    const token = await createRunReadToken({ runId: 'run_1', secret: SECRET, expiresIn: 60, now: NOW })
    expect(token).toMatch(/^psrt1\.1767225660\.[A-Za-z0-9_-]{43}$/)
    expect(await verifyRunReadToken(token, { runId: 'run_1', secret: SECRET, now: NOW })).toEqual({
      valid: true,
      expiresAt: new Date('2026-01-01T00:01:00Z'),
    })
    const later = new Date('2026-01-01T00:01:00Z')
    expect(await verifyRunReadToken(token, { runId: 'run_1', secret: SECRET, now: later })).toEqual({
      valid: false,
      reason: 'expired',
      expiresAt: later,
    })
    expect(await verifyRunReadToken(token, { runId: 'run_2', secret: SECRET, now: NOW })).toEqual({ valid: false, reason: 'invalid' })
    expect(await verifyRunReadToken(token, { runId: 'run_1', secret: `${SECRET}x`, now: NOW })).toEqual({ valid: false, reason: 'invalid' })
    expect(await verifyRunReadToken(`${token}x`, { runId: 'run_1', secret: SECRET, now: NOW })).toEqual({ valid: false, reason: 'malformed' })
  })

  it('defaults to one hour and refuses bad options', async () => {
    const token = await createRunReadToken({ runId: 'r', secret: SECRET, now: NOW })
    expect(token.split('.')[1]).toBe(String(NOW.getTime() / 1000 + 3600))
    await expect(createRunReadToken({ runId: 'r', secret: 'short' })).rejects.toThrow('at least 32 characters')
    await expect(createRunReadToken({ runId: 'r', secret: SECRET, expiresIn: 0 })).rejects.toThrow('expiresIn must be a positive')
    await expect(createRunReadToken({ runId: '', secret: SECRET })).rejects.toThrow('runId must not be empty')
  })

  it('handlers refuse a read-token secret that is short or equal to a write secret', () => {
    const base = { store: new MemoryStore(), secret: 'webhook-secret-long-enough-0123456789' }
    expect(() => createPipelineStatusHandlers({ ...base, readTokens: { secret: 'short' } })).toThrow(HandlerConfigurationError)
    expect(() => createPipelineStatusHandlers({ ...base, readTokens: { secret: base.secret } })).toThrow(
      'readTokens.secret must differ from the webhook and signing secrets',
    )
    const signing = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    expect(() => createPipelineStatusHandlers({ ...base, signing: { secret: signing }, readTokens: { secret: signing } })).toThrow(
      'must differ',
    )
    expect(() => createPipelineStatusHandlers({ ...base, readTokens: { secret: [] } })).toThrow('readTokens.secret is empty')
    expect(() => createPipelineStatusHandlers({ ...base, readTokens: { secret: SECRET } })).not.toThrow()
  })
})
