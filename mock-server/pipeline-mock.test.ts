import { setupServer } from 'msw/node'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { RunStatusResponse, StageUpdateResponse } from '../src/contract/records.js'
import { makeStageUpdate } from '../test/support/fixtures.js'
import { MemoryStore } from '../src/core/memory-store.js'
import { defineStages } from '../src/contract/stages.js'
import { createPipelineStatusHandlers } from '../src/server/handlers.js'
import { FaultRegistry } from './faults.js'
import { createPipelineMock } from './pipeline-mock.js'

const ORIGIN = 'http://app.test'
const BASE = `${ORIGIN}/api/pipeline`
const SECRET = 'mock-test-secret'
const mock = createPipelineMock({ baseUrl: ORIGIN, secret: SECRET })
const server = setupServer(...mock.handlers)

beforeAll(() => server.listen({ onUnhandledFrame: 'error' }))
afterEach(() => mock.reset())
afterAll(() => server.close())

const post = (path: string, body: unknown, secret = SECRET) =>
  fetch(`${BASE}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': secret },
    body: JSON.stringify(body),
  })

describe('createPipelineMock', () => {
  it('creates and reads runs directly, as the routes would answer', async () => {
    const run = await mock.createRun('r1')
    expect(run).toMatchObject({ id: 'r1', status: 'PENDING' })
    expect((await post('/r1/stage-update', makeStageUpdate())).status).toBe(200)
    expect(await mock.getRun('r1')).toMatchObject({ run: { status: 'PROCESSING' }, stages: [{ stageNumber: 1 }] })
    expect(await mock.getRun('nope')).toBeUndefined()
  })

  it("takes pipelines: runs created directly or auto-created follow their own pipeline's stages", async () => {
    const piped = createPipelineMock({ baseUrl: ORIGIN, secret: SECRET, autoCreateRuns: true, pipelines: { report: defineStages(['Fetch', 'Publish']) } })
    const run = await piped.createRun({ id: 'p1', pipeline: 'report', tags: ['a', 'a'], metadata: { by: 'test' } })
    expect(run).toMatchObject({ id: 'p1', pipeline: 'report', tags: ['a'], metadata: { by: 'test' } })
    expect((await piped.getRun('p1'))?.catalogue).toEqual([
      { stageNumber: 1, stageName: 'Fetch' },
      { stageNumber: 2, stageName: 'Publish' },
    ])
    await expect(piped.createRun({ pipeline: 'nope' })).rejects.toThrow(/pipeline/)
    const stage2 = new Request(`${BASE}/auto/stage-update`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': SECRET },
      body: JSON.stringify(makeStageUpdate({ stageNumber: 2, status: 'COMPLETED' })),
    })
    expect((await piped.fetch(stage2))?.status).toBe(200)
    expect((await piped.getRun('auto'))?.run).toMatchObject({ pipeline: 'default', status: 'PROCESSING' })
    expect((await piped.getRun('auto'))?.catalogue).toHaveLength(5)
  })

  it('records every request with its route, run, headers, body and answer', async () => {
    await mock.createRun('r2')
    await post('/r2/stage-update', makeStageUpdate(), 'wrong')
    expect(mock.requests).toEqual([
      expect.objectContaining({
        method: 'POST',
        route: 'stageUpdate',
        runId: 'r2',
        body: JSON.stringify(makeStageUpdate()),
        status: 401,
        headers: expect.objectContaining({ 'x-webhook-secret': 'wrong' }),
      }),
    ])
  })

  it('fails the first N calls of a route with a status and Retry-After, then lets calls through', async () => {
    await mock.createRun('r3')
    mock.fail('stageUpdate', { status: 503, retryAfterSeconds: 2, times: 2 })
    for (let i = 0; i < 2; i++) {
      const failed = await post('/r3/stage-update', makeStageUpdate())
      expect(failed.status).toBe(503)
      expect(failed.headers.get('retry-after')).toBe('2')
      expect(await failed.json()).toMatchObject({ code: 'database_unavailable', status: 503 })
    }
    expect((await post('/r3/stage-update', makeStageUpdate())).status).toBe(200)
    // Faults never touch stored data: only the third call was stored.
    expect(mock.requests.map((r) => r.status)).toEqual([503, 503, 200])
    expect((await mock.getRun('r3'))?.stages).toHaveLength(1)
  })

  it('faults one route without touching the others, and `*` faults them all', async () => {
    await mock.createRun('r4')
    mock.fail('complete', { status: 500 })
    expect((await post('/r4/stage-update', makeStageUpdate())).status).toBe(200)
    expect((await post('/r4/complete', { status: 'COMPLETED' })).status).toBe(500)
    mock.clearFaults('complete')
    mock.fail('*', { status: 429, retryAfterSeconds: 1 })
    const limited = await fetch(`${BASE}/r4/status`, { headers: { 'X-Webhook-Secret': SECRET } })
    expect(limited.status).toBe(429)
    mock.clearFaults()
    expect(RunStatusResponse.parse(await (await fetch(`${BASE}/r4/status`, { headers: { 'X-Webhook-Secret': SECRET } })).json()).run.status).toBe('PROCESSING')
  })

  it('tells GET /runs (listRuns) from POST /runs (createRun): a fault on one leaves the other alone', async () => {
    mock.fail('listRuns', { status: 503, times: 1 })
    expect((await post('/runs', { id: 'listed' })).status).toBe(201)
    const list = () => fetch(`${BASE}/runs`, { headers: { 'X-Webhook-Secret': SECRET } })
    expect((await list()).status).toBe(503)
    const page = await list()
    expect(page.status).toBe(200)
    expect(((await page.json()) as { runs: Array<{ id: string }> }).runs.map((run) => run.id)).toEqual(['listed'])
    expect(mock.requests.map((request) => [request.method, request.route, request.status])).toEqual([
      ['POST', 'createRun', 201],
      ['GET', 'listRuns', 503],
      ['GET', 'listRuns', 200],
    ])
  })

  it('drops the connection: fetch rejects with a network error', async () => {
    await mock.createRun('r5')
    mock.fail('stageUpdate', { drop: true, times: 1 })
    await expect(post('/r5/stage-update', makeStageUpdate())).rejects.toThrow(TypeError)
    expect((await post('/r5/stage-update', makeStageUpdate())).status).toBe(200)
  })

  it('delays answers by the given latency', async () => {
    await mock.createRun('r6')
    mock.fail('stageUpdate', { latencyMs: 150, times: 1 })
    const started = performance.now()
    expect((await post('/r6/stage-update', makeStageUpdate())).status).toBe(200)
    expect(performance.now() - started).toBeGreaterThanOrEqual(145)
  })

  it('matches nothing outside its origin, so onUnhandledFrame "error" reports strays', async () => {
    await expect(fetch('http://elsewhere.test/api/pipeline/r/status')).rejects.toThrow()
    expect(mock.requests).toEqual([])
  })

  it('creates runs on their first update with autoCreateRuns', async () => {
    const auto = createPipelineMock({ baseUrl: 'http://auto.test', secret: SECRET, autoCreateRuns: true })
    const response = await auto.fetch(
      new Request('http://auto.test/api/pipeline/new-run/stage-update', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': SECRET },
        body: JSON.stringify(makeStageUpdate()),
      }),
    )
    expect(StageUpdateResponse.parse(await response?.json()).run).toMatchObject({ id: 'new-run', status: 'PROCESSING' })
    // Without the option the same request is a 404, as on the real server.
    const strict = createPipelineMock({ baseUrl: 'http://auto.test', secret: SECRET })
    const missing = await strict.fetch(
      new Request('http://auto.test/api/pipeline/new-run/stage-update', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': SECRET },
        body: JSON.stringify(makeStageUpdate()),
      }),
    )
    expect(missing?.status).toBe(404)
  })

  it('reads its secret from WEBHOOK_SECRET when none is given', async () => {
    process.env['WEBHOOK_SECRET'] = 'from-env'
    try {
      const fromEnv = createPipelineMock({ baseUrl: 'http://env.test' })
      const response = await fromEnv.fetch(
        new Request('http://env.test/api/pipeline/runs', { method: 'POST', headers: { 'X-Webhook-Secret': 'from-env' } }),
      )
      expect(response?.status).toBe(201)
    } finally {
      delete process.env['WEBHOOK_SECRET']
    }
  })
})

describe('FaultRegistry', () => {
  it('refuses faults that cannot be served', () => {
    const faults = new FaultRegistry()
    expect(() => faults.set('status', { status: 99 })).toThrow(RangeError)
    expect(() => faults.set('status', { status: 503, times: 0 })).toThrow(RangeError)
  })
})

describe('createPipelineMock options, read by the real handlers code', () => {
  const createRunWith = async (fetcher: (request: Request) => Promise<Response | undefined>, secret: string) =>
    (await fetcher(new Request(`${BASE}/runs`, { method: 'POST', headers: { 'X-Webhook-Secret': secret } })))?.status

  it.each([
    ['a comma-separated WEBHOOK_SECRET', undefined, 'new-secret,old-secret'],
    ['a comma-separated secret option', 'new-secret, old-secret', undefined],
    ['a secret list', ['new-secret', 'old-secret'], undefined],
  ])('accepts every secret of %s, exactly as the handlers do', async (_, secret, env) => {
    const saved = process.env.WEBHOOK_SECRET
    if (env === undefined) delete process.env.WEBHOOK_SECRET
    else process.env.WEBHOOK_SECRET = env
    try {
      const mocked = createPipelineMock({ baseUrl: ORIGIN, ...(secret === undefined ? {} : { secret }) })
      const real = createPipelineStatusHandlers({ store: new MemoryStore(), ...(secret === undefined ? {} : { secret }) })
      for (const candidate of ['new-secret', 'old-secret', 'new-secret,old-secret', 'other']) {
        const expected = await createRunWith(real.fetch, candidate)
        expect(await createRunWith(mocked.fetch, candidate)).toBe(expected)
        expect(expected).toBe(candidate === 'new-secret' || candidate === 'old-secret' ? 201 : 401)
      }
    } finally {
      if (saved === undefined) delete process.env.WEBHOOK_SECRET
      else process.env.WEBHOOK_SECRET = saved
    }
  })

  it('serves the base path the handlers normalized', async () => {
    const mocked = createPipelineMock({ baseUrl: ORIGIN, secret: SECRET, basePath: 'hooks/pipeline/' })
    expect(mocked.server.basePath).toBe('/hooks/pipeline')
    const response = await mocked.fetch(new Request(`${ORIGIN}/hooks/pipeline/runs`, { method: 'POST', headers: { 'X-Webhook-Secret': SECRET } }))
    expect(response?.status).toBe(201)
  })
})
