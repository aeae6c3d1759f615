/** Contract scenarios, read tokens: scope, expiry, forgery, rotation and other bearer credentials. */
import { RunStatusResponse } from 'pipeline-status-sdk'
import { createRunReadToken } from 'pipeline-status-sdk/server'
import { describe, expect } from 'vitest'
import { makeCompleteRun, makeStageUpdate } from '../../support/fixtures.js'
import { expectProblem, OLD_READ_TOKEN_SECRET, READ_TOKEN_SECRET } from './harness.js'
import type { ContractContext } from './use-target.js'

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeReadTokens({ name, scenario }: ContractContext): void {
  describe(`${name}: read tokens`, () => {
    const bearer = (token: string) => ({ secret: null, headers: { Authorization: `Bearer ${token}` } })
    const readTokens = { secret: [READ_TOKEN_SECRET, OLD_READ_TOKEN_SECRET] }

    scenario(
      "a run's token reads that run, and nothing else: not another run, not a write",
      async (api) => {
        const mine = await api.createRun()
        const other = await api.createRun()
        await api.stageOk(mine, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'one' }))
        const token = await createRunReadToken({ runId: mine, secret: READ_TOKEN_SECRET, expiresInSeconds: 600 })

        const before = await api.status(mine)
        expect(before.stages.map((stage) => [stage.stageNumber, stage.status])).toEqual([[1, 'COMPLETED']])
        const read = await api.getStatus(mine, bearer(token))
        expect(read.status).toBe(200)
        expect(RunStatusResponse.parse(await read.json())).toEqual(before)

        const problem = await expectProblem(await api.getStatus(other, bearer(token)), 401, 'invalid_read_token')
        expect(problem.detail).toBe('The read token is not valid for this run')
        await expectProblem(await api.stage(mine, makeStageUpdate({ stageNumber: 2 }), bearer(token)), 401, 'unauthorized')
        await expectProblem(await api.complete(mine, makeCompleteRun(), bearer(token)), 401, 'unauthorized')
        await expectProblem(await api.send({ path: '/runs', json: {}, ...bearer(token) }), 401, 'unauthorized')
        // Nothing the refused writes carried was stored.
        expect(await api.status(mine)).toEqual(before)
      },
      { readTokens },
    )

    scenario(
      'expired, forged, malformed and unknown-secret tokens answer 401 invalid_read_token saying why',
      async (api) => {
        const id = await api.createRun()
        const issued = new Date(Date.now() - 2 * 60 * 60 * 1000)
        const expired = await createRunReadToken({ runId: id, secret: READ_TOKEN_SECRET, expiresInSeconds: 60, now: issued })
        const problem = await expectProblem(await api.getStatus(id, bearer(expired)), 401, 'invalid_read_token')
        const expiresAt = new Date((Math.floor(issued.getTime() / 1000) + 60) * 1000).toISOString()
        expect(problem.detail).toBe(`The read token expired on ${expiresAt}; get a new one`)

        const foreign = await createRunReadToken({ runId: id, secret: 'another-apps-read-token-secret-000000', expiresInSeconds: 600 })
        const forged = await createRunReadToken({ runId: id, secret: READ_TOKEN_SECRET, expiresInSeconds: 600 })
        // The same signature with a later expiry: the expiry is signed.
        const [prefix, expires, signature] = forged.split('.')
        const extended = `${prefix}.${Number(expires) + 86_400}.${signature}`
        for (const token of [foreign, extended]) {
          const refused = await expectProblem(await api.getStatus(id, bearer(token)), 401, 'invalid_read_token')
          expect(refused.detail).toBe('The read token is not valid for this run')
        }
        const malformed = await expectProblem(await api.getStatus(id, bearer('psrt1.not-a-token')), 401, 'invalid_read_token')
        expect(malformed.detail).toBe('The read token is malformed')
        // The webhook secret still reads; so does a token signed with the retired secret.
        expect((await api.getStatus(id)).status).toBe(200)
        const old = await createRunReadToken({ runId: id, secret: OLD_READ_TOKEN_SECRET, expiresInSeconds: 600 })
        expect((await api.getStatus(id, bearer(old))).status).toBe(200)
      },
      { readTokens },
    )

    scenario(
      "other bearer credentials go on to the app's authorize hook",
      async (api) => {
        const id = await api.createRun()
        expect((await api.getStatus(id, bearer('app-session-alice'))).status).toBe(200)
        await expectProblem(await api.getStatus(id, bearer('app-session-bob')), 403, 'forbidden')
      },
      {
        readTokens,
        authorize: ({ request, action }) => action === 'read' && request.headers.get('authorization') === 'Bearer app-session-alice',
      },
    )

    scenario('without readTokens, a valid token reads nothing', async (api) => {
      const id = await api.createRun()
      const token = await createRunReadToken({ runId: id, secret: READ_TOKEN_SECRET, expiresInSeconds: 600 })
      const problem = await expectProblem(await api.getStatus(id, bearer(token)), 401, 'unauthorized')
      expect(problem.detail).toBe('Authorization: Bearer is not accepted here; send X-Webhook-Secret or a signature')
    })

    scenario(
      'another bearer credential without an authorize hook: the 401 names what was sent and what is accepted',
      async (api) => {
        const id = await api.createRun()
        const read = await expectProblem(await api.getStatus(id, bearer('app-session-alice')), 401, 'unauthorized')
        expect(read.detail).toBe(
          'Authorization: Bearer is not a run read token (psrt1.…); send X-Webhook-Secret, a signature or a run read token',
        )
        // Writes never take a read token.
        const write = await expectProblem(await api.stage(id, makeStageUpdate(), bearer('app-session-alice')), 401, 'unauthorized')
        expect(write.detail).toBe('Authorization: Bearer is not accepted here; send X-Webhook-Secret or a signature')
        // Without any credential the detail still names the secret.
        const none = await expectProblem(await api.getStatus(id, { secret: null }), 401, 'unauthorized')
        expect(none.detail).toBe('X-Webhook-Secret is missing')
      },
      { readTokens },
    )
  })
}
