/**
 * The runner is never silent while it retries: each retry is a warning with its cause and its
 * wait, `debug` gets one line per attempt, and `close()` reports what stays undelivered.
 */
import { type PrismaAPIClientOptions } from 'pipeline-status-sdk/client'
import { createProblem } from 'pipeline-status-sdk'
import { describe, expect, it } from 'vitest'
import { recordingLogger } from '../support/loggers.js'
import { useServerAndOutbox } from './support/outbox-fixture.js'
import { TEST_SECRET } from './support/test-server.js'
import { nearCeiling } from './support/outbox-jitter.js'

const PROBLEM_JSON = { 'content-type': 'application/problem+json' }

const env = useServerAndOutbox(({ server }) => ({ baseUrl: server.origin, secret: TEST_SECRET, retry: { limit: 3, baseDelayMs: 10, maxDelayMs: 40 } }))
const { createRun } = env

function makeClient(overrides: PrismaAPIClientOptions = {}) {
  const logger = recordingLogger()
  return { client: env.makeClient({ logger, ...overrides }), logger }
}

describe('retry warnings', () => {
  it('logs each retry of a refused connection with ECONNREFUSED and the wait', async () => {
    await env.server.stop()
    const { client, logger } = makeClient({ retry: { limit: 2, baseDelayMs: 10, maxDelayMs: 40 } })
    expect(await client.markStageProcessing('run_1', 1)).toBe(false)
    const warnings = logger.lines.filter((l) => l.level === 'warn')
    expect(warnings.map((l) => l.message)).toEqual([
      expect.stringMatching(/^Run run_1: stage 1 PROCESSING failed \(ECONNREFUSED\); attempt 2 of 3 \(retry 1 of 2\) in \d+ ms$/),
      expect.stringMatching(/^Run run_1: stage 1 PROCESSING failed \(ECONNREFUSED\); attempt 3 of 3 \(retry 2 of 2\) in \d+ ms$/),
    ])
    for (const [index, warning] of warnings.entries()) {
      expect(warning.details).toMatchObject({ cause: 'ECONNREFUSED', retry: index + 1, attempt: index + 2, attempts: 3, idempotencyKey: expect.any(String) })
      // Full jitter over baseDelayMs * 2^(retry-1).
      expect(warning.details?.delayMs).toBeLessThanOrEqual(10 * 2 ** index)
    }
    expect(logger.lines.at(-1)).toMatchObject({
      level: 'error',
      message: expect.stringMatching(
        /^Run run_1: stage 1 PROCESSING was not delivered: POST .* failed: network error \(ECONNREFUSED 127\.0\.0\.1:\d+\) after 3 attempt\(s\)\. Later updates of this run failing the same way are logged at debug level$/,
      ),
    })
  })

  it('logs the status, the problem code and the wait, Retry-After included, on every retry', async () => {
    const runId = await createRun()
    env.server.inject(
      { status: 503, headers: PROBLEM_JSON, body: JSON.stringify(createProblem('database_unavailable')) },
      { status: 429, headers: { 'retry-after': '1' } },
      { status: 502 },
    )
    const { client, logger } = makeClient()
    expect(await client.markStageComplete(runId, 1, 'x')).toBe(true)
    expect(env.server.requests).toHaveLength(4)
    expect(logger.lines.filter((l) => l.level === 'warn')).toEqual([
      {
        level: 'warn',
        message: expect.stringMatching(/^Run run_1: stage 1 COMPLETED failed \(HTTP 503 database_unavailable\); attempt 2 of 4 \(retry 1 of 3\) in \d+ ms$/),
        details: expect.objectContaining({ status: 503, code: 'database_unavailable', retry: 1 }),
      },
      {
        level: 'warn',
        message: 'Run run_1: stage 1 COMPLETED failed (HTTP 429); attempt 3 of 4 (retry 2 of 3) in 1000 ms',
        details: expect.objectContaining({ status: 429, retry: 2, delayMs: 1000 }),
      },
      {
        level: 'warn',
        message: expect.stringMatching(/^Run run_1: stage 1 COMPLETED failed \(HTTP 502\); attempt 4 of 4 \(retry 3 of 3\) in \d+ ms$/),
        details: expect.objectContaining({ status: 502, retry: 3 }),
      },
    ])
    // The waits the warnings announced are the waits that happened.
    const [, second, third] = env.server.requests
    expect((third?.arrivedAt ?? 0) - (second?.arrivedAt ?? 0)).toBeGreaterThanOrEqual(1000 - 1)
  })

  it('logs a timeout as the cause', async () => {
    const runId = await createRun()
    env.server.inject({ hang: true }, { hang: true })
    const { client, logger } = makeClient({ timeoutMs: 100 })
    expect(await client.markStageProcessing(runId, 1)).toBe(true)
    expect(logger.lines.filter((l) => l.level === 'warn').map((l) => l.message)).toEqual([
      expect.stringMatching(/^Run run_1: stage 1 PROCESSING failed \(timed out after 100 ms\); attempt 2 of 4 \(retry 1 of 3\) in \d+ ms$/),
      expect.stringMatching(/^Run run_1: stage 1 PROCESSING failed \(timed out after 100 ms\); attempt 3 of 4 \(retry 2 of 3\) in \d+ ms$/),
    ])
  })

  it('logs reads and run creation by method and URL', async () => {
    env.server.inject({ status: 500 })
    const { client, logger } = makeClient()
    await client.createRun('run_r')
    expect(logger.lines.find((l) => l.level === 'warn')?.message).toMatch(new RegExp(`^POST ${env.server.origin}/api/pipeline/runs failed \\(HTTP 500\\); attempt 2 of 4 \\(retry 1 of 3\\) in \\d+ ms$`))
  })
})

