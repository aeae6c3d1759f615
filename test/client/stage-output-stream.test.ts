/**
 * Streamed stage output from the runner against the real handlers (a MemoryStore) over HTTP:
 * `runPipeline`'s `write` shows the stage's text growing in `GET /status` while it runs (with
 * `outputSeq`), the final output replaces it, a retry attempt starts a new text; the client's
 * `appendStageOutput` gets `applied`, `duplicate`, `conflict` and each refusal as the contract
 * defines them; a 413 stops the stream with one warning and the stage still completes. The wire
 * details (order, batching, the outbox) are test/client/stage-output-wire.test.ts.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PrismaAPIClient, type PrismaAPIClientOptions, isQueuedDelivery, runPipeline, silentLogger } from 'pipeline-status-sdk/client'
import { MemoryStore, createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it } from 'vitest'
import { recordingLogger } from '../support/loggers.js'
import { until } from '../support/until.js'
import { crashChild } from './support/crash-child.js'
import { TEST_SECRET, type TestServer, startTestServer } from './support/test-server.js'

const servers: TestServer[] = []
const clients: PrismaAPIClient[] = []
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close({ timeoutMs: 1_000 })))
  await Promise.all(servers.splice(0).map((server) => server.stop()))
})

/** The real handlers; `maxStreamedOutputBytes` lowers a stage's limit of streamed text. */
async function serve(maxStreamedOutputBytes?: number): Promise<TestServer> {
  const store = new MemoryStore()
  const handlers = createPipelineStatusHandlers({
    store,
    secret: TEST_SECRET,
    logger: { error: () => undefined, warn: () => undefined },
    ...(maxStreamedOutputBytes === undefined ? {} : { maxStreamedOutputBytes }),
  } as Parameters<typeof createPipelineStatusHandlers>[0])
  const server = await startTestServer({ handler: handlers.fetch })
  servers.push(server)
  return server
}

/**
 * Requests to `suffix` the handlers have answered, so stored: the server records a request as it
 * arrives, before the handlers apply it, and a GET /status sent on another connection can be
 * answered in between.
 */
function stored(server: TestServer, suffix: string): number {
  return server.requestsTo(suffix).filter((request) => request.answeredAt !== undefined).length
}

function clientOf(server: TestServer, options: PrismaAPIClientOptions = {}): PrismaAPIClient {
  const client = new PrismaAPIClient({ baseUrl: server.origin, secret: TEST_SECRET, logger: silentLogger, heartbeatIntervalMs: 60_000, ...options })
  clients.push(client)
  return client
}

