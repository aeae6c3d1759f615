import { describe, expect, it, vi } from 'vitest'
import { MemoryStore } from '../../core/memory-store.js'
import type { PipelineStatusHandlersOptions } from '../handler-options.js'
import { createPlumbing } from '../http/exchange.js'
import { HttpProblemError } from '../http/problem-response.js'
import { resolveSettings } from '../settings.js'
import { authorizeRunSet } from './list-access.js'
import { createRunReadToken } from './run-read-token.js'
import { createWebhookSignatureHeaders, webhookMessageId } from '../../signing/webhook-signature.js'

const SECRET = 'webhook-secret-for-list-access-tests-1'
const READ_SECRET = 'read-token-secret-for-list-access-0001'
const URL_RUNS = 'https://app.example/api/pipeline/runs'

/**
 * `authorizeRunSet` answered the way the list routes use it: inside the plumbing's `respond`,
 * so a refusal is the Response it returns and an unexpected throw is the plumbing's 500.
 */
function setup(options: Partial<PipelineStatusHandlersOptions<unknown>> = {}) {
  const logger = { warn: vi.fn(), error: vi.fn() }
  const settings = resolveSettings({ store: new MemoryStore(), secret: SECRET, readTokens: { secret: READ_SECRET }, logger, ...options } as PipelineStatusHandlersOptions<unknown>)
  const plumbing = createPlumbing(settings)
  const ask = (headers: Record<string, string> = {}, native?: unknown) =>
    plumbing.respond(new Request(URL_RUNS, { headers }), native, async (exchange) => {
      const access = await authorizeRunSet(exchange, settings)
      return access instanceof Response ? access : Response.json(access)
    })
  return { ask, logger }
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` })

describe('authorizeRunSet: who sees what of the collection, in order', () => {
  it('the webhook secret sees every run without asking authorize or listScope', async () => {
    const authorize = vi.fn(() => false)
    const listScope = vi.fn(() => ({ tags: ['team:a'] }))
    const { ask } = setup({ authorize, listScope })
    const answer = await ask({ 'X-Webhook-Secret': SECRET })
    expect(await answer.json()).toEqual({ scope: {} })
    expect(authorize).not.toHaveBeenCalled()
    expect(listScope).not.toHaveBeenCalled()
  })

  it('a valid signature sees every run too; one bound to another route is refused', async () => {
    const signing = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    const listScope = vi.fn(() => ({ tags: ['team:a'] }))
    const { ask } = setup({ signing: { secret: signing }, authorize: () => true, listScope })
    const signed = (route: string) =>
      createWebhookSignatureHeaders({ secret: signing, body: '', id: webhookMessageId({ method: 'GET', route, unique: crypto.randomUUID() }) })
    expect(await (await ask({ ...(await signed('runs')) })).json()).toEqual({ scope: {} })
    expect(listScope).not.toHaveBeenCalled()
    const elsewhere = await ask({ ...(await signed('run_1/status')) })
    expect(elsewhere.status).toBe(401)
    expect(await elsewhere.json()).toMatchObject({ code: 'invalid_signature' })
  })

  it("a tag read token sees its tag's runs, whatever authorize and listScope would say", async () => {
    const authorize = vi.fn(() => false)
    const listScope = vi.fn(() => ({ tags: ['team:b'] }))
    const { ask } = setup({ authorize, listScope })
    const now = new Date()
    const token = await createRunReadToken({ tag: 'team:a', secret: READ_SECRET, expiresInSeconds: 600, now })
    // With the token's expiry: a set stream opened with it ends then.
    const expiresAt = (Math.floor(now.getTime() / 1000) + 600) * 1000
    expect(await (await ask({ ...bearer(token), Cookie: 'session=bob' })).json()).toEqual({ scope: { tags: ['team:a'] }, expiresAt })
    expect(authorize).not.toHaveBeenCalled()
    expect(listScope).not.toHaveBeenCalled()
  })

  it('a run read token lists nothing; expired and forged tag tokens are refused saying why', async () => {
    const { ask, logger } = setup({ authorize: () => true })
    const runToken = await createRunReadToken({ runId: 'run_1', secret: READ_SECRET, expiresInSeconds: 600 })
    const refused = await ask(bearer(runToken))
    expect(refused.status).toBe(401)
    expect(await refused.json()).toMatchObject({
      code: 'invalid_read_token',
      detail: 'A run read token reads its one run only; lists and counts take a tag read token, the webhook secret or the app session',
    })
    const expired = await createRunReadToken({ tag: 'team:a', secret: READ_SECRET, expiresInSeconds: 60, now: new Date(Date.now() - 3_600_000) })
    expect(await (await ask(bearer(expired))).json()).toMatchObject({ code: 'invalid_read_token', detail: expect.stringMatching(/^The read token expired on /) })
    const foreign = await createRunReadToken({ tag: 'team:a', secret: 'another-apps-read-token-secret-00000', expiresInSeconds: 600 })
    expect(await (await ask(bearer(foreign))).json()).toMatchObject({ code: 'invalid_read_token', detail: 'The read token is not valid for lists' })
    expect(await (await ask(bearer('psrt1.garbage'))).json()).toMatchObject({ code: 'invalid_read_token', detail: 'The read token is malformed' })
    // Refusals are logged like every other refused request, never with the token.
    expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('refused GET /api/pipeline/runs: 401 invalid_read_token'), expect.anything())
    expect(JSON.stringify(logger.warn.mock.calls)).not.toContain(foreign)
  })

  it("otherwise authorize is asked with action 'list' and no run, then listScope gives the scope", async () => {
    const authorize = vi.fn((_input: unknown) => true)
    const listScope = vi.fn((_input: unknown) => ({ tags: ['team:a'], pipeline: 'report' }))
    const { ask } = setup({ authorize, listScope })
    const native = { user: 'alice' }
    expect(await (await ask({ Cookie: 'session=alice' }, native)).json()).toEqual({ scope: { tags: ['team:a'], pipeline: 'report' } })
    expect(authorize).toHaveBeenCalledWith({ request: expect.any(Request), runId: undefined, action: 'list', native })
    expect(listScope).toHaveBeenCalledWith({ request: expect.any(Request), native })
  })

  it('listScope undefined (or none) means no restriction', async () => {
    expect(await (await setup({ authorize: () => true, listScope: () => undefined }).ask()).json()).toEqual({ scope: {} })
    expect(await (await setup({ authorize: () => true }).ask()).json()).toEqual({ scope: {} })
  })

  it('authorize refusing is 403, its unauthorized 401 authentication_required; without authorize, 401', async () => {
    const listScope = vi.fn(() => undefined)
    const refused = await setup({ authorize: () => false, listScope }).ask()
    expect(refused.status).toBe(403)
    expect(await refused.json()).toMatchObject({ code: 'forbidden', title: 'Not allowed to list runs' })
    expect(listScope).not.toHaveBeenCalled()
    const signIn = await setup({
      authorize: () => {
        throw new HttpProblemError('unauthorized', { detail: 'Sign in first' })
      },
    }).ask()
    expect(signIn.status).toBe(401)
    expect(await signIn.json()).toMatchObject({ code: 'authentication_required', detail: 'Sign in first' })
    const none = await setup().ask()
    expect(none.status).toBe(401)
    expect(await none.json()).toMatchObject({ code: 'unauthorized', detail: 'X-Webhook-Secret is missing' })
  })

  it("authorize's { allow: true, expiresAt } (a Date or ms since the epoch) is the access's expiresAt, with the scope; a past one is 401, { allow: false } 403, an invalid one 500", async () => {
    const now = Date.parse('2026-12-08T10:00:00.000Z')
    const clock = () => new Date(now)
    const listScope = () => ({ tags: ['team:a'] })
    const byDate = await setup({ clock, authorize: () => ({ allow: true, expiresAt: new Date(now + 60_000) }), listScope }).ask()
    expect(await byDate.json()).toEqual({ scope: { tags: ['team:a'] }, expiresAt: now + 60_000 })
    const byMs = await setup({ clock, authorize: () => ({ allow: true, expiresAt: now + 1 }) }).ask()
    expect(await byMs.json()).toEqual({ scope: {}, expiresAt: now + 1 })
    // Without expiresAt the grant holds as `true` does.
    expect(await (await setup({ clock, authorize: () => ({ allow: true }) }).ask()).json()).toEqual({ scope: {} })

    const past = await setup({ clock, authorize: () => ({ allow: true, expiresAt: now }) }).ask()
    expect(past.status).toBe(401)
    expect(await past.json()).toMatchObject({ code: 'authentication_required', detail: expect.stringContaining('until 2026-12-08T10:00:00.000Z, which has passed') })
    const refused = await setup({ clock, authorize: () => ({ allow: false, expiresAt: now + 60_000 }) }).ask()
    expect(refused.status).toBe(403)
    // Only `true` or `{ allow: true }` allows: anything else truthy is a refusal, as before.
    expect((await setup({ authorize: (() => 'yes') as never }).ask()).status).toBe(403)
    for (const expiresAt of [new Date('not a date'), Number.NaN, '2026-12-08T10:01:00Z']) {
      const invalid = setup({ clock, authorize: () => ({ allow: true, expiresAt }) as never })
      const answer = await invalid.ask()
      expect(answer.status).toBe(500)
      expect(invalid.logger.error).toHaveBeenCalledTimes(1)
    }
  })

  it('a listScope that throws, or answers something not a scope, is a 500 without its message', async () => {
    const thrower = setup({
      authorize: () => true,
      listScope: () => {
        throw new Error('connection to postgres://admin:hunter2@db failed')
      },
    })
    const failed = await thrower.ask()
    expect(failed.status).toBe(500)
    const text = await failed.text()
    expect(JSON.parse(text)).toMatchObject({ code: 'internal_error', detail: 'The request could not be processed' })
    expect(text).not.toContain('hunter2')
    expect(thrower.logger.error).toHaveBeenCalledTimes(1)

    const wrong = await setup({ authorize: () => true, listScope: (() => ({ tags: 'team:a' })) as never }).ask()
    expect(wrong.status).toBe(500)
    // An HttpProblemError thrown by the hook is answered as that problem.
    const own = await setup({
      authorize: () => true,
      listScope: () => {
        throw new HttpProblemError('forbidden', { detail: 'No team yet' })
      },
    }).ask()
    expect(own.status).toBe(403)
    expect(await own.json()).toMatchObject({ code: 'forbidden', detail: 'No team yet' })
  })
})
