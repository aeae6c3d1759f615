/**
 * The Next.js App Router handlers called with real `Request` objects, as Next.js calls them:
 * the shared contract scenarios through a catch-all route and through one file per route
 * (with `params` as a Promise, as Next 15+ passes it).
 */
import { RunStatusResponse } from 'pipeline-status-sdk'
import { createNextRouteHandlers } from 'pipeline-status-sdk/next'
import { NextRequest } from 'next/server.js'
import { type AuthorizeInput, HttpProblemError, MemoryStore } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { makeStageUpdate } from '../support/fixtures.js'
import { buildRequest, expectProblem, SECRET } from '../contract/suite/harness.js'
import { describeContract } from '../contract/suite/index.js'
import { BASE_URL, nextCatchAllTarget, nextPerRouteTarget } from '../contract/targets.js'
import { recordingLogger } from '../support/loggers.js'

describeContract('next catch-all route', () => nextCatchAllTarget)
describeContract('next route per file', () => nextPerRouteTarget)

describe('next route handlers', () => {
  /** Runs `fn` with WEBHOOK_SECRET unset and NEXT_PHASE as given, then restores both. */
  async function withoutSecret<T>(phase: string | undefined, fn: () => Promise<T>): Promise<T> {
    const saved = { NEXT_PHASE: process.env['NEXT_PHASE'], WEBHOOK_SECRET: process.env['WEBHOOK_SECRET'] }
    delete process.env['WEBHOOK_SECRET']
    if (phase === undefined) delete process.env['NEXT_PHASE']
    else process.env['NEXT_PHASE'] = phase
    try {
      return await fn()
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key]
        else process.env[key] = value
      }
    }
  }

  it('without WEBHOOK_SECRET answers every route with a problem+json 500 configuration_error and logs the variable once', async () => {
    await withoutSecret(undefined, async () => {
      const logger = recordingLogger()
      const routes = createNextRouteHandlers({ store: new MemoryStore(), logger })
      const answers = [
        await routes.GET(buildRequest(BASE_URL, { path: '/run-1/status' })),
        await routes.POST(buildRequest(BASE_URL, { path: '/runs', json: {} })),
        await routes.stageUpdate(buildRequest(BASE_URL, { path: '/run-1/stage-update', json: makeStageUpdate() }), {
          params: Promise.resolve({ runId: 'run-1' }),
        }),
        await routes.createRun(buildRequest(BASE_URL, { path: '/runs', json: {} })),
      ]
      for (const response of answers) {
        expect(response.status).toBe(500)
        expect(response.headers.get('content-type')).toBe('application/problem+json')
        expect(await response.json()).toMatchObject({
          status: 500,
          code: 'configuration_error',
          title: 'Server misconfigured',
          detail: expect.stringContaining('server log'),
        })
      }
      expect(logger.lines).toHaveLength(1)
      expect(logger.lines[0]?.level).toBe('error')
      expect(logger.lines[0]?.message).toContain('WEBHOOK_SECRET')
      expect(() => routes.handlers).toThrow(/WEBHOOK_SECRET/)
    })
  })

  it('lets `next build` load the route without secrets, and logs nothing then', async () => {
    await withoutSecret('phase-production-build', async () => {
      const logger = recordingLogger()
      const routes = createNextRouteHandlers({ store: new MemoryStore(), logger })
      expect(routes.GET).toBeTypeOf('function')
      expect(logger.lines).toEqual([])
    })
  })

  it('hands authorize the NextRequest that Next.js passed, as native', async () => {
    const seen: unknown[] = []
    const next = createNextRouteHandlers({
      store: new MemoryStore(),
      secret: SECRET,
      authorize: ({ runId, action, native }: AuthorizeInput<NextRequest>) => {
        seen.push(native)
        const session = native.cookies.get('session')?.value
        if (!session) throw new HttpProblemError('authentication_required', { detail: 'Sign in first' })
        return action === 'read' && session === `owner-of-${runId}`
      },
    })
    expect((await next.createRun(buildRequest(BASE_URL, { path: '/runs', json: { id: 'n-1' } }))).status).toBe(201)
    const read = (cookie?: string) =>
      new NextRequest(`${BASE_URL}/n-1/status`, cookie === undefined ? {} : { headers: { Cookie: cookie } })
    const owner = read('session=owner-of-n-1')
    expect((await next.GET(owner)).status).toBe(200)
    const perRoute = read('session=owner-of-n-1')
    expect((await next.status(perRoute, { params: Promise.resolve({ runId: 'n-1' }) })).status).toBe(200)
    await expectProblem(await next.GET(read('session=someone-else')), 403, 'forbidden')
    await expectProblem(await next.GET(read()), 401, 'authentication_required')
    expect(seen[0]).toBe(owner)
    expect(seen[1]).toBe(perRoute)
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
