/**
 * Contract scenarios, pipelines: a run records its pipeline and a snapshot of its catalogue, and
 * every rule uses the run's own (docs/design.md, "Runs as a collection").
 */
import { CreateRunResponse, DEFAULT_STAGES, defineStages, type StageCatalogue } from 'pipeline-status-sdk'
import type { RunState, Store } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { makeStageUpdate } from '../../support/fixtures.js'
import { type Api, expectProblem, uniqueRunId } from './harness.js'
import type { ContractContext } from './use-target.js'

const REPORT = defineStages(['Fetch', 'Summarise', 'Publish'])
const INGEST = defineStages(['Download', 'Load'])
const PIPELINES = { report: REPORT, ingest: INGEST }

/** A catalogue as the answers send it. */
const entries = (stages: StageCatalogue) => stages.map((stage) => ({ stageNumber: stage.number, stageName: stage.name }))

/** Creates a run of `pipeline` and returns the answer. */
async function createOf(api: Api, pipeline: string | undefined, id = uniqueRunId(pipeline ?? 'default')): Promise<CreateRunResponse> {
  const response = await api.send({ path: '/runs', json: pipeline === undefined ? { id } : { id, pipeline } })
  expect(response.status).toBe(201)
  return CreateRunResponse.parse(await response.json())
}

/** Every stage of `stages` COMPLETED in order; returns the run as the last answer has it. */
async function completeAll(api: Api, runId: string, stages: StageCatalogue) {
  let last
  for (const stage of stages) {
    last = await api.stageOk(runId, makeStageUpdate({ stageNumber: stage.number, stageName: stage.name, status: 'COMPLETED', output: `out ${stage.number}` }))
  }
  return last?.run
}

/** A run as an app writes it with its own Prisma client: no catalogue of its own. */
function bareRun(id: string, pipeline: string): RunState {
  const now = new Date()
  return {
    id,
    status: 'PENDING',
    error: null,
    completedAt: null,
    completionReceivedAt: null,
    createdAt: now,
    updatedAt: now,
    pipeline,
    catalogue: null,
    tags: [],
    metadata: {},
  }
}

const seedRun = (run: RunState) => async (store: Store<unknown>) => void (await store.insertRun(run))

