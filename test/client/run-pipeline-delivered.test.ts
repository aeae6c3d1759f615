/**
 * `runPipeline`'s `delivered` against the MSW mock in-process, with an outbox: an update queued
 * during an outage is judged when the run ends, by what the outbox still holds, not when it was
 * queued. An outage that recovered mid-run is `delivered: true`; updates still waiting at the end,
 * or dead-lettered by the outbox after they were queued, are `delivered: false` with a warning
 * naming them.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setupServer } from 'msw/node'
import {
  PrismaAPIClient,
  type PrismaAPIClientOptions,
  type QueuedCompletionEvent,
  type QueuedDelivery,
  type StageFunction,
  runPipeline,
  silentLogger,
} from 'pipeline-status-sdk/client'
import { createPipelineMock } from 'pipeline-status-sdk/msw'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { recordingLogger } from '../support/loggers.js'
import { until } from '../support/until.js'
import { clientFactory } from './support/client-factory.js'
import { nearCeiling } from './support/outbox-jitter.js'

const ORIGIN = 'http://delivered.test'
const SECRET = 'delivered-secret'
const mock = createPipelineMock({ baseUrl: ORIGIN, secret: SECRET })
const server = setupServer(...mock.handlers)
let dir: string

beforeAll(() => server.listen({ onUnhandledFrame: 'error' }))
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'delivered-outbox-'))
})
afterEach(() => {
  mock.reset()
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
  retry: { limit: 2, baseDelayMs: 10, maxDelayMs: 10 },
  // No background redelivery unless a test asks for it: the stages flush.
  outbox: { dir, retryDelayMs: 600_000, maxRetryDelayMs: 600_000, random: nearCeiling },
}))

/** Five stages; stage 2 first waits for `recover` (the outage ends while the run goes on). */
function stagesRecoveringIn2(recover: () => Promise<void>): StageFunction[] {
  return [
    () => 'one',
    async () => {
      await recover()
      return 'two'
    },
    () => ({ three: 3 }),
    () => 'four',
    () => 'five',
  ]
}

/** How the outbox words the mock's injected 400. */
const REFUSED = 'HTTP 400 invalid_json: Injected fault: the mock was told to answer 400'

const stored = async (runId: string) => {
  const status = await mock.getRun(runId)
  return { run: status?.run.status, stages: status?.stages.map((stage) => `${stage.stageNumber} ${stage.status} ${stage.output}`) }
}

/**
 * The earlier process's client closes with one update pending on `route`; a restarted client on
 * the same outbox dead-letters it (one 400) in its first flush, before any runPipeline: answered.
 */
async function restartedAfterDeadLetter(earlier: PrismaAPIClient, route: 'complete' | 'stageUpdate'): Promise<PrismaAPIClient> {
  expect(await earlier.close({ timeoutMs: 100 })).toMatchObject({ pending: 1 })
  mock.clearFaults(route)
  mock.fail(route, { status: 400, times: 1 })
  const restarted = clients.make()
  expect(await restarted.flush()).toMatchObject({ rejected: 1, pending: 0 })
  return restarted
}

