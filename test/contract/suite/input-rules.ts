/** Contract scenarios, input rules (docs/contract.md): timestamps, run ids, URL length. */
import { Problem, PROBLEM_CONTENT_TYPE } from 'pipeline-status-sdk'
import { describe, expect } from 'vitest'
import { makeCompleteRun, makeStageUpdate } from '../../support/fixtures.js'
import { expectProblem, rawRequest, SECRET, uniqueRunId, WHOLE_RANGE_CLOCK } from './harness.js'
import type { ContractContext } from './use-target.js'

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeInputRules({ name, scenario, socketScenario, expressApp }: ContractContext): void {
  describe(`${name}: input rules`, () => {
    // [sent, what the contract stores: the instant it names, to the millisecond, in UTC]
    const ACCEPTED_TIMESTAMPS: Array<[string, string]> = [
      ['2025-10-25T14:03:11', '2025-10-25T14:03:11.000Z'], // Python's isoformat() of a naive datetime: UTC
      ['2025-10-25T14:03:11.123456', '2025-10-25T14:03:11.123Z'],
      ['2025-10-25T14:03:11.987654321+05:30', '2025-10-25T08:33:11.987Z'], // cut, never rounded
      ['2025-10-25T14:03:11.5-08:00', '2025-10-25T22:03:11.500Z'],
      ['2024-02-29T23:59:59Z', '2024-02-29T23:59:59.000Z'],
      ['0099-06-15T12:00:00Z', '0099-06-15T12:00:00.000Z'], // not read as 1999
      ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000Z'],
      ['0001-01-01T05:00:00+05:00', '0001-01-01T00:00:00.000Z'],
      ['0000-12-31T23:00:00-01:00', '0001-01-01T00:00:00.000Z'],
      ['9999-12-31T23:59:59.9999999Z', '9999-12-31T23:59:59.999Z'],
      ['9999-12-31T23:59:59+01:00', '9999-12-31T22:59:59.000Z'],
    ]
    const REFUSED_TIMESTAMPS = [
      '0001-01-01T00:00:00+01:00', // 0000-12-31T23:00Z, before year 1
      '9999-12-31T23:59:59-01:00', // a runner west of UTC: year 10000 in UTC
      '2025-10-25T14:03', // minutes only, with or without an offset
      '2025-10-25T14:03Z',
      '2025-10-25T14:03+02:00',
      '2025-10-25',
      '2025-10-25T14:03:11.Z',
      '2025-10-25T14:03:11.1234567890Z', // ten fraction digits
      '2025-10-25 14:03:11Z',
      '2025-10-25t14:03:11z',
      '2025-10-25T14:03:11+0200',
      '2025-10-25T14:03:11+02',
      '2025-10-25T14:03:11+24:00',
      '2025-02-29T00:00:00Z',
      '2025-04-31T00:00:00Z',
      '2025-13-01T00:00:00Z',
      '2025-10-25T24:00:00Z',
      '2016-12-31T23:59:60Z',
      '+010000-01-01T00:00:00Z',
      '-000001-01-01T00:00:00Z',
      '20251025T140311Z',
      ' 2025-10-25T14:03:11Z',
      'yesterday',
      '',
    ]

    scenario('a completedAt outside the grammar or years 1-9999 answers 400 naming completedAt, for stages and /complete', async (api) => {
      const id = await api.createRun()
      for (const completedAt of REFUSED_TIMESTAMPS) {
        const stage = await expectProblem(await api.stage(id, makeStageUpdate({ status: 'COMPLETED', completedAt })), 400, 'validation_failed')
        expect(stage.errors?.map((e) => e.field), completedAt).toEqual(['completedAt'])
        const complete = await expectProblem(await api.complete(id, makeCompleteRun({ completedAt })), 400, 'validation_failed')
        expect(complete.errors?.map((e) => e.field), completedAt).toEqual(['completedAt'])
      }
      // Nothing was stored, and the run still answers.
      expect(await api.status(id)).toMatchObject({ run: { status: 'PENDING', completedAt: null }, stages: [] })
    })

    scenario('every accepted completedAt is stored and read back as the millisecond instant it names', async (api) => {
      for (const [completedAt, stored] of ACCEPTED_TIMESTAMPS) {
        const staged = await api.createRun()
        const update = await api.stageOk(staged, makeStageUpdate({ status: 'COMPLETED', completedAt }))
        expect(update.stage?.completedAt, completedAt).toBe(stored)
        expect((await api.status(staged)).stages[0]?.completedAt, completedAt).toBe(stored)

        const completed = await api.createRun()
        expect((await api.completeOk(completed, makeCompleteRun({ status: 'FAILED', completedAt }))).run.completedAt, completedAt).toBe(stored)
        expect((await api.status(completed)).run.completedAt, completedAt).toBe(stored)
      }
    }, WHOLE_RANGE_CLOCK)

    scenario('run ids follow one rule: POST /runs refuses others with 400 naming id, other routes answer 404', async (api) => {
      const refused = ['.', '..', '...', 'a b', 'a/b', 'a?b', 'a#b', 'a%41', 'é', 'tab\t', 'x'.repeat(129), '']
      for (const id of refused) {
        const problem = await expectProblem(await api.send({ path: '/runs', json: { id } }), 400, 'validation_failed')
        expect(problem.errors?.map((e) => e.field), id).toEqual(['id'])
      }
      for (const id of [`${uniqueRunId()}.a`, `.${uniqueRunId()}`, `..${uniqueRunId()}`, `A-Z_0.9~:${uniqueRunId()}`, 'x'.repeat(121) + uniqueRunId().slice(-7)]) {
        expect(await api.createRun(id)).toBe(id)
        expect((await api.status(id)).run.id).toBe(id)
      }
      // Elsewhere an id outside the rule is simply an unknown run.
      for (const id of ['a b', 'é', 'a%41', 'x'.repeat(129), 'tab\t']) {
        await expectProblem(await api.stage(id, makeStageUpdate()), 404, 'run_not_found')
        await expectProblem(await api.complete(id, makeCompleteRun()), 404, 'run_not_found')
        await expectProblem(await api.getStatus(id), 404, 'run_not_found')
      }
      // A dot segment never carries an id: URL normalization removes it, and no route is left.
      for (const segment of ['.', '%2E']) await expectProblem(await api.send({ path: `/${segment}/status` }), 404, 'route_not_found')
    })

    socketScenario('a dot segment sent as it is (curl --path-as-is) gets 404: run_not_found from Express, route_not_found where the URL is normalized', async (api, baseUrl) => {
      // Express routes on the raw path, so `..` arrives as a run id; the mock server (and Next.js)
      // normalize the URL first, so no route is left. Either way nothing is found or stored.
      const code = expressApp ? 'run_not_found' : 'route_not_found'
      const seen: string[] = []
      for (const segment of ['.', '..']) {
        for (const route of ['status', 'stage-update', 'complete']) {
          const response = await rawRequest(baseUrl, {
            path: `${new URL(baseUrl).pathname}/${segment}/${route}`,
            method: route === 'status' ? 'GET' : 'POST',
            headers: { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' },
            ...(route === 'status' ? {} : { body: Buffer.from(JSON.stringify(route === 'complete' ? makeCompleteRun() : makeStageUpdate())) }),
          })
          seen.push(`${segment}/${route} ${response.status} ${(JSON.parse(response.text) as { code?: string }).code}`)
        }
      }
      expect(seen).toEqual(['./status', './stage-update', './complete', '../status', '../stage-update', '../complete'].map((sent) => `${sent} 404 ${code}`))
    })

    scenario('a URL whose path and query pass 8 KiB answers 414; one of exactly 8 KiB is served', async (api) => {
      const id = await api.createRun()
      // Every target serves the routes under /api/pipeline.
      const padded = (length: number, route = 'status') => {
        const prefix = `/${id}/${route}?pad=`
        return prefix + 'x'.repeat(length - '/api/pipeline'.length - prefix.length)
      }
      expect((await api.send({ path: padded(8192) })).status).toBe(200)
      const long = await expectProblem(await api.send({ path: padded(8193) }), 414, 'uri_too_long')
      expect(long.detail).toContain('8192')
      await expectProblem(await api.send({ path: padded(8193, 'stage-update'), json: makeStageUpdate() }), 414, 'uri_too_long')
      await expectProblem(await api.send({ path: `/${'r'.repeat(9000)}/complete`, json: makeCompleteRun() }), 414, 'uri_too_long')
      await expectProblem(await api.send({ path: `/${'r'.repeat(9000)}/nope` }), 414, 'uri_too_long')
      expect((await api.status(id)).stages).toEqual([])
    })

    socketScenario('over a socket, a URL past Node\'s header limit gets Node\'s 431 or the contract\'s 414, never a dropped connection', async (api, baseUrl) => {
      const id = await api.createRun()
      const response = await rawRequest(`${baseUrl}/${id}/status?pad=${'x'.repeat(20 * 1024)}`, { headers: { 'X-Webhook-Secret': SECRET } })
      expect([414, 431]).toContain(response.status)
      const near = await rawRequest(`${baseUrl}/${id}/status?pad=${'x'.repeat(9 * 1024)}`, { headers: { 'X-Webhook-Secret': SECRET } })
      expect(near.status).toBe(414)
      expect(near.headers['content-type']).toBe(PROBLEM_CONTENT_TYPE)
      expect(Problem.parse(JSON.parse(near.text)).code).toBe('uri_too_long')
    })
  })
}
