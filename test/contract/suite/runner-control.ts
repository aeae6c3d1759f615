/** Contract scenarios, runner control: heartbeats, progress, cancel, authorize for the web app, the catalogue, onRunEnded. */
import { CreateRunResponse, DEFAULT_STAGES, MAX_PROGRESS_MESSAGE_LENGTH } from 'pipeline-status-sdk'
import { type AuthorizeInput, HttpProblemError } from 'pipeline-status-sdk/server'
import { describe, expect } from 'vitest'
import { makeCompleteRun, makeStageUpdate } from '../../support/fixtures.js'
import { ALL_STAGES_TO_4, Api, expectProblem, uniqueRunId } from './harness.js'
import type { ContractContext } from './use-target.js'

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeRunnerControl({ name, scenario }: ContractContext): void {
  describe(`${name}: runner control`, () => {
    const CATALOGUE = DEFAULT_STAGES.map((stage) => ({ stageNumber: stage.number, stageName: stage.name }))
    const etagOf = async (api: Api, id: string) => (await api.getStatus(id)).headers.get('etag')

    scenario('a heartbeat records activity only: no status change, no new version; unknown run 404, no secret 401', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate())
      const before = await api.status(id)
      const etag = await etagOf(api, id)

      const bare = await api.heartbeatOk(id)
      expect(bare).toMatchObject({ outcome: 'recorded', stage: null, run: { id, status: 'PROCESSING', error: null } })
      expect(bare.run.lastActivityAt).not.toBeNull()
      const named = await api.heartbeatOk(id, { stageNumber: 1, intervalMs: 10_000 })
      expect(named).toMatchObject({ outcome: 'recorded', stage: { stageNumber: 1, status: 'PROCESSING' }, run: { heartbeatIntervalMs: 10_000 } })
      expect((await api.heartbeatOk(id, {})).run.heartbeatIntervalMs).toBe(10_000)

      const after = await api.status(id)
      expect(after.run).toMatchObject({ status: 'PROCESSING', updatedAt: before.run.updatedAt, heartbeatIntervalMs: 10_000 })
      expect(after.stages).toEqual(before.stages)
      expect(await etagOf(api, id)).toBe(etag)

      await expectProblem(await api.heartbeat('no-such-run'), 404, 'run_not_found')
      await expectProblem(await api.heartbeat(id, {}, { secret: null }), 401, 'unauthorized')
      await expectProblem(await api.heartbeat(id, { intervalMs: 10 }), 400, 'validation_failed')
    })

    scenario('progress is stored on the stage; the highest seq wins, not the last to arrive; a final status keeps it', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate())
      const etag = await etagOf(api, id)

      const stored = await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 2, current: 20, total: 80, message: 'batch 2' } })
      expect(stored).toMatchObject({ outcome: 'applied', stage: { progress: { seq: 2, current: 20, total: 80, message: 'batch 2' } } })
      expect(await etagOf(api, id)).not.toBe(etag)
      expect((await api.status(id)).stages[0]?.progress).toEqual({ seq: 2, current: 20, total: 80, message: 'batch 2' })

      const older = await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 1, percent: 10 } })
      expect(older).toMatchObject({ outcome: 'stale', stage: { progress: { seq: 2 } } })
      expect((await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 2, percent: 99 } })).outcome).toBe('duplicate')

      // A PROCESSING update that only changes the progress is applied, not a duplicate.
      const viaUpdate = await api.stageOk(id, makeStageUpdate({ progress: { seq: 3, percent: 75 } }))
      expect(viaUpdate).toMatchObject({ outcome: 'applied', stage: { status: 'PROCESSING', progress: { seq: 3, percent: 75 } } })
      // One rule on both routes: older progress (a lower seq) is stale, the same seq again a duplicate.
      const late = await api.stageOk(id, makeStageUpdate({ progress: { seq: 1, percent: 5 } }))
      expect(late).toMatchObject({ outcome: 'stale', stage: { progress: { seq: 3, percent: 75 } } })
      const again = await api.stageOk(id, makeStageUpdate({ progress: { seq: 3, percent: 75 } }))
      expect(again).toMatchObject({ outcome: 'duplicate', stage: { progress: { seq: 3, percent: 75 } } })
      const lateBeat = await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 2, percent: 50 } })
      expect(lateBeat).toMatchObject({ outcome: 'stale', stage: { progress: { seq: 3, percent: 75 } } })

      const done = await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'ok' }))
      expect(done.stage?.progress).toEqual({ seq: 3, percent: 75 })
      expect((await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 9, percent: 100 } })).outcome).toBe('stale')
      expect((await api.status(id)).stages[0]?.progress).toEqual({ seq: 3, percent: 75 })
    })

    scenario('refuses invalid progress with 400 naming the field, and stores nothing', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate())
      const before = await api.status(id)
      const cases: Array<[unknown, string]> = [
        [{ stageNumber: 1, progress: { seq: 1, percent: 150 } }, 'progress.percent'],
        [{ stageNumber: 1, progress: { seq: -1 } }, 'progress.seq'],
        [{ stageNumber: 1, progress: { percent: 5 } }, 'progress.seq'],
        [{ stageNumber: 1, progress: { seq: 1, current: 5, total: 4 } }, 'progress.current'],
        [{ stageNumber: 1, progress: { seq: 1, message: 'x'.repeat(MAX_PROGRESS_MESSAGE_LENGTH + 1) } }, 'progress.message'],
        [{ stageNumber: 1, progress: { seq: 1, message: 'nul \u0000' } }, 'progress.message'],
        [{ progress: { seq: 1 } }, 'stageNumber'],
        [{ stageNumber: 6 }, 'stageNumber'],
      ]
      for (const [body, field] of cases) {
        const problem = await expectProblem(await api.heartbeat(id, body), 400, 'validation_failed')
        expect(problem.errors?.map((error) => error.field)).toContain(field)
      }
      const onFinal = await expectProblem(
        await api.stage(id, makeStageUpdate({ status: 'COMPLETED', progress: { seq: 1 } })),
        400,
        'validation_failed',
      )
      expect(onFinal.errors?.map((error) => error.field)).toEqual(['progress'])
      expect(await api.status(id)).toEqual(before)
    })

    scenario('cancels a running run and its PROCESSING stage in one write; a second cancel is a duplicate', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED' }))
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, output: 'working' }))
      const cancelled = await api.cancelOk(id, { reason: 'stopped by the user' })
      expect(cancelled).toMatchObject({ outcome: 'applied', run: { id, status: 'CANCELLED', error: 'stopped by the user' } })
      expect(cancelled.run.completedAt).not.toBeNull()
      const status = await api.status(id)
      expect(status.run).toEqual(cancelled.run)
      expect(status.stages.map((stage) => [stage.stageNumber, stage.status, stage.output])).toEqual([
        [1, 'COMPLETED', null],
        [2, 'CANCELLED', 'working'],
      ])

      const again = await api.cancelOk(id, { reason: 'twice' })
      expect(again).toMatchObject({ outcome: 'duplicate', run: { status: 'CANCELLED', error: 'stopped by the user' } })
      // The runner learns at its next report: every answer carries the run's status and reason.
      const heartbeat = await api.heartbeatOk(id, { stageNumber: 2 })
      expect(heartbeat.run).toMatchObject({ status: 'CANCELLED', error: 'stopped by the user' })
      const beforeBeat = await api.status(id)
      // A finished run never changes: a late heartbeat writes nothing and answers stale with the run as stored.
      const lateBeat = await api.heartbeatOk(id, { stageNumber: 2, intervalMs: 1000 })
      expect(lateBeat).toEqual({ outcome: 'stale', run: beforeBeat.run, stage: beforeBeat.stages[1] })
      expect(lateBeat.run.heartbeatIntervalMs ?? null).toBeNull()
      expect(await api.status(id)).toEqual(beforeBeat)
      const update = await api.stageOk(id, makeStageUpdate({ stageNumber: 3 }))
      expect(update).toMatchObject({ outcome: 'stale', run: { status: 'CANCELLED', error: 'stopped by the user' } })
      // The cancelled stage keeps CANCELLED; a stage without a row is stored as reported when it
      // agrees with the cancel (COMPLETED or CANCELLED), and the run stays CANCELLED.
      await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED' })), 409, 'stage_finished')
      expect((await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'CANCELLED' }))).outcome).toBe('duplicate')
      const late = await api.stageOk(id, makeStageUpdate({ stageNumber: 3, status: 'COMPLETED', output: 'late' }))
      expect(late).toMatchObject({ outcome: 'applied', stage: { stageNumber: 3, status: 'COMPLETED', output: 'late' }, run: { status: 'CANCELLED' } })
      await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber: 4, status: 'FAILED' })), 409, 'run_finished')
      expect((await api.status(id)).stages.map((stage) => [stage.stageNumber, stage.status])).toEqual([
        [1, 'COMPLETED'],
        [2, 'CANCELLED'],
        [3, 'COMPLETED'],
      ])
    })

    scenario('refuses to cancel a COMPLETED or FAILED run (409, nothing changes) and an unknown run (404)', async (api) => {
      const completed = await api.createRun()
      for (const update of ALL_STAGES_TO_4) await api.stageOk(completed, update)
      await api.stageOk(completed, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED' }))
      const failed = await api.createRun()
      await api.stageOk(failed, makeStageUpdate({ status: 'FAILED', output: 'boom' }))
      for (const id of [completed, failed]) {
        const before = await api.status(id)
        await expectProblem(await api.cancel(id, { reason: 'too late' }), 409, 'run_finished')
        expect(await api.status(id)).toEqual(before)
      }
      await expectProblem(await api.cancel('no-such-run'), 404, 'run_not_found')
    })

    scenario('a cancel is JSON only (415 otherwise), needs the secret without authorize (401), and validates its reason', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate())
      await expectProblem(
        await api.send({ path: `/${id}/cancel`, body: 'reason=forged', contentType: 'application/x-www-form-urlencoded' }),
        415,
        'unsupported_media_type',
      )
      await expectProblem(await api.send({ path: `/${id}/cancel`, body: '{}', contentType: 'text/plain' }), 415, 'unsupported_media_type')
      await expectProblem(await api.send({ path: `/${id}/cancel`, method: 'POST', contentType: null }), 415, 'unsupported_media_type')
      await expectProblem(await api.cancel(id, {}, { secret: null }), 401, 'unauthorized')
      const problem = await expectProblem(await api.cancel(id, { reason: 42 }), 400, 'validation_failed')
      expect(problem.errors?.map((error) => error.field)).toEqual(['reason'])
      expect((await api.status(id)).run.status).toBe('PROCESSING')
      const allowed = await api.send({ path: `/${id}/cancel`, method: 'GET' })
      expect(allowed.status).toBe(405)
    })

    const authorized: AuthorizeInput<unknown>[] = []
    scenario(
      "a cancel from the web app is authorized by authorize with action 'cancel'; a form post never reaches it",
      async (api) => {
        authorized.length = 0
        const mine = await api.createRun(`${uniqueRunId()}-mine`)
        await api.stageOk(mine, makeStageUpdate())
        const session = { secret: null, headers: { Cookie: 'session=alice' } }
        await expectProblem(
          await api.send({ path: `/${mine}/cancel`, body: 'reason=x', contentType: 'application/x-www-form-urlencoded', ...session }),
          415,
          'unsupported_media_type',
        )
        expect(authorized).toEqual([])
        const cancelled = await api.cancelOk(mine, { reason: 'from the page' }, session)
        expect(cancelled.run).toMatchObject({ status: 'CANCELLED', error: 'from the page' })
        expect(authorized.map((input) => [input.runId, input.action])).toEqual([[mine, 'cancel']])

        const other = await api.createRun(`${uniqueRunId()}-theirs`)
        await expectProblem(await api.cancel(other, {}, session), 403, 'forbidden')
        await expectProblem(await api.cancel(other, {}, { secret: null }), 401, 'authentication_required')
        expect((await api.status(other)).run.status).toBe('PENDING')
        // The webhook secret still works without asking the hook.
        authorized.length = 0
        expect((await api.cancelOk(other)).outcome).toBe('applied')
        expect(authorized).toEqual([])
      },
      {
        authorize: (input) => {
          authorized.push(input)
          if (input.request.headers.get('cookie') !== 'session=alice') throw new HttpProblemError('unauthorized', { detail: 'Sign in first' })
          return input.action === 'cancel' && input.runId.endsWith('-mine')
        },
      },
    )

    scenario('the create-run and status answers carry the stage catalogue', async (api) => {
      const created = await api.send({ path: '/runs', json: { id: uniqueRunId() } })
      const body = CreateRunResponse.parse(await created.json())
      expect(body.catalogue).toEqual(CATALOGUE)
      expect((await api.status(body.run.id)).catalogue).toEqual(CATALOGUE)
    })

    const ended: Array<{ runId: string; how: string; status: string }> = []
    const endedOf = (runId: string) => ended.filter((entry) => entry.runId === runId).map((entry) => [entry.how, entry.status])
    scenario(
      'onRunEnded runs once per run, however it ended: last stage, a failed stage, cancel, /complete',
      async (api) => {
        const last = await api.createRun()
        for (const update of ALL_STAGES_TO_4) await api.stageOk(last, update)
        await api.stageOk(last, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED' }))
        await api.stageOk(last, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED' }))
        await api.completeOk(last, makeCompleteRun())
        expect(endedOf(last)).toEqual([['last_stage_completed', 'COMPLETED']])

        const failed = await api.createRun()
        await api.stageOk(failed, makeStageUpdate({ status: 'FAILED', output: 'boom' }))
        await api.completeOk(failed, makeCompleteRun({ status: 'FAILED' }))
        expect(endedOf(failed)).toEqual([['stage_failed', 'FAILED']])

        const cancelled = await api.createRun()
        await api.stageOk(cancelled, makeStageUpdate())
        await api.cancelOk(cancelled)
        await api.cancelOk(cancelled)
        expect(endedOf(cancelled)).toEqual([['cancelled', 'CANCELLED']])

        const explicit = await api.createRun()
        await api.stageOk(explicit, makeStageUpdate())
        await api.completeOk(explicit, makeCompleteRun({ status: 'FAILED', error: 'gave up' }))
        await api.stageOk(explicit, makeStageUpdate({ status: 'FAILED' }))
        expect(endedOf(explicit)).toEqual([['completed_explicitly', 'FAILED']])
      },
      { onRunEnded: ({ run, how }) => void ended.push({ runId: run.id, how, status: run.status }) },
    )
  })
}