describe("runPipeline's write against the real handlers", () => {
  it('shows the text growing in GET /status while the stage runs; the final output replaces it', async () => {
    const server = await serve()
    const client = clientOf(server)
    const { run } = await client.createRun('stream_1')
    const seen: { output: string | null; outputSeq: unknown }[] = []
    const summary = await runPipeline({
      runId: run.id,
      client,
      stages: [
        () => 'one',
        async ({ write }) => {
          write('## Findings\n')
          await until('the first chunk stored', () => stored(server, '/stages/2/output') >= 1)
          const first = (await client.getStatus(run.id)).stages.find((stage) => stage.stageNumber === 2)
          seen.push({ output: first?.output ?? null, outputSeq: first?.outputSeq })
          write('- pricing\n')
          write('- pastry ')
          write('pop-ups\n')
          await until('the second chunk stored', () => stored(server, '/stages/2/output') >= 2)
          const second = (await client.getStatus(run.id)).stages.find((stage) => stage.stageNumber === 2)
          seen.push({ output: second?.output ?? null, outputSeq: second?.outputSeq })
          return 'FINAL REPORT'
        },
        () => 3,
        () => 4,
        () => 5,
      ],
    })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [] })
    expect(seen).toEqual([
      { output: '## Findings\n', outputSeq: 0 },
      { output: '## Findings\n- pricing\n- pastry pop-ups\n', outputSeq: 1 },
    ])
    const stage = (await client.getStatus(run.id)).stages.find((candidate) => candidate.stageNumber === 2)
    expect(stage).toMatchObject({ status: 'COMPLETED', output: 'FINAL REPORT' })
  })

  it("starts a new text for a retry attempt: attempt 2's chunks from seq 0 replace attempt 1's", async () => {
    const server = await serve()
    const client = clientOf(server)
    const { run } = await client.createRun('stream_2')
    let duringSecond: string | null | undefined
    const summary = await runPipeline({
      runId: run.id,
      client,
      retry: { attempts: 2, backoffMs: 0 },
      stages: [
        async ({ write, attempt }) => {
          write(`attempt ${attempt}`)
          if (attempt === 1) throw new Error('model overloaded')
          await until('attempt 2 chunk stored', () => stored(server, '/stages/1/output') >= 2)
          duringSecond = (await client.getStatus(run.id)).stages[0]?.output
          return undefined
        },
        () => 2,
        () => 3,
        () => 4,
        () => 5,
      ],
    })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [] })
    expect(server.requestsTo('/stages/1/output').map((request) => JSON.parse(request.body) as unknown)).toEqual([
      { seq: 0, text: 'attempt 1' },
      { seq: 0, text: 'attempt 2' },
    ])
    expect(duringSecond).toBe('attempt 2')
  })

  it('stops after a 413 with one warning; the stage completes with its output', async () => {
    const server = await serve(64)
    const logger = recordingLogger()
    const client = clientOf(server, { logger })
    const { run } = await client.createRun('stream_3')
    const summary = await runPipeline({
      runId: run.id,
      client,
      stages: [
        async ({ write }) => {
          write('x'.repeat(40))
          await until('the first chunk', () => server.requestsTo('/stages/1/output').length >= 1)
          write('y'.repeat(40))
          await until('the second chunk', () => server.requestsTo('/stages/1/output').length >= 2)
          for (let i = 0; i < 10; i++) write('z')
          return 'done'
        },
        () => 2,
        () => 3,
        () => 4,
        () => 5,
      ],
    })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true })
    expect(server.requestsTo('/stages/1/output')).toHaveLength(2)
    const lines = logger.lines.filter((line) => line.level === 'warn' || line.level === 'error')
    expect(lines.map((line) => line.message)).toEqual([
      `Run ${run.id}: stage 1: streamed output stopped: chunk 1 was refused: HTTP 413 output_too_large: Stage 1's streamed output would be 80 bytes, over the limit of 64; nothing was stored. Later write() calls are dropped; ` +
        "the stage's final status and output are still sent. Fix: stream less text per stage attempt, or raise the server's " +
        "maxStreamedOutputBytes (its limit of one stage attempt's streamed text)",
    ])
    expect(summary.warnings).toEqual([expect.stringMatching(/^Stage 1 streamed output stopped/)])
    expect((await client.getStatus(run.id)).stages[0]).toMatchObject({ status: 'COMPLETED', output: 'done' })
  })
})

describe('a stopped output stream logs one line naming the cause and the fix', () => {
  it('a chunk not delivered (no outbox, the server answering 503): one line, not the delivery\'s and the stream\'s', async () => {
    const server = await serve()
    const logger = recordingLogger()
    const client = clientOf(server, { logger, retry: { limit: 0 } })
    const { run } = await client.createRun('stream_lost')
    await client.markStageProcessing(run.id, 1)
    server.setFault({ status: 503, headers: { 'content-type': 'application/problem+json' }, body: JSON.stringify({ title: 'Unavailable', status: 503, code: 'database_unavailable' }) })
    const stream = client.streamStageOutput(run.id, 1, { flushIntervalMs: 0 })
    stream.write('lost')
    await stream.flush()
    stream.write('dropped after the stop')
    const summary = await stream.close()
    server.setFault(undefined)
    expect(summary).toEqual({ chunks: 0, bytes: 0, stopped: 'chunk 0 was not delivered: HTTP 503' })
    expect(logger.lines.filter((line) => line.level !== 'debug').map((line) => `${line.level}: ${line.message}`)).toEqual([
      `warn: Run ${run.id}: stage 1: streamed output stopped: chunk 0 was not delivered: HTTP 503. Later write() calls are dropped; ` +
        "the stage's final status and output are still sent. Fix: give the client an outbox (outbox: { dir }) so that chunks wait on " +
        'disk while the server cannot take them, or check that the server is reachable from the runner',
    ])
  })

  it('parallel stages, the last one completed first: the chunk refused with run_finished names that cause, not a bug', async () => {
    const server = await serve()
    const logger = recordingLogger()
    const client = clientOf(server, { logger })
    const { run } = await client.createRun('stream_parallel')
    await client.markStageProcessing(run.id, 3)
    // Stage 5, the catalogue's last, completes while stage 3 still runs: it completes the run.
    expect(await client.markStageComplete(run.id, 5, 'report')).toBe(true)
    const stream = client.streamStageOutput(run.id, 3, { flushIntervalMs: 0 })
    stream.write('too late')
    const summary = await stream.close()
    expect(summary.stopped).toBe('chunk 0 was refused: HTTP 409 run_finished: Run stream_parallel is COMPLETED and takes no more output')
    expect(logger.lines.filter((line) => line.level !== 'debug').map((line) => `${line.level}: ${line.message}`)).toEqual([
      `warn: Run ${run.id}: stage 3: streamed output stopped: ${summary.stopped}. Later write() calls are dropped; the stage's final status and output are still sent. ` +
        "Fix: the run was already finished by this runner's own report (the catalogue's last stage COMPLETED, or a stage FAILED or CANCELLED): " +
        'a runner with parallel stages must report the last stage COMPLETED only after every other stage finished (after a FAILED or CANCELLED stage there is nothing to fix)',
    ])
  })

  it('a stream truncated past maxBufferedBytes and then refused: one line, the first cause', async () => {
    const server = await serve(8)
    const logger = recordingLogger()
    const client = clientOf(server, { logger })
    const { run } = await client.createRun('stream_twice')
    await client.markStageProcessing(run.id, 1)
    const stream = client.streamStageOutput(run.id, 1, { flushIntervalMs: 60_000, maxBufferedBytes: 16 })
    stream.write('0123456789')
    stream.write('past the bound')
    const summary = await stream.close()
    expect(summary.stopped).toMatch(/^chunk 0 was refused: .*413/)
    expect(logger.lines.filter((line) => line.level !== 'debug').map((line) => `${line.level}: ${line.message}`)).toEqual([
      `warn: Run ${run.id}: stage 1: streamed output truncated: more than 16 bytes waited to be sent (the server takes the chunks slower ` +
        "than the stage writes them). This write and later ones are dropped; the text written before is still sent, then the stage's " +
        'final status. Fix: write less often or in larger pieces, or raise maxBufferedBytes',
    ])
  })
})

