/**
 * `runPipeline({ pipeline })` (docs/design.md, "Runs as a collection"): it creates the run in
 * that pipeline, checks its stage functions against the run's own catalogue from the create
 * answer, names the stages from it, and refuses with `CatalogueMismatchError` naming the
 * pipeline. First on the wire against a small fake server (the client's `fetch`), then against
 * the MSW mock configured with two pipelines (this part needs the server's `pipelines` option).
 */
import { setupServer } from 'msw/node'
import { CatalogueMismatchError, PrismaAPIClient, runPipeline, silentLogger } from 'pipeline-status-sdk/client'
import { createPipelineMock } from 'pipeline-status-sdk/msw'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fakePipelineServer as fakeServer } from './support/fake-pipeline-server.js'

const ORIGIN = 'http://pipelines.test'
const SECRET = 'pipelines-secret'

describe('runPipeline({ pipeline }) on the wire', () => {
  it('creates the run in the pipeline and names the stages from its catalogue, not the client\'s', async () => {
    const { client, bodies } = fakeServer('report')
    const summary = await runPipeline({ client, pipeline: 'report', runId: 'rp_1', tags: ['nightly'], metadata: { by: 'test' }, stages: [() => 'fetched', () => 'summed up'] })
    expect(summary).toMatchObject({ runId: 'rp_1', status: 'COMPLETED', delivered: true })
    expect(summary.stages.map((stage) => stage.stageName)).toEqual(['Fetch', 'Summarise'])
    expect(bodies[0]).toEqual({ path: '/api/pipeline/runs', body: { id: 'rp_1', pipeline: 'report', tags: ['nightly'], metadata: { by: 'test' } } })
    const updates = bodies.filter((entry) => entry.path.endsWith('/stage-update')).map((entry) => `${entry.body['stageNumber']} ${entry.body['stageName']} ${entry.body['status']}`)
    expect(updates).toEqual(['1 Fetch PROCESSING', '1 Fetch COMPLETED', '2 Summarise PROCESSING', '2 Summarise COMPLETED'])
    // Five stages in the client's catalogue, two in the run's: the run's second completes it.
    expect(bodies.at(-1)?.path).toBe('/api/pipeline/rp_1/complete')
  })

  it('picks a run id when none is given', async () => {
    const { client } = fakeServer('report')
    const summary = await runPipeline({ client, pipeline: 'report', stages: [() => 1, () => 2] })
    expect(summary.runId).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('refuses another number of stages, naming the pipeline, before any stage runs', async () => {
    const { client, bodies } = fakeServer('report')
    const attempt = runPipeline({ client, pipeline: 'report', runId: 'rp_3', stages: [() => 1, () => 2, () => 3] })
    await expect(attempt).rejects.toThrow(CatalogueMismatchError)
    await expect(attempt).rejects.toMatchObject({
      runnerStages: 3,
      serverStages: 2,
      pipeline: 'report',
      message:
        "Run rp_3: the runner has 3 stage(s) but the run's own catalogue (pipeline 'report') has 2, as the handlers' pipelines['report'] has now; " +
        "configure the same stages on both sides (the runner's stage functions and the handlers' pipelines['report'])",
    })
    expect(bodies.map((entry) => entry.path)).toEqual(['/api/pipeline/runs'])
  })

  it('says a run created before its pipeline changed keeps its own catalogue, and to create a new run for the new stages', async () => {
    // `old-report` exists (created: false) with the 2 stages snapshotted then; the pipeline now has 3.
    const { client, bodies } = fakeServer('report', { created: false })
    const attempt = runPipeline({ client, pipeline: 'report', runId: 'old-report', stages: [() => 1, () => 2, () => 3] })
    await expect(attempt).rejects.toMatchObject({
      name: 'CatalogueMismatchError',
      runnerStages: 3,
      serverStages: 2,
      message:
        "Run old-report: the runner has 3 stage(s) but the run's own catalogue (pipeline 'report') has 2, snapshotted when the run was created " +
        "(the run keeps it even if the handlers' pipelines['report'] changed since); to run other stages, create a new run, " +
        "which takes the handlers' pipelines['report'] as it is now; to run this one, give runPipeline 2 stage function(s)",
    })
    // Nothing written: the create, then the read of the existing run's stages (a restarted runner's attempts).
    expect(bodies.map((entry) => entry.path)).toEqual(['/api/pipeline/runs', '/api/pipeline/old-report/status'])
  })

  it('refuses a run that already exists in another pipeline', async () => {
    const { client, bodies } = fakeServer('ingest')
    const attempt = runPipeline({ client, pipeline: 'report', runId: 'rp_4', stages: [() => 1, () => 2] })
    await expect(attempt).rejects.toMatchObject({ name: 'CatalogueMismatchError', pipeline: 'ingest', expectedPipeline: 'report', message: expect.stringMatching(/^Run rp_4 is in the pipeline 'ingest', not 'report'/) })
    expect(bodies).toHaveLength(1)
  })

  it('checks a run created elsewhere in a non-default pipeline against that pipeline, from its status', async () => {
    const { client } = fakeServer('report')
    await client.createRun({ id: 'rp_5', pipeline: 'report' })
    await expect(runPipeline({ client, runId: 'rp_5', stages: [() => 1] })).rejects.toMatchObject({ name: 'CatalogueMismatchError', pipeline: 'report', serverStages: 2 })
  })
})

// Needs the server side of pipelines (the handlers' `pipelines` option): before it, the mock
// ignores the option and every run is in `default`.
describe('runPipeline({ pipeline }) against the MSW mock with two pipelines', () => {
  const pipelines = { pipelines: { report: [{ number: 1, name: 'Fetch' }, { number: 2, name: 'Summarise' }], ingest: [{ number: 1, name: 'Load' }] } }
  const mock = createPipelineMock({ baseUrl: ORIGIN, secret: SECRET, ...pipelines })
  const server = setupServer(...mock.handlers)
  beforeAll(() => server.listen({ onUnhandledFrame: 'error' }))
  afterAll(() => server.close())
  const client = () => new PrismaAPIClient({ baseUrl: ORIGIN, secret: SECRET, logger: silentLogger, heartbeatIntervalMs: 60_000 })

  it('runs a two-stage pipeline to COMPLETED, and the run records its pipeline', async () => {
    const summary = await runPipeline({ client: client(), pipeline: 'report', runId: 'mock_report', stages: [() => 'a', () => 'b'] })
    expect(summary.status).toBe('COMPLETED')
    const stored = await mock.getRun('mock_report')
    expect(stored?.run).toMatchObject({ pipeline: 'report', status: 'COMPLETED' })
    expect(stored?.stages.map((stage) => stage.stageName)).toEqual(['Fetch', 'Summarise'])
  })

  it('refuses a runner of the wrong size for the pipeline, and an unknown pipeline with the server\'s 400', async () => {
    await expect(runPipeline({ client: client(), pipeline: 'ingest', runId: 'mock_ingest', stages: [() => 'a', () => 'b'] })).rejects.toMatchObject({ name: 'CatalogueMismatchError', pipeline: 'ingest', serverStages: 1 })
    await expect(runPipeline({ client: client(), pipeline: 'nope', stages: [() => 'a'] })).rejects.toMatchObject({ name: 'StatusHttpError', status: 400 })
  })
})
