/**
 * Messages that say the cause (issue 21 item 5): the error thrown after the network retries
 * names the system error and where (not only in `error.cause`); a base URL without a scheme is
 * refused with the likely fix; a wrong secret without an outbox is one error line per run and
 * cause plus one summary line, and `runPipeline`'s summary has one warning per cause.
 */
import {
  ConfigurationError,
  PrismaAPIClient,
  StatusNetworkError,
  runPipeline,
} from 'pipeline-status-sdk/client'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { recordingLogger } from '../support/loggers.js'
import { clientFactory } from './support/client-factory.js'
import { createRunOn } from './support/outbox-fixture.js'
import { TEST_SECRET, type TestServer, startTestServer } from './support/test-server.js'

let server: TestServer

beforeEach(async () => {
  server = await startTestServer()
})
afterEach(async () => {
  vi.unstubAllEnvs()
  await server.stop()
})

const clients = clientFactory(() => ({ baseUrl: server.origin, secret: TEST_SECRET, retry: { limit: 1, baseDelayMs: 5, maxDelayMs: 10 } }))

describe('the error thrown after the network retries', () => {
  it('names ECONNREFUSED and the address', async () => {
    await server.stop()
    const client = clients.make({ logger: recordingLogger() })
    const error = await client.getStatus('run_1').catch((thrown: unknown) => thrown)
    expect(error).toBeInstanceOf(StatusNetworkError)
    expect((error as Error).message).toBe(
      `GET ${server.origin}/api/pipeline/run_1/status failed: network error (ECONNREFUSED 127.0.0.1:${server.port}) after 2 attempt(s)`,
    )
  })

  it('names ENOTFOUND and the host', async () => {
    // The error undici's fetch rejects with for a name that does not resolve (measured on Node
    // 24), injected so that the test does not depend on the machine's resolver.
    const notFound: typeof fetch = () =>
      Promise.reject(
        new TypeError('fetch failed', {
          cause: Object.assign(new Error('getaddrinfo ENOTFOUND no-such-host.invalid'), { code: 'ENOTFOUND', hostname: 'no-such-host.invalid' }),
        }),
      )
    const client = clients.make({ baseUrl: 'http://no-such-host.invalid', retry: { limit: 1, baseDelayMs: 1 }, fetch: notFound, logger: recordingLogger() })
    const error = await client.createRun('run_1').catch((thrown: unknown) => thrown)
    expect(error).toBeInstanceOf(StatusNetworkError)
    expect((error as Error).message).toBe(
      'POST http://no-such-host.invalid/api/pipeline/runs failed: network error (ENOTFOUND no-such-host.invalid) after 2 attempt(s)',
    )
  })
})

describe('a base URL without a scheme', () => {
  it('is refused with the URL it probably means', () => {
    vi.stubEnv('FRONTEND_WEBHOOK_URL', 'localhost:5120')
    expect(() => new PrismaAPIClient({ secret: 's' })).toThrow(
      new ConfigurationError('FRONTEND_WEBHOOK_URL=localhost:5120 has no http:// or https://; did you mean http://localhost:5120?'),
    )
    expect(() => new PrismaAPIClient({ baseUrl: 'app.example.com/tenant', secret: 's' })).toThrow(
      'The base URL "app.example.com/tenant" has no http:// or https://; did you mean https://app.example.com/tenant?',
    )
    expect(() => new PrismaAPIClient({ baseUrl: 'not a url', secret: 's' })).toThrow('The base URL "not a url" is not an absolute URL')
  })
})

describe('a wrong secret without an outbox', () => {
  it('is one error line for the run and its cause, one summary line, and one warning per cause in the summary', async () => {
    const runId = await createRunOn(server)
    const logger = recordingLogger()
    const client = new PrismaAPIClient({ baseUrl: server.origin, secret: 'not-the-secret', logger })
    const summary = await runPipeline({ runId, client, stages: [() => 1, () => 2, () => 3, () => 4, () => 5] })
    await client.close()
    const refused = 'HTTP 401 unauthorized: X-Webhook-Secret does not match'
    expect(logger.lines.filter((l) => l.level !== 'debug').map((l) => `${l.level} ${l.message}`)).toEqual([
      `error Run ${runId}: stage 1 PROCESSING was not delivered: ${refused}; check that the runner's secret (WEBHOOK_SECRET) matches the web app's. ` +
        'Later updates of this run failing the same way are logged at debug level',
      `warn Closed with 11 update(s) undelivered: run ${runId}: 11 failed`,
    ])
    // The other ten are still there, at debug level.
    expect(logger.lines.filter((l) => l.level === 'debug' && l.message.includes('was not delivered either'))).toHaveLength(10)
    const updates = [1, 2, 3, 4, 5].flatMap((n) => [`stage ${n} PROCESSING`, `stage ${n} COMPLETED`])
    expect(summary.warnings).toEqual([
      `The server's stage catalogue could not be read, so the number of stages was not checked: ${refused}`,
      `11 updates were not delivered (failed): ${refused} (${[...updates, 'the completion'].join(', ')})`,
    ])
    expect(summary.delivered).toBe(false)
  })

  it('still logs a second cause of the same run, once', async () => {
    const runId = await createRunOn(server)
    const logger = recordingLogger()
    const client = clients.make({ logger, retry: { limit: 0 } })
    server.inject({ status: 401 }, { status: 401 }, { status: 503 }, { status: 503 })
    for (const stage of [1, 2, 3, 4]) await client.markStageProcessing(runId, stage)
    expect(logger.lines.filter((l) => l.level === 'error').map((l) => l.message)).toEqual([
      expect.stringMatching(new RegExp(`^Run ${runId}: stage 1 PROCESSING was not delivered: HTTP 401; check that`)),
      expect.stringMatching(new RegExp(`^Run ${runId}: stage 3 PROCESSING was not delivered: HTTP 503\\. Later updates`)),
    ])
  })
})
