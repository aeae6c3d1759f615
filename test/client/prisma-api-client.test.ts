/**
 * The client on the wire, against a real local HTTP server backed by the real handlers
 * (MemoryStore), with scripted faults in front of them.
 */
import {
  ConfigurationError,
  DEFAULT_STAGES,
  PayloadValidationError,
  PrismaAPIClient,
  type PrismaAPIClientOptions,
  StatusHttpError,
  StatusNetworkError,
  StatusTimeoutError,
  isClientClosedError,
  isConfigurationError,
  isPipelineStatusError,
  isStatusHttpError,
  isStatusNetworkError,
  isStatusTimeoutError,
  silentLogger,
} from 'pipeline-status-sdk/client'
import { createProblem } from 'pipeline-status-sdk'
import { verifyWebhookSignature } from 'pipeline-status-sdk/server'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { recordingLogger } from '../support/loggers.js'
import { clientFactory } from './support/client-factory.js'
import { type RecordedRequest, TEST_SECRET, type TestServer, startTestServer } from './support/test-server.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const PROBLEM_JSON = { 'content-type': 'application/problem+json' }

let server: TestServer

beforeEach(async () => {
  server = await startTestServer()
})
afterEach(async () => {
  await server.stop()
})

const { make: makeClient, track } = clientFactory(() => ({
  baseUrl: server.origin,
  secret: TEST_SECRET,
  logger: silentLogger,
  retry: { limit: 3, baseDelayMs: 10, maxDelayMs: 50 },
}))

async function createRun(id = 'run_1'): Promise<string> {
  await makeClient().createRun(id)
  server.requests.length = 0
  return id
}

function json(request: RecordedRequest | undefined): unknown {
  return JSON.parse(request?.body ?? 'null')
}