describe('runPipeline delivered, with an outbox', () => {
  it.each([
    ['a flush in stage 2 delivers the queue', 'flush'],
    ["the outbox's own background redelivery delivers the queue", 'background'],
  ] as const)('is true after an outage that recovered mid-run (%s)', async (_, how) => {
    await mock.createRun('recovered')
    const overrides: PrismaAPIClientOptions = how === 'background' ? { outbox: { dir, retryDelayMs: 10, maxRetryDelayMs: 50 } } : {}
    const client = clients.make(overrides)
    // Stage 1 PROCESSING: the first send and its 2 retries are dropped, so it is queued; the run's later updates queue behind it.
    mock.fail('stageUpdate', { drop: true, times: 3 })
    const recover = async () => {
      if (how === 'flush') {
        expect(client.pendingCount('recovered')).toBe(3) // 1 PROCESSING, 1 COMPLETED, 2 PROCESSING
        expect(await client.flush()).toMatchObject({ delivered: 3, rejected: 0, pending: 0 })
      } else await until('the outbox delivered the queue', () => client.pendingCount('recovered') === 0)
    }
    const summary = await runPipeline({ runId: 'recovered', client, stages: stagesRecoveringIn2(recover) })

    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [], conflicts: [] })
    expect(summary.stages.map((stage) => [stage.status, stage.reported])).toEqual(Array(5).fill(['COMPLETED', true]))
    expect(summary.completion).toMatchObject({ ok: true, response: { outcome: 'applied', run: { status: 'COMPLETED' } } })
    expect(client.pendingCount('recovered')).toBe(0)
    expect(await stored('recovered')).toEqual({
      run: 'COMPLETED',
      stages: ['1 COMPLETED one', '2 COMPLETED two', '3 COMPLETED {"three":3}', '4 COMPLETED four', '5 COMPLETED five'],
    })
    expect(await client.close()).toMatchObject({ pending: 0, undelivered: {} })
  })

  it('is false while the server is still down at the end, with a warning saying how many updates wait and in which outbox', async () => {
    await mock.createRun('still_down')
    const client = clients.make()
    mock.fail('stageUpdate', { drop: true })
    mock.fail('complete', { drop: true })
    const summary = await runPipeline({ runId: 'still_down', client, stages: stagesRecoveringIn2(async () => {}) })

    expect(summary.status).toBe('COMPLETED')
    expect(summary.delivered).toBe(false)
    expect(summary.stages.map((stage) => stage.reported)).toEqual(Array(5).fill(true))
    expect(summary.completion).toMatchObject({ ok: true, response: { queued: true, runId: 'still_down' } })
    // 5 PROCESSING, 5 COMPLETED and the completion.
    expect(client.pendingCount('still_down')).toBe(11)
    expect(summary.warnings).toEqual([
      `11 update(s) of this run wait in the outbox ${dir}; they are delivered in order once the server takes them (by this client's flush() or close(), or by the next process that opens that directory)`,
    ])
    expect(await stored('still_down')).toEqual({ run: 'PENDING', stages: [] })

    // They were kept, not lost: once the server is back, close() delivers them.
    mock.clearFaults()
    expect(await client.close()).toMatchObject({ delivered: 11, pending: 0, undelivered: {} })
    expect((await stored('still_down')).run).toBe('COMPLETED')
  })

  it('is false when the outbox dead-letters a queued update before the end, naming it in a warning', async () => {
    await mock.createRun('dead_lettered')
    const client = clients.make()
    mock.fail('stageUpdate', { drop: true, times: 3 })
    const recover = async () => {
      // The queued stage 1 PROCESSING is refused for good on its redelivery; the rest of the queue goes on.
      mock.fail('stageUpdate', { status: 400, times: 1 })
      expect(await client.flush()).toMatchObject({ delivered: 2, rejected: 1, pending: 0 })
    }
    const summary = await runPipeline({ runId: 'dead_lettered', client, stages: stagesRecoveringIn2(recover) })

    expect(summary.status).toBe('COMPLETED')
    expect(summary.delivered).toBe(false)
    expect(client.pendingCount('dead_lettered')).toBe(0)
    expect(summary.warnings).toEqual([expect.stringMatching(/^Stage 1 PROCESSING was not delivered \(dead-lettered\): HTTP 400 /)])
    expect((await client.deadLetters('dead_lettered')).map((letter) => JSON.parse(letter.body) as unknown)).toEqual([
      { stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING' },
    ])
  })
})

