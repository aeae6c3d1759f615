/** Contract scenarios, authentication: what the handlers log about refused requests, and the authorize hook's own problems. */
import { HttpProblemError } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { makeStageUpdate } from '../../support/fixtures.js'
import { expectProblem, uniqueRunId } from './harness.js'
import type { ContractContext } from './use-target.js'

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeAuthentication({ name, scenario, withApi }: ContractContext): void {
  describe(`${name}: authentication`, () => {
    const capture = () => {
      const warned: [string, Record<string, unknown>][] = []
      const errors: unknown[][] = []
      const logger = {
        warn: (message: unknown, details: unknown) => void warned.push([String(message), details as Record<string, unknown>]),
        error: (...args: unknown[]) => void errors.push(args),
      }
      return { warned, errors, logger }
    }

    it('logs one line per refused request with method, path, run id, status and reason', async () => {
      const { warned, errors, logger } = capture()
      await withApi({ logger }, async (api) => {
        const id = await api.createRun()
        expect(warned).toEqual([])
        await expectProblem(await api.stage(id, makeStageUpdate(), { secret: 'wrong' }), 401, 'unauthorized')
        await expectProblem(await api.stage('no-such-run', makeStageUpdate()), 404, 'run_not_found')
        await expectProblem(await api.send({ path: '/nowhere/at/all', json: {} }), 404, 'route_not_found')
        await expectProblem(await api.stage('two\nlines', makeStageUpdate()), 404, 'run_not_found')
        expect(warned.map(([line]) => line)).toEqual([
          `pipeline-status: refused POST /api/pipeline/${id}/stage-update (run ${id}): 401 unauthorized: X-Webhook-Secret does not match`,
          'pipeline-status: refused POST /api/pipeline/no-such-run/stage-update (run no-such-run): 404 run_not_found: No pipeline run has this id',
          'pipeline-status: refused POST /api/pipeline/nowhere/at/all: 404 route_not_found: No pipeline-status route at this path',
          'pipeline-status: refused POST /api/pipeline/two%0Alines/stage-update (run two\\x0alines): 404 run_not_found: No pipeline run has this id',
        ])
        expect(warned[0]?.[1]).toMatchObject({ method: 'POST', path: `/api/pipeline/${id}/stage-update`, runId: id, status: 401, code: 'unauthorized' })
      })
      expect(errors).toEqual([])
    })

    it('a 503 logs one line with its cause, not a stack', async () => {
      const { warned, errors, logger } = capture()
      await withApi({ logger, store: 'unavailable' }, async (api) => {
        await expectProblem(await api.stage('r', makeStageUpdate()), 503, 'database_unavailable')
      })
      expect(errors).toEqual([])
      expect(warned).toHaveLength(1)
      const [line, details] = warned[0] as [string, Record<string, unknown>]
      expect(line).toMatch(/^pipeline-status: POST \/api\/pipeline\/r\/stage-update \(run r\): 503 database_unavailable: \S/)
      expect(line).not.toContain('\n')
      expect(Object.values(details).some((value) => value instanceof Error)).toBe(false)
      expect(details).toMatchObject({ status: 503, code: 'database_unavailable', cause: expect.any(String) })
    })

    scenario(
      "authorize gets one object; its 401 is the app's own problem, not the webhook secret's",
      async (api) => {
        const id = await api.createRun(`${uniqueRunId()}-mine`)
        const response = await api.getStatus(id, { secret: null })
        const problem = await expectProblem(response, 401, 'authentication_required')
        expect(problem).toMatchObject({ title: 'Authentication required', detail: 'Sign in first' })
        const ok = await api.getStatus(id, { secret: null, headers: { Cookie: 'session=alice' } })
        expect(ok.status).toBe(200)
        await expectProblem(await api.getStatus(`${id}-other`, { secret: null, headers: { Cookie: 'session=alice' } }), 403, 'forbidden')
      },
      {
        authorize: ({ request, runId, action, native }) => {
          expect(action).toBe('read')
          expect(native).toBeDefined()
          if (request.headers.get('cookie') !== 'session=alice') throw new HttpProblemError('unauthorized', { detail: 'Sign in first' })
          return runId?.endsWith('-mine') === true
        },
      },
    )
  })
}
