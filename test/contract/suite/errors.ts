/** Contract scenarios, errors: unknown routes and methods, bad bodies, secrets and rotation, limits, a failing database or hook. */
import { RunStatusResponse } from 'pipeline-status-sdk'
import { describe, expect, it } from 'vitest'
import { makeCompleteRun, makeStageUpdate } from '../../support/fixtures.js'
import { expectProblem, OLD_SECRET, paddedStageUpdate, SECRET, streamOf, uniqueRunId } from './harness.js'
import type { ContractContext } from './use-target.js'

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeErrors({ name, scenario, withApi }: ContractContext): void {
  describe(`${name}: errors`, () => {
    scenario('unknown paths answer 404 route_not_found; wrong methods 405 with Allow', async (api) => {
      const id = await api.createRun()
      await expectProblem(await api.send({ path: `/${id}/nope`, json: {} }), 404, 'route_not_found')
      await expectProblem(await api.send({ path: `/${id}/stage-update/extra`, json: {} }), 404, 'route_not_found')
      await expectProblem(await api.send({ path: '/', method: 'GET' }), 404, 'route_not_found')

      const wrongGet = await api.send({ path: `/${id}/stage-update`, method: 'GET' })
      expect(wrongGet.headers.get('allow')).toBe('POST')
      await expectProblem(wrongGet, 405, 'method_not_allowed')
      const wrongPost = await api.send({ path: `/${id}/status`, json: {} })
      expect(wrongPost.headers.get('allow')).toBe('GET, HEAD')
      await expectProblem(wrongPost, 405, 'method_not_allowed')
      for (const method of ['PUT', 'DELETE', 'PATCH']) {
        const response = await api.send({ path: '/runs', method, json: {} })
        // POST /runs creates a run, GET /runs lists them.
        expect(response.headers.get('allow')).toBe('POST, GET, HEAD')
        await expectProblem(response, 405, 'method_not_allowed')
      }
      const complete = await api.send({ path: `/${id}/complete`, method: 'GET' })
      expect(complete.headers.get('allow')).toBe('POST')
      await expectProblem(complete, 405, 'method_not_allowed')
    })

    scenario('invalid JSON answers 400 invalid_json without echoing the body', async (api) => {
      const id = await api.createRun()
      for (const body of ['{"stageNumber": 1,', 'not json SECRET-ISH', '', '   ', '{"a":1}{"b":2}']) {
        const problem = await expectProblem(await api.stage(id, undefined, { body }), 400, 'invalid_json')
        expect(problem.detail).not.toContain('SECRET-ISH')
      }
      await expectProblem(await api.complete(id, undefined, { body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) }), 400, 'invalid_json')
      await expectProblem(await api.send({ path: '/runs', body: '{' }), 400, 'invalid_json')
    })

    scenario('validation failures name each field and why', async (api) => {
      const id = await api.createRun()
      const stageCases: Array<[unknown, string]> = [
        [{ stageName: 'x', status: 'PROCESSING' }, 'stageNumber'],
        [makeStageUpdate({ stageNumber: 0 }), 'stageNumber'],
        [makeStageUpdate({ stageNumber: 6 }), 'stageNumber'],
        [makeStageUpdate({ stageNumber: 1.5 }), 'stageNumber'],
        [{ ...makeStageUpdate(), stageNumber: '1' }, 'stageNumber'],
        [{ stageNumber: 1, status: 'PROCESSING' }, 'stageName'],
        [makeStageUpdate({ stageName: '' }), 'stageName'],
        [makeStageUpdate({ stageName: 'x'.repeat(201) }), 'stageName'],
        [{ stageNumber: 1, stageName: 'x' }, 'status'],
        [{ ...makeStageUpdate(), status: 'PENDING' }, 'status'],
        [{ ...makeStageUpdate(), status: 'DONE' }, 'status'],
        [{ ...makeStageUpdate(), output: 42 }, 'output'],
        [{ ...makeStageUpdate(), output: 'nul \u0000 byte' }, 'output'],
        [{ ...makeStageUpdate(), stageName: 'lone \ud800 surrogate' }, 'stageName'],
        [{ ...makeStageUpdate(), completedAt: 'yesterday' }, 'completedAt'],
        [[], ''],
        ['just a string', ''],
        [null, ''],
      ]
      for (const [body, field] of stageCases) {
        const problem = await expectProblem(await api.stage(id, body), 400, 'validation_failed')
        expect(problem.errors?.map((e) => e.field)).toContain(field)
        expect(problem.errors?.every((e) => e.message.length > 0)).toBe(true)
      }
      const stageBound = await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber: 6 })), 400, 'validation_failed')
      expect(stageBound.errors).toEqual([{ field: 'stageNumber', message: 'stageNumber must be a whole number from 1 to 5' }])
      // Past a stored integer (2^31 - 1), refused by the contract before any statement: not a 500 from the database.
      for (const stageNumber of [2_147_483_648, 2 ** 53]) {
        const tooBig = await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber })), 400, 'validation_failed')
        expect(tooBig.errors).toEqual([{ field: 'stageNumber', message: 'stageNumber must be a whole number from 1 to 5' }])
        const beat = await expectProblem(await api.heartbeat(id, { stageNumber }), 400, 'validation_failed')
        expect(new Set(beat.errors?.map((e) => e.field))).toEqual(new Set(['stageNumber']))
      }

      const completeCases: Array<[unknown, string]> = [
        [{}, 'status'],
        [{ status: 'PROCESSING' }, 'status'],
        [{ status: 'COMPLETED', duration: -1 }, 'duration'],
        [{ status: 'COMPLETED', completedAt: '25/10/2025' }, 'completedAt'],
        [{ status: 'COMPLETED', error: 5 }, 'error'],
        [{ status: 'FAILED', error: 'nul\u0000' }, 'error'],
      ]
      for (const [body, field] of completeCases) {
        const problem = await expectProblem(await api.complete(id, body), 400, 'validation_failed')
        expect(problem.errors?.map((e) => e.field)).toContain(field)
      }
      await expectProblem(await api.send({ path: '/runs', json: null }), 400, 'validation_failed')
      for (const body of [{ id: 'has space' }, { id: '' }, { id: 'x'.repeat(129) }, { id: 7 }]) {
        const problem = await expectProblem(await api.send({ path: '/runs', json: body }), 400, 'validation_failed')
        expect(problem.errors?.map((e) => e.field)).toContain('id')
      }
      // Nothing of the refused updates was stored.
      expect((await api.status(id)).stages).toEqual([])
    })

    scenario("validation problems word each field and why in the contract's own words, the same bytes on every target", async (api) => {
      const id = await api.createRun()
      /** The problem's messages (each names its field) and its detail (them, joined); the body's text. */
      const worded = async (response: Promise<Response>, ...messages: string[]): Promise<string> => {
        const answer = await response
        const text = await answer.clone().text()
        const problem = await expectProblem(answer, 400, 'validation_failed')
        expect({ messages: problem.errors?.map((error) => error.message), detail: problem.detail }).toEqual({ messages, detail: messages.join('; ') })
        return text
      }
      const post = (path: string, json: unknown) => api.send({ path, json })

      // Byte for byte: the mock, the Web handlers, Next.js and Express over PostgreSQL alike.
      expect(await worded(api.stage(id, makeStageUpdate({ stageNumber: 0 })), 'stageNumber must be a whole number from 1 to 5')).toBe(
        JSON.stringify({
          type: 'urn:pipeline-status-sdk:problem:validation-failed',
          title: 'Body failed validation',
          status: 400,
          code: 'validation_failed',
          detail: 'stageNumber must be a whole number from 1 to 5',
          errors: [{ field: 'stageNumber', message: 'stageNumber must be a whole number from 1 to 5' }],
        }),
      )

      // Stage updates: zod's issue kinds (absent, wrong type, bounds, enums) and the contract's own rules.
      await worded(api.stage(id, { stageName: 'x', status: 'PROCESSING' }), 'stageNumber is required')
      await worded(api.stage(id, makeStageUpdate({ stageNumber: 6 })), 'stageNumber must be a whole number from 1 to 5')
      await worded(api.stage(id, makeStageUpdate({ stageNumber: 1.5 })), 'stageNumber must be a whole number from 1 to 5')
      await worded(api.stage(id, { ...makeStageUpdate(), stageNumber: '1' }), 'stageNumber must be a whole number from 1 to 5')
      await worded(api.stage(id, makeStageUpdate({ stageNumber: 2 ** 31 })), 'stageNumber must be a whole number from 1 to 5')
      await worded(api.stage(id, { stageNumber: 1, status: 'PROCESSING' }), 'stageName is required')
      await worded(api.stage(id, makeStageUpdate({ stageName: '' })), 'stageName must not be empty')
      await worded(api.stage(id, makeStageUpdate({ stageName: 'x'.repeat(201) })), 'stageName must be at most 200 characters')
      await worded(api.stage(id, { stageNumber: 1, stageName: 'x' }), 'status is required: one of PROCESSING, COMPLETED, FAILED, CANCELLED')
      await worded(api.stage(id, { ...makeStageUpdate(), status: 'PENDING' }), 'status must be one of PROCESSING, COMPLETED, FAILED, CANCELLED; got "PENDING"')
      await worded(api.stage(id, { ...makeStageUpdate(), output: 42 }), 'output must be a string')
      await worded(api.stage(id, { ...makeStageUpdate(), output: 'nul \u0000 byte' }), 'output must not contain NUL characters or unpaired UTF-16 surrogates')
      await worded(
        api.stage(id, { ...makeStageUpdate(), completedAt: 'yesterday' }),
        'completedAt must be a date-time written YYYY-MM-DDTHH:MM:SS[.fraction of 1 to 9 digits][Z|±HH:MM], with a real date and time',
      )
      await worded(api.stage(id, { ...makeStageUpdate(), progress: {} }), 'progress.seq is required')
      await worded(
        api.stage(id, { ...makeStageUpdate(), progress: { seq: -1, percent: 101, current: 5, total: 2 } }),
        'progress.seq must be at least 0',
        'progress.percent must be at most 100',
        'progress.current must not exceed total',
      )
      await worded(api.stage(id, { ...makeStageUpdate(), attempt: 0, maxAttempts: 'x' }), 'attempt must be at least 1', 'maxAttempts must be a number')
      await worded(api.stage(id, { ...makeStageUpdate(), attempt: 3, maxAttempts: 2 }), 'maxAttempts must be at least attempt (3), got 2')
      await worded(api.stage(id, makeStageUpdate({ status: 'COMPLETED', attempt: 2 })), 'attempt is sent only with status PROCESSING')
      await worded(api.stage(id, []), 'the body must be a JSON object')
      await worded(api.stage(id, null), 'the body must be a JSON object')

      // The other bodies.
      await worded(api.complete(id, {}), 'status is required: one of COMPLETED, FAILED, CANCELLED')
      await worded(api.complete(id, { status: 'COMPLETED', duration: -1 }), 'duration must be at least 0')
      await worded(api.complete(id, { status: 'COMPLETED', error: 5 }), 'error must be a string')
      await worded(api.heartbeat(id, { progress: { seq: 1 } }), 'stageNumber is required with progress')
      await worded(api.heartbeat(id, { intervalMs: 'x' }), 'intervalMs must be a number')
      await worded(api.heartbeat(id, { intervalMs: 10 }), 'intervalMs must be at least 1000')
      await worded(api.cancel(id, { reason: 5 }), 'reason must be a string')
      await worded(post('/runs', { id: 7 }), 'id must be a string')
      await worded(post('/runs', { id: 'has space' }), 'id must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ : - and not only dots')
      await worded(post('/runs', { pipeline: '' }), 'pipeline must be 1 to 128 characters')
      await worded(post('/runs', { tags: 'x' }), 'tags must be an array')
      await worded(post('/runs', { metadata: [] }), 'metadata must be a JSON object')
      await worded(post(`/${id}/tags`, { add: [5] }), 'add.0 must be a string')
      await worded(post(`/${id}/tags`, { tags: ['x'] }), 'tags is not a field of a tag change, which has only `add` and `remove`')
      await worded(post(`/${id}/metadata`, [1]), 'the body must be a JSON object')
      await worded(post(`/${id}/stages/1/output`, {}), 'seq is required', 'text is required')
      await worded(post(`/${id}/stages/1/output`, { seq: 0, text: 'x', extra: 1 }), 'extra is not a known field')
      await worded(post(`/${id}/stages/0/output`, { seq: 0, text: 'x' }), 'stageNumber must be a whole number from 1 to 5')
      // Nothing of the refused bodies was stored.
      expect((await api.status(id)).stages).toEqual([])
    })

    scenario('one stage-number rule, one wording: every number outside 1..N is refused in the same words, on each route', async (api) => {
      const id = await api.createRun()
      const rule = { field: 'stageNumber', message: 'stageNumber must be a whole number from 1 to 5' }
      /** The problem's detail and errors: the rule alone, whatever the value missed it by. */
      const refusedByRule = async (response: Response, ...others: Array<{ field: string; message: string }>) => {
        const problem = await expectProblem(response, 400, 'validation_failed')
        const errors = [rule, ...others]
        expect({ detail: problem.detail, errors: problem.errors }).toEqual({ detail: errors.map((error) => error.message).join('; '), errors })
      }
      // Below, above, between, of another type, past a stored integer, past a safe integer, a huge double.
      const values: unknown[] = [0, -1, 6, 1.5, 5.5, '2', '6', null, true, 2 ** 31, 2 ** 53, 1e300, -(2 ** 53)]
      for (const stageNumber of values) {
        await refusedByRule(await api.stage(id, { ...makeStageUpdate(), stageNumber }))
        await refusedByRule(await api.heartbeat(id, { stageNumber }))
      }
      // A number JSON cannot hold as a finite double (1e400 parses as Infinity).
      await refusedByRule(await api.stage(id, undefined, { body: '{"stageNumber": 1e400, "stageName": "x", "status": "PROCESSING"}' }))
      // Beside another field's problem, in the body's order.
      await refusedByRule(await api.stage(id, { stageNumber: 0, stageName: '', status: 'PROCESSING' }), {
        field: 'stageName',
        message: 'stageName must not be empty',
      })
      // The path of a stage's output: the same rule, the same words.
      for (const stageNumber of ['0', '6', '-1', '1.5', '01', '99999999999', 'one']) {
        await refusedByRule(await api.send({ path: `/${id}/stages/${stageNumber}/output`, json: { seq: 0, text: 'x' } }))
      }
      // Absent is another rule: named as required.
      const absent = await expectProblem(await api.stage(id, { stageName: 'x', status: 'PROCESSING' }), 400, 'validation_failed')
      expect(absent.errors).toEqual([{ field: 'stageNumber', message: 'stageNumber is required' }])
      const withProgress = await expectProblem(await api.heartbeat(id, { progress: { seq: 1 } }), 400, 'validation_failed')
      expect(withProgress.errors).toEqual([{ field: 'stageNumber', message: 'stageNumber is required with progress' }])
      expect((await api.status(id)).stages).toEqual([])
    })

    scenario('writes and reads without the right secret answer 401 unauthorized', async (api) => {
      const id = await api.createRun()
      const attempts = (secret: string | null) => [
        api.stage(id, makeStageUpdate(), { secret }),
        api.complete(id, makeCompleteRun(), { secret }),
        api.send({ path: '/runs', json: {}, secret }),
        api.getStatus(id, { secret }),
      ]
      for (const secret of [null, 'wrong', '', SECRET.toUpperCase(), SECRET.slice(0, -1), `${SECRET}x`]) {
        for (const response of await Promise.all(attempts(secret))) await expectProblem(response, 401, 'unauthorized')
      }
      expect((await api.status(id)).run.status).toBe('PENDING')
    })

    scenario(
      'accepts each of several secrets during a rotation',
      async (api) => {
        const id = await api.createRun()
        expect((await api.stage(id, makeStageUpdate(), { secret: OLD_SECRET })).status).toBe(200)
        expect((await api.stage(id, makeStageUpdate({ status: 'COMPLETED' }), { secret: SECRET })).status).toBe(200)
        await expectProblem(await api.stage(id, makeStageUpdate(), { secret: 'retired-secret' }), 401, 'unauthorized')
        expect((await api.getStatus(id, { secret: OLD_SECRET })).status).toBe(200)
      },
      { secret: [SECRET, OLD_SECRET] },
    )

    scenario(
      'reads a comma-separated secret string as a list, as WEBHOOK_SECRET is read',
      async (api) => {
        const id = await api.createRun()
        expect((await api.stage(id, makeStageUpdate(), { secret: OLD_SECRET })).status).toBe(200)
        expect((await api.getStatus(id, { secret: SECRET })).status).toBe(200)
        await expectProblem(await api.getStatus(id, { secret: `${SECRET}, ${OLD_SECRET}` }), 401, 'unauthorized')
      },
      { secret: `${SECRET}, ${OLD_SECRET}` },
    )

    scenario(
      'reads with the authorize hook: allowed, denied with 403, secret still accepted',
      async (api) => {
        const allowed = await api.createRun(`${uniqueRunId()}-mine`)
        const denied = await api.createRun(`${uniqueRunId()}-theirs`)
        const ok = await api.getStatus(allowed, { secret: null, headers: { Cookie: 'session=alice' } })
        expect(ok.status).toBe(200)
        expect(RunStatusResponse.parse(await ok.json()).run.id).toBe(allowed)
        await expectProblem(await api.getStatus(denied, { secret: null, headers: { Cookie: 'session=alice' } }), 403, 'forbidden')
        await expectProblem(await api.getStatus(allowed, { secret: null }), 403, 'forbidden')
        expect((await api.getStatus(denied)).status).toBe(200)
        // The hook is for reads only: writes still need the secret.
        await expectProblem(await api.stage(allowed, makeStageUpdate(), { secret: null, headers: { Cookie: 'session=alice' } }), 401, 'unauthorized')
      },
      {
        authorize: ({ request, runId, action }) =>
          action === 'read' && request.headers.get('cookie') === 'session=alice' && runId.endsWith('-mine'),
      },
    )

    scenario(
      'bodies over maxBodyBytes answer 413, by Content-Length or while streaming',
      async (api) => {
        const id = await api.createRun()
        expect((await api.stage(id, undefined, { body: paddedStageUpdate(1024) })).status).toBe(200)
        // The problem states the limit, so a client can cut what it sends to fit.
        expect(await expectProblem(await api.stage(id, undefined, { body: paddedStageUpdate(1025) }), 413, 'payload_too_large')).toMatchObject({ maxBytes: 1024 })
        expect(await expectProblem(await api.stage(id, undefined, { body: streamOf(5 * 1024 * 1024) }), 413, 'payload_too_large')).toMatchObject({ maxBytes: 1024 })
        expect(await expectProblem(await api.complete(id, undefined, { body: streamOf(64 * 1024) }), 413, 'payload_too_large')).toMatchObject({ maxBytes: 1024 })
        expect((await api.status(id)).stages[0]?.status).toBe('PROCESSING')
      },
      { maxBodyBytes: 1024 },
    )

    scenario('non-JSON bodies answer 415; charset and +json types are accepted', async (api) => {
      const id = await api.createRun()
      const body = JSON.stringify(makeStageUpdate())
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx', null]) {
        await expectProblem(await api.stage(id, undefined, { body, contentType }), 415, 'unsupported_media_type')
      }
      await expectProblem(await api.send({ path: '/runs', body: '{}', contentType: null }), 415, 'unsupported_media_type')
      await expectProblem(await api.send({ path: '/runs', body: 'id=1', contentType: 'text/plain' }), 415, 'unsupported_media_type')
      expect((await api.stage(id, undefined, { body, contentType: 'application/json; charset=utf-8' })).status).toBe(200)
      expect((await api.stage(id, undefined, { body, contentType: 'Application/JSON' })).status).toBe(200)
      expect((await api.complete(id, undefined, { body: '{"status":"COMPLETED"}', contentType: 'application/vnd.pipeline+json' })).status).toBe(200)
    })

    scenario(
      'an unreachable database answers 503 with Retry-After',
      async (api) => {
        for (const response of [
          await api.send({ path: '/runs', json: {} }),
          await api.stage('r', makeStageUpdate()),
          await api.complete('r', makeCompleteRun()),
          await api.getStatus('r'),
        ]) {
          expect(response.headers.get('retry-after')).toBe('5')
          await expectProblem(response, 503, 'database_unavailable')
        }
      },
      { store: 'unavailable' },
    )

    it('a 500 shows no internals and is logged', async () => {
      const logged: unknown[] = []
      const logger = { warn: () => {}, error: (...args: unknown[]) => void logged.push(args) }
      await withApi({ store: 'throwing', logger }, async (api) => {
        for (const response of [await api.stage('r', makeStageUpdate()), await api.getStatus('r'), await api.send({ path: '/runs', json: {} })]) {
          const text = await response.clone().text()
          expect(text).not.toContain('hunter2')
          expect(text).not.toContain('postgres://')
          await expectProblem(response, 500, 'internal_error')
        }
      })
      const loggedErrors = logged.map((args) => ((args as unknown[])[1] as { error?: unknown } | undefined)?.error)
      expect(loggedErrors.some((error) => error instanceof Error && error.message.includes('hunter2'))).toBe(true)
    })

    it('a failing onRunCompleted answers 500 and rolls the completion back', async () => {
      let fail = true
      await withApi(
        {
          logger: { warn: () => {}, error: () => {} },
          onRunCompleted: () => {
            if (fail) throw new Error('report table missing: postgres://admin:hunter2@db/app')
          },
        },
        async (api) => {
          const id = await api.createRun()
          const response = await api.complete(id, makeCompleteRun())
          expect(await response.clone().text()).not.toContain('hunter2')
          await expectProblem(response, 500, 'internal_error')
          expect((await api.status(id)).run).toMatchObject({ status: 'PENDING', completionReceivedAt: null })
          fail = false
          expect((await api.completeOk(id, makeCompleteRun())).outcome).toBe('applied')
        },
      )
    })
  })
}