describe('runPipeline warnings for what the outbox dead-letters besides status changes', () => {
  it("names a queued progress report and a queued output chunk the outbox dead-letters, and keeps delivered true (they are not status changes)", async () => {
    await mock.createRun('dead_progress')
    const client = clients.make()
    const stages: StageFunction[] = [
      async ({ reportProgress, write }) => {
        // Stage 1 PROCESSING was delivered; the progress report's 3 attempts are dropped, so it is queued and the rest queue behind it.
        mock.fail('stageUpdate', { drop: true, times: 3 })
        expect(await reportProgress({ percent: 50, message: 'half' })).toBe(true)
        write('streamed text') // flushed (queued) before stage 1 COMPLETED
        return 'one'
      },
      async () => {
        // The progress report, then the chunk, are refused for good on their redelivery; the rest of the queue goes on.
        mock.fail('stageUpdate', { status: 400, times: 1 })
        mock.fail('stageOutput', { status: 400, times: 1 })
        expect(await client.flush()).toMatchObject({ delivered: 2, rejected: 2, pending: 0 }) // 1 COMPLETED, 2 PROCESSING
        return 'two'
      },
      () => 'three',
      () => 'four',
      () => 'five',
    ]
    const summary = await runPipeline({ runId: 'dead_progress', client, stages })

    expect(summary.status).toBe('COMPLETED')
    // One warning per cause, as for status changes.
    expect(summary.warnings).toEqual([`2 updates were not delivered (dead-lettered): ${REFUSED} (stage 1 progress report, stage 1 output chunk 0)`])
    expect(summary.delivered).toBe(true)
    expect((await client.deadLetters('dead_progress')).map((letter) => [letter.route, letter.body])).toEqual([
      ['stageUpdate', expect.stringMatching(/"progress":{"seq":\d+,"percent":50,"message":"half"}/)],
      ['stageOutput', '{"seq":0,"text":"streamed text"}'],
    ])
    expect((await stored('dead_progress')).stages?.[0]).toBe('1 COMPLETED one')
  })
})

describe("runPipeline and an earlier process's update the outbox dead-letters", () => {
  it.each([
    ['before the restarted runner starts', 'before'],
    ['while it runs', 'during'],
  ] as const)('names it in a warning, whether it is dead-lettered %s, and keeps this run delivered', async (_, when) => {
    await mock.createRun('earlier_dead')
    // The earlier process, while the server answered 503: its stage 1 PROCESSING waits in the outbox when it dies.
    mock.fail('stageUpdate', { status: 503 })
    const earlier = clients.make()
    expect(await earlier.markStageProcessing('earlier_dead', 1)).toBe(true)
    expect(await earlier.close({ timeoutMs: 100 })).toMatchObject({ pending: 1 })

    const restarted = clients.make()
    /** The server refuses the earlier process's update for good, and the outbox dead-letters it. */
    const refuse = async () => {
      mock.clearFaults('stageUpdate')
      mock.fail('stageUpdate', { status: 400, times: 1 })
      await restarted.flush()
      expect(restarted.pendingCount('earlier_dead')).toBe(0)
    }
    if (when === 'before') await refuse()
    const stages: StageFunction[] = [
      () => 'one',
      async () => {
        // This run's updates so far queued behind the earlier process's; they are delivered after it.
        if (when === 'during') await refuse()
        return 'two'
      },
      () => 'three',
      () => 'four',
      () => 'five',
    ]
    const summary = await runPipeline({ runId: 'earlier_dead', client: restarted, stages })

    expect(summary.status).toBe('COMPLETED')
    expect(summary.warnings).toEqual([
      `An earlier process's stage 1 PROCESSING was not delivered (dead-lettered): ${REFUSED}`,
    ])
    expect(summary.delivered).toBe(true)
    expect((await stored('earlier_dead')).run).toBe('COMPLETED')
  })
})

