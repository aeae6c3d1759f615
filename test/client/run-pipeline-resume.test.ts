/**
 * A restarted runner resumes its run: `runPipeline` called again with the same `runId` (and the
 * same outbox directory) does not run a stage an earlier process completed (the server holds it
 * COMPLETED, or that process's last pending update of it is its COMPLETED): nothing is sent for
 * it, `onProgress` gets `stage-skipped`, the summary says `skipped: 'already-completed'`, and the
 * later stages, `outputs`, `results` and the `/complete` get its stored output read back. A stage
 * left PROCESSING still runs again as the next attempt.
 *
 * A run its stages completed before the earlier process's `/complete` (it died in between) is
 * resumed too: every stage skipped, then that `/complete`, whose results reach the app's
 * `onRunCompleted` hook once. Any other finished run is not resumed (`finishedElsewhere`).
 *
 * Against the MSW mock in-process, the earlier process simulated with a client of its own; a
 * runner process killed over real HTTP (mid-stage 2, and after its last stage before its
 * `/complete`) is run-pipeline-resume-crash.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { http } from 'msw'
import { setupServer } from 'msw/node'
import {
  type PipelineProgressEvent,
  type PrismaAPIClient,
  type PrismaAPIClientOptions,
  type RunFinishedEvent,
  type StageFunction,
  TRUNCATION_MARKER,
  runPipeline,
  silentLogger,
} from 'pipeline-status-sdk/client'
import { createPipelineMock } from 'pipeline-status-sdk/msw'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { clientFactory } from './support/client-factory.js'
import { nearCeiling } from './support/outbox-jitter.js'

const ORIGIN = 'http://resume.test'
const SECRET = 'resume-secret'
/** What the app's `onRunCompleted` hook got, one entry per call: the run id and the `/complete` body. */
const hooked: { runId: string; payload: Record<string, unknown> }[] = []
const mock = createPipelineMock({ baseUrl: ORIGIN, secret: SECRET, onRunCompleted: (_tx, run, payload) => void hooked.push({ runId: run.id, payload }) })
const server = setupServer(...mock.handlers)
let dir: string

beforeAll(() => server.listen({ onUnhandledFrame: 'error' }))
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'resume-outbox-'))
  hooked.length = 0
})
afterEach(() => {
  mock.reset()
  server.resetHandlers()
  rmSync(dir, { recursive: true, force: true })
})
afterAll(() => server.close())
// Registered after the afterEach above: clients close before their outbox directory is removed.
const clients = clientFactory(() => ({
  baseUrl: ORIGIN,
  secret: SECRET,
  logger: silentLogger,
  followRunStream: false,
  heartbeatIntervalMs: 60_000,
  retry: { limit: 0 },
  outbox: { dir, retryDelayMs: 600_000, maxRetryDelayMs: 600_000, random: nearCeiling },
}))

/** The stage updates the mock received since `from` (an index into its requests): `2 PROCESSING attempt 2`, `3 COMPLETED`. */
function stageUpdatesSince(from: number): string[] {
  return mock.requests.slice(from).flatMap((request) => {
    if (request.route !== 'stageUpdate') return []
    const body = JSON.parse(request.body) as { stageNumber: number; status: string; attempt?: number; progress?: unknown }
    return [`${body.stageNumber} ${body.status}${body.attempt === undefined ? '' : ` attempt ${body.attempt}`}`]
  })
}

/** Five stages that record their calls and what they were given; stage 1 returns `first` if it ever runs. */
function recordingStages(first: unknown): { stages: StageFunction[]; calls: number[]; given: Map<number, unknown[]> } {
  const calls: number[] = []
  const given = new Map<number, unknown[]>()
  const stage = (n: number, output: unknown): StageFunction => ({ previousOutputs }) => {
    calls.push(n)
    given.set(n, [...previousOutputs])
    return output
  }
  return { stages: [stage(1, first), stage(2, 'two'), stage(3, ['three']), stage(4, 'four'), stage(5, '# five')], calls, given }
}

