/**
 * The Next.js App Router handlers called with real `Request` objects, as Next.js calls them:
 * the shared contract scenarios through a catch-all route and through one file per route
 * (with `params` as a Promise, as Next 15+ passes it).
 */
import { RunStatusResponse } from 'pipeline-status-sdk'
import { createNextRouteHandlers } from 'pipeline-status-sdk/next'
import { MemoryStore } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { makeStageUpdate } from '../support/fixtures.js'
import { buildRequest, describeContract, expectProblem, SECRET } from '../contract/contract-suite.js'
import { BASE_URL, nextCatchAllTarget, nextPerRouteTarget } from '../contract/targets.js'

describeContract('next catch-all route', () => nextCatchAllTarget)
describeContract('next route per file', () => nextPerRouteTarget)

describe('next route handlers', () => {
  it('lets `next build` load the route without secrets, and refuses to start without one at run time', () => {
    const saved = { phase: process.env['NEXT_PHASE'], secret: process.env['WEBHOOK_SECRET'] }
    delete process.env['WEBHOOK_SECRET']
    try {
      expect(() => createNextRouteHandlers({ store: new MemoryStore() })).toThrow(/secret/i)
      process.env['NEXT_PHASE'] = 'phase-production-build'
      const routes = createNextRouteHandlers({ store: new MemoryStore() })
      expect(routes.GET).toBeTypeOf('function')
      expect(() => routes.handlers).toThrow(/secret/i)
    } finally {
      for (const [key, value] of [['NEXT_PHASE', saved.phase], ['WEBHOOK_SECRET', saved.secret]] as const) {
        if (value === undefined) delete process.env[key]
        else process.env[key] = value
      }
    }
  })

  it('reads the run id from a custom segment name and from a plain params object (Next 14)', async () => {
    const next = createNextRouteHandlers({ store: new MemoryStore(), secret: SECRET, runIdParam: 'id' })
    expect((await next.createRun(buildRequest(BASE_URL, { path: '/runs', json: { id: 'seg-1' } }))).status).toBe(201)
    const update = buildRequest(BASE_URL, { path: '/seg-1/stage-update', json: makeStageUpdate() })
    expect((await next.stageUpdate(update, { params: Promise.resolve({ id: 'seg-1' }) })).status).toBe(200)
    const read = await next.status(buildRequest(BASE_URL, { path: '/seg-1/status' }), { params: { id: 'seg-1' } })
    expect(RunStatusResponse.parse(await read.json()).stages).toHaveLength(1)
  })

  it('falls back to the request path when the segment is missing or a catch-all array', async () => {
    const next = createNextRouteHandlers({ store: new MemoryStore(), secret: SECRET })
    await next.createRun(buildRequest(BASE_URL, { path: '/runs', json: { id: 'path-1' } }))
    const read = buildRequest(BASE_URL, { path: '/path-1/status' })
    expect((await next.status(read, { params: Promise.resolve({ path: ['path-1', 'status'] }) })).status).toBe(200)
    const rejected = Promise.reject(new Error('params failed'))
    rejected.catch(() => {})
    const again = buildRequest(BASE_URL, { path: '/path-1/status' })
    expect((await next.status(again, { params: rejected })).status).toBe(200)
  })

  it('the per-route handler answers for the run in params, whatever the URL says', async () => {
    const next = createNextRouteHandlers({ store: new MemoryStore(), secret: SECRET })
    await next.createRun(buildRequest(BASE_URL, { path: '/runs', json: { id: 'real-run' } }))
    const request = buildRequest('http://app.test/api/pipeline', { path: '/other-run/status' })
    const response = await next.status(request, { params: Promise.resolve({ runId: 'real-run' }) })
    expect(RunStatusResponse.parse(await response.json()).run.id).toBe('real-run')
  })

  it('the catch-all only serves its base path', async () => {
    const { GET } = createNextRouteHandlers({ store: new MemoryStore(), secret: SECRET, basePath: '/api/runs-status' })
    await expectProblem(await GET(buildRequest(BASE_URL, { path: '/x/status' })), 404, 'route_not_found')
    await expectProblem(await GET(buildRequest('http://app.test/api/runs-status', { path: '/x/status' })), 404, 'run_not_found')
  })
})