describe('appendStageOutput against the real handlers', () => {
  it('answers applied, duplicate and conflict; refuses a gap, a stage not started and a final stage with 409s', async () => {
    const server = await serve()
    const client = clientOf(server)
    const { run } = await client.createRun('stream_4')
    await expect(client.appendStageOutput(run.id, 1, { seq: 0, text: 'early' })).rejects.toMatchObject({ status: 409, problem: { code: 'stage_not_started' } })
    await client.markStageProcessing(run.id, 1)
    const applied = await client.appendStageOutput(run.id, 1, { seq: 0, text: 'Hello, ' })
    expect(isQueuedDelivery(applied)).toBe(false)
    expect(applied).toMatchObject({ outcome: 'applied', stage: { stageNumber: 1, outputSeq: 0 } })
    expect(await client.appendStageOutput(run.id, 1, { seq: 0, text: 'Hello, ' })).toMatchObject({ outcome: 'duplicate' })
    expect(await client.appendStageOutput(run.id, 1, { seq: 0, text: 'Bye, ' })).toMatchObject({ outcome: 'conflict' })
    await expect(client.appendStageOutput(run.id, 1, { seq: 2, text: 'gap' })).rejects.toMatchObject({
      status: 409,
      problem: { code: 'output_out_of_order', expectedSeq: 1 },
    })
    expect(await client.appendStageOutput(run.id, 1, { seq: 1, text: 'world 🌍' })).toMatchObject({ outcome: 'applied', stage: { outputSeq: 1 } })
    expect((await client.getStatus(run.id)).stages[0]?.output).toBe('Hello, world 🌍')
    await client.markStageComplete(run.id, 1, 'final')
    await expect(client.appendStageOutput(run.id, 1, { seq: 2, text: 'late' })).rejects.toMatchObject({ status: 409, problem: { code: 'stage_finished' } })
  })
})

describe('a runner restarted after a crash mid-stream (same runId, outbox on)', () => {
  it("runs the stage as a new attempt: the completed stage's output is the second process's text", async () => {
    const server = await serve()
    const client = clientOf(server)
    const { run } = await client.createRun('stream_crash_1')
    const dir = mkdtempSync(join(tmpdir(), 'stream-crash-'))
    expect(await crashChild('stream-then-crash.ts', server, dir, run.id, 'streamed')).toEqual({ stdout: 'streamed\n', stderr: '' })
    const before = (await client.getStatus(run.id)).stages.find((stage) => stage.stageNumber === 1)
    expect(before?.status).toBe('PROCESSING')
    expect(before?.output).toBe('the crashed process wrote this, ')

    const logger = recordingLogger()
    const restarted = clientOf(server, { outbox: { dir }, logger })
    const summary = await runPipeline({
      runId: run.id,
      client: restarted,
      stages: [
        async ({ write }) => {
          write('the restarted process wrote this, ')
          write('all of it')
        },
        ...[2, 3, 4, 5].map((n) => () => `stage ${n}`),
      ],
    })
    expect(summary.status).toBe('COMPLETED')
    const stage = (await client.getStatus(run.id)).stages.find((row) => row.stageNumber === 1)
    expect(stage).toMatchObject({ status: 'COMPLETED', output: 'the restarted process wrote this, all of it', attempt: 2 })
    expect(summary.warnings.filter((warning) => warning.includes('streamed output stopped'))).toEqual([])
  })
})

