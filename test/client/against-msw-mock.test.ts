/**
 * The client against our own MSW mock in-process, as a user tests a runner offline: what goes
 * on the wire (URL, secret, body, one Idempotency-Key across retries) and what the mock stored.
 */
import { setupServer } from 'msw/node'
import { PrismaAPIClient, isStatusHttpError } from 'pipeline-status-sdk/client'
import { createPipelineMock } from 'pipeline-status-sdk/msw'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

const ORIGIN = 'http://pipeline-app.test'
const SECRET = 'client-mock-secret'
const mock = createPipelineMock({ baseUrl: ORIGIN, secret: SECRET })
const server = setupServer(...mock.handlers)

beforeAll(() => server.listen({ onUnhandledFrame: 'error' }))
afterEach(() => mock.reset())
afterAll(() => server.close())

const client = (options: Partial<ConstructorParameters<typeof PrismaAPIClient>[0]> = {}) =>
  new PrismaAPIClient({ baseUrl: ORIGIN, secret: SECRET, retry: { baseDelayMs: 1, maxDelayMs: 5 }, ...options })

describe('PrismaAPIClient against the MSW mock', () => {
  it('reports a whole run; the mock stores what the real server would', async () => {
    const api = client()
    const { run } = await api.createRun('msw-run')
    expect(await api.initializePipelineStages(run.id)).toBe(true)
    for (let n = 1; n <= 5; n++) {
      if (n > 1) expect(await api.markStageProcessing(run.id, n)).toBe(true)
      expect(await api.markStageComplete(run.id, n, { n })).toBe(true)
    }
    const status = await api.getStatus(run.id)
    expect(status.run.status).toBe('COMPLETED')
    expect(status.stages.map((s) => s.output)).toEqual([1, 2, 3, 4, 5].map((n) => JSON.stringify({ n })))
    expect(await mock.getRun(run.id)).toEqual(status)
    expect(status.catalogue?.map((c) => c.stageNumber)).toEqual([1, 2, 3, 4, 5])

    const first = mock.requests.find((r) => r.route === 'stageUpdate')
    expect(first).toMatchObject({
      method: 'POST',
      url: `${ORIGIN}/api/pipeline/msw-run/stage-update`,
      headers: expect.objectContaining({ 'x-webhook-secret': SECRET, 'content-type': expect.stringMatching(/^application\/json/) }),
    })
    expect(JSON.parse(first?.body ?? '')).toEqual({ stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING' })
  })

  it('with only a signing secret on both sides, writes and reads work and no plain secret is sent', async () => {
    const signingSecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    const signedOnly = createPipelineMock({ baseUrl: 'http://signed-only.test', secret: [], signing: { secret: signingSecret } })
    server.use(...signedOnly.handlers)
    const saved = process.env.WEBHOOK_SECRET
    delete process.env.WEBHOOK_SECRET
    try {
      const api = new PrismaAPIClient({ baseUrl: 'http://signed-only.test', signing: { secret: signingSecret }, throwOnError: true })
      const { run } = await api.createRun('signed-only-run')
      expect(await api.markStageComplete(run.id, 1, 'done')).toBe(true)
      expect((await api.getStatus(run.id)).stages).toMatchObject([{ status: 'COMPLETED', output: 'done' }])
      expect(signedOnly.requests.map((r) => [r.method, r.route, r.status])).toEqual([
        ['POST', 'createRun', 201],
        ['POST', 'stageUpdate', 200],
        ['GET', 'status', 200],
      ])
      for (const request of signedOnly.requests) {
        expect(request.headers['x-webhook-secret']).toBeUndefined()
        expect(request.headers['webhook-signature']).toMatch(/^v1,/)
      }
    } finally {
      if (saved !== undefined) process.env.WEBHOOK_SECRET = saved
      server.resetHandlers()
    }
  })

  it('one WEBHOOK_SECRET rotation list for both sides: the client sends its first entry, which the server accepts', async () => {
    const saved = process.env.WEBHOOK_SECRET
    process.env.WEBHOOK_SECRET = ' new-secret , old-secret '
    try {
      const rotating = createPipelineMock({ baseUrl: 'http://rotating.test' }) // reads WEBHOOK_SECRET
      server.use(...rotating.handlers)
      const api = new PrismaAPIClient({ baseUrl: 'http://rotating.test', throwOnError: true })
      const { run } = await api.createRun('rotating-run')
      expect(await api.markStageComplete(run.id, 1, 'done')).toBe(true)
      expect(rotating.requests.map((r) => [r.route, r.status, r.headers['x-webhook-secret']])).toEqual([
        ['createRun', 201, 'new-secret'],
        ['stageUpdate', 200, 'new-secret'],
      ])
    } finally {
      if (saved === undefined) delete process.env.WEBHOOK_SECRET
      else process.env.WEBHOOK_SECRET = saved
      server.resetHandlers()
    }
  })

  it('retries 503s with one Idempotency-Key and lands the update once', async () => {
    await mock.createRun('retry-run')
    mock.fail('stageUpdate', { status: 503, retryAfterSeconds: 0, times: 2 })
    expect(await client().markStageComplete('retry-run', 1, 'done')).toBe(true)
    const attempts = mock.requests.filter((r) => r.route === 'stageUpdate')
    expect(attempts.map((r) => r.status)).toEqual([503, 503, 200])
    const keys = new Set(attempts.map((r) => r.headers['idempotency-key']))
    expect(keys.size).toBe(1)
    expect([...keys][0]).toMatch(/^[0-9a-f-]{36}$/)
    expect((await mock.getRun('retry-run'))?.stages).toMatchObject([{ status: 'COMPLETED', output: 'done' }])
  })

  it('retries a dropped connection', async () => {
    await mock.createRun('drop-run')
    mock.fail('stageUpdate', { drop: true, times: 1 })
    expect(await client().markStageProcessing('drop-run', 1)).toBe(true)
    expect(mock.requests.map((r) => r.status)).toEqual([0, 200])
  })

  it('does not retry a 4xx: false by default, a typed error with throwOnError', async () => {
    expect(await client().markStageProcessing('no-such-run', 1)).toBe(false)
    expect(mock.requests).toHaveLength(1)
    const error = await client({ throwOnError: true }).markStageProcessing('no-such-run', 1).catch((e: unknown) => e)
    expect(isStatusHttpError(error)).toBe(true)
    expect(error).toMatchObject({ status: 404, problem: { code: 'run_not_found' } })
  })

  it('gets 401 for a wrong secret and says so, instead of retrying forever', async () => {
    await mock.createRun('secret-run')
    const error = await client({ secret: 'wrong', throwOnError: true }).markStageProcessing('secret-run', 1).catch((e: unknown) => e)
    expect(error).toMatchObject({ status: 401, problem: { code: 'unauthorized' } })
    expect(mock.requests).toHaveLength(1)
  })

  it('creates one run, not two, when the answer to createRun is lost and retried', async () => {
    mock.fail('createRun', { drop: true, times: 1 })
    const { run, created } = await client().createRun()
    expect(created).toBe(true)
    const bodies = mock.requests.filter((r) => r.route === 'createRun').map((r) => JSON.parse(r.body) as { id: string })
    expect(bodies).toHaveLength(2)
    expect(bodies[0]).toEqual(bodies[1])
    expect(mock.store).toBeDefined()
    expect(await mock.getRun(run.id)).toBeDefined()
    expect(bodies[0]?.id).toBe(run.id)
  })

  it('types completeRun’s named fields and keeps app-specific ones', async () => {
    const api = client()
    await api.createRun('typed-run')
    // @ts-expect-error: PROCESSING does not end a run
    const wrongStatus: Parameters<typeof api.completeRun>[1] = { status: 'PROCESSING' }
    // @ts-expect-error: duration is in seconds, a number
    const wrongDuration: Parameters<typeof api.completeRun>[1] = { status: 'COMPLETED', duration: 'long' }
    expect([wrongStatus, wrongDuration]).toHaveLength(2)
    const done = await api.completeRun('typed-run', { status: 'COMPLETED', duration: 1.5, fullReportMarkdown: '# Report' })
    expect(done).toMatchObject({ outcome: 'applied' })
    const sent = mock.requests.find((r) => r.route === 'complete')
    expect(JSON.parse(sent?.body ?? '')).toMatchObject({ status: 'COMPLETED', duration: 1.5, fullReportMarkdown: '# Report' })
  })
})