describe("runPipeline and an earlier process's dead-lettered update it relied on", () => {
  const SKIPPED_NOT_STORED =
    'this run skipped stage 1 relying on it, so the stage is not stored as COMPLETED on the server: rerun the run, or report the stage again (markStageComplete with its output)'

  /** A run whose stage 1 COMPLETED an earlier process left pending in the outbox when it died (its PROCESSING was delivered). */
  async function pendingCompleted(runId: string) {
    await mock.createRun(runId)
    const earlier = clients.make()
    expect(await earlier.markStageProcessing(runId, 1)).toBe(true)
    mock.fail('stageUpdate', { status: 503 })
    expect(await earlier.markStageComplete(runId, 1, 'one')).toBe(true)
    expect(await earlier.close({ timeoutMs: 100 })).toMatchObject({ pending: 1 })
    const restarted = clients.make()
    /** The server refuses the earlier process's COMPLETED for good, and the outbox dead-letters it. */
    const refuse = async () => {
      mock.clearFaults('stageUpdate')
      mock.fail('stageUpdate', { status: 400, times: 1 })
      await restarted.flush()
      expect(restarted.pendingCount(runId)).toBe(0)
    }
    return { restarted, refuse }
  }

  it("runs the stage again when its pending COMPLETED was dead-lettered before the restarted runner starts: the server never stored it", async () => {
    const runId = 'relied_skip_before'
    const { restarted, refuse } = await pendingCompleted(runId)
    await refuse()
    const calls: number[] = []
    const summary = await runPipeline({
      runId,
      client: restarted,
      stages: [1, 2, 3, 4, 5].map((n) => () => {
        calls.push(n)
        return `stage ${n}`
      }),
    })

    expect(calls).toEqual([1, 2, 3, 4, 5])
    expect(summary.stages[0]).toMatchObject({ status: 'COMPLETED', reported: true })
    expect(summary.stages[0]?.skipped).toBeUndefined()
    // The earlier process's dead letter is named as that process's; this run did not rely on it.
    expect(summary.warnings).toEqual([`An earlier process's stage 1 COMPLETED was not delivered (dead-lettered): ${REFUSED}`])
    expect(summary.delivered).toBe(true)
    expect((await stored(runId)).stages?.[0]).toBe('1 COMPLETED stage 1')
  })

  it("counts a skipped stage's pending COMPLETED against delivered when it is dead-lettered while the run goes on, and says the stage is not stored", async () => {
    const runId = 'relied_skip_during'
    const { restarted, refuse } = await pendingCompleted(runId)
    const calls: number[] = []
    const stages: StageFunction[] = [1, 2, 3, 4, 5].map((n) => async () => {
      calls.push(n)
      // This run's updates so far queued behind the earlier process's; they are delivered after it.
      if (n === 2) await refuse()
      return `stage ${n}`
    })
    const summary = await runPipeline({ runId, client: restarted, stages })

    // Skipped because of the pending COMPLETED, which was still pending when the run started.
    expect(calls).toEqual([2, 3, 4, 5])
    expect(summary.stages[0]).toMatchObject({ status: 'COMPLETED', skipped: 'already-completed' })
    expect(summary.delivered).toBe(false)
    expect(summary.warnings).toEqual([`An earlier process's stage 1 COMPLETED was not delivered (dead-lettered): ${REFUSED}; ${SKIPPED_NOT_STORED}`])
    expect((await stored(runId)).stages?.[0]).toBe('1 PROCESSING null')

    // The fix the warning names: report the stage again.
    expect(await restarted.markStageComplete(runId, 1, 'one')).toBe(true)
    expect((await stored(runId)).stages?.[0]).toBe('1 COMPLETED one')
  })

  it("resumes the run when the earlier process's pending /complete was dead-lettered before it starts: the server never stored it", async () => {
    const runId = 'relied_complete'
    await mock.createRun(runId)
    // The earlier process: every stage delivered (the server completed the run), its /complete queued, then it died.
    const earlier = clients.make()
    for (const stageNumber of [1, 2, 3, 4, 5]) {
      await earlier.markStageProcessing(runId, stageNumber)
      await earlier.markStageComplete(runId, stageNumber, `stage ${stageNumber}`)
    }
    mock.fail('complete', { status: 503 })
    expect(await earlier.completeRun(runId, { status: 'COMPLETED' })).toMatchObject({ queued: true })
    // The restarted client's outbox dead-letters it before runPipeline starts.
    const restarted = await restartedAfterDeadLetter(earlier, 'complete')
    const calls: number[] = []
    const summary = await runPipeline({ runId, client: restarted, stages: [1, 2, 3, 4, 5].map((n) => () => void calls.push(n)) })

    // Resumed: every stage the server holds COMPLETED is skipped, and this run's /complete is the one stored.
    expect(calls).toEqual([])
    expect(summary.stages.map((stage) => stage.skipped)).toEqual(Array(5).fill('already-completed'))
    expect(summary.finishedElsewhere).toBeUndefined()
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, completion: { ok: true, response: { outcome: 'applied' } } })
    // The earlier process's dead letter is named as that process's; this run did not rely on it.
    expect(summary.warnings).toEqual([`An earlier process's completion was not delivered (dead-lettered): ${REFUSED}`])
    expect((await mock.getRun(runId))?.run.completionReceivedAt).not.toBeNull()
  })

  it("resumes the run when the earlier process's pending FAILED was dead-lettered before it starts: the stage runs again as the next attempt", async () => {
    const runId = 'relied_failed_before'
    await mock.createRun(runId)
    // The earlier process: stage 1 completed and stage 2 PROCESSING delivered, its FAILED queued, then it died.
    const earlier = clients.make()
    await earlier.markStageProcessing(runId, 1)
    await earlier.markStageComplete(runId, 1, 'stage 1')
    await earlier.markStageProcessing(runId, 2)
    mock.fail('stageUpdate', { status: 503 })
    expect(await earlier.markStageFailed(runId, 2, 'boom')).toBe(true)
    // The restarted client's outbox dead-letters it before runPipeline starts: the server holds stage 2 PROCESSING.
    const restarted = await restartedAfterDeadLetter(earlier, 'stageUpdate')
    const calls: number[] = []
    const summary = await runPipeline({
      runId,
      client: restarted,
      stages: [1, 2, 3, 4, 5].map((n) => () => {
        calls.push(n)
        return `stage ${n}`
      }),
    })

    expect(calls).toEqual([2, 3, 4, 5])
    expect(summary.finishedElsewhere).toBeUndefined()
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true })
    expect(summary.warnings).toEqual([`An earlier process's stage 2 FAILED was not delivered (dead-lettered): ${REFUSED}`])
    const run = await mock.getRun(runId)
    expect(run?.run.status).toBe('COMPLETED')
    expect(run?.stages[1]).toMatchObject({ status: 'COMPLETED', attempt: 2, output: 'stage 2' })
  })
})