describe('debug', () => {
  it('logs each attempt with its status and duration when the logger has debug', async () => {
    const runId = await createRun()
    env.server.inject({ status: 503 })
    const { client, logger } = makeClient()
    await client.markStageProcessing(runId, 1)
    await client.getStatus(runId)
    const url = `${env.server.origin}/api/pipeline/run_1`
    expect(logger.lines.filter((l) => l.level === 'debug')).toEqual([
      { level: 'debug', message: expect.stringMatching(new RegExp(`^POST ${url}/stage-update → 503 in \\d+ ms \\(attempt 1\\)$`)), details: expect.objectContaining({ status: 503, attempt: 1 }) },
      { level: 'debug', message: expect.stringMatching(new RegExp(`^POST ${url}/stage-update → 200 in \\d+ ms \\(attempt 2\\)$`)), details: expect.objectContaining({ status: 200, attempt: 2 }) },
      { level: 'debug', message: expect.stringMatching(new RegExp(`^GET ${url}/status → 200 in \\d+ ms \\(attempt 1\\)$`)), details: expect.objectContaining({ status: 200, attempt: 1 }) },
    ])
    const keys = logger.lines.filter((l) => l.level === 'debug').map((l) => l.details?.idempotencyKey)
    expect(keys[0]).toBe(keys[1])
  })

  it('logs an attempt that got no response', async () => {
    await env.server.stop()
    const { client, logger } = makeClient({ retry: { limit: 0 } })
    await client.markStageProcessing('run_1', 1)
    expect(logger.lines[0]).toMatchObject({ level: 'debug', message: expect.stringMatching(/→ no response \(ECONNREFUSED\) after \d+ ms \(attempt 1\)$/) })
  })
})

describe('close()', () => {
  it('reports and logs what stays undelivered, per run', async () => {
    const runA = await createRun('run_a')
    const { client, logger } = makeClient({ retry: { limit: 0 }, outbox: { dir: env.dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling } })
    expect(await client.markStageProcessing('run_b', 1)).toBe(false) // unknown run: 404, dead-lettered
    await env.server.stop()
    await client.initializePipelineStages(runA)
    await client.markStageComplete(runA, 1, 'one')
    const result = await client.close({ timeoutMs: 200 })
    expect(result).toEqual({
      delivered: 0,
      rejected: 0,
      pending: 2,
      undelivered: {
        run_a: { queued: 2, deadLettered: 0, failed: 0 },
        run_b: { queued: 0, deadLettered: 1, failed: 0 },
      },
    })
    expect(logger.lines.at(-1)).toMatchObject({
      level: 'warn',
      message: `Closed with 3 update(s) undelivered (outbox ${env.dir}): run run_a: 2 queued in the outbox; run run_b: 1 dead-lettered`,
    })
  })

  it('reports updates lost without an outbox, and nothing when every update arrived', async () => {
    const runId = await createRun()
    const { client, logger } = makeClient()
    await client.markStageProcessing(runId, 1)
    await client.markStageProcessing('nope', 1)
    await client.markStageProcessing(runId, 9) // not in the catalogue: refused before sending
    expect((await client.close()).undelivered).toEqual({
      nope: { queued: 0, deadLettered: 0, failed: 1 },
      run_1: { queued: 0, deadLettered: 0, failed: 1 },
    })
    expect(logger.lines.at(-1)?.message).toBe('Closed with 2 update(s) undelivered: run nope: 1 failed; run run_1: 1 failed')

    const fine = makeClient().client
    await fine.markStageComplete(runId, 1, 'x')
    expect(await fine.close()).toEqual({ delivered: 0, rejected: 0, pending: 0, undelivered: {} })
  })
})
