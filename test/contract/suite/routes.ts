/** Contract scenarios, routes: creating runs, the Python runner payloads, completion and status reads, the OpenAPI route. */
import { Validator } from '@seriousme/openapi-schema-validator'
import { createOpenApiDocument, CreateRunResponse } from 'pipeline-status-sdk'
import { describe, expect } from 'vitest'
import { makeCompleteRun, makeStageUpdate, PYTHON_RUNNER_PAYLOADS } from '../../support/fixtures.js'
import { ALL_STAGES_TO_4, expectProblem, PYTHON_RUN_CLOCK, uniqueRunId } from './harness.js'
import type { ContractContext } from './use-target.js'

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeRoutes({ name, scenario, completionsOf }: ContractContext): void {
  describe(`${name}: routes`, () => {
    scenario('GET /openapi.json serves the OpenAPI 3.1 document without a secret; HEAD too; other methods 405', async (api) => {
      const response = await api.send({ path: '/openapi.json', secret: null })
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toMatch(/^application\/json/)
      const document = (await response.json()) as Record<string, unknown>
      const validator = new Validator()
      expect(await validator.validate(document)).toEqual({ valid: true })
      expect(validator.version).toBe('3.1')
      // The server URL is the base path the document was read under.
      expect(document).toEqual(createOpenApiDocument({ basePath: '/api/pipeline' }))
      expect(document['servers']).toEqual([expect.objectContaining({ url: '/api/pipeline' })])

      const head = await api.send({ path: '/openapi.json', method: 'HEAD', secret: null })
      expect(head.status).toBe(200)
      expect(await head.text()).toBe('')
      const post = await api.send({ path: '/openapi.json', json: {} })
      expect(post.headers.get('allow')).toBe('GET, HEAD')
      await expectProblem(post, 405, 'method_not_allowed')
    })

    scenario('creates runs: 201 new (with or without an id), 200 for an existing id', async (api) => {
      const id = uniqueRunId()
      const created = await api.send({ path: '/runs', json: { id } })
      expect(created.status).toBe(201)
      expect(created.headers.get('content-type')).toMatch(/^application\/json/)
      expect(CreateRunResponse.parse(await created.json())).toMatchObject({ created: true, run: { id, status: 'PENDING' } })

      const again = await api.send({ path: '/runs', json: { id } })
      expect(again.status).toBe(200)
      expect(CreateRunResponse.parse(await again.json())).toMatchObject({ created: false, run: { id } })

      const generated = await api.send({ path: '/runs', json: {} })
      expect(generated.status).toBe(201)
      expect(CreateRunResponse.parse(await generated.json()).run.id).toMatch(/^[0-9a-f-]{36}$/)

      const empty = await api.send({ path: '/runs', method: 'POST', contentType: null })
      expect(empty.status).toBe(201)
      const emptyJson = await api.send({ path: '/runs', method: 'POST', body: '' })
      expect(emptyJson.status).toBe(201)
    })

    scenario('stores the Python runner payloads exactly and completes the run with the last stage', async (api) => {
      const id = await api.createRun()
      const processing = await api.stageOk(id, PYTHON_RUNNER_PAYLOADS.processing)
      expect(processing).toMatchObject({ outcome: 'applied', stage: { stageNumber: 1, status: 'PROCESSING' }, run: { status: 'PROCESSING' } })

      const json = await api.stageOk(id, PYTHON_RUNNER_PAYLOADS.completedJson)
      expect(json.stage).toMatchObject({
        status: 'COMPLETED',
        output: PYTHON_RUNNER_PAYLOADS.completedJson.output,
        completedAt: '2025-10-25T14:03:11.123Z',
      })
      for (const n of [2, 3, 4]) await api.stageOk(id, makeStageUpdate({ stageNumber: n, status: 'COMPLETED', output: `{"n": ${n}}` }))
      const last = await api.stageOk(id, PYTHON_RUNNER_PAYLOADS.completedMarkdown)
      expect(last.stage?.output).toBe(PYTHON_RUNNER_PAYLOADS.completedMarkdown.output)
      expect(last.run).toMatchObject({ status: 'COMPLETED', completedAt: '2025-10-25T14:09:58.000Z' })

      const status = await api.status(id)
      expect(status.run).toMatchObject({ id, status: 'COMPLETED', completionReceivedAt: null })
      expect(status.stages.map((s) => [s.stageNumber, s.stageName, s.status])).toEqual([
        [1, 'Input Processing', 'COMPLETED'],
        [2, 'Signal Amplification', 'COMPLETED'],
        [3, 'General Translation', 'COMPLETED'],
        [4, 'Brand Contextualization', 'COMPLETED'],
        [5, 'Opportunity Generation', 'COMPLETED'],
      ])
      expect(status.stages[0]?.output).toBe(PYTHON_RUNNER_PAYLOADS.completedJson.output)
    }, PYTHON_RUN_CLOCK)

    scenario('runs onRunCompleted once with the payload when /complete follows the last stage', async (api) => {
      const id = await api.createRun()
      for (const update of ALL_STAGES_TO_4) await api.stageOk(id, update)
      await api.stageOk(id, PYTHON_RUNNER_PAYLOADS.completedMarkdown)
      expect(completionsOf(id)).toEqual([])

      const first = await api.completeOk(id, PYTHON_RUNNER_PAYLOADS.complete)
      expect(first).toMatchObject({ outcome: 'applied', run: { status: 'COMPLETED' } })
      expect(first.run.completionReceivedAt).not.toBeNull()
      const again = await api.completeOk(id, PYTHON_RUNNER_PAYLOADS.complete)
      expect(again.outcome).toBe('duplicate')
      expect(completionsOf(id)).toHaveLength(1)
      expect(completionsOf(id)[0]?.payload).toMatchObject({
        opportunities: [{ title: 'Pastry pop-ups', score: 0.92 }],
        fullReportMarkdown: '# Report\n\nAll good.',
        stageOutputs: { '1': '{"count": 1}' },
      })
    })

    scenario('completes a run explicitly and answers a repeated /complete as a duplicate', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate())
      const done = await api.completeOk(id, makeCompleteRun({ status: 'CANCELLED', error: 'stopped by user' }))
      expect(done.run).toMatchObject({ status: 'CANCELLED', error: 'stopped by user' })
      expect((await api.completeOk(id, makeCompleteRun({ status: 'CANCELLED' }))).outcome).toBe('duplicate')
      expect(completionsOf(id)).toHaveLength(1)
    })

    scenario('reads status of a run with an id that needs URL encoding', async (api) => {
      const id = await api.createRun(`${uniqueRunId()}:a.b~c_d`)
      await api.stageOk(id, makeStageUpdate())
      const status = await api.status(id)
      expect(status.run.id).toBe(id)
      expect(status.stages).toHaveLength(1)
    })
  })
}