describe("a runner restarted after a crash while its stage's first PROCESSING still waited in the outbox", () => {
  /** The real handlers, behind a gate: `down` answers every stage update and chunk 503; `until-read`, until a `GET /status` was answered. */
  async function gatedServer(): Promise<{ server: TestServer; gate: { mode: 'down' | 'until-read' | 'up'; read: boolean } }> {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: TEST_SECRET, logger: { error: () => undefined, warn: () => undefined } })
    const gate = { mode: 'down' as 'down' | 'until-read' | 'up', read: false }
    const server = await startTestServer({
      handler: async (request) => {
        const path = new URL(request.url).pathname
        const write = request.method === 'POST' && (path.endsWith('/stage-update') || path.endsWith('/output'))
        if (write && (gate.mode === 'down' || (gate.mode === 'until-read' && !gate.read))) {
          return Response.json({ title: 'Database unavailable', status: 503, code: 'database_unavailable' }, { status: 503, headers: { 'content-type': 'application/problem+json' } })
        }
        const response = await handlers.fetch(request)
        if (request.method === 'GET' && path.endsWith('/status')) gate.read = true
        return response
      },
    })
    servers.push(server)
    return { server, gate }
  }

  it.each([
    ['the restarted runner reads the run before the redelivered PROCESSING lands', 'until-read'],
    ['the redelivered PROCESSING lands before the restarted runner reads the run', 'flushed'],
  ] as const)('runs the stage as attempt 2 when %s', async (_, order) => {
    const { server, gate } = await gatedServer()
    const client = clientOf(server)
    const runId = `queued_crash_${order}`
    await client.createRun(runId)
    const dir = mkdtempSync(join(tmpdir(), 'queued-crash-'))
    expect(await crashChild('queue-then-crash.ts', server, dir, runId, 'queued')).toEqual({ stdout: 'queued\n', stderr: '' })
    // Nothing of the crashed process landed: the run has no stage rows.
    expect((await client.getStatus(runId)).stages).toEqual([])

    gate.mode = order === 'until-read' ? 'until-read' : 'up'
    gate.read = false
    const restarted = clientOf(server, { outbox: { dir, retryDelayMs: 20, maxRetryDelayMs: 100 }, followRunStream: false })
    if (order === 'flushed') {
      await restarted.flush()
      expect((await client.getStatus(runId)).stages.map(({ stageNumber, status, attempt, output }) => ({ stageNumber, status, attempt, output }))).toEqual([
        { stageNumber: 1, status: 'PROCESSING', attempt: null, output: 'the crashed process wrote this, ' },
      ])
    }
    const summary = await runPipeline({
      runId,
      client: restarted,
      stages: [
        async ({ write, attempt }) => {
          write('the restarted process wrote this, ')
          write(`as its attempt ${attempt}`)
        },
        ...[2, 3, 4, 5].map((n) => () => `stage ${n}`),
      ],
    })
    expect(summary.status).toBe('COMPLETED')
    expect(summary.warnings.filter((warning) => warning.includes('streamed output stopped'))).toEqual([])
    await until('the outbox is empty', () => restarted.pendingCount(runId) === 0)
    const status = await client.getStatus(runId)
    expect(status.run.status).toBe('COMPLETED')
    expect(status.stages.map(({ stageNumber, status, attempt, maxAttempts, output }) => ({ stageNumber, status, attempt, maxAttempts, output }))).toEqual([
      { stageNumber: 1, status: 'COMPLETED', attempt: 2, maxAttempts: 2, output: 'the restarted process wrote this, as its attempt 1' },
      ...[2, 3, 4, 5].map((n) => ({ stageNumber: n, status: 'COMPLETED', attempt: null, maxAttempts: null, output: `stage ${n}` })),
    ])
  })
})
