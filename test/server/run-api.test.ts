/**
 * The server API of runs as a collection (`createRun`, `updateRunTags`, `updateRunMetadata`) on a
 * store, with the rules of the routes, and the handlers then following the run's own stages.
 */
import { defineStages, isPayloadValidationError } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers, createRun, MemoryStore, updateRunMetadata, updateRunTags } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { makeStageUpdate } from '../support/fixtures.js'

const pipelines = { report: defineStages(['Fetch', 'Publish']) }

/** The field errors of what `fn` throws, when it throws a PayloadValidationError. */
async function refusedFields(fn: () => Promise<unknown>): Promise<string[]> {
  const error = await fn().then(
    () => undefined,
    (thrown: unknown) => thrown,
  )
  if (!isPayloadValidationError(error)) throw new Error(`expected a PayloadValidationError, got ${String(error)}`)
  return error.fieldErrors.map((field) => field.field)
}

describe('the server API', () => {
  it('creates a run with the rules of POST /runs, and the handlers use its own catalogue', async () => {
    const store = new MemoryStore()
    const created = await createRun(store, { id: 'api-1', pipeline: 'report', tags: ['x', 'x'], metadata: { by: 'job' }, pipelines })
    expect(created).toMatchObject({ created: true, run: { id: 'api-1', pipeline: 'report', tags: ['x'], metadata: { by: 'job' } } })
    expect(created.catalogue).toEqual([
      { stageNumber: 1, stageName: 'Fetch' },
      { stageNumber: 2, stageName: 'Publish' },
    ])
    expect((await createRun(store, { id: 'api-1', pipelines })).created).toBe(false)
    expect(await refusedFields(() => createRun(store, { pipeline: 'nope', pipelines }))).toEqual(['pipeline'])
    expect(await refusedFields(() => createRun(store, { tags: [''] }))).toEqual(['tags.0'])

    const handlers = createPipelineStatusHandlers({ store, secret: 's', pipelines })
    const response = await handlers.stageUpdate(
      new Request('http://app.test/api/pipeline/api-1/stage-update', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': 's' },
        body: JSON.stringify(makeStageUpdate({ stageNumber: 2, status: 'COMPLETED' })),
      }),
      'api-1',
    )
    expect(((await response.json()) as { run: { status: string } }).run.status).toBe('COMPLETED')
  })

  it('changes tags and metadata with the rules of their routes', async () => {
    const store = new MemoryStore()
    await createRun(store, { id: 'api-2', tags: ['a'] })
    expect(await updateRunTags(store, 'api-2', { add: ['b'], remove: ['a'] })).toMatchObject({ tags: ['b'] })
    expect(await updateRunMetadata(store, 'api-2', { a: { b: 1 } })).toMatchObject({ metadata: { a: { b: 1 } } })
    expect(await updateRunMetadata(store, 'api-2', { a: { b: null, c: 2 } })).toMatchObject({ metadata: { a: { c: 2 } } })
    expect(await refusedFields(() => updateRunTags(store, 'api-2', { add: Array.from({ length: 20 }, (_, i) => `t${i}`) }))).toEqual(['tags'])
    expect(await refusedFields(() => updateRunMetadata(store, 'api-2', { big: 'x'.repeat(17_000) }))).toEqual(['metadata'])
    expect(await updateRunTags(store, 'missing', { add: ['a'] })).toBeNull()
  })
})