/** Registers this block of the contract suite for one target (see index.ts). */
export function describePipelines({ name, scenario, withApi }: ContractContext): void {
  describe(`${name}: pipelines`, () => {
    scenario(
      'a run records its pipeline and its catalogue, and completes at its own last stage',
      async (api) => {
        const created = await createOf(api, 'report')
        expect(created.run.pipeline).toBe('report')
        expect(created.catalogue).toEqual(entries(REPORT))
        const run = await completeAll(api, created.run.id, REPORT)
        expect(run?.status).toBe('COMPLETED')
        // The bug: a COMPLETED three-stage run must never read as five stages with 4–5 PENDING.
        const status = await api.status(created.run.id)
        expect(status.run.status).toBe('COMPLETED')
        expect(status.catalogue).toEqual(entries(REPORT))
        expect(status.stages.map((stage) => [stage.stageNumber, stage.status])).toEqual([
          [1, 'COMPLETED'],
          [2, 'COMPLETED'],
          [3, 'COMPLETED'],
        ])

        // Beside it, a run without a pipeline is `default` (five stages): stage 3 does not end it.
        const plain = await createOf(api, undefined)
        expect(plain.run.pipeline).toBe('default')
        expect(plain.catalogue).toEqual(entries(DEFAULT_STAGES))
        const third = await api.stageOk(plain.run.id, makeStageUpdate({ stageNumber: 3, status: 'COMPLETED' }))
        expect(third.run.status).toBe('PROCESSING')
        const ingest = await createOf(api, 'ingest')
        expect((await completeAll(api, ingest.run.id, INGEST))?.status).toBe('COMPLETED')
        expect((await api.status(ingest.run.id)).catalogue).toEqual(entries(INGEST))
      },
      { pipelines: PIPELINES },
    )

    scenario(
      "stage numbers outside the run's own catalogue are 400 naming stageNumber, for updates and heartbeats",
      async (api) => {
        const ingest = await createOf(api, 'ingest')
        // The run's own N in the words, whichever way the number misses 1..2.
        for (const stageNumber of [3, 0, 1.5, '1']) {
          const refused = await expectProblem(await api.stage(ingest.run.id, { ...makeStageUpdate(), stageNumber }), 400, 'validation_failed')
          expect(refused.errors).toEqual([{ field: 'stageNumber', message: 'stageNumber must be a whole number from 1 to 2' }])
          const beat = await expectProblem(await api.heartbeat(ingest.run.id, { stageNumber }), 400, 'validation_failed')
          expect(beat.errors).toEqual(refused.errors)
        }
        // The same number is inside a five-stage run's catalogue.
        const plain = await createOf(api, undefined)
        await api.stageOk(plain.run.id, makeStageUpdate({ stageNumber: 3 }))
        await api.heartbeatOk(plain.run.id, { stageNumber: 5 })
      },
      { pipelines: PIPELINES },
    )

    scenario(
      'an unknown pipeline is 400 naming pipeline and listing the configured ones',
      async (api) => {
        const id = uniqueRunId()
        const problem = await expectProblem(await api.send({ path: '/runs', json: { id, pipeline: 'reprot' } }), 400, 'validation_failed')
        expect(problem.errors).toHaveLength(1)
        expect(problem.errors?.[0]?.field).toBe('pipeline')
        for (const known of ['default', 'report', 'ingest']) expect(problem.errors?.[0]?.message).toContain(`"${known}"`)
        await expectProblem(await api.getStatus(id), 404, 'run_not_found')
        const empty = await expectProblem(await api.send({ path: '/runs', json: { pipeline: '' } }), 400, 'validation_failed')
        expect(empty.errors?.map((error) => error.field)).toEqual(['pipeline'])
      },
      { pipelines: PIPELINES },
    )

    scenario(
      'the single stages option is the pipeline default',
      async (api) => {
        const created = await createOf(api, undefined)
        expect(created.catalogue).toEqual(entries(INGEST))
        expect((await completeAll(api, created.run.id, INGEST))?.status).toBe('COMPLETED')
        const named = await createOf(api, 'default')
        expect(named.catalogue).toEqual(entries(INGEST))
      },
      { stages: INGEST },
    )

    // The next three start their own handlers with withApi, so no scenario target runs beside
    // them (in-process, msw would hand each request to both).
    it("changing a pipeline's stages does not rewrite old runs", async () => {
      const storeKey = uniqueRunId('store')
      const id = uniqueRunId('old')
      await withApi({ pipelines: PIPELINES, storeKey }, async (api) => {
        await createOf(api, 'report', id)
        await api.stageOk(id, makeStageUpdate({ stageNumber: 1, stageName: 'Fetch', status: 'COMPLETED' }))
      })
      const shorter = defineStages(['Fetch', 'Publish'])
      await withApi({ pipelines: { report: shorter }, storeKey }, async (api) => {
        expect((await api.status(id)).catalogue).toEqual(entries(REPORT))
        // Stage 2 of the old run does not complete it; its own stage 3 does.
        expect((await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED' }))).run.status).toBe('PROCESSING')
        expect((await api.stageOk(id, makeStageUpdate({ stageNumber: 3, status: 'COMPLETED' }))).run.status).toBe('COMPLETED')
        const fresh = await createOf(api, 'report')
        expect(fresh.catalogue).toEqual(entries(shorter))
        await expectProblem(await api.stage(fresh.run.id, makeStageUpdate({ stageNumber: 3 })), 400, 'validation_failed')
      })
    })

    it("a run without a catalogue follows its pipeline's current one, stored by its first applied update", async () => {
      const storeKey = uniqueRunId('store')
      const id = uniqueRunId('bare')
      await withApi({ pipelines: PIPELINES, storeKey, seed: seedRun(bareRun(id, 'report')) }, async (api) => {
        expect((await api.status(id)).catalogue).toEqual(entries(REPORT))
        await api.stageOk(id, makeStageUpdate({ stageNumber: 1, stageName: 'Fetch', status: 'PROCESSING' }))
      })
      // The update stored the three stages of then: a later change of the pipeline leaves the run alone.
      await withApi({ pipelines: { report: defineStages(['Only']) }, storeKey }, async (api) => {
        expect((await api.status(id)).catalogue).toEqual(entries(REPORT))
        // Under the one-stage catalogue of now, stage 1 would complete the run and stage 3 be refused.
        expect((await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }))).run.status).toBe('PROCESSING')
        expect((await api.stageOk(id, makeStageUpdate({ stageNumber: 3, status: 'COMPLETED' }))).run.status).toBe('COMPLETED')
      })
    })

    it('a stage update of a run without a catalogue whose pipeline is not configured is 409 unknown_pipeline', async () => {
      const id = uniqueRunId('retired')
      await withApi({ pipelines: PIPELINES, seed: seedRun(bareRun(id, 'retired')) }, async (api) => {
        const problem = await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber: 1 })), 409, 'unknown_pipeline')
        expect(problem.detail).toContain('"retired"')
        const status = await api.status(id)
        expect(status.stages).toEqual([])
        expect(status.run.status).toBe('PENDING')
        expect(status.catalogue).toBeUndefined()
        // Its labels and its cancellation need no catalogue.
        await api.cancelOk(id, { reason: 'pipeline retired' })
      })
    })
  })
}