describe('requests on the wire', () => {
  it('sends each update to its route with the secret, a UUID idempotency key and JSON', async () => {
    const runId = await createRun('run:1.a~b')
    const client = makeClient()
    expect(await client.initializePipelineStages(runId)).toBe(true)
    expect(await client.markStageComplete(runId, 1, { signals: [1, 2], note: 'é' })).toBe(true)
    expect(await client.markStageProcessing(runId, 2)).toBe(true)
    expect(await client.markStageComplete(runId, 2, '# Markdown\n\nas is')).toBe(true)
    expect(await client.markStageProcessing(runId, 3)).toBe(true)
    expect(await client.markStageFailed(runId, 3, 'upstream model timed out')).toBe(true)

    expect(server.requests).toHaveLength(6)
    const keys = new Set<string>()
    for (const request of server.requests) {
      expect(request.method).toBe('POST')
      expect(request.url).toBe('/api/pipeline/run%3A1.a~b/stage-update')
      expect(request.headers['x-webhook-secret']).toBe(TEST_SECRET)
      expect(request.headers['content-type']).toBe('application/json')
      expect(request.headers['idempotency-key']).toMatch(UUID)
      keys.add(request.headers['idempotency-key'] ?? '')
    }
    expect(keys.size).toBe(6)

    const bodies = server.requests.map(json) as Array<Record<string, unknown>>
    expect(bodies[0]).toEqual({ stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING' })
    expect(bodies[1]).toEqual({
      stageNumber: 1,
      stageName: 'Input Processing',
      status: 'COMPLETED',
      output: '{"signals":[1,2],"note":"é"}',
      completedAt: expect.stringMatching(ISO),
    })
    expect(bodies[3]?.output).toBe('# Markdown\n\nas is')
    expect(bodies[5]).toEqual({
      stageNumber: 3,
      stageName: 'General Translation',
      status: 'FAILED',
      output: 'upstream model timed out',
      completedAt: expect.stringMatching(ISO),
    })

    const status = await client.getStatus(runId)
    expect(status.run.status).toBe('FAILED')
    expect(status.run.error).toBe('upstream model timed out')
    expect(status.stages.map((s) => [s.stageNumber, s.status, s.output])).toEqual([
      [1, 'COMPLETED', '{"signals":[1,2],"note":"é"}'],
      [2, 'COMPLETED', '# Markdown\n\nas is'],
      [3, 'FAILED', 'upstream model timed out'],
    ])
  })

  it('marks a stage CANCELLED and the run follows', async () => {
    const runId = await createRun()
    const client = makeClient()
    await client.initializePipelineStages(runId)
    expect(await client.markStageCancelled(runId, 1)).toBe(true)
    expect(json(server.requests[1])).toEqual({
      stageNumber: 1,
      stageName: 'Input Processing',
      status: 'CANCELLED',
      completedAt: expect.stringMatching(ISO),
    })
    expect((await client.getStatus(runId)).run.status).toBe('CANCELLED')
  })

  it('names stages from the configured catalogue and joins baseUrl with basePath', async () => {
    await server.stop()
    const { MemoryStore, createPipelineStatusHandlers } = await import('pipeline-status-sdk/server')
    const stages = [
      { number: 1, name: 'Fetch' },
      { number: 2, name: 'Load' },
    ]
    server = await startTestServer({
      handler: createPipelineStatusHandlers({ store: new MemoryStore(), secret: TEST_SECRET, stages, basePath: '/hooks/status' }).fetch,
    })
    const client = makeClient({ baseUrl: `${server.origin}/`, basePath: 'hooks/status/', stages })
    await client.createRun('r')
    expect(await client.markStageComplete('r', 2, 'done')).toBe(true)
    expect(server.requests[1]?.url).toBe('/hooks/status/r/stage-update')
    expect(json(server.requests[1])).toMatchObject({ stageNumber: 2, stageName: 'Load' })
    expect((await client.getStatus('r')).run.status).toBe('COMPLETED')
  })

  it('accepts a base URL that already ends with the base path, as the demo and the Express example print it', async () => {
    const runId = await createRun()
    for (const baseUrl of [`${server.origin}/api/pipeline`, `${server.origin}/api/pipeline/`]) {
      const client = makeClient({ baseUrl })
      expect(client.baseUrl).toBe(server.origin)
      expect(await client.markStageProcessing(runId, 1)).toBe(true)
    }
    expect(server.requests.map((r) => r.url)).toEqual(Array(2).fill(`/api/pipeline/${runId}/stage-update`))
    // A path prefix before the base path is kept; a configured base path is recognised too.
    expect(makeClient({ baseUrl: 'https://app.example.com/tenant/api/pipeline' }).baseUrl).toBe('https://app.example.com/tenant')
    expect(makeClient({ baseUrl: 'https://app.example.com/hooks/status/', basePath: '/hooks/status' }).baseUrl).toBe('https://app.example.com')
    // Only a whole trailing base path: these are prefixes of their own.
    expect(makeClient({ baseUrl: 'https://app.example.com/xapi/pipeline' }).baseUrl).toBe('https://app.example.com/xapi/pipeline')
    expect(makeClient({ baseUrl: 'https://app.example.com/api/pipeline/v2' }).baseUrl).toBe('https://app.example.com/api/pipeline/v2')
  })

  it('completes a run with its results and creates runs idempotently', async () => {
    const client = makeClient()
    const created = await client.createRun('run_c')
    expect(created).toMatchObject({ created: true, run: { id: 'run_c', status: 'PENDING' } })
    expect((await client.createRun('run_c')).created).toBe(false)
    expect(json(server.requests[0])).toEqual({ id: 'run_c' })

    // Without an id the client picks one before sending, so a retried creation is idempotent too.
    const generated = await client.createRun()
    expect(generated.run.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(json(server.requests.at(-1))).toEqual({ id: generated.run.id })

    const answer = await client.completeRun('run_c', { status: 'COMPLETED', duration: 12.5, opportunities: [{ title: 'x' }] })
    expect(answer).toMatchObject({ outcome: 'applied', run: { id: 'run_c', status: 'COMPLETED' } })
    const request = server.requestsTo('/complete')[0]
    expect(request?.headers['idempotency-key']).toMatch(UUID)
    expect(json(request)).toEqual({
      status: 'COMPLETED',
      completedAt: expect.stringMatching(ISO),
      duration: 12.5,
      opportunities: [{ title: 'x' }],
    })
  })

  it("logs a /complete answered duplicate once at warn, in runPipeline's words", async () => {
    await createRun('run_dup')
    const logger = recordingLogger()
    const client = makeClient({ logger })
    const warned = () => logger.lines.filter((line) => line.level === 'warn').map((line) => line.message)
    expect(await client.completeRun('run_dup', { status: 'COMPLETED', report: 'first' })).toMatchObject({ outcome: 'applied' })
    expect(warned()).toEqual([])
    expect(await client.completeRun('run_dup', { status: 'COMPLETED', report: 'second' })).toMatchObject({ outcome: 'duplicate' })
    expect(warned()).toEqual([
      'Run run_dup: ' +
        "The run's completion had already been received (outcome \"duplicate\"), so these results did not reach the app's onRunCompleted hook, " +
        "which ran once with the earlier /complete's: another /complete of this run was received before this call " +
        "(this client's own earlier completeRun, another runner or process on the same run id, or the web app)",
    ])
  })

  it('refuses stage numbers outside the catalogue without a request', async () => {
    const logger = recordingLogger()
    const client = makeClient({ logger })
    expect(await client.markStageComplete('run_1', 6, 'x')).toBe(false)
    expect(await client.markStageProcessing('run_1', 0)).toBe(false)
    expect(server.requests).toHaveLength(0)
    expect(logger.lines[0]?.message).toMatch(/Stage 6 is not in the catalogue \(1\.\.5\)/)
    await expect(makeClient({ throwOnError: true }).markStageProcessing('run_1', 9)).rejects.toThrow(ConfigurationError)
  })

  it('refuses a stage number that is not an integer, naming the type it got, in every method that takes one', async () => {
    const logger = recordingLogger()
    const client = makeClient({ logger })
    // Plain JavaScript (a parsed query, a form field): the types say number, nothing checks it.
    const js = client as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
    const got = 'got a string: "2" (pass the number 2)'
    expect(await js['markStageProcessing']?.('run_1', '2')).toBe(false)
    expect(await js['markStageComplete']?.('run_1', 2.5, 'x')).toBe(false)
    expect(await js['reportProgress']?.('run_1', '2', { current: 1, total: 2 })).toBe(false)
    expect(await js['sendStageUpdate']?.('run_1', { stageNumber: '2', stageName: 'Signal Amplification', status: 'PROCESSING' })).toBe(false)
    expect(logger.lines.filter((l) => l.level === 'error').map((l) => l.message)).toEqual([
      `Run run_1: update not sent: The stage number must be an integer (1..5 in the catalogue), ${got}`,
      'Run run_1: update not sent: The stage number must be an integer (1..5 in the catalogue), got the number 2.5',
      `Run run_1: update not sent: The stage number must be an integer (1..5 in the catalogue), ${got}`,
      `Run run_1: update not sent: Invalid stage update: stageNumber must be an integer of 1 or more, ${got}`,
    ])
    // An integer outside the catalogue keeps its own message.
    expect(await client.markStageProcessing('run_1', 7)).toBe(false)
    expect(logger.lines.at(-1)?.message).toBe('Run run_1: update not sent: Stage 7 is not in the catalogue (1..5)')
    const refusal = (what: string) => new RegExp(`^Invalid ${what}: stageNumber must be an integer of 1 or more, got a string: "2" \\(pass the number 2\\)$`)
    expect(() => js['streamStageOutput']?.('run_1', '2')).toThrow(refusal('output stream'))
    await expect(js['appendStageOutput']?.('run_1', '2', { seq: 0, text: 'x' })).rejects.toThrow(refusal('output chunk'))
    // A heartbeat sent '2' and came back undefined, the server's 400 logged at debug only.
    await expect(js['heartbeat']?.('run_1', '2')).rejects.toThrow(refusal('heartbeat'))
    await expect(client.heartbeat('run_1', 0)).rejects.toThrow(PayloadValidationError)
    await expect(js['appendStageOutput']?.('run_1', undefined, { seq: 0, text: 'x' })).rejects.toThrow(/must be an integer of 1 or more, got undefined$/)
    expect(server.requests).toHaveLength(0)
    await expect(makeClient({ throwOnError: true, logger: silentLogger }).markStageProcessing('run_1', '2' as unknown as number)).rejects.toThrow(ConfigurationError)
  })

  it('signs every attempt with Standard Webhooks when configured', async () => {
    await server.stop()
    const signingSecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    server = await startTestServer({ signingSecret })
    const runId = await createRun()
    const client = makeClient({ signing: { secret: signingSecret } })
    server.inject({ status: 503 })
    expect(await client.markStageProcessing(runId, 1)).toBe(true)
    const [first, second] = server.requests
    const key = first?.headers['idempotency-key']
    expect(second?.headers['idempotency-key']).toBe(key)
    // One message id for every attempt of one update, bound to its method, run and route
    // (docs/security.md); each attempt is signed again, with its own timestamp.
    expect(first?.headers['webhook-id']).toBe(`POST ${runId}/stage-update ${key}`)
    expect(second?.headers['webhook-id']).toBe(first?.headers['webhook-id'])
    for (const request of [first, second]) {
      const verified = await verifyWebhookSignature({ secrets: [signingSecret], headers: request?.headers ?? {}, body: request?.body ?? '' })
      expect(verified.valid).toBe(true)
    }
    expect((await client.getStatus(runId)).stages[0]?.status).toBe('PROCESSING')
    // Status reads are signed too, over the empty body.
    const read = server.requests.at(-1)
    expect(read?.method).toBe('GET')
    expect(read?.headers['webhook-id']).toMatch(new RegExp(`^GET ${runId}/status [0-9a-f-]{36}$`))
    expect(await verifyWebhookSignature({ secrets: [signingSecret], headers: read?.headers ?? {}, body: '' })).toMatchObject({ valid: true })
  })
})

describe('retries', () => {
  it('retries 503 twice, then succeeds, with one idempotency key', async () => {
    const runId = await createRun()
    server.inject({ status: 503, headers: PROBLEM_JSON, body: JSON.stringify(createProblem('database_unavailable')) }, { status: 503 })
    expect(await makeClient().markStageComplete(runId, 1, { ok: true })).toBe(true)
    expect(server.requests).toHaveLength(3)
    const keys = server.requests.map((r) => r.headers['idempotency-key'])
    expect(new Set(keys).size).toBe(1)
    const bodies = new Set(server.requests.map((r) => r.body))
    expect(bodies.size).toBe(1)
    expect((await makeClient().getStatus(runId)).stages[0]?.status).toBe('COMPLETED')
  })

  it('waits at least Retry-After seconds after a 429', async () => {
    const runId = await createRun()
    server.inject({ status: 429, headers: { 'retry-after': '1' } })
    // Backoff alone would wait at most 50 ms; only Retry-After explains a 1 s gap.
    expect(await makeClient().markStageProcessing(runId, 1)).toBe(true)
    expect(server.requests).toHaveLength(2)
    const [first, second] = server.requests as [RecordedRequest, RecordedRequest]
    // A lower bound only; timers have 1 ms granularity.
    expect(second.arrivedAt - first.arrivedAt).toBeGreaterThanOrEqual(1000 - 1)
    expect(second.headers['idempotency-key']).toBe(first.headers['idempotency-key'])
  })

  it('honours Retry-After as an HTTP date, capped by maxRetryAfterMs', async () => {
    const runId = await createRun()
    server.inject({ status: 503, headers: { 'retry-after': new Date(Date.now() + 3_600_000).toUTCString() } })
    const client = makeClient({ retry: { limit: 2, baseDelayMs: 10, maxDelayMs: 50, maxRetryAfterMs: 300 } })
    expect(await client.markStageProcessing(runId, 1)).toBe(true)
    const [first, second] = server.requests as [RecordedRequest, RecordedRequest]
    expect(second.arrivedAt - first.arrivedAt).toBeGreaterThanOrEqual(300 - 1)
  })

  it('retries a hanging response after the per-attempt timeout', async () => {
    const runId = await createRun()
    server.inject({ hang: true })
    // The second attempt must be answered within the timeout, so the timeout is 5× what a loaded
    // machine needs for one answer: at 200 ms a busy machine could time the second attempt out too.
    expect(await makeClient({ timeoutMs: 2_000 }).markStageProcessing(runId, 1)).toBe(true)
    expect(server.requests).toHaveLength(2)
    // The retry waited for the timeout (2 s from sending, less the connect time), not for a response.
    expect(server.requests[1]?.arrivedAt).toBeGreaterThanOrEqual((server.requests[0]?.arrivedAt ?? 0) + 1_000)
    expect(new Set(server.requests.map((r) => r.headers['idempotency-key'])).size).toBe(1)
  })

  it('gives up on a server that always hangs: false, or StatusTimeoutError', async () => {
    const runId = await createRun()
    server.inject({ hang: true }, { hang: true }, { hang: true }, { hang: true }, { hang: true }, { hang: true })
    const logger = recordingLogger()
    const options = { timeoutMs: 100, retry: { limit: 2, baseDelayMs: 5, maxDelayMs: 5 } }
    expect(await makeClient({ ...options, logger }).markStageProcessing(runId, 1)).toBe(false)
    expect(server.requests).toHaveLength(3)
    expect(logger.lines.find((l) => l.level === 'error')?.message).toMatch(/stage 1 PROCESSING was not delivered: .*timed out/)

    const error = await makeClient({ ...options, throwOnError: true }).markStageProcessing(runId, 1).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(StatusTimeoutError)
    expect(isStatusTimeoutError(error)).toBe(true)
    expect(error).toMatchObject({ name: 'StatusTimeoutError', timeoutMs: 100, attempts: 3 })
    expect((error as StatusTimeoutError).cause).toMatchObject({ name: 'TimeoutError' })
    expect(server.requests).toHaveLength(6)
  })

  it('retries a refused connection, then resolves false or throws StatusNetworkError', async () => {
    await server.stop()
    let attempts = 0
    const countingFetch = (input: string, init: RequestInit) => {
      attempts++
      return fetch(input, init)
    }
    expect(await makeClient({ fetch: countingFetch }).markStageProcessing('run_1', 1)).toBe(false)
    expect(attempts).toBe(4)

    const error = await makeClient({ throwOnError: true }).markStageProcessing('run_1', 1).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(StatusNetworkError)
    expect(isStatusNetworkError(error)).toBe(true)
    expect(error).toMatchObject({ attempts: 4, request: { method: 'POST' } })
    expect((error as StatusNetworkError).cause).toMatchObject({ name: 'NetworkError' })
  })

  it('retries any 5xx, also ones ky does not retry by default', async () => {
    const runId = await createRun()
    server.inject({ status: 520 }, { status: 501 })
    expect(await makeClient().markStageProcessing(runId, 1)).toBe(true)
    expect(server.requests).toHaveLength(3)
    expect(new Set(server.requests.map((r) => r.headers['idempotency-key'])).size).toBe(1)
  })

  it('sends once with retry.limit 0', async () => {
    server.inject({ status: 503 })
    const error = await makeClient({ retry: { limit: 0 }, throwOnError: true }).markStageProcessing('run_1', 1).catch((e: unknown) => e)
    expect(error).toMatchObject({ name: 'StatusHttpError', status: 503, attempts: 1, cause: { name: 'HTTPError' } })
    expect(server.requests).toHaveLength(1)
  })

  it('retries a dropped connection', async () => {
    const runId = await createRun()
    server.inject({ drop: true })
    expect(await makeClient().markStageProcessing(runId, 1)).toBe(true)
    expect(server.requests).toHaveLength(2)
  })

  it('never retries a 400: false, or StatusHttpError with the problem', async () => {
    const problem = createProblem('validation_failed', { errors: [{ field: 'stageName', message: 'Too long' }] })
    server.inject({ status: 400, headers: PROBLEM_JSON, body: JSON.stringify(problem) })
    expect(await makeClient().markStageProcessing('run_1', 1)).toBe(false)
    expect(server.requests).toHaveLength(1)

    server.inject({ status: 400, headers: PROBLEM_JSON, body: JSON.stringify(problem) })
    const error = await makeClient({ throwOnError: true }).markStageProcessing('run_1', 1).catch((e: unknown) => e)
    expect(server.requests).toHaveLength(2)
    expect(error).toBeInstanceOf(StatusHttpError)
    expect(isStatusHttpError(error)).toBe(true)
    const http = error as StatusHttpError
    expect(http).toMatchObject({ name: 'StatusHttpError', status: 400, attempts: 1, problem })
    expect(http.request.url).toBe(`${server.origin}/api/pipeline/run_1/stage-update`)
    expect(http.response.status).toBe(400)
    expect(http.cause).toMatchObject({ name: 'HTTPError' })
  })

  it('never retries 401, 404 or 409 from the real handlers', async () => {
    const runId = await createRun()
    const wrong = makeClient({ secret: 'wrong', throwOnError: true })
    await expect(wrong.markStageProcessing(runId, 1)).rejects.toMatchObject({ status: 401, problem: { code: 'unauthorized' } })
    await expect(makeClient({ throwOnError: true }).markStageProcessing('unknown', 1)).rejects.toMatchObject({
      status: 404,
      problem: { code: 'run_not_found' },
    })
    const client = makeClient()
    await client.markStageComplete(runId, 5, 'done')
    expect(await client.markStageFailed(runId, 4, 'late')).toBe(false)
    expect(server.requests.map((r) => r.url.split('/').at(-1))).toHaveLength(4)
  })

  it('reads a 404 status as a StatusHttpError', async () => {
    const error = await makeClient().getStatus('nope').catch((e: unknown) => e)
    expect(isStatusHttpError(error) && error.problem?.code).toBe('run_not_found')
    expect(server.requests).toHaveLength(1)
  })
})

describe('configuration', () => {
  it('throws ConfigurationError at construction without a base URL or secret', () => {
    const saved = { url: process.env.FRONTEND_WEBHOOK_URL, secret: process.env.WEBHOOK_SECRET }
    delete process.env.FRONTEND_WEBHOOK_URL
    delete process.env.WEBHOOK_SECRET
    try {
      expect(() => new PrismaAPIClient({ secret: 's' })).toThrow(/FRONTEND_WEBHOOK_URL/)
      expect(() => new PrismaAPIClient({ baseUrl: 'http://x' })).toThrow(/WEBHOOK_SECRET/)
      expect(() => new PrismaAPIClient({ baseUrl: 'not a url', secret: 's' })).toThrow(ConfigurationError)
      expect(() => new PrismaAPIClient({ baseUrl: 'ftp://x', secret: 's' })).toThrow(/http or https/)
      expect(() => new PrismaAPIClient({ baseUrl: 'http://x', secret: 's', timeoutMs: 0 })).toThrow(/timeout/)
      expect(() => new PrismaAPIClient({ baseUrl: 'http://x', secret: 's', retry: { limit: -1 } })).toThrow(/retry.limit/)
      expect(() => new PrismaAPIClient({ baseUrl: 'http://x', secret: 's', stages: [{ number: 2, name: 'x' }] })).toThrow(
        ConfigurationError,
      )
      expect(() => new PrismaAPIClient({ baseUrl: 'http://x', secret: 's', signing: { secret: 'whsec_!!' } })).toThrow(
        /base64/,
      )
      let caught: unknown
      try {
        new PrismaAPIClient()
      } catch (error) {
        caught = error
      }
      expect(isConfigurationError(caught)).toBe(true)
      expect(isPipelineStatusError(caught)).toBe(true)
      expect((caught as Error).name).toBe('ConfigurationError')

      process.env.FRONTEND_WEBHOOK_URL = 'https://app.example.com/'
      process.env.WEBHOOK_SECRET = 'from-env'
      const client = new PrismaAPIClient()
      expect(client.baseUrl).toBe('https://app.example.com')
      expect(client.basePath).toBe('/api/pipeline')
      expect(client.stages).toBe(DEFAULT_STAGES)
    } finally {
      if (saved.url === undefined) delete process.env.FRONTEND_WEBHOOK_URL
      else process.env.FRONTEND_WEBHOOK_URL = saved.url
      if (saved.secret === undefined) delete process.env.WEBHOOK_SECRET
      else process.env.WEBHOOK_SECRET = saved.secret
    }
  })

  it('reads the secret from the environment and sends it', async () => {
    const saved = process.env.WEBHOOK_SECRET
    process.env.WEBHOOK_SECRET = TEST_SECRET
    try {
      const runId = await createRun()
      const client = track(new PrismaAPIClient({ baseUrl: server.origin, logger: silentLogger }))
      expect(await client.markStageProcessing(runId, 1)).toBe(true)
      expect(server.requests[0]?.headers['x-webhook-secret']).toBe(TEST_SECRET)
    } finally {
      if (saved === undefined) delete process.env.WEBHOOK_SECRET
      else process.env.WEBHOOK_SECRET = saved
    }
  })

  it('recognises its errors by name across realms, as ky does', () => {
    const foreign = Object.assign(new Error('x'), { name: 'StatusHttpError' })
    expect(isStatusHttpError(foreign)).toBe(true)
    expect(isPipelineStatusError(foreign)).toBe(true)
    expect(isStatusHttpError({ name: 'StatusHttpError' })).toBe(false)
    expect(isStatusTimeoutError(new Error('x'))).toBe(false)
  })

  it('refuses calls after close', async () => {
    const client = makeClient()
    await client.close()
    expect(await client.markStageProcessing('run_1', 1)).toBe(false)
    await expect(client.getStatus('run_1')).rejects.toSatisfy(isClientClosedError)
    expect(server.requests).toHaveLength(0)
  })
})