describe("runPipeline and a queued output chunk the outbox dead-letters (a chunk cascade)", () => {
  it('does not send the later chunks of that stage attempt, and names them in one line after the refused chunk', async () => {
    const runId = 'chunk_cascade'
    await mock.createRun(runId)
    const client = clients.make()
    let redelivered = 0
    const stages: StageFunction[] = [
      ({ write }) => {
        // Stage 1 PROCESSING was delivered; the chunks' sends are refused (503), so the first is queued and the rest queue behind it.
        mock.fail('stageOutput', { status: 503 })
        // One write of three chunks' worth: cut into chunks 0, 1 and 2 of 64 KiB each.
        write('x'.repeat(3 * 64 * 1024))
        return 'one'
      },
      async () => {
        // Chunk 0 is refused for good on its redelivery; chunks 1 and 2 could only be refused as out of order.
        mock.clearFaults('stageOutput')
        mock.fail('stageOutput', { status: 400, times: 1 })
        redelivered = mock.requests.length
        await client.flush()
        return 'two'
      },
      () => 'three',
      () => 'four',
      () => 'five',
    ]
    const summary = await runPipeline({ runId, client, stages })

    // Only chunk 0 was sent again: the later ones could only be refused as out of order.
    const chunksSent = mock.requests.slice(redelivered).filter((request) => request.route === 'stageOutput')
    expect(chunksSent.map((request) => (JSON.parse(request.body) as { seq: number }).seq)).toEqual([0])
    expect(summary.warnings).toEqual([
      `Stage 1 output chunk 0 was not delivered (dead-lettered): ${REFUSED}`,
      "2 later chunks of the streamed output of stage 1 (chunks 1 to 2) were not delivered (dead-lettered) because stage 1 output chunk 0 was not: " +
        "the server applies a stage's chunks only in order, so none after a missing one can be stored (output_out_of_order)",
    ])
    expect(summary.delivered).toBe(true)
    expect((await client.deadLetters(runId)).map((letter) => [(JSON.parse(letter.body) as { seq: number }).seq, letter.reason])).toEqual([
      [0, REFUSED],
      [1, "an earlier chunk of this stage's output was dead-lettered"],
      [2, "an earlier chunk of this stage's output was dead-lettered"],
    ])
    expect((await stored(runId)).stages?.[0]).toBe('1 COMPLETED one')
  })

  it("is one error line in the outbox's log, not one per chunk, and keeps each chunk's dead letter", async () => {
    const runId = 'chunk_cascade_log'
    await mock.createRun(runId)
    const logger = recordingLogger()
    const client = clients.make({ logger })
    expect(await client.markStageProcessing(runId, 1)).toBe(true)
    // Every chunk's send is refused (503), so chunk 0 is queued and chunks 1 to 4 queue behind it.
    mock.fail('stageOutput', { status: 503 })
    const stream = client.streamStageOutput(runId, 1)
    stream.write('x'.repeat(5 * 64 * 1024))
    await stream.close()
    expect(client.pendingCount(runId)).toBe(5)
    // Chunk 0 is refused for good on its redelivery; chunks 1 to 4 are dead-lettered unsent.
    mock.clearFaults('stageOutput')
    mock.fail('stageOutput', { status: 400, times: 1 })
    logger.lines.length = 0
    expect(await client.flush()).toMatchObject({ delivered: 0, rejected: 5, pending: 0 })

    const letters = join(dir, 'dead-letters.jsonl')
    expect(logger.lines.filter((line) => line.level === 'error').map((line) => line.message)).toEqual([
      `Outbox: run ${runId}: stage 1 output chunk 0 dead-lettered (${REFUSED}); kept in ${letters}, the run's later updates go on`,
      `Outbox: run ${runId}: 4 later chunks of the streamed output of stage 1 (chunks 1 to 4) dead-lettered unsent, because stage 1 output chunk 0 was ` +
        `(${REFUSED}): the server applies a stage's chunks only in order, so none after a missing one can be stored. Kept in ${letters} (client.deadLetters()); ` +
        "the output sent with the stage's COMPLETED replaces the streamed text, so only the text streamed so far is lost: fix the cause of chunk 0's refusal (logged above)",
    ])
    expect((await client.deadLetters(runId)).map((letter) => [(JSON.parse(letter.body) as { seq: number }).seq, letter.reason])).toEqual([
      [0, REFUSED],
      ...[1, 2, 3, 4].map((seq) => [seq, "an earlier chunk of this stage's output was dead-lettered"]),
    ])
    expect(await client.close()).toMatchObject({ undelivered: { [runId]: expect.objectContaining({ deadLettered: 5 }) } })
  })
})