describe('runPipeline restarted with the same runId', () => {
  it('does not run a stage the server holds COMPLETED; later stages, the summary, results and /complete get its stored output', async () => {
    await mock.createRun('resume_server')
    // The earlier process: stage 1 COMPLETED, then it died in stage 2.
    const earlier = clients.make({ outbox: undefined })
    await earlier.markStageProcessing('resume_server', 1)
    await earlier.markStageComplete('resume_server', 1, { answer: 'paid for once', tokens: 1234 })
    await earlier.markStageProcessing('resume_server', 2)
    const from = mock.requests.length

    const restarted = clients.make()
    const { stages, calls, given } = recordingStages({ answer: 'paid for twice' })
    const events: PipelineProgressEvent[] = []
    const summary = await runPipeline({
      runId: 'resume_server',
      client: restarted,
      stages,
      onProgress: (event) => events.push(event),
      results: (outputs) => ({ stageOutputs: outputs }),
    })

    const stored = { answer: 'paid for once', tokens: 1234 }
    expect(calls).toEqual([2, 3, 4, 5])
    expect(given.get(2)).toEqual([stored])
    expect(given.get(5)).toEqual([stored, 'two', ['three'], 'four'])
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [], conflicts: [], outputs: [stored, 'two', ['three'], 'four', '# five'] })
    expect(summary.stages[0]).toEqual({ stageNumber: 1, stageName: 'Input Processing', status: 'COMPLETED', durationMs: undefined, reported: true, skipped: 'already-completed' })
    expect(summary.stages.slice(1).map((stage) => [stage.status, stage.skipped])).toEqual(Array(4).fill(['COMPLETED', undefined]))
    expect(events[0]).toEqual({ type: 'stage-skipped', runId: 'resume_server', stageNumber: 1, stageName: 'Input Processing', reason: 'already-completed', from: 'server' })
    expect(events.filter((event) => event.type === 'stage-started').map((event) => event.stageNumber)).toEqual([2, 3, 4, 5])

    // Nothing for stage 1; stage 2, left PROCESSING, runs as attempt 2.
    expect(stageUpdatesSince(from)).toEqual(['2 PROCESSING attempt 2', '2 COMPLETED', '3 PROCESSING', '3 COMPLETED', '4 PROCESSING', '4 COMPLETED', '5 PROCESSING', '5 COMPLETED'])
    const complete = mock.requests.slice(from).find((request) => request.route === 'complete')
    expect(JSON.parse(complete?.body ?? '{}')).toMatchObject({ status: 'COMPLETED', stageOutputs: [stored, 'two', ['three'], 'four', '# five'] })
    const status = await mock.getRun('resume_server')
    expect(status?.run.status).toBe('COMPLETED')
    expect(status?.stages.map((stage) => [stage.stageNumber, stage.output])).toEqual([
      [1, '{"answer":"paid for once","tokens":1234}'],
      [2, 'two'],
      [3, '["three"]'],
      [4, 'four'],
      [5, '# five'],
    ])
  })

  it('reads each stored output back as documented: JSON of an object or array parsed, any other text as the string, none as undefined', async () => {
    await mock.createRun('resume_kinds')
    const earlier = clients.make({ outbox: undefined })
    // Stage 1 returned markdown, stage 2 a number (sent as "42"), stage 3 nothing.
    await earlier.markStageComplete('resume_kinds', 1, '# Findings\n\n{not json}')
    await earlier.markStageComplete('resume_kinds', 2, 42)
    await earlier.markStageComplete('resume_kinds', 3, undefined)
    const { stages, calls, given } = recordingStages('unused')
    const summary = await runPipeline({ runId: 'resume_kinds', client: clients.make(), stages })
    expect(calls).toEqual([4, 5])
    expect(given.get(4)).toEqual(['# Findings\n\n{not json}', '42', undefined])
    expect(summary.stages.map((stage) => stage.skipped)).toEqual(['already-completed', 'already-completed', 'already-completed', undefined, undefined])
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [] })
  })

  it("gives a stored output cut to the server's body limit back as that text, with a warning", async () => {
    const small = createPipelineMock({ baseUrl: 'http://small-limit.test', secret: SECRET, maxBodyBytes: 2_048 })
    server.use(...small.handlers)
    await small.createRun('resume_cut')
    const options: PrismaAPIClientOptions = { baseUrl: 'http://small-limit.test', outbox: undefined }
    const earlier = clients.make(options)
    await earlier.markStageComplete('resume_cut', 1, { text: 'x'.repeat(5_000) })
    const { stages, given } = recordingStages('unused')
    const summary = await runPipeline({ runId: 'resume_cut', client: clients.make(options), stages })
    const stored = (await small.getRun('resume_cut'))?.stages[0]?.output
    expect(stored?.endsWith(TRUNCATION_MARKER)).toBe(true)
    expect(given.get(2)).toEqual([stored])
    expect(summary.outputs[0]).toBe(stored)
    expect(summary.warnings).toEqual([
      "Stage 1 was skipped as already completed; its stored output was cut to the server's body limit, so later stages get that text (ending with the truncation marker) in previousOutputs[0], not the value the stage returned",
    ])
  })

  it.each([
    ['the restarted runner reads the run before the redelivery lands', 'until-read', 'outbox'],
    ['the redelivery lands before the restarted runner reads the run', 'flushed', 'server'],
  ] as const)("does not run a stage whose earlier process's last pending update is its COMPLETED, when %s", async (_, order, from) => {
    await mock.createRun('resume_queued')
    // The earlier process, while the server refused every stage update: all three wait in the outbox.
    mock.fail('stageUpdate', { status: 503 })
    const earlier = clients.make()
    await earlier.markStageProcessing('resume_queued', 1)
    await earlier.markStageComplete('resume_queued', 1, { rows: 7 })
    await earlier.markStageProcessing('resume_queued', 2)
    expect(earlier.pendingCount('resume_queued')).toBe(3)
    // Closed with the server still refusing: they stay in the directory (the lock is released, as a process's death does).
    expect(await earlier.close({ timeoutMs: 100 })).toMatchObject({ pending: 3 })
    expect((await mock.getRun('resume_queued'))?.stages).toEqual([])

    if (order === 'until-read') {
      // Stage updates stay refused until the restarted runner's read of the run was answered.
      server.use(
        http.get(`${ORIGIN}/api/pipeline/:runId/status`, async ({ request }) => {
          const response = await mock.fetch(request)
          mock.clearFaults('stageUpdate')
          return response
        }),
      )
    } else {
      mock.clearFaults('stageUpdate')
    }
    const restarted = clients.make({ outbox: { dir, retryDelayMs: 10, maxRetryDelayMs: 50 } })
    if (order === 'flushed') expect(await restarted.flush()).toMatchObject({ delivered: 3, pending: 0 })
    const { stages, calls, given } = recordingStages({ rows: 0 })
    const events: PipelineProgressEvent[] = []
    const summary = await runPipeline({ runId: 'resume_queued', client: restarted, stages, onProgress: (event) => events.push(event) })
    await restarted.flush()

    expect(calls).toEqual([2, 3, 4, 5])
    expect(given.get(2)).toEqual([{ rows: 7 }])
    expect(summary.outputs[0]).toEqual({ rows: 7 })
    expect(summary.stages[0]).toMatchObject({ status: 'COMPLETED', skipped: 'already-completed' })
    expect(events[0]).toMatchObject({ type: 'stage-skipped', stageNumber: 1, from })
    expect(restarted.pendingCount('resume_queued')).toBe(0)
    const status = await mock.getRun('resume_queued')
    expect(status?.run.status).toBe('COMPLETED')
    expect(status?.stages.map(({ stageNumber, status, attempt, output }) => ({ stageNumber, status, attempt, output }))).toEqual([
      { stageNumber: 1, status: 'COMPLETED', attempt: null, output: '{"rows":7}' },
      { stageNumber: 2, status: 'COMPLETED', attempt: 2, output: 'two' },
      { stageNumber: 3, status: 'COMPLETED', attempt: null, output: '["three"]' },
      { stageNumber: 4, status: 'COMPLETED', attempt: null, output: 'four' },
      { stageNumber: 5, status: 'COMPLETED', attempt: null, output: '# five' },
    ])
    expect(summary.conflicts).toEqual([])
  })

  it("takes the stages from the earlier process's updates in the outbox alone when the run cannot be read at start", async () => {
    await mock.createRun('resume_unread')
    mock.fail('stageUpdate', { status: 503 })
    const earlier = clients.make()
    await earlier.markStageProcessing('resume_unread', 1)
    await earlier.markStageComplete('resume_unread', 1, ['seven'])
    await earlier.markStageProcessing('resume_unread', 2)
    await earlier.close({ timeoutMs: 100 })

    mock.fail('status', { status: 503 })
    const restarted = clients.make()
    const { stages, calls, given } = recordingStages('unused')
    const events: PipelineProgressEvent[] = []
    const summary = await runPipeline({ runId: 'resume_unread', client: restarted, stages, onProgress: (event) => events.push(event) })
    expect(calls).toEqual([2, 3, 4, 5])
    expect(given.get(2)).toEqual([['seven']])
    expect(events[0]).toMatchObject({ type: 'stage-skipped', stageNumber: 1, from: 'outbox' })
    expect(summary.warnings[0]).toMatch(/^The server's stage catalogue could not be read, so the number of stages was not checked: HTTP 503/)
    expect(summary.delivered).toBe(false)

    mock.clearFaults()
    expect(await restarted.flush()).toMatchObject({ pending: 0 })
    const status = await mock.getRun('resume_unread')
    expect(status?.run.status).toBe('COMPLETED')
    expect(status?.stages.slice(0, 2).map(({ stageNumber, attempt, output }) => ({ stageNumber, attempt, output }))).toEqual([
      { stageNumber: 1, attempt: null, output: '["seven"]' },
      { stageNumber: 2, attempt: 2, output: 'two' },
    ])
  })

  it('does not resume a run the server holds FAILED: no stage runs, the summary has the stored outcome', async () => {
    await mock.createRun('resume_failed')
    const earlier = clients.make({ outbox: undefined })
    await earlier.markStageComplete('resume_failed', 1, 'one')
    await earlier.markStageFailed('resume_failed', 2, 'the model refused')
    const { stages, calls } = recordingStages('unused')
    const summary = await runPipeline({ runId: 'resume_failed', client: clients.make(), stages })
    expect(calls).toEqual([])
    expect(summary).toMatchObject({ status: 'FAILED', error: 'the model refused', finishedElsewhere: { status: 'FAILED' } })
  })
})

