/** Contract scenarios, semantics over HTTP: ETags, late and duplicate updates, finished runs and stages. */
import { RunStatusResponse, StageUpdateResponse } from 'pipeline-status-sdk'
import { describe, expect } from 'vitest'
import { makeCompleteRun, makeStageUpdate } from '../../support/fixtures.js'
import { ALL_STAGES_TO_4, expectProblem, uniqueRunId } from './harness.js'
import type { ContractContext } from './use-target.js'

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeSemantics({ name, scenario, completionsOf }: ContractContext): void {
  describe(`${name}: semantics over HTTP`, () => {
    scenario('GET /status sends the run version as ETag; If-None-Match answers 304 until the run changes', async (api) => {
      const id = await api.createRun()
      const statusOf = async (ifNoneMatch?: string, secret?: string | null) => {
        const response = await api.getStatus(id, {
          ...(ifNoneMatch === undefined ? {} : { headers: { 'If-None-Match': ifNoneMatch } }),
          ...(secret === undefined ? {} : { secret }),
        })
        return { status: response.status, etag: response.headers.get('etag'), body: await response.text() }
      }
      const created = await statusOf()
      expect([created.status, created.etag]).toEqual([200, '"0"'])
      expect(await statusOf('"0"')).toEqual({ status: 304, etag: '"0"', body: '' })
      // Authentication comes first: a matching tag without the secret is still refused.
      expect((await statusOf('"0"', null)).status).toBe(401)

      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: 'working' }))
      const changed = await statusOf('"0"')
      expect([changed.status, changed.etag]).toEqual([200, '"1"'])
      expect(RunStatusResponse.parse(JSON.parse(changed.body)).stages).toHaveLength(1)
      // A duplicate or a refused update changes nothing, so the tag stays.
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: 'working' }))
      for (const tag of ['"1"', 'W/"1"', '"7", "1"', '*']) expect(await statusOf(tag)).toEqual({ status: 304, etag: '"1"', body: '' })

      await api.completeOk(id, makeCompleteRun({ status: 'FAILED', error: 'stopped' }))
      expect((await statusOf('"1"')).etag).toBe('"2"')
      expect((await api.stage(id, makeStageUpdate({ stageNumber: 2, status: 'CANCELLED' }))).status).toBe(409)
      expect((await statusOf('"2"')).status).toBe(304)
    })

    scenario('a late PROCESSING never wipes a COMPLETED stage', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate({ status: 'PROCESSING', output: 'working' }))
      await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: '{"result": 1}' }))
      const late = await api.stageOk(id, makeStageUpdate({ status: 'PROCESSING', output: '' }))
      expect(late).toMatchObject({ outcome: 'stale', stage: { status: 'COMPLETED', output: '{"result": 1}' } })
      expect((await api.status(id)).stages[0]).toMatchObject({ status: 'COMPLETED', output: '{"result": 1}' })
    })

    scenario('a CANCELLED stage cancels the run', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }))
      const cancelled = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'CANCELLED' }))
      expect(cancelled).toMatchObject({ outcome: 'applied', run: { status: 'CANCELLED' } })
      expect((await api.status(id)).run.completedAt).not.toBeNull()
    })

    scenario('concurrent updates of one run, each sent twice, serialise: every stage stored, the run finished once', async (api) => {
      const id = await api.createRun()
      const bodies = [1, 2, 3, 4, 5].flatMap((n) => [
        makeStageUpdate({ stageNumber: n, status: 'PROCESSING', output: '' }),
        makeStageUpdate({ stageNumber: n, status: 'COMPLETED', output: `out ${n}` }),
      ])
      const responses = await Promise.all([...bodies, ...bodies].map((body) => api.stage(id, body)))
      expect(responses.map((r) => r.status)).toEqual(responses.map(() => 200))
      const outcomes = await Promise.all(responses.map(async (r) => StageUpdateResponse.parse(await r.json()).outcome))
      // Each stage's COMPLETED is stored exactly once, whatever order the requests ran in.
      expect(outcomes.filter((o) => o === 'applied').length).toBeGreaterThanOrEqual(5)
      const { run, stages } = await api.status(id)
      expect(run.status).toBe('COMPLETED')
      expect(stages.map((s) => [s.stageNumber, s.status, s.output])).toEqual([1, 2, 3, 4, 5].map((n) => [n, 'COMPLETED', `out ${n}`]))
    })

    scenario('duplicates answer 200 with the stored state and change nothing', async (api) => {
      const id = await api.createRun()
      const update = makeStageUpdate({ status: 'COMPLETED', output: 'x', completedAt: '2025-10-25T14:03:11.123456Z' })
      const first = await api.stageOk(id, update)
      const before = await api.status(id)
      const again = await api.stageOk(id, update)
      expect(again.outcome).toBe('duplicate')
      expect(again.stage).toEqual(first.stage)
      expect(await api.status(id)).toEqual(before)
    })

    scenario('FAILED after the run completed answers 409 run_finished and changes nothing', async (api) => {
      const id = await api.createRun()
      for (const update of [...ALL_STAGES_TO_4.slice(0, 3)]) await api.stageOk(id, update)
      await api.stageOk(id, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED', output: 'done' }))
      const before = await api.status(id)
      const problem = await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber: 4, status: 'FAILED' })), 409, 'run_finished')
      expect(problem.detail).toContain('COMPLETED')
      expect(problem.detail).toContain('FAILED')
      expect(await api.status(id)).toEqual(before)
    })

    scenario('a late forward update that agrees with the outcome is stored', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED', output: 'five' }))
      const late = await api.stageOk(id, makeStageUpdate({ stageNumber: 4, status: 'COMPLETED', output: 'four' }))
      expect(late).toMatchObject({ outcome: 'applied', stage: { output: 'four' }, run: { status: 'COMPLETED' } })
    })

    scenario('/complete COMPLETED cannot overwrite FAILED or CANCELLED', async (api) => {
      const failed = await api.createRun()
      await api.stageOk(failed, makeStageUpdate({ stageNumber: 3, status: 'FAILED', output: 'boom' }))
      const failedBefore = await api.status(failed)
      const p1 = await expectProblem(await api.complete(failed, makeCompleteRun()), 409, 'run_finished')
      expect(p1.detail).toMatch(/FAILED.*COMPLETED/)
      expect(await api.status(failed)).toEqual(failedBefore)

      const cancelled = await api.createRun()
      await api.completeOk(cancelled, makeCompleteRun({ status: 'CANCELLED' }))
      const cancelledBefore = await api.status(cancelled)
      await expectProblem(await api.complete(cancelled, makeCompleteRun()), 409, 'run_finished')
      expect(await api.status(cancelled)).toEqual(cancelledBefore)
      expect(completionsOf(failed)).toEqual([])
      expect(completionsOf(cancelled)).toHaveLength(1)
    })

    scenario('a finished stage cannot change its final status: 409 stage_finished', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED' }))
      const problem = await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber: 2, status: 'FAILED' })), 409, 'stage_finished')
      expect(problem.detail).toMatch(/Stage 2 is COMPLETED/)
    })

    scenario('unknown runs answer 404 run_not_found on every run route', async (api) => {
      const id = uniqueRunId('missing')
      await expectProblem(await api.stage(id, makeStageUpdate()), 404, 'run_not_found')
      await expectProblem(await api.complete(id, makeCompleteRun()), 404, 'run_not_found')
      await expectProblem(await api.getStatus(id), 404, 'run_not_found')
      await expectProblem(await api.getStatus('bad\u0000id'), 404, 'run_not_found')
    })
  })
}
