/**
 * Two answers the client classifies in one place (src/client/delivery.ts, src/client/run-finished.ts), against the
 * real handlers over HTTP: a stage final again with another output (`conflict`: a warning, and
 * `runPipeline`'s summary lists it), and a `/complete` refused because the run ended elsewhere
 * (superseded on its first send as on a redelivery: never dead-lettered nor counted undelivered).
 */
import {
  PrismaAPIClient,
  type PrismaAPIClientOptions,
  RunFinishedError,
  type RunFinishedEvent,
  runPipeline,
} from 'pipeline-status-sdk/client'
import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { describe, expect, it, vi } from 'vitest'
import { useTempDirs } from '../support/temp-dirs.js'
import { clientFactory } from './support/client-factory.js'
import { TEST_SECRET, useTestServer } from './support/test-server.js'
import { nearCeiling } from './support/outbox-jitter.js'

const outboxDir = useTempDirs('outcomes-outbox-')
const server = useTestServer()
const clients = clientFactory(() => ({ baseUrl: server().origin, secret: TEST_SECRET, retry: { limit: 0 } }))

interface Line {
  level: 'warn' | 'error'
  message: string
  details: Record<string, unknown> | undefined
}

function makeClient(options: PrismaAPIClientOptions = {}): { client: PrismaAPIClient; logged: Line[] } {
  const logged: Line[] = []
  const client = clients.make({
    logger: {
      warn: (message, details) => logged.push({ level: 'warn', message, details }),
      error: (message, details) => logged.push({ level: 'error', message, details }),
    },
    ...options,
  })
  return { client, logged }
}

async function cancel(runId: string, reason: string): Promise<void> {
  expect((await server().cancel(runId, reason)).status).toBe(200)
}