/** Stages 1..5 COMPLETED by an earlier process (no `/complete`): the server completed the run by itself. */
async function completeEveryStage(earlier: PrismaAPIClient, runId: string): Promise<void> {
  const outputs: unknown[] = [{ answer: 'paid for once' }, 'two', ['three'], 'four', '# five']
  for (const [index, output] of outputs.entries()) {
    await earlier.markStageProcessing(runId, index + 1)
    await earlier.markStageComplete(runId, index + 1, output)
  }
}

/** `POST /cancel` as the web app sends it, answered by the mock. */
async function cancel(runId: string, reason: string): Promise<void> {
  const request = new Request(`${ORIGIN}/api/pipeline/${runId}/cancel`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-webhook-secret': SECRET },
    body: JSON.stringify({ reason }),
  })
  expect((await mock.fetch(request))?.status).toBe(200)
}

describe('runPipeline restarted after its last stage completed the run, before its /complete', () => {
  it("skips every stage and sends the /complete the earlier process never sent: the app's hook gets the results once", async () => {
    await mock.createRun('resume_uncompleted')
    await completeEveryStage(clients.make({ outbox: undefined }), 'resume_uncompleted')
    expect((await mock.getRun('resume_uncompleted'))?.run).toMatchObject({ status: 'COMPLETED', completionReceivedAt: null })
    expect(hooked).toEqual([])
    const from = mock.requests.length

    const finishedEvents: RunFinishedEvent[] = []
    const restarted = clients.make({ onRunFinished: (event) => finishedEvents.push(event) })
    const { stages, calls } = recordingStages('unused')
    const events: PipelineProgressEvent[] = []
    const summary = await runPipeline({
      runId: 'resume_uncompleted',
      client: restarted,
      stages,
      onProgress: (event) => events.push(event),
      results: (outputs, status) => ({ stageOutputs: outputs, resultStatus: status }),
    })

    const outputs = [{ answer: 'paid for once' }, 'two', ['three'], 'four', '# five']
    expect(calls).toEqual([])
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [], conflicts: [], outputs })
    expect(summary.finishedElsewhere).toBeUndefined()
    expect(summary.error).toBeUndefined()
    expect(summary.stages.map((stage) => [stage.status, stage.skipped])).toEqual(Array(5).fill(['COMPLETED', 'already-completed']))
    expect(summary.completion).toMatchObject({ ok: true, response: { outcome: 'applied', run: { status: 'COMPLETED' } } })
    expect(events.map((event) => (event.type === 'stage-skipped' ? `${event.type} ${event.stageNumber} ${event.from}` : event.type))).toEqual([
      'stage-skipped 1 server',
      'stage-skipped 2 server',
      'stage-skipped 3 server',
      'stage-skipped 4 server',
      'stage-skipped 5 server',
      'run-finished',
    ])
    expect(events.at(-1)).toMatchObject({ type: 'run-finished', status: 'COMPLETED' })
    expect(finishedEvents).toEqual([])
    // One status read, no stage update, the /complete.
    expect(mock.requests.slice(from).map((request) => request.route)).toEqual(['status', 'complete'])
    expect(hooked).toEqual([{ runId: 'resume_uncompleted', payload: expect.objectContaining({ status: 'COMPLETED', stageOutputs: outputs, resultStatus: 'COMPLETED' }) }])
    expect((await mock.getRun('resume_uncompleted'))?.run.completionReceivedAt).not.toBeNull()

    // Started once more (the process exited): the /complete was received now, so the run was finished elsewhere; the hook does not run again.
    expect(await restarted.close()).toMatchObject({ pending: 0 })
    const again = recordingStages('unused')
    const third = await runPipeline({ runId: 'resume_uncompleted', client: clients.make(), stages: again.stages, results: () => ({ third: true }) })
    expect(again.calls).toEqual([])
    expect(third).toMatchObject({ status: 'COMPLETED', finishedElsewhere: { status: 'COMPLETED' } })
    expect(third.completion).toBeUndefined()
    expect(hooked).toHaveLength(1)
  })

  it('sends nothing with complete: false, and says COMPLETED', async () => {
    await mock.createRun('resume_no_complete')
    await completeEveryStage(clients.make({ outbox: undefined }), 'resume_no_complete')
    const from = mock.requests.length
    const { stages, calls } = recordingStages('unused')
    const summary = await runPipeline({ runId: 'resume_no_complete', client: clients.make(), stages, complete: false })
    expect(calls).toEqual([])
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [] })
    expect(summary.finishedElsewhere).toBeUndefined()
    expect(summary.completion).toBeUndefined()
    expect(mock.requests.slice(from).map((request) => request.route)).toEqual(['status'])
    expect(hooked).toEqual([])
  })

  it.each([
    [
      'completed by a /complete received from elsewhere',
      async (runId: string, earlier: PrismaAPIClient) => {
        await completeEveryStage(earlier, runId)
        await earlier.completeRun(runId, { status: 'COMPLETED', from: 'elsewhere' })
      },
      { status: 'COMPLETED', hooks: 1 },
    ],
    [
      'completed by a /complete before its stages',
      async (runId: string, earlier: PrismaAPIClient) => {
        await earlier.markStageComplete(runId, 1, 'one')
        await earlier.completeRun(runId, { status: 'COMPLETED', from: 'elsewhere' })
      },
      { status: 'COMPLETED', hooks: 1 },
    ],
    [
      'completed by its last stage while stage 3 was never reported',
      async (runId: string, earlier: PrismaAPIClient) => {
        for (const stageNumber of [1, 2, 4, 5]) await earlier.markStageComplete(runId, stageNumber, `stage ${stageNumber}`)
      },
      { status: 'COMPLETED', hooks: 0 },
    ],
    [
      'cancelled',
      async (runId: string, earlier: PrismaAPIClient) => {
        await earlier.markStageComplete(runId, 1, 'one')
        await earlier.markStageProcessing(runId, 2)
        await cancel(runId, 'stopped by a user')
      },
      { status: 'CANCELLED', hooks: 0 },
    ],
  ] as const)('does not resume a run %s: no stage runs, no /complete, the hook is not called again', async (_, setUp, expected) => {
    const runId = 'resume_finished_elsewhere'
    await mock.createRun(runId)
    await setUp(runId, clients.make({ outbox: undefined }))
    const stored = await mock.getRun(runId)
    expect(stored?.run.status).toBe(expected.status)
    expect(hooked).toHaveLength(expected.hooks)
    const from = mock.requests.length
    const { stages, calls } = recordingStages('unused')
    const summary = await runPipeline({ runId, client: clients.make(), stages, results: () => ({ from: 'the restarted runner' }) })
    expect(calls).toEqual([])
    expect(summary).toMatchObject({ status: expected.status, finishedElsewhere: { status: expected.status } })
    expect(summary.completion).toBeUndefined()
    expect(mock.requests.slice(from).map((request) => request.route)).toEqual(['status'])
    expect(hooked).toHaveLength(expected.hooks)
    expect(hooked.every((call) => call.payload.from === 'elsewhere')).toBe(true)
  })
})