describe("the outcome of a /complete that waited in the outbox (onQueuedCompletion)", () => {
  /**
   * A client recording its queued completions' outcomes and its warnings; the run's /complete is
   * queued (3 attempts answered 503: refused for sure, so a later `duplicate` is another party's;
   * dropped attempts may have been received, see duplicate-completion.test.ts).
   */
  async function queuedCompletion(runId: string) {
    await mock.createRun(runId)
    const events: QueuedCompletionEvent[] = []
    const warned: string[] = []
    const client = clients.make({ onQueuedCompletion: (event) => events.push(event), logger: { ...silentLogger, warn: (message) => void warned.push(message) } })
    mock.fail('complete', { status: 503, times: 3 })
    const summary = await runPipeline({ runId, client, stages: stagesRecoveringIn2(async () => {}), results: () => ({ report: runId }) })
    expect(summary.completion).toMatchObject({ ok: true, response: { queued: true, runId } })
    expect(summary.delivered).toBe(false)
    expect(events).toEqual([]) // not settled yet
    const { idempotencyKey } = (summary.completion as { response: QueuedDelivery }).response
    return { client, events, warned, idempotencyKey }
  }

  it('is applied: the event carries the answer, and the results reached the hook', async () => {
    const { client, events, idempotencyKey } = await queuedCompletion('queued_applied')
    expect(await client.flush()).toMatchObject({ delivered: 1, pending: 0 })
    expect(events).toEqual([
      { runId: 'queued_applied', idempotencyKey, outcome: 'applied', response: expect.objectContaining({ outcome: 'applied' }), earlierProcess: false },
    ])
    expect(events[0]?.response?.run).toMatchObject({ id: 'queued_applied', status: 'COMPLETED' })
  })

  it('is duplicate when another /complete was received while it waited, with a warning that its results did not reach the hook', async () => {
    const { client, events, warned, idempotencyKey } = await queuedCompletion('queued_duplicate')
    const other = clients.make({ outbox: undefined })
    expect(await other.completeRun('queued_duplicate', { status: 'COMPLETED' })).toMatchObject({ outcome: 'applied' })
    warned.length = 0
    expect(await client.flush()).toMatchObject({ delivered: 1, pending: 0 })
    expect(events).toEqual([
      { runId: 'queued_duplicate', idempotencyKey, outcome: 'duplicate', response: expect.objectContaining({ outcome: 'duplicate' }), earlierProcess: false },
    ])
    expect(warned).toEqual([
      'Run queued_duplicate: ' +
        "The run's completion had already been received (outcome \"duplicate\"), so these results did not reach the app's onRunCompleted hook, " +
        "which ran once with the earlier /complete's: another party completed the run while this /complete waited in the outbox",
    ])
  })

  it('is dead-lettered when the server refuses it for good, with the reason', async () => {
    const { client, events, idempotencyKey } = await queuedCompletion('queued_refused')
    mock.fail('complete', { status: 400, times: 1 })
    expect(await client.flush()).toMatchObject({ delivered: 0, rejected: 1, pending: 0 })
    expect(events).toEqual([
      {
        runId: 'queued_refused',
        idempotencyKey,
        outcome: 'dead-lettered',
        reason: REFUSED,
        earlierProcess: false,
      },
    ])
  })

  it("is told for an earlier process's /complete that a restarted client delivers, marked as that process's", async () => {
    const { client, idempotencyKey } = await queuedCompletion('queued_earlier')
    // The process dies with its /complete still queued (the server still unreachable).
    mock.fail('complete', { drop: true })
    expect(await client.close({ timeoutMs: 100 })).toMatchObject({ pending: 1 })
    mock.clearFaults('complete')
    const events: QueuedCompletionEvent[] = []
    const restarted = clients.make({ onQueuedCompletion: (event) => events.push(event) })
    expect(await restarted.flush()).toMatchObject({ delivered: 1, pending: 0 })
    expect(events).toEqual([{ runId: 'queued_earlier', idempotencyKey, outcome: 'applied', response: expect.objectContaining({ outcome: 'applied' }), earlierProcess: true }])
  })
})

describe('runPipeline delivered, without an outbox', () => {
  it('is true when every update arrived, and false with a warning per cause when one was lost', async () => {
    await mock.createRun('no_outbox')
    const client = clients.track(
      new PrismaAPIClient({ baseUrl: ORIGIN, secret: SECRET, logger: silentLogger, followRunStream: false, heartbeatIntervalMs: 60_000, retry: { limit: 0 } }),
    )
    expect((await runPipeline({ runId: 'no_outbox', client, stages: stagesRecoveringIn2(async () => {}) })).delivered).toBe(true)

    await mock.createRun('no_outbox_lost')
    mock.fail('stageUpdate', { drop: true, times: 1 })
    const summary = await runPipeline({ runId: 'no_outbox_lost', client, stages: stagesRecoveringIn2(async () => {}) })
    expect(summary.delivered).toBe(false)
    expect(summary.stages[0]?.reported).toBe(false)
    expect(summary.warnings).toEqual([expect.stringMatching(/^Stage 1 PROCESSING was not delivered \(failed\): /)])
  })
})
