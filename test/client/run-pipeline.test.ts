/** runPipeline against the real handlers over HTTP: success, a failing stage, cancellation. */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CatalogueMismatchError, ConfigurationError, DEFAULT_STAGES, PrismaAPIClient, type PipelineProgressEvent, runPipeline, silentLogger } from 'pipeline-status-sdk/client'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { TEST_SECRET, type TestServer, startTestServer } from './support/test-server.js'
import { nearCeiling } from './support/outbox-jitter.js'

let server: TestServer
let client: PrismaAPIClient
let debugDir: string

beforeEach(async () => {
  server = await startTestServer()
  client = new PrismaAPIClient({ baseUrl: server.origin, secret: TEST_SECRET, logger: silentLogger, retry: { limit: 1, baseDelayMs: 5 } })
  debugDir = mkdtempSync(join(tmpdir(), 'pipeline-debug-'))
})
afterEach(async () => {
  await client.close({ timeoutMs: 100 })
  await server.stop()
  rmSync(debugDir, { recursive: true, force: true })
})

const updates = () =>
  server.requestsTo('/stage-update').map((r) => {
    const body = JSON.parse(r.body) as { stageNumber: number; status: string }
    return `${body.stageNumber} ${body.status}`
  })

describe('runPipeline', () => {
  it('runs every stage, reports each, saves debug outputs and completes the run', async () => {
    await client.createRun('run_ok')
    const events: PipelineProgressEvent[] = []
    const seen: unknown[][] = []
    const summary = await runPipeline({
      runId: 'run_ok',
      client,
      debugDir,
      onProgress: (event) => events.push(event),
      results: (outputs) => ({ fullReportMarkdown: String(outputs[4]) }),
      stages: [
        () => ({ signals: [1, 2, 3] }),
        async ({ previousOutputs }) => ({ amplified: (previousOutputs[0] as { signals: number[] }).signals.length }),
        ({ stageName }) => `translated by ${stageName}`,
        ({ previousOutputs }) => {
          seen.push([...previousOutputs])
          return ['brand']
        },
        ({ runId, stageNumber }) => `# Report for ${runId} (stage ${stageNumber})`,
      ],
    })

    expect(summary).toMatchObject({ runId: 'run_ok', status: 'COMPLETED', warnings: [], delivered: true, alteredOutputs: [] })
    expect(summary.error).toBeUndefined()
    expect(summary.stages.map((s) => [s.stageNumber, s.stageName, s.status, s.reported])).toEqual([
      [1, 'Input Processing', 'COMPLETED', true],
      [2, 'Signal Amplification', 'COMPLETED', true],
      [3, 'General Translation', 'COMPLETED', true],
      [4, 'Brand Contextualization', 'COMPLETED', true],
      [5, 'Opportunity Generation', 'COMPLETED', true],
    ])
    for (const stage of summary.stages) expect(stage.durationMs).toBeGreaterThanOrEqual(0)
    expect(seen[0]).toEqual([{ signals: [1, 2, 3] }, { amplified: 3 }, 'translated by General Translation'])
    expect(summary.completion).toMatchObject({ ok: true, response: { outcome: 'applied', run: { status: 'COMPLETED' } } })

    expect(updates()).toEqual([
      '1 PROCESSING', '1 COMPLETED', '2 PROCESSING', '2 COMPLETED', '3 PROCESSING',
      '3 COMPLETED', '4 PROCESSING', '4 COMPLETED', '5 PROCESSING', '5 COMPLETED',
    ])
    const complete = JSON.parse(server.requestsTo('/complete')[0]?.body ?? '{}') as Record<string, unknown>
    expect(complete).toMatchObject({ status: 'COMPLETED', fullReportMarkdown: '# Report for run_ok (stage 5)' })
    expect(complete.duration).toBeGreaterThanOrEqual(0)

    expect(readdirSync(join(debugDir, 'run_ok')).sort()).toEqual([1, 2, 3, 4, 5].map((n) => `stage_${n}_output.json`))
    expect(JSON.parse(readFileSync(join(debugDir, 'run_ok', 'stage_2_output.json'), 'utf8'))).toEqual({ amplified: 3 })
    expect(JSON.parse(readFileSync(join(debugDir, 'run_ok', 'stage_3_output.json'), 'utf8'))).toBe('translated by General Translation')

    const status = await client.getStatus('run_ok')
    expect(status.run.status).toBe('COMPLETED')
    expect(status.stages[1]?.output).toBe('{"amplified":3}')
    expect(status.stages[2]?.output).toBe('translated by General Translation')
    expect(events.map((e) => e.type)).toEqual([...Array(5).fill(['stage-started', 'stage-finished']).flat(), 'run-finished'])
  })

  it('marks a throwing stage FAILED and stops', async () => {
    await client.createRun('run_fail')
    let ranAfter = false
    const summary = await runPipeline({
      runId: 'run_fail',
      client,
      stages: [
        () => 'one',
        () => 'two',
        () => {
          throw new Error('upstream model timed out')
        },
        () => {
          ranAfter = true
        },
        () => 'five',
      ],
    })
    expect(ranAfter).toBe(false)
    expect(summary.status).toBe('FAILED')
    expect(summary.error).toBe('upstream model timed out')
    expect(summary.stages.map((s) => s.status)).toEqual(['COMPLETED', 'COMPLETED', 'FAILED', 'PENDING', 'PENDING'])
    expect(summary.stages[2]?.error).toBe('upstream model timed out')
    expect(summary.stages[3]?.durationMs).toBeUndefined()
    expect(updates()).toEqual(['1 PROCESSING', '1 COMPLETED', '2 PROCESSING', '2 COMPLETED', '3 PROCESSING', '3 FAILED'])
    expect(JSON.parse(server.requestsTo('/complete')[0]?.body ?? '{}')).toMatchObject({ status: 'FAILED', error: 'upstream model timed out' })

    const status = await client.getStatus('run_fail')
    expect(status.run).toMatchObject({ status: 'FAILED', error: 'upstream model timed out' })
    expect(status.stages.map((s) => s.status)).toEqual(['COMPLETED', 'COMPLETED', 'FAILED'])
  })

  it('marks the current stage CANCELLED on abort and stops', async () => {
    await client.createRun('run_cancel')
    const controller = new AbortController()
    let ranAfter = false
    const summary = await runPipeline({
      runId: 'run_cancel',
      client,
      signal: controller.signal,
      stages: [
        () => 'one',
        // A stage that ignores its signal is still abandoned at once.
        () => {
          setTimeout(() => controller.abort(), 10)
          return new Promise(() => {})
        },
        () => {
          ranAfter = true
        },
        // As many stages as the server's catalogue: runPipeline checks it at start.
        () => 'four',
        () => 'five',
      ],
    })
    expect(ranAfter).toBe(false)
    expect(summary.status).toBe('CANCELLED')
    expect(summary.stages.map((s) => s.status)).toEqual(['COMPLETED', 'CANCELLED', 'PENDING', 'PENDING', 'PENDING'])
    expect(updates()).toEqual(['1 PROCESSING', '1 COMPLETED', '2 PROCESSING', '2 CANCELLED'])
    expect(summary.completion).toMatchObject({ ok: true, response: { outcome: 'applied', run: { status: 'CANCELLED' } } })
    expect((await client.getStatus('run_cancel')).run.status).toBe('CANCELLED')
  })

  it('cancels before the first stage when the signal is already aborted', async () => {
    await client.createRun('run_pre')
    const summary = await runPipeline({ runId: 'run_pre', client, signal: AbortSignal.abort(), stages: Array(5).fill(() => 'x') })
    expect(summary.status).toBe('CANCELLED')
    expect(updates()).toEqual(['1 CANCELLED'])
  })

  it('keeps going when reporting fails, and says so in the summary', async () => {
    // No run was created: every update is a 404.
    const summary = await runPipeline({ runId: 'run_missing', client, stages: [() => 1, () => 2] })
    expect(summary.status).toBe('COMPLETED')
    expect(summary.stages.map((s) => [s.status, s.reported])).toEqual([
      ['COMPLETED', false],
      ['COMPLETED', false],
    ])
    expect(summary.completion).toMatchObject({ ok: false, error: { name: 'StatusHttpError', status: 404 } })
    expect(summary.delivered).toBe(false)
    expect(summary.warnings).toEqual([
      expect.stringMatching(/^The server's stage catalogue could not be read, so the number of stages was not checked: HTTP 404 run_not_found/),
      // One warning per cause, naming every update it cost.
      expect.stringMatching(
        /^5 updates were not delivered \(failed\): HTTP 404 run_not_found.* \(stage 1 PROCESSING, stage 1 COMPLETED, stage 2 PROCESSING, stage 2 COMPLETED, the completion\)$/,
      ),
    ])
  })

  it('refuses to start a 5-stage runner against a server that catalogues 3, and sends nothing', async () => {
    await server.stop()
    const { MemoryStore, createPipelineStatusHandlers } = await import('pipeline-status-sdk/server')
    const three = DEFAULT_STAGES.slice(0, 3)
    server = await startTestServer({
      handler: createPipelineStatusHandlers({ store: new MemoryStore(), secret: TEST_SECRET, stages: three, logger: { warn: () => {}, error: () => {} } }).fetch,
    })
    const local = new PrismaAPIClient({ baseUrl: server.origin, secret: TEST_SECRET, logger: silentLogger, retry: { limit: 0 } })
    await local.createRun('run_short')
    const ran: number[] = []
    const attempt = runPipeline({ runId: 'run_short', client: local, stages: [1, 2, 3, 4, 5].map((n) => () => ran.push(n)) })
    await expect(attempt).rejects.toThrow(CatalogueMismatchError)
    await expect(attempt).rejects.toMatchObject({
      name: 'CatalogueMismatchError',
      runnerStages: 5,
      serverStages: 3,
      message:
        "Run run_short: the runner has 5 stage(s) but the run's own catalogue has 3, snapshotted when the run was created " +
        "(the run keeps it even if the handlers' catalogue changed since); to run other stages, create a new run, " +
        "which takes the handlers' catalogue as it is now; to run this one, give runPipeline 3 stage function(s)",
    })
    expect(ran).toEqual([])
    // Only the run's creation reached the server: its answer carried the catalogue.
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /api/pipeline/runs'])
    expect((await local.getStatus('run_short')).run.status).toBe('PENDING')
    await local.close()
  })

  it('lists outputs it had to change in the summary and its warnings', async () => {
    await client.createRun('run_altered')
    const summary = await runPipeline({
      runId: 'run_altered',
      client,
      stages: [() => 'a\u0000b', () => ({ fine: '\uD800' }), () => 3, () => 4, () => 5],
    })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true })
    // An object's lone surrogate is escaped by JSON.stringify, so only the string needed replacing.
    expect(summary.alteredOutputs).toEqual([{ runId: 'run_altered', stageNumber: 1, kind: 'replaced', replacedCharacters: 1 }])
    expect(summary.warnings).toEqual(['Stage 1 output: 1 character(s) PostgreSQL cannot store (NUL, lone surrogates) replaced with U+FFFD'])
    expect((await client.getStatus('run_altered')).stages[0]?.output).toBe('a\uFFFDb')
  })

  it('sends a BigInt as its decimal string and an output JSON cannot hold as the placeholder, never losing the status', async () => {
    await client.createRun('run_unjson')
    const circular: Record<string, unknown> = { name: 'loop' }
    circular.self = circular
    const summary = await runPipeline({
      runId: 'run_unjson',
      client,
      debugDir,
      // Five stages, as the server's catalogue has: the handshake refuses any other number.
      stages: [
        () => ({ count: 12345678901234567890n }),
        () => circular,
        () => ({ toJSON: () => { throw new Error('no JSON here') } }),
        () => 'four',
        () => 'five',
      ],
    })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true })
    const circularReason = 'TypeError: Converting circular structure to JSON'
    expect(summary.alteredOutputs).toEqual([
      { runId: 'run_unjson', stageNumber: 2, kind: 'unserialisable', reason: circularReason },
      { runId: 'run_unjson', stageNumber: 3, kind: 'unserialisable', reason: 'Error: no JSON here' },
    ])
    expect(summary.warnings).toEqual([
      `Stage 2 output cannot be serialised as JSON (${circularReason}); a placeholder was sent instead`,
      'Stage 3 output cannot be serialised as JSON (Error: no JSON here); a placeholder was sent instead',
    ])
    const stages = (await client.getStatus('run_unjson')).stages
    expect(stages.slice(0, 3).map((stage) => [stage.status, stage.output])).toEqual([
      ['COMPLETED', '{"count":"12345678901234567890"}'],
      ['COMPLETED', `[output not serialisable as JSON: ${circularReason}]`],
      ['COMPLETED', '[output not serialisable as JSON: Error: no JSON here]'],
    ])
    expect(JSON.parse(readFileSync(join(debugDir, 'run_unjson', 'stage_1_output.json'), 'utf8'))).toEqual({ count: '12345678901234567890' })
    expect(JSON.parse(readFileSync(join(debugDir, 'run_unjson', 'stage_2_output.json'), 'utf8'))).toBe(`[output not serialisable as JSON: ${circularReason}]`)
  })

  it('says when updates still wait in the outbox at the end', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pipeline-outbox-'))
    try {
      await client.createRun('run_queued')
      const queuing = new PrismaAPIClient({ baseUrl: server.origin, secret: TEST_SECRET, logger: silentLogger, retry: { limit: 0 }, outbox: { dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling } })
      server.setFault({ status: 503 })
      const summary = await runPipeline({ runId: 'run_queued', client: queuing, stages: [() => 1] })
      expect(summary.status).toBe('COMPLETED')
      expect(summary.stages[0]?.reported).toBe(true)
      expect(summary.delivered).toBe(false)
      expect(summary.completion).toMatchObject({ ok: true, response: { queued: true } })
      expect(summary.warnings).toEqual([
        expect.stringMatching(/^The server's stage catalogue could not be read, so the number of stages was not checked: .*503/),
        `3 update(s) of this run wait in the outbox ${dir}; they are delivered in order once the server takes them (by this client's flush() or close(), or by the next process that opens that directory)`,
      ])
      server.setFault(undefined)
      expect(await queuing.close()).toMatchObject({ delivered: 3, pending: 0, undelivered: {} })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a client that is not a PrismaAPIClient, instead of driving it without heartbeats', async () => {
    const notAClient = { stages: DEFAULT_STAGES } as unknown as PrismaAPIClient
    await expect(runPipeline({ runId: 'r', client: notAClient, stages: [() => 1] })).rejects.toThrow(
      new ConfigurationError('runPipeline needs a PrismaAPIClient of pipeline-status-sdk/client as its `client`'),
    )
  })

  it('reaches a client through its registered internals key, the same from either module format', () => {
    const internals = (client as unknown as Record<symbol, unknown>)[Symbol.for('pipeline-status-sdk.client-internals')]
    expect(internals).toMatchObject({ stageUpdate: expect.any(Function), startHeartbeat: expect.any(Function), onRunFinished: expect.any(Function) })
    // Not enumerable: not part of what a user sees of the client.
    expect(Object.keys(client)).not.toContain(Symbol.for('pipeline-status-sdk.client-internals'))
    expect(Object.getOwnPropertySymbols(client).length).toBe(1)
  })

  it('refuses more stage functions than the catalogue has', async () => {
    await expect(runPipeline({ runId: 'r', client, stages: Array(6).fill(() => 1) })).rejects.toThrow(ConfigurationError)
  })
})