/** `POST /complete` as another party sends it, answered by the mock. */
async function completeElsewhere(runId: string): Promise<void> {
  const request = new Request(`${ORIGIN}/api/pipeline/${runId}/complete`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-webhook-secret': SECRET },
    body: JSON.stringify({ status: 'COMPLETED', from: 'elsewhere' }),
  })
  const response = await mock.fetch(request)
  expect(response?.status).toBe(200)
  expect(await response?.json()).toMatchObject({ outcome: 'applied' })
}

const DUPLICATE_WARNING =
  "The run's completion had already been received (outcome \"duplicate\"), so these results did not reach the app's onRunCompleted hook, " +
  "which ran once with the earlier /complete's: another party completed the run between this runner's start-of-run read and its /complete"

describe("runPipeline whose /complete is answered duplicate: the app's hook already ran with earlier results", () => {
  // An earlier process's /complete still waiting in the outbox is not this case: that run is not
  // resumed at all ("runPipeline restarted while the earlier process's run-ending update waits").
  it('says so once, in warnings and at warn, when another party completes the run between the start-of-run status read and its /complete; delivered stays true', async () => {
    const cause = 'elsewhere'
    const runId = `resume_duplicate_${cause}`
    await mock.createRun(runId)
    const earlier = clients.make({ outbox: undefined })
    await completeEveryStage(earlier, runId)
    expect((await mock.getRun(runId))?.run).toMatchObject({ status: 'COMPLETED', completionReceivedAt: null })

    const logged: string[] = []
    const restarted = clients.make({ logger: { warn: (message) => logged.push(`warn ${message}`), error: (message) => logged.push(`error ${message}`) } })
    // Right after the restarted runner read the run (not yet completed by a /complete), the other /complete lands.
    server.use(
      http.get(`${ORIGIN}/api/pipeline/:runId/status`, async ({ request }) => {
        const response = await mock.fetch(request)
        await completeElsewhere(runId)
        return response
      }),
    )
    const { stages, calls } = recordingStages('unused')
    const summary = await runPipeline({ runId, client: restarted, stages, results: () => ({ from: 'the restarted runner' }) })

    expect(calls).toEqual([])
    expect(summary.completion).toMatchObject({ ok: true, response: { outcome: 'duplicate', run: { status: 'COMPLETED' } } })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [DUPLICATE_WARNING] })
    expect(summary.finishedElsewhere).toBeUndefined()
    expect(logged.filter((line) => line.includes('duplicate'))).toEqual([`warn Run ${runId}: ${DUPLICATE_WARNING}`])
    // The hook ran once, with the earlier results; the restarted runner's did not reach it.
    expect(hooked).toEqual([{ runId, payload: expect.objectContaining({ from: 'elsewhere' }) }])
  })
})