describe('a stage final again with another output: outcome conflict', () => {
  it('the mark* method resolves true, the stored output stays, and the client logs one warning with cause and fix', async () => {
    const first = makeClient()
    const second = makeClient()
    await first.client.createRun('conflict_mark')
    expect(await first.client.markStageComplete('conflict_mark', 1, { rows: 12 })).toBe(true)
    expect(await second.client.markStageComplete('conflict_mark', 1, { rows: 13 })).toBe(true)
    // The same output again is a duplicate: no warning.
    expect(await second.client.markStageComplete('conflict_mark', 1, { rows: 12 })).toBe(true)

    const { stages } = await first.client.getStatus('conflict_mark')
    expect(stages[0]).toMatchObject({ stageNumber: 1, status: 'COMPLETED', output: '{"rows":12}' })
    expect(first.logged).toEqual([])
    expect(second.logged).toEqual([
      {
        level: 'warn',
        message:
          'Run conflict_mark: stage 1 COMPLETED: the server already had stage 1 COMPLETED with another output and kept it (outcome "conflict"); ' +
          'this output was not stored. Cause: the stage was already final with another output, set earlier by a cancel (the app\'s ' +
          'POST /cancel stores unfinished stages CANCELLED without output), by another runner on the same run id, or by a run of this ' +
          'stage again. Fix: nothing after a cancel; otherwise give each execution its own run id',
        details: expect.objectContaining({ runId: 'conflict_mark', stageNumber: 1, status: 'COMPLETED', outcome: 'conflict' }),
      },
    ])
    expect(await second.client.close({ timeoutMs: 1000 })).toMatchObject({ undelivered: {} })
  })

  it("a CANCELLED with an output after the app's cancel: the warning names the cancel, not only two runners", async () => {
    const { client, logged } = makeClient()
    await client.createRun('conflict_after_cancel')
    expect(await client.markStageProcessing('conflict_after_cancel', 1)).toBe(true)
    await cancel('conflict_after_cancel', 'the user pressed stop')
    const update = { stageNumber: 1, stageName: 'Input Processing', status: 'CANCELLED', output: 'stopped at row 12' } as const
    expect(await client.sendStageUpdate('conflict_after_cancel', update)).toBe(true)
    expect(logged.filter((line) => line.details?.['outcome'] === 'conflict').map((line) => line.message)).toEqual([
      'Run conflict_after_cancel: stage 1 CANCELLED: the server already had stage 1 CANCELLED with another output and kept it ' +
        '(outcome "conflict"); this output was not stored. Cause: the stage was already final with another output, set earlier by ' +
        "a cancel (the app's POST /cancel stores unfinished stages CANCELLED without output), by another runner on the same run " +
        'id, or by a run of this stage again. Fix: nothing after a cancel; otherwise give each execution its own run id',
    ])
    expect((await client.getStatus('conflict_after_cancel')).stages[0]).toMatchObject({ status: 'CANCELLED', output: null })
  })

  it("runPipeline's summary lists the conflict and its warning; the update counts as delivered", async () => {
    const other = makeClient()
    await other.client.createRun('conflict_pipeline')
    const { client, logged } = makeClient()
    // Another runner reports stage 1 of this run with its own output while this one runs it (a
    // stage already COMPLETED when runPipeline starts is skipped, not run: run-pipeline-resume.test.ts).
    const theirsFirst = async () => {
      expect(await other.client.markStageComplete('conflict_pipeline', 1, 'theirs')).toBe(true)
      return 'ours'
    }
    const summary = await runPipeline({ runId: 'conflict_pipeline', client, stages: [theirsFirst, () => 2, () => 3, () => 4, () => 5] })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true })
    expect(summary.conflicts).toEqual([{ stageNumber: 1, status: 'COMPLETED', sentOutput: 'ours', storedOutput: 'theirs' }])
    expect(summary.warnings).toEqual([
      'Stage 1 COMPLETED: the server already had it COMPLETED with another output and kept that one (outcome "conflict"); this output was not stored',
    ])
    expect(logged.filter((line) => line.details?.['outcome'] === 'conflict')).toHaveLength(1)
    expect((await client.getStatus('conflict_pipeline')).stages[0]?.output).toBe('theirs')
  })

  it("runPipeline's conflicts show both outputs, each cut to 200 code units plus …", async () => {
    const other = makeClient()
    await other.client.createRun('conflict_long')
    const theirs = `${'t'.repeat(199)}\u{1F600}tail` // the pair at 199-200 is not split: 199 units, then …
    const { client } = makeClient()
    const ours = 'o'.repeat(250)
    // The other runner completes stage 1 while this one runs it.
    const theirsFirst = async () => {
      expect(await other.client.markStageComplete('conflict_long', 1, theirs)).toBe(true)
      return ours
    }
    const summary = await runPipeline({ runId: 'conflict_long', client, stages: [theirsFirst, () => 2, () => 3, () => 4, () => 5] })
    expect(summary.conflicts).toEqual([{ stageNumber: 1, status: 'COMPLETED', sentOutput: `${'o'.repeat(200)}…`, storedOutput: `${'t'.repeat(199)}…` }])
  })

  it('a conflicting update redelivered from the outbox is logged the same way and leaves the queue', async () => {
    const other = makeClient()
    const { client, logged } = makeClient({ outbox: { dir: outboxDir(), retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling } })
    await client.createRun('conflict_outbox')
    server().setFault({ status: 503 })
    expect(await client.markStageComplete('conflict_outbox', 1, 'queued')).toBe(true)
    server().setFault(undefined)
    expect(await other.client.markStageComplete('conflict_outbox', 1, 'first to arrive')).toBe(true)
    expect(await client.flush()).toEqual({ delivered: 1, rejected: 0, pending: 0 })
    expect(logged.filter((line) => line.details?.['outcome'] === 'conflict').map((line) => line.message)).toEqual([
      expect.stringMatching(/^Run conflict_outbox: stage 1 COMPLETED \(from the outbox\): the server already had stage 1 COMPLETED with another output and kept it/),
    ])
    expect((await client.getStatus('conflict_outbox')).stages[0]?.output).toBe('first to arrive')
  })

  it('a run without conflicts has conflicts: []', async () => {
    const { client } = makeClient()
    await client.createRun('conflict_none')
    const summary = await runPipeline({ runId: 'conflict_none', client, stages: [() => 1, () => 2, () => 3, () => 4, () => 5] })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, conflicts: [], warnings: [] })
  })
})

