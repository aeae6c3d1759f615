/**
 * The grant `read` hands a run's status read or stream when the app's `authorize` allowed it: no
 * expiry for `true`, the hook's `expiresAt` for `{ allow: true, expiresAt }` (which the run's
 * stream ends at, `CredentialExpiry`), also under the dashboard's `listScope`.
 */
import { describe, expect, it } from 'vitest'
import { MemoryStore } from '../../core/memory-store.js'
import type { AuthorizeResult, PipelineStatusHandlersOptions } from '../handler-options.js'
import { createPlumbing } from '../http/exchange.js'
import { resolveSettings } from '../settings.js'
import { createRequestAuth, type RunReadAccess } from './authenticate.js'

const NOW = Date.parse('2026-12-08T10:00:00.000Z')

/** The access `read` grants a request with `headers`, or the problem it is refused with. */
function setup(answer: AuthorizeResult, options: Partial<PipelineStatusHandlersOptions<unknown>> = {}) {
  const settings = resolveSettings({
    store: new MemoryStore(),
    secret: 'webhook-secret-for-authenticate-tests',
    logger: { warn: () => {}, error: () => {} },
    clock: () => new Date(NOW),
    authorize: () => answer,
    ...options,
  } as PipelineStatusHandlersOptions<unknown>)
  const plumbing = createPlumbing(settings)
  const auth = createRequestAuth(settings)
  return async (headers: Record<string, string> = {}): Promise<RunReadAccess | Response> => {
    let access: RunReadAccess | undefined
    const response = await plumbing.respond(new Request('https://app.example/api/pipeline/run_1/events', { headers }), undefined, async (exchange) => {
      access = await auth.read(exchange, 'events', 'run_1', 'stream')
      return new Response(null, { status: 204 })
    })
    return access ?? response
  }
}

describe("read: authorize's grant", () => {
  it('true grants without an expiry; { allow: true, expiresAt } until it (a Date or ms since the epoch)', async () => {
    expect(await setup(true)()).not.toHaveProperty('expiresAt')
    expect(await setup({ allow: true })()).not.toHaveProperty('expiresAt')
    expect(await setup({ allow: true, expiresAt: new Date(NOW + 60_000) })()).toMatchObject({ expiresAt: NOW + 60_000 })
    expect(await setup({ allow: true, expiresAt: NOW + 1 })()).toMatchObject({ expiresAt: NOW + 1 })
  })

  it('an expiresAt already past is 401 authentication_required; { allow: false } is 403', async () => {
    const past = (await setup({ allow: true, expiresAt: NOW })()) as Response
    expect(past.status).toBe(401)
    expect(await past.json()).toMatchObject({ code: 'authentication_required' })
    expect(((await setup({ allow: false, expiresAt: NOW + 60_000 })()) as Response).status).toBe(403)
  })

  it('an expiresAt no Date can hold (NaN, Infinity, a string, past ±8.64e15 ms) is a 500 naming the rule, in either direction', async () => {
    for (const expiresAt of [Number.NaN, Number.POSITIVE_INFINITY, '2026-12-08' as never, new Date(Number.NaN), -1e300, 1e300, -8_640_000_000_000_001, 8_640_000_000_000_001]) {
      const refused = (await setup({ allow: true, expiresAt })()) as Response
      expect(refused.status, String(expiresAt)).toBe(500)
    }
    // The edge of the Date range is an instant: past (401) and far future (a grant).
    expect(((await setup({ allow: true, expiresAt: -8_640_000_000_000_000 })()) as Response).status).toBe(401)
    expect(await setup({ allow: true, expiresAt: 8_640_000_000_000_000 })()).toMatchObject({ expiresAt: 8_640_000_000_000_000 })
  })

  it("the dashboard's read under listScope keeps the scope's rule and takes the expiry", async () => {
    const read = setup({ allow: true, expiresAt: NOW + 60_000 }, { dashboard: true, listScope: () => ({ tags: ['team:a'] }) })
    const access = (await read({ 'X-Pipeline-Status-Dashboard': '1' })) as RunReadAccess
    expect(access.expiresAt).toBe(NOW + 60_000)
    expect(await access.load(async () => null)).toBeNull()
  })
})
