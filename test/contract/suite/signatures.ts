/** Contract scenarios, Standard Webhooks signatures: valid, wrong, expired, replayed, bound to method and route; Express body parsers. */
import { CreateRunResponse, RunStatusResponse, StageUpdateResponse } from 'pipeline-status-sdk'
import { createWebhookSignatureHeaders, webhookMessageId } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { makeStageUpdate } from '../../support/fixtures.js'
import { expectProblem, SIGNING_SECRET, uniqueRunId } from './harness.js'
import type { ContractContext } from './use-target.js'

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeSignatures({ name, scenario, withApi, expressApp }: ContractContext): void {
  describe(`${name}: Standard Webhooks signatures`, () => {
    /** Signs `body` with a route-bound webhook-id: `<METHOD> <route> <unique>` (docs/security.md). */
    const signed = async (
      body: string,
      target: { route: string; method?: string; unique?: string; id?: string | undefined; timestamp?: number; secret?: string },
    ) =>
      createWebhookSignatureHeaders({
        secret: target.secret ?? SIGNING_SECRET,
        body,
        id: target.id ?? webhookMessageId({ method: target.method ?? 'POST', route: target.route, unique: target.unique ?? crypto.randomUUID() }),
        timestamp: target.timestamp,
      }) as unknown as Promise<Record<string, string>>
    const now = () => Math.floor(Date.now() / 1000)

    scenario(
      'a signed output chunk is verified over its decoded path (it answered 500); a bad stageNumber is 400 naming it',
      async (api) => {
        const id = await api.createRun()
        await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING' }))
        const body = JSON.stringify({ seq: 0, text: 'signed' })
        const send = async (stage: string, route: string) =>
          api.send({ path: `/${encodeURIComponent(id)}/stages/${stage}/output`, body, secret: null, headers: { 'Content-Type': 'application/json', ...(await signed(body, { route })) } })
        expect((await send('1', `${id}/stages/1/output`)).status).toBe(200)
        await expectProblem(await send('1', `${id}/stages/2/output`), 401, 'invalid_signature')
        // (A header cannot carry a NUL; test/server/fuzz.test.ts sends `stages/%00/output` with the secret.)
        const bad = await expectProblem(await send('x1', `${id}/stages/x1/output`), 400, 'validation_failed')
        expect(bad.errors?.map((error) => error.field)).toEqual(['stageNumber'])
      },
      { signing: { secret: SIGNING_SECRET } },
    )

    scenario(
      'accepts a valid signature without the shared secret, refuses wrong, expired and tampered ones',
      async (api) => {
        const id = await api.createRun()
        const route = `${id}/stage-update`
        const body = JSON.stringify(makeStageUpdate())
        const headers = await signed(body, { route })
        expect((await api.stage(id, undefined, { body, secret: null, headers })).status).toBe(200)

        const wrong = await signed(body, { route, secret: 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })
        await expectProblem(await api.stage(id, undefined, { body, secret: null, headers: wrong }), 401, 'invalid_signature')
        const tampered = await signed(body, { route })
        const other = JSON.stringify(makeStageUpdate({ status: 'FAILED' }))
        await expectProblem(await api.stage(id, undefined, { body: other, secret: null, headers: tampered }), 401, 'invalid_signature')
        // An hour outside the 300 s tolerance: a delay of a loaded machine between signing and
        // checking cannot bring it back inside (the boundary itself is a unit test with a fixed clock).
        const expired = await signed(body, { route, timestamp: now() - 3600 })
        await expectProblem(await api.stage(id, undefined, { body, secret: null, headers: expired }), 401, 'invalid_signature')
        const future = await signed(body, { route, timestamp: now() + 3600 })
        await expectProblem(await api.stage(id, undefined, { body, secret: null, headers: future }), 401, 'invalid_signature')
        // A present signature is always checked, even beside the right shared secret.
        await expectProblem(await api.stage(id, undefined, { body, headers: wrong }), 401, 'invalid_signature')
        expect((await api.status(id)).stages[0]?.status).toBe('PROCESSING')
      },
      { signing: { secret: SIGNING_SECRET } },
    )

    scenario(
      'an exact resend of an applied signed request answers like any duplicate; the same id with another body is refused',
      async (api) => {
        const id = await api.createRun()
        const route = `${id}/stage-update`
        const body = JSON.stringify(makeStageUpdate({ status: 'COMPLETED', output: 'first' }))
        const headers = await signed(body, { route })
        expect(StageUpdateResponse.parse(await (await api.stage(id, undefined, { body, secret: null, headers })).json()).outcome).toBe('applied')

        // The answer was lost; the very same request (same id, timestamp and signature) comes again.
        const resent = await api.stage(id, undefined, { body, secret: null, headers })
        expect(resent.status).toBe(200)
        expect(StageUpdateResponse.parse(await resent.json()).outcome).toBe('duplicate')
        // A retry signed again (same id, fresh timestamp) is the same message too.
        const resigned = await signed(body, { route, id: headers['webhook-id'], timestamp: now() + 1 })
        expect(StageUpdateResponse.parse(await (await api.stage(id, undefined, { body, secret: null, headers: resigned })).json()).outcome).toBe('duplicate')

        const other = JSON.stringify(makeStageUpdate({ status: 'COMPLETED', output: 'second' }))
        const reused = await signed(other, { route, id: headers['webhook-id'] })
        const refused = await expectProblem(await api.stage(id, undefined, { body: other, secret: null, headers: reused }), 401, 'invalid_signature')
        expect(refused.detail).toMatch(/another body/)
        expect((await api.status(id)).stages[0]).toMatchObject({ status: 'COMPLETED', output: 'first' })
      },
      { signing: { secret: SIGNING_SECRET } },
    )

    scenario(
      'what is signed binds the method, the run and the route, with and without a body',
      async (api) => {
        const runA = await api.createRun()
        const runB = await api.createRun()
        const body = JSON.stringify(makeStageUpdate({ status: 'FAILED', output: 'for A only' }))
        const forA = await signed(body, { route: `${runA}/stage-update` })
        for (const response of [
          await api.stage(runB, undefined, { body, secret: null, headers: forA }),
          await api.complete(runA, undefined, { body, secret: null, headers: forA }),
          await api.stage(runA, undefined, { body, secret: null, headers: await signed(body, { route: `${runA}/stage-update`, method: 'PUT' }) }),
          await api.stage(runA, undefined, { body, secret: null, headers: await signed(body, { route: '', id: `msg_${crypto.randomUUID()}` }) }),
          // The method and route alone, with nothing unique after them, name no message.
          await api.stage(runA, undefined, { body, secret: null, headers: await signed(body, { route: '', id: `POST ${runA}/stage-update` }) }),
        ]) {
          expect((await expectProblem(response, 401, 'invalid_signature')).detail).toMatch(/webhook-id/)
        }
        expect((await api.status(runA)).run.status).toBe('PENDING')
        expect((await api.status(runB)).run.status).toBe('PENDING')

        // A status read has no body: it signs the empty body, bound to its run.
        const readA = await signed('', { method: 'GET', route: `${runA}/status` })
        expect((await api.getStatus(runA, { secret: null, headers: readA })).status).toBe(200)
        await expectProblem(await api.getStatus(runB, { secret: null, headers: readA }), 401, 'invalid_signature')
        const postRead = await signed('', { method: 'POST', route: `${runA}/status` })
        await expectProblem(await api.getStatus(runA, { secret: null, headers: postRead }), 401, 'invalid_signature')

        // The route carries the run id as it is, whatever percent-encoding the URL used.
        const colon = await api.createRun(uniqueRunId('run:colon'))
        const update = JSON.stringify(makeStageUpdate())
        const colonHeaders = await signed(update, { route: `${colon}/stage-update` })
        expect((await api.stage(colon, undefined, { body: update, secret: null, headers: colonHeaders })).status).toBe(200)
        const created = JSON.stringify({ id: uniqueRunId() })
        expect((await api.send({ path: '/runs', body: created, secret: null, headers: await signed(created, { route: 'runs' }) })).status).toBe(201)
        const misrouted = JSON.stringify({ id: uniqueRunId() })
        await expectProblem(
          await api.send({ path: '/runs', body: misrouted, secret: null, headers: await signed(misrouted, { route: `${runA}/runs` }) }),
          401,
          'invalid_signature',
        )
      },
      { signing: { secret: SIGNING_SECRET } },
    )

    scenario(
      'with required signatures, the shared secret alone is refused',
      async (api) => {
        await expectProblem(await api.send({ path: '/runs', json: {} }), 401, 'invalid_signature')
        const body = JSON.stringify({ id: uniqueRunId() })
        const created = await api.send({ path: '/runs', body, headers: await signed(body, { route: 'runs' }) })
        expect(created.status).toBe(201)
        const runId = CreateRunResponse.parse(await created.json()).run.id
        await expectProblem(await api.stage(runId, makeStageUpdate()), 401, 'invalid_signature')
        const update = JSON.stringify(makeStageUpdate())
        expect((await api.stage(runId, undefined, { body: update, headers: await signed(update, { route: `${runId}/stage-update` }) })).status).toBe(200)
        // Reads still accept the shared secret.
        expect((await api.getStatus(runId)).status).toBe(200)
      },
      { signing: { secret: SIGNING_SECRET, required: true } },
    )

    scenario(
      'with only a signing secret, signed writes and signed reads work and rotation accepts both keys',
      async (api) => {
        const body = JSON.stringify({ id: uniqueRunId() })
        const created = await api.send({ path: '/runs', body, secret: null, headers: await signed(body, { route: 'runs', secret: 'raw-old-key' }) })
        expect(created.status).toBe(201)
        const runId = CreateRunResponse.parse(await created.json()).run.id
        await expectProblem(await api.getStatus(runId, { secret: null }), 401, 'unauthorized')
        const read = await api.getStatus(runId, { secret: null, headers: await signed('', { method: 'GET', route: `${runId}/status` }) })
        expect(read.status).toBe(200)
        expect(RunStatusResponse.parse(await read.json()).run.id).toBe(runId)
        await expectProblem(await api.stage(runId, makeStageUpdate(), { secret: 'anything' }), 401, 'invalid_signature')
      },
      { secret: [], signing: { secret: [SIGNING_SECRET, 'raw-old-key'] } },
    )

    scenario(
      'a signed request answered 5xx can be sent again as it was',
      async (api) => {
        const body = JSON.stringify({})
        const headers = await signed(body, { route: 'runs' })
        await expectProblem(await api.send({ path: '/runs', body, secret: null, headers }), 503, 'database_unavailable')
        await expectProblem(await api.send({ path: '/runs', body, secret: null, headers }), 503, 'database_unavailable')
      },
      { store: 'unavailable', signing: { secret: SIGNING_SECRET } },
    )

    if (expressApp) {
      // Python's json.dumps(..., separators=(',', ':'), ensure_ascii=False): compact, but not
      // what JSON.stringify writes once there is an é or a number written 5.0.
      const pythonStage = (runId: string) => ({
        path: `/${runId}/stage-update`,
        body: '{"stageNumber":1,"stageName":"Input Processing","status":"COMPLETED","output":"Gen Z wants éclairs"}',
      })
      const pythonComplete = (runId: string) => ({ path: `/${runId}/complete`, body: '{"status":"COMPLETED","duration":5.0}' })
      const asciiStage = (runId: string) => ({ path: `/${runId}/stage-update`, body: JSON.stringify(makeStageUpdate()) })
      const logged = () => {
        const errors: unknown[][] = []
        return { errors, logger: { warn: () => {}, error: (...args: unknown[]) => void errors.push(args) } }
      }

      it('express.json() mounted first, signatures required: 500 body_already_consumed whatever the content, fix logged once', async () => {
        const { errors, logger } = logged()
        await withApi({ signing: { secret: SIGNING_SECRET, required: true }, bodyParser: 'json', logger }, async (api) => {
          const created = JSON.stringify({ id: uniqueRunId() })
          const createdResponse = await api.send({ path: '/runs', body: created, headers: await signed(created, { route: 'runs' }) })
          await expectProblem(createdResponse, 500, 'body_already_consumed')
          const runId = uniqueRunId()
          for (const request of [asciiStage(runId), pythonStage(runId), pythonComplete(runId)]) {
            const route = request.path.slice(1)
            const response = await api.send({ ...request, headers: await signed(request.body, { route }) })
            await expectProblem(response, 500, 'body_already_consumed')
          }
        })
        expect(errors).toHaveLength(1)
        expect(String(errors[0]?.[0])).toMatch(/express\.json\(\).*before the router[\s\S]*req\.rawBody = buf/)
      })

      scenario(
        'express.json({ verify }) keeping req.rawBody: Python-style signed bodies verify over the bytes sent',
        async (api) => {
          const runId = uniqueRunId()
          const created = JSON.stringify({ id: runId })
          expect((await api.send({ path: '/runs', body: created, headers: await signed(created, { route: 'runs' }) })).status).toBe(201)
          for (const request of [pythonStage(runId), pythonComplete(runId)]) {
            const response = await api.send({ ...request, secret: null, headers: await signed(request.body, { route: request.path.slice(1) }) })
            expect({ status: response.status, text: await response.text() }).toMatchObject({ status: 200 })
          }
          expect((await api.status(runId)).stages[0]).toMatchObject({ status: 'COMPLETED', output: 'Gen Z wants éclairs' })
        },
        { signing: { secret: SIGNING_SECRET, required: true }, bodyParser: 'json-keeping-raw' },
      )

      scenario(
        'express.json() mounted first without signatures: Python-style bodies are applied as sent',
        async (api) => {
          const runId = await api.createRun()
          for (const request of [pythonStage(runId), pythonComplete(runId)]) expect((await api.send(request)).status).toBe(200)
          expect((await api.status(runId)).stages[0]).toMatchObject({ status: 'COMPLETED', output: 'Gen Z wants éclairs' })
        },
        { bodyParser: 'json' },
      )
    }
  })
}
