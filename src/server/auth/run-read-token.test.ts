import { describe, expect, it } from 'vitest'
import { MemoryStore } from '../../core/memory-store.js'
import { ServerConfigurationError } from '../configuration-error.js'
import { createPipelineStatusHandlers } from '../handlers.js'
import { createRunReadToken, verifyRunReadToken } from './run-read-token.js'

const SECRET = 'read-token-secret-for-unit-tests-0001'
const NOW = new Date('2026-01-01T00:00:00Z')

describe('run read tokens', () => {
  it('is valid for its run until it expires, then says expired', async () => {
    const token = await createRunReadToken({ runId: 'run_1', secret: SECRET, expiresInSeconds: 60, now: NOW })
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

  it('has one canonical form: an expiry with a leading zero or a signature with stray bits is malformed', async () => {
    const token = await createRunReadToken({ runId: 'run_1', secret: SECRET, expiresInSeconds: 60, now: NOW })
    const [prefix, expires, signature] = token.split('.') as [string, string, string]
    // The same expiry and the same signature, spelled differently.
    for (const variant of [`${prefix}.0${expires}.${signature}`, `${prefix}.00${expires}.${signature}`, `${prefix}.+${expires}.${signature}`]) {
      expect(await verifyRunReadToken(variant, { runId: 'run_1', secret: SECRET, now: NOW })).toEqual({ valid: false, reason: 'malformed' })
    }
    // base64url of 32 bytes: the last character's two low bits are padding and must be zero.
    const last = signature.at(-1) as string
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const strayBits = alphabet[alphabet.indexOf(last) + 1] as string
    const stray = `${prefix}.${expires}.${signature.slice(0, -1)}${strayBits}`
    expect(await verifyRunReadToken(stray, { runId: 'run_1', secret: SECRET, now: NOW })).toEqual({ valid: false, reason: 'malformed' })
    expect(await verifyRunReadToken(token, { runId: 'run_1', secret: SECRET, now: NOW })).toMatchObject({ valid: true })

    // Through the handlers: 401 invalid_read_token saying malformed, not a read.
    const handlers = createPipelineStatusHandlers({
      store: new MemoryStore(),
      secret: 'webhook-secret-long-enough-0123456789',
      readTokens: { secret: SECRET },
      logger: { warn: () => undefined, error: () => undefined },
    })
    await handlers.fetch(
      new Request('https://app.example/api/pipeline/runs', {
        method: 'POST',
        headers: { 'X-Webhook-Secret': 'webhook-secret-long-enough-0123456789', 'Content-Type': 'application/json' },
        body: JSON.stringify({ id: 'run_1' }),
      }),
    )
    const fresh = await createRunReadToken({ runId: 'run_1', secret: SECRET, expiresInSeconds: 600 })
    const [, freshExpires, freshSignature] = fresh.split('.') as [string, string, string]
    const read = (credential: string) =>
      handlers.fetch(new Request('https://app.example/api/pipeline/run_1/status', { headers: { Authorization: `Bearer ${credential}` } }))
    expect((await read(fresh)).status).toBe(200)
    const refused = await read(`psrt1.0${freshExpires}.${freshSignature}`)
    expect(refused.status).toBe(401)
    expect(await refused.json()).toMatchObject({ code: 'invalid_read_token', detail: 'The read token is malformed' })
  })

  it('defaults to one hour and refuses bad options', async () => {
    const token = await createRunReadToken({ runId: 'r', secret: SECRET, now: NOW })
    expect(token.split('.')[1]).toBe(String(NOW.getTime() / 1000 + 3600))
    await expect(createRunReadToken({ runId: 'r', secret: 'short' })).rejects.toThrow('at least 32 characters')
    await expect(createRunReadToken({ runId: 'r', secret: SECRET, expiresInSeconds: 0 })).rejects.toThrow('expiresInSeconds must be a positive')
    await expect(createRunReadToken({ runId: '', secret: SECRET })).rejects.toThrow('runId must not be empty')
  })

  it('handlers refuse a read-token secret that is short or equal to a write secret', () => {
    const base = { store: new MemoryStore(), secret: 'webhook-secret-long-enough-0123456789' }
    expect(() => createPipelineStatusHandlers({ ...base, readTokens: { secret: 'short' } })).toThrow(ServerConfigurationError)
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

  it('a tag token: one canonical form, the tag readable, valid only where the run carries the tag', async () => {
    const token = await createRunReadToken({ tag: 'équipe:42', secret: SECRET, expiresInSeconds: 60, now: NOW })
    const [prefix, kind, encodedTag, expires] = token.split('.')
    expect([prefix, kind, expires]).toEqual(['psrt1', 'tag', '1767225660'])
    expect(new TextDecoder().decode(Uint8Array.from(atob((encodedTag as string).replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)))).toBe('équipe:42')
    const options = { runId: 'run_1', secret: SECRET, now: NOW }
    expect(await verifyRunReadToken(token, { ...options, tags: ['x', 'équipe:42'] })).toEqual({
      valid: true,
      expiresAt: new Date('2026-01-01T00:01:00Z'),
      tag: 'équipe:42',
    })
    // Without the run's tags, or with tags that lack it, a tag token admits nothing.
    expect(await verifyRunReadToken(token, options)).toEqual({ valid: false, reason: 'invalid' })
    expect(await verifyRunReadToken(token, { ...options, tags: ['équipe:43'] })).toEqual({ valid: false, reason: 'invalid' })
    expect(await verifyRunReadToken(token, { ...options, tags: ['équipe:42'], now: new Date('2026-01-01T00:01:00Z') })).toMatchObject({
      valid: false,
      reason: 'expired',
    })
  })

  it('a token is for a run or a tag, never both, never neither; the tag follows the tag rule of POST /runs', async () => {
    await expect(createRunReadToken({ runId: 'r', tag: 't', secret: SECRET })).rejects.toThrow(
      new TypeError('A read token is for one run (runId) or one tag (tag), never both; create two tokens'),
    )
    await expect(createRunReadToken({ secret: SECRET })).rejects.toThrow(new TypeError('A read token needs runId (one run) or tag (the runs carrying it)'))
    await expect(createRunReadToken({ tag: '', secret: SECRET })).rejects.toThrow(new TypeError('tag must be 1 to 128 characters (UTF-16 code units), got 0'))
    await expect(createRunReadToken({ tag: 'x'.repeat(129), secret: SECRET })).rejects.toThrow(
      new TypeError('tag must be 1 to 128 characters (UTF-16 code units), got 129'),
    )
    // The rule of POST /runs: UTF-16 code units, so 64 emoji (128 units) are a tag and 65 are not.
    const emoji = await createRunReadToken({ tag: '😀'.repeat(64), secret: SECRET, now: NOW })
    expect(await verifyRunReadToken(emoji, { runId: 'r', tags: ['😀'.repeat(64)], secret: SECRET, now: NOW })).toMatchObject({ valid: true })
    await expect(createRunReadToken({ tag: '😀'.repeat(65), secret: SECRET })).rejects.toThrow(
      new TypeError('tag must be 1 to 128 characters (UTF-16 code units), got 130'),
    )
    await expect(createRunReadToken({ tag: 'a\u0000b', secret: SECRET })).rejects.toThrow(new TypeError('tag must not contain NUL or a lone surrogate'))
    const longest = await createRunReadToken({ tag: '字'.repeat(128), secret: SECRET, now: NOW })
    expect(await verifyRunReadToken(longest, { runId: 'r', tags: ['字'.repeat(128)], secret: SECRET, now: NOW })).toMatchObject({ valid: true })
  })
})