describe('a run finished before this client first reported it (a reused run id)', () => {
  it('says what happened and the likely cause: the run id was reused, with the status the server holds', async () => {
    const runId = 'reused_run_id'
    const first = makeClient()
    await first.client.createRun(runId)
    expect(await first.client.markStageProcessing(runId, 1)).toBe(true)
    await cancel(runId, 'an earlier run with this id was stopped')
    await first.client.close({ timeoutMs: 1000 })

    const events: RunFinishedEvent[] = []
    const { client, logged } = makeClient({ onRunFinished: (event) => events.push(event) })
    expect(await client.markStageProcessing(runId, 1)).toBe(false)
    // Answered `stale`: the server keeps the run as it ended.
    expect(events).toEqual([expect.objectContaining({ runId, status: 'CANCELLED', learnedFrom: 'stage-update' })])
    const warning = logged.find((line) => line.level === 'warn')?.message
    expect(warning).toMatch(new RegExp(`^Run ${runId} was CANCELLED \\(error: "an earlier run with this id was stopped"\\) on the server at \\S+, not by this client: `))
    expect(warning).toContain("it finished before this client's first update for it: the run id was most likely reused")
    await client.close({ timeoutMs: 1000 })
  })

  // The order comes from the server's answers, never from comparing the run's completedAt with
  // this client's clock: a frozen clock gives the cancel and every send one and the same instant.
  it('tells a reused run id from a cancel during the run by the server\'s answers, not by the clocks', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2026-01-01T09:00:00.000Z') })
    try {
      const first = makeClient()
      await first.client.createRun('reused_same_instant')
      expect(await first.client.markStageProcessing('reused_same_instant', 1)).toBe(true)
      await cancel('reused_same_instant', 'stopped')
      // This client's update was answered with the run open, then the cancel came: not a reuse.
      expect(await first.client.markStageComplete('reused_same_instant', 1, 'done')).toBe(false)
      const reused = makeClient()
      expect(await reused.client.markStageProcessing('reused_same_instant', 1)).toBe(false)

      const causes = [first, reused].map(({ logged }) => logged.filter((line) => line.level === 'warn')[0]?.message.replace(/^.*, not by this client: /, ''))
      expect(causes).toEqual([
        'the web app cancelled it (POST /cancel), or another runner reporting under the same run id cancelled a stage',
        'it finished before this client\'s first update for it: the run id was most likely reused (an earlier run, or another runner, ' +
          'used "reused_same_instant"); give each run a new id',
      ])
    } finally {
      vi.useRealTimers()
    }
  })
})

