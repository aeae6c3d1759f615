/**
 * A stage's status is never lost because of its output: the client replaces what PostgreSQL
 * cannot store, and cuts an output the server refuses as too large (413) to the limit the
 * problem states, as a new update. Against the real handlers over HTTP, with a small limit.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { PrismaAPIClient, type PrismaAPIClientOptions, TRUNCATION_MARKER, silentLogger } from 'pipeline-status-sdk/client'
import { verifyWebhookSignature } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it } from 'vitest'
import { fitStageUpdate } from '../../src/client/stage-output.js'
import { isStorableText, toStorableText } from '../../src/contract/storable-text.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { recordingLogger } from '../support/loggers.js'
import { clientFactory } from './support/client-factory.js'
import { type RecordedRequest, TEST_SECRET, type TestServer, startTestServer } from './support/test-server.js'
import { nearCeiling } from './support/outbox-jitter.js'

const LIMIT = 4096
const SIGNING_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'

let server: TestServer
let dir: string | undefined

afterEach(async () => {
  await server.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
  dir = undefined
})

const { make: makeClient, track } = clientFactory(() => ({
  baseUrl: server.origin,
  secret: TEST_SECRET,
  logger: silentLogger,
  retry: { limit: 1, baseDelayMs: 5, maxDelayMs: 5 },
}))

async function setup(overrides: PrismaAPIClientOptions = {}, server_: { signingSecret?: string } = {}) {
  server = await startTestServer({ maxBodyBytes: LIMIT, ...server_ })
  const client = makeClient(overrides)
  await client.createRun('run_1')
  server.requests.length = 0
  return client
}

const bytes = (text: string) => Buffer.byteLength(text, 'utf8')
const body = (request: RecordedRequest | undefined) =>
  JSON.parse(request?.body ?? 'null') as { stageNumber: number; status: string; output?: string; completedAt?: string }

describe('unstorable characters', () => {
  it('replaces a lone surrogate and a NUL with U+FFFD, keeps paired surrogates, and says so', async () => {
    const logger = recordingLogger()
    const client = await setup({ logger })
    expect(await client.markStageComplete('run_1', 1, 'lone \uD800 high, lone \uDC00 low, emoji 😀 kept')).toBe(true)
    expect(await client.markStageComplete('run_1', 2, 'nul \u0000 here')).toBe(true)
    expect(await client.markStageFailed('run_1', 3, 'error with \u0000')).toBe(true)
    // One request each: nothing was refused.
    expect(server.requests).toHaveLength(3)
    const status = await client.getStatus('run_1')
    expect(status.stages.map((s) => s.output)).toEqual([
      'lone \uFFFD high, lone \uFFFD low, emoji 😀 kept',
      'nul \uFFFD here',
      'error with \uFFFD',
    ])
    expect(status.run).toMatchObject({ status: 'FAILED', error: 'error with \uFFFD' })
    expect(logger.lines.filter((l) => l.level === 'warn')).toEqual([
      expect.objectContaining({ message: expect.stringMatching(/^Run run_1: stage 1 COMPLETED: replaced 2 character\(s\) .* with U\+FFFD$/) }),
      expect.objectContaining({ message: expect.stringMatching(/^Run run_1: stage 2 COMPLETED: replaced 1 character\(s\)/) }),
      expect.objectContaining({ message: expect.stringMatching(/^Run run_1: stage 3 FAILED: replaced 1 character\(s\)/) }),
    ])
  })

  it('makes a body given to sendStageUpdate storable too', async () => {
    const client = await setup()
    expect(await client.sendStageUpdate('run_1', makeStageUpdate({ status: 'COMPLETED', output: '\u0000\uDBFF' }))).toBe(true)
    expect((await client.getStatus('run_1')).stages[0]?.output).toBe('\uFFFD\uFFFD')
  })
})

describe('an output over the server body limit', () => {
  it('is cut to the limit the 413 states, ended by the marker, and sent as a new update (new keys)', async () => {
    const logger = recordingLogger()
    const client = await setup({ logger, signing: { secret: SIGNING_SECRET } }, { signingSecret: SIGNING_SECRET })
    const output = `${'é'.repeat(3000)}"quoted"\n${'x'.repeat(3000)}`
    expect(await client.markStageComplete('run_1', 1, output)).toBe(true)

    const [refused, cut] = server.requests as [RecordedRequest, RecordedRequest]
    expect(server.requests).toHaveLength(2)
    expect(bytes(refused.body)).toBeGreaterThan(LIMIT)
    // A new update: a new idempotency key and a new webhook-id, correctly signed.
    expect(cut.headers['idempotency-key']).not.toBe(refused.headers['idempotency-key'])
    expect(cut.headers['webhook-id']).not.toBe(refused.headers['webhook-id'])
    expect((await verifyWebhookSignature({ secrets: [SIGNING_SECRET], headers: cut.headers, body: cut.body })).valid).toBe(true)
    // It fits, nearly to the byte, keeps completedAt and ends with one marker.
    expect(bytes(cut.body)).toBeLessThanOrEqual(LIMIT)
    expect(bytes(cut.body)).toBeGreaterThan(LIMIT - 8)
    expect(body(cut).completedAt).toBe(body(refused).completedAt)
    const sent = body(cut).output ?? ''
    expect(sent.endsWith(TRUNCATION_MARKER)).toBe(true)
    expect(sent.split(TRUNCATION_MARKER)).toHaveLength(2)
    expect(output.startsWith(sent.slice(0, -TRUNCATION_MARKER.length))).toBe(true)

    const stage = (await client.getStatus('run_1')).stages[0]
    expect(stage).toMatchObject({ status: 'COMPLETED', output: sent })
    expect(logger.lines.filter((l) => l.level === 'warn')).toEqual([
      expect.objectContaining({
        message: expect.stringMatching(
          new RegExp(`stage 1 COMPLETED: the server refused the body as too large \\(413, limit 4096 bytes\\); sending it again with the output cut from ${bytes(output)} to ${bytes(sent)} bytes`),
        ),
        details: expect.objectContaining({ kind: 'truncated', maxBodyBytes: LIMIT, originalBytes: bytes(output), sentBytes: bytes(sent) }),
      }),
    ])
  })

  it('halves the body when a 413 from something in between states no limit', async () => {
    const client = await setup()
    server.inject({ status: 413, headers: { 'content-type': 'text/html' }, body: '<h1>413 Request Entity Too Large</h1>' })
    expect(await client.markStageComplete('run_1', 1, 'y'.repeat(2000))).toBe(true)
    const [refused, cut] = server.requests as [RecordedRequest, RecordedRequest]
    expect(bytes(cut.body)).toBeLessThanOrEqual(Math.floor(bytes(refused.body) / 2))
    expect((await client.getStatus('run_1')).stages[0]?.output?.endsWith(TRUNCATION_MARKER)).toBe(true)
  })

  it('is cut when the 413 comes on a redelivery from the outbox, keeping its place in the run\'s order', async () => {
    dir = mkdtempSync(join(tmpdir(), 'pipeline-outbox-'))
    const client = await setup({ outbox: { dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling } })
    server.setFault({ status: 503 })
    expect(await client.markStageComplete('run_1', 1, 'z'.repeat(LIMIT * 2))).toBe(true)
    expect(await client.markStageProcessing('run_1', 2)).toBe(true)
    expect(client.pendingCount('run_1')).toBe(2)
    server.setFault(undefined)
    server.requests.length = 0

    expect(await client.flush()).toEqual({ delivered: 2, rejected: 0, pending: 0 })
    expect(server.requests.map((r) => `${body(r).stageNumber} ${body(r).status} ${bytes(r.body) <= LIMIT}`)).toEqual([
      '1 COMPLETED false',
      '1 COMPLETED true',
      '2 PROCESSING true',
    ])
    expect(server.requests[1]?.headers['idempotency-key']).not.toBe(server.requests[0]?.headers['idempotency-key'])
    const stages = (await client.getStatus('run_1')).stages
    expect(stages.map((s) => s.status)).toEqual(['COMPLETED', 'PROCESSING'])
    expect(stages[0]?.output?.endsWith(TRUNCATION_MARKER)).toBe(true)
  })

  it('keeps the replacement in the refused entry\'s place after a restart', async () => {
    dir = mkdtempSync(join(tmpdir(), 'pipeline-outbox-'))
    server = await startTestServer({ maxBodyBytes: LIMIT })
    const first = new PrismaAPIClient({ baseUrl: server.origin, secret: TEST_SECRET, logger: silentLogger, retry: { limit: 0 }, outbox: { dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling } })
    await first.createRun('run_1')
    server.setFault({ status: 503 })
    await first.markStageComplete('run_1', 1, 'z'.repeat(LIMIT * 2))
    await first.markStageProcessing('run_1', 2)
    // The first redelivery gets the 413 (the replacement is written), the next a 503: both wait.
    server.setFault(undefined)
    server.inject({ status: 413, headers: { 'content-type': 'application/problem+json' }, body: JSON.stringify({ type: 'x', title: 'x', status: 413, code: 'payload_too_large', maxBytes: LIMIT }) }, { status: 503 })
    expect(await first.flush()).toEqual({ delivered: 0, rejected: 0, pending: 2 })
    server.setFault({ status: 503 })
    await first.close({ timeoutMs: 100 })
    server.setFault(undefined)
    server.requests.length = 0

    const second = track(new PrismaAPIClient({ baseUrl: server.origin, secret: TEST_SECRET, logger: silentLogger, outbox: { dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling } }))
    expect(await second.flush()).toEqual({ delivered: 2, rejected: 0, pending: 0 })
    expect(server.requests.map((r) => `${body(r).stageNumber} ${body(r).status}`)).toEqual(['1 COMPLETED', '2 PROCESSING'])
    expect(bytes(server.requests[0]?.body ?? '')).toBeLessThanOrEqual(LIMIT)
    const journal = readFileSync(join(dir, 'journal.jsonl'), 'utf8')
    expect(journal).toBe('')
  })

  it('prefers the replacement when a crash left the original unacknowledged', async () => {
    dir = mkdtempSync(join(tmpdir(), 'pipeline-outbox-'))
    server = await startTestServer({ maxBodyBytes: LIMIT })
    await new PrismaAPIClient({ baseUrl: server.origin, secret: TEST_SECRET }).createRun('run_1')
    server.requests.length = 0
    const stage = (status: string, output?: string) =>
      JSON.stringify({ stageNumber: 1, stageName: 'Input Processing', status, ...(output === undefined ? {} : { output, completedAt: '2025-10-25T14:03:11.123Z' }) })
    const original = { v: 1, id: crypto.randomUUID(), runId: 'run_1', route: 'stageUpdate', body: stage('COMPLETED', 'z'.repeat(LIMIT * 2)), queuedAt: new Date().toISOString() }
    const later = { ...original, id: crypto.randomUUID(), body: stage('PROCESSING') }
    const replacement = { ...original, id: crypto.randomUUID(), body: stage('COMPLETED', `zz${TRUNCATION_MARKER}`), replaces: original.id }
    writeFileSync(join(dir, 'journal.jsonl'), [original, later, replacement].map((e) => `${JSON.stringify(e)}\n`).join(''))
    const client = track(new PrismaAPIClient({ baseUrl: server.origin, secret: TEST_SECRET, logger: silentLogger, outbox: { dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling } }))
    expect(client.pendingCount()).toBe(2)
    expect(await client.flush()).toEqual({ delivered: 2, rejected: 0, pending: 0 })
    expect(server.requests.map((r) => r.headers['idempotency-key'])).toEqual([replacement.id, later.id])
  })

  it('dead-letters a completion that is too large (only stage outputs are cut) and goes on', async () => {
    dir = mkdtempSync(join(tmpdir(), 'pipeline-outbox-'))
    const client = await setup({ outbox: { dir } })
    await expect(client.completeRun('run_1', { status: 'COMPLETED', fullReportMarkdown: 'r'.repeat(LIMIT) })).rejects.toMatchObject({ status: 413 })
    expect(await client.deadLetters('run_1')).toEqual([
      expect.objectContaining({ runId: 'run_1', route: 'complete', status: 413, code: 'payload_too_large' }),
    ])
    expect(await client.markStageProcessing('run_1', 1)).toBe(true)
    expect((await client.getStatus('run_1')).stages[0]?.status).toBe('PROCESSING')
  })
})

describe('fitStageUpdate', () => {
  it('fits any output into any limit it can, to within one character, never splitting a pair', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 400 }), fc.string({ unit: 'grapheme', maxLength: 200 })), fc.integer({ min: 0, max: 2000 }), (raw, limit) => {
        // Outputs are made storable before they are ever cut.
        const output = toStorableText(raw).text
        const update = makeStageUpdate({ status: 'COMPLETED', output, completedAt: '2025-10-25T14:03:11.123Z' })
        const fitted = fitStageUpdate(update, limit)
        const before = bytes(JSON.stringify(update))
        if (fitted === undefined) {
          // Only when even the marker alone does not fit, or cutting would not make it smaller.
          const bare = bytes(JSON.stringify({ ...update, output: TRUNCATION_MARKER }))
          expect(bare > limit || bare >= before || limit >= before).toBe(true)
          return
        }
        expect(bytes(fitted.json)).toBeLessThanOrEqual(limit)
        expect(bytes(fitted.json)).toBeLessThan(before)
        const sent = (JSON.parse(fitted.json) as { output: string }).output
        expect(sent.endsWith(TRUNCATION_MARKER)).toBe(true)
        const kept = sent.slice(0, -TRUNCATION_MARKER.length)
        expect(output.startsWith(kept)).toBe(true)
        expect(isStorableText(kept)).toBe(true)
        // One more code point would not have fitted.
        const next = output.slice(kept.length, kept.length + ((output.codePointAt(kept.length) ?? 0) > 0xffff ? 2 : 1))
        if (next !== '') expect(bytes(JSON.stringify({ ...update, output: kept + next + TRUNCATION_MARKER }))).toBeGreaterThan(limit)
      }),
      { numRuns: 300 },
    )
  })
})