describe("runPipeline restarted while the earlier process's run-ending update waits in the outbox", () => {
  /** The earlier process's last updates, sent while the server refused `route`: they wait in the outbox. */
  const endings = {
    failed: {
      route: 'stageUpdate',
      end: async (earlier: PrismaAPIClient, runId: string) => {
        await earlier.markStageProcessing(runId, 1)
        await earlier.markStageComplete(runId, 1, 'one')
        await earlier.markStageProcessing(runId, 2)
        await earlier.markStageFailed(runId, 2, 'boom')
      },
      status: 'FAILED',
      reason: 'boom',
      error: 'boom',
      updates: 'stage 2 FAILED ("boom")',
      stored: ['1 COMPLETED', '2 FAILED'],
    },
    cancelled: {
      route: 'stageUpdate',
      end: async (earlier: PrismaAPIClient, runId: string) => {
        await earlier.markStageProcessing(runId, 1)
        await earlier.markStageComplete(runId, 1, 'one')
        await earlier.markStageProcessing(runId, 2)
        await earlier.markStageCancelled(runId, 2)
      },
      status: 'CANCELLED',
      reason: null,
      error: 'The run was CANCELLED by an earlier process of this run',
      updates: 'stage 2 CANCELLED',
      stored: ['1 COMPLETED', '2 CANCELLED'],
    },
    complete: {
      route: 'complete',
      end: async (earlier: PrismaAPIClient, runId: string) => {
        mock.clearFaults('complete')
        await completeEveryStage(earlier, runId)
        mock.fail('complete', { status: 503 })
        expect(await earlier.completeRun(runId, { status: 'COMPLETED', from: 'earlier' })).toMatchObject({ queued: true })
      },
      status: 'COMPLETED',
      reason: null,
      error: 'The run was COMPLETED by an earlier process of this run',
      updates: 'its /complete (COMPLETED)',
      stored: ['1 COMPLETED', '2 COMPLETED', '3 COMPLETED', '4 COMPLETED', '5 COMPLETED'],
    },
  } as const

  it.each([
    ['failed', 'after-read'],
    ['failed', 'flushed'],
    ['cancelled', 'after-read'],
    ['cancelled', 'flushed'],
    ['complete', 'after-read'],
    ['complete', 'flushed'],
  ] as const)('runs no stage and sends nothing, and says the earlier process ended the run (pending %s, redelivery %s)', async (kind, order) => {
    const ending = endings[kind]
    const runId = `resume_ended_${kind}_${order}`
    await mock.createRun(runId)
    mock.fail(ending.route, { status: 503 })
    const earlier = clients.make()
    await ending.end(earlier, runId)
    expect(earlier.pendingCount(runId)).toBeGreaterThan(0)
    await earlier.close({ timeoutMs: 100 })

    const restarted = clients.make()
    if (order === 'flushed') {
      // The redelivery lands before the restarted runner reads the run.
      mock.clearFaults(ending.route)
      expect(await restarted.flush()).toMatchObject({ pending: 0 })
      expect((await mock.getRun(runId))?.run.status).toBe(ending.status)
    }
    // Else the server still refuses it until runPipeline resolved: the run is read unfinished (or, for
    // the /complete, COMPLETED by its stages with no /complete received, which alone would be resumed).
    const from = mock.requests.length
    const { stages, calls } = recordingStages('unused')
    const events: PipelineProgressEvent[] = []
    const summary = await runPipeline({ runId, client: restarted, stages, results: () => ({ from: 'restarted' }), onProgress: (event) => events.push(event) })

    expect(calls).toEqual([])
    expect(events.map((event) => event.type)).toEqual(['run-finished'])
    // Nothing of its own: the status read, and (after-read) the earlier process's entries retried.
    const sent = mock.requests.slice(from).filter((request) => request.route !== 'status')
    expect(sent.filter((request) => !(order === 'after-read' && request.route === ending.route))).toEqual([])
    expect(sent.filter((request) => request.route === 'complete' && request.body.includes('restarted'))).toEqual([])
    const warning = `An earlier process of this run left ${ending.updates} waiting in the outbox ${dir}; it is delivered first, so this run is not resumed`
    expect(summary).toMatchObject({
      status: ending.status,
      error: ending.error,
      finishedElsewhere: { runId, status: ending.status, reason: ending.reason, learnedFrom: 'outbox', run: { id: runId, status: ending.status, error: ending.reason } },
      stages: [1, 2, 3, 4, 5].map((stageNumber) => ({ stageNumber, status: 'PENDING' })),
      outputs: [],
    })
    expect(summary.completion).toBeUndefined()
    if (order === 'flushed') {
      expect(summary.warnings).toEqual([warning])
      expect(summary.delivered).toBe(true)
    } else {
      // Still waiting: judged undelivered, as any update waiting in the outbox at the end.
      expect(summary.warnings).toEqual([warning, expect.stringMatching(/^\d+ update\(s\) of this run wait in the outbox /)])
      expect(summary.delivered).toBe(false)
      mock.clearFaults(ending.route)
      expect(await restarted.flush()).toMatchObject({ pending: 0 })
    }
    const stored = await mock.getRun(runId)
    expect(stored?.run.status).toBe(ending.status)
    expect(stored?.stages.map(({ stageNumber, status }) => `${stageNumber} ${status}`)).toEqual(ending.stored)
    expect(hooked).toEqual(kind === 'complete' ? [{ runId, payload: expect.objectContaining({ from: 'earlier' }) }] : [])
  })
})