describe('a /complete refused because the run ended elsewhere is superseded on its first send', () => {
  for (const withOutbox of [false, true]) {
    it(`${withOutbox ? 'with' : 'without'} an outbox: RunFinishedError, onRunFinished once, no dead letter, nothing undelivered, no error logged`, async () => {
      const events: RunFinishedEvent[] = []
      const runId = `complete_elsewhere_${withOutbox ? 'outbox' : 'plain'}`
      const { client, logged } = makeClient({ onRunFinished: (event) => events.push(event), ...(withOutbox ? { outbox: { dir: outboxDir() } } : {}) })
      await client.createRun(runId)
      expect(await client.markStageProcessing(runId, 1)).toBe(true)
      await cancel(runId, 'the user pressed stop')

      const refused = client.completeRun(runId, { status: 'COMPLETED', fullReportMarkdown: '# Report' })
      await expect(refused).rejects.toBeInstanceOf(RunFinishedError)
      await expect(refused).rejects.toMatchObject({ runId, status: 'CANCELLED', reason: 'the user pressed stop' })
      expect(events).toEqual([expect.objectContaining({ runId, status: 'CANCELLED', learnedFrom: 'refusal' })])
      expect(await client.deadLetters(runId)).toEqual([])
      expect(await client.close({ timeoutMs: 1000 })).toEqual({ delivered: 0, rejected: 0, pending: 0, undelivered: {} })
      expect(logged.filter((line) => line.level === 'error')).toEqual([])
      expect(logged.map((line) => [line.level, line.message])).toEqual([
        ['warn', expect.stringMatching(new RegExp(`^Run ${runId} was CANCELLED \\(error: "the user pressed stop"\\) on the server at \\S+, not by this client: the web app cancelled it \\(POST /cancel\\)`))],
        ['warn', `Run ${runId}: completion was refused: Run ${runId} is already CANCELLED (the user pressed stop); the update was not stored`],
      ])
    })
  }

  it('the same completion redelivered from the outbox is superseded the same way: not undelivered', async () => {
    const { client } = makeClient({ outbox: { dir: outboxDir(), retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling } })
    await client.createRun('complete_elsewhere_redelivered')
    expect(await client.markStageProcessing('complete_elsewhere_redelivered', 1)).toBe(true)
    server().setFault({ status: 503 })
    expect(await client.completeRun('complete_elsewhere_redelivered', { status: 'COMPLETED' })).toMatchObject({ queued: true })
    server().setFault(undefined)
    await cancel('complete_elsewhere_redelivered', 'the user pressed stop')
    expect(await client.flush()).toEqual({ delivered: 0, rejected: 0, pending: 0 })
    expect((await client.deadLetters('complete_elsewhere_redelivered')).map((letter) => [letter.kind, letter.code])).toEqual([['superseded', 'run_finished']])
    expect(await client.close({ timeoutMs: 1000 })).toEqual({ delivered: 0, rejected: 0, pending: 0, undelivered: {} })
  })

  it("runPipeline: a completion refused because the run was cancelled first is superseded: finishedElsewhere, the run's status, delivered", async () => {
    const { client } = makeClient()
    await makeClient().client.createRun('complete_elsewhere_pipeline')
    // The server's catalogue cannot be read at start, so a four-stage pipeline runs against five stages
    // and its last update leaves the run PROCESSING; the web app cancels it just before /complete arrives.
    server().inject({ status: 503 })
    const real = createPipelineStatusHandlers({ store: server().store, secret: TEST_SECRET, logger: { warn: () => {}, error: () => {} } }).fetch
    server().setHandler(async (request) => {
      if (request.url.endsWith('/complete')) await cancel('complete_elsewhere_pipeline', 'the user pressed stop')
      return real(request)
    })
    const summary = await runPipeline({ runId: 'complete_elsewhere_pipeline', client, stages: [() => 1, () => 2, () => 3, () => 4] })
    expect(summary).toMatchObject({
      status: 'CANCELLED',
      error: 'the user pressed stop',
      delivered: true,
      finishedElsewhere: { status: 'CANCELLED', reason: 'the user pressed stop' },
      completion: { ok: false, error: expect.any(RunFinishedError) },
    })
    expect(summary.warnings).toEqual([
      expect.stringMatching(/^The server's stage catalogue could not be read/),
      expect.stringMatching(/^The completion was superseded: Run complete_elsewhere_pipeline is already CANCELLED/),
    ])
    expect((await client.close({ timeoutMs: 1000 })).undelivered).toEqual({})
  })

  it('a completion that contradicts the run this client itself finished stays a refusal (counted undelivered), not superseded', async () => {
    const { client } = makeClient()
    await client.createRun('complete_self')
    expect(await client.markStageFailed('complete_self', 1, 'boom')).toBe(true)
    await expect(client.completeRun('complete_self', { status: 'COMPLETED' })).rejects.toMatchObject({ name: 'StatusHttpError', status: 409 })
    expect((await client.close({ timeoutMs: 1000 })).undelivered).toEqual({ complete_self: { queued: 0, deadLettered: 0, failed: 1 } })
  })
})
