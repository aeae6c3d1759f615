/**
 * Runner control on the client side (docs/contract.md "Runner control"), against the real
 * handlers over HTTP (test/client/support/test-server.ts): heartbeats while a stage runs,
 * progress with client-assigned `seq` (coalesced in the lane and in the outbox), the client
 * learning that its run was finished elsewhere (`onRunFinished`, `RunFinishedError`, `false`
 * from the `mark*` methods), `runPipeline` aborting the stage, and the catalogue handshake.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  CatalogueMismatchError,
  DEFAULT_STAGES,
  PrismaAPIClient,
  RunFinishedError,
  type RunFinishedEvent,
  isRunFinishedError,
  runPipeline,
  silentLogger,
} from 'pipeline-status-sdk/client'
import { MemoryStore, createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { describe, expect, it, vi } from 'vitest'
import { useTempDirs } from '../support/temp-dirs.js'
import { clientFactory } from './support/client-factory.js'
import { TEST_SECRET, useTestServer } from './support/test-server.js'
import { nearCeiling } from './support/outbox-jitter.js'

const INTERVAL = 1000 // the contract's shortest heartbeat interval

const outboxDir = useTempDirs('runner-control-outbox-')
const server = useTestServer()
const { make: makeClient } = clientFactory(() => ({
  baseUrl: server().origin,
  secret: TEST_SECRET,
  logger: silentLogger,
  retry: { limit: 1, baseDelayMs: 5 },
  heartbeatIntervalMs: INTERVAL,
}))

/** What reached the server, one word each: `1 PROCESSING`, `2 progress <message>`, `heartbeat 2`, `complete`. */
function wire(runId: string): string[] {
  return server().requests
    .filter((r) => r.url.includes(`/${runId}/`))
    .map((r) => {
      const body = r.body === '' ? {} : (JSON.parse(r.body) as { stageNumber?: number; status?: string; progress?: { message?: string } })
      if (r.url.endsWith('/heartbeat')) return `heartbeat ${body.stageNumber}`
      if (r.url.endsWith('/complete')) return 'complete'
      if (r.url.endsWith('/status')) return 'status'
      if (r.url.endsWith('/cancel')) return 'cancel'
      if (body.progress) return `${body.stageNumber} progress ${body.progress.message}`
      return `${body.stageNumber} ${body.status}`
    })
}

/** A stage-update body as `wire` words it. */
function describeBody(body: string): string {
  const parsed = JSON.parse(body) as { stageNumber: number; status: string; progress?: { message?: string } }
  return parsed.progress ? `${parsed.stageNumber} progress ${parsed.progress.message}` : `${parsed.stageNumber} ${parsed.status}`
}

async function cancel(runId: string, reason: string): Promise<Response> {
  return server().cancel(runId, reason)
}

const five = (stage2: Parameters<typeof runPipeline>[0]['stages'][number]) => [() => 1, stage2, () => 3, () => 4, () => 5]

describe('heartbeats', () => {
  it('sends one at the stage start and one per interval while runPipeline runs it, announcing intervalMs, none once it ended', async () => {
    const client = makeClient()
    const { run } = await client.createRun('hb_run')
    const summary = await runPipeline({
      runId: run.id,
      client,
      stages: five(async () => {
        // Until the server has seen the start's heartbeat and the first interval's.
        await vi.waitFor(() => expect(server().requestsTo('/heartbeat').length).toBeGreaterThanOrEqual(2), { timeout: 10_000, interval: 20 })
        return 'two'
      }),
    })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true })
    const beats = server().requestsTo('/heartbeat')
    for (const beat of beats) {
      expect(JSON.parse(beat.body)).toMatchObject({ intervalMs: INTERVAL, stageNumber: expect.any(Number) })
      expect(beat.headers['x-webhook-secret']).toBe(TEST_SECRET)
    }
    // Every heartbeat falls inside its stage: after its PROCESSING, before its COMPLETED.
    const order = wire(run.id).filter((w) => w !== 'status')
    for (const [index, word] of order.entries()) {
      if (!word.startsWith('heartbeat ')) continue
      const stage = word.slice('heartbeat '.length)
      expect(order.slice(0, index)).toContain(`${stage} PROCESSING`)
      expect(order.slice(0, index)).not.toContain(`${stage} COMPLETED`)
    }
    expect(order.filter((w) => w === 'heartbeat 2').length).toBeGreaterThanOrEqual(2)
    // One interval and a half after the run: no heartbeat came after the completion.
    const count = server().requestsTo('/heartbeat').length
    await new Promise((resolve) => setTimeout(resolve, INTERVAL * 1.5))
    expect(server().requestsTo('/heartbeat')).toHaveLength(count)
    expect(wire(run.id).at(-1)).toBe('complete')
  })

  it('never queues a heartbeat in the outbox nor retries it', async () => {
    const dir = outboxDir()
    let refused = 0
    const client = makeClient({
      outbox: { dir },
      retry: { limit: 3, baseDelayMs: 5 },
      // Heartbeats hit a network error; everything else goes through.
      fetch: (url, init) => {
        if (url.endsWith('/heartbeat')) {
          refused++
          return Promise.reject(new TypeError('fetch failed'))
        }
        return fetch(url, init)
      },
    })
    const { run } = await client.createRun('hb_lost')
    const summary = await runPipeline({
      runId: run.id,
      client,
      stages: five(async () => {
        await vi.waitFor(() => expect(refused).toBeGreaterThanOrEqual(2), { timeout: 10_000, interval: 20 })
      }),
    })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [] })
    // One attempt per heartbeat (no retry with `retry.limit: 3`), nothing queued.
    expect(refused).toBeGreaterThanOrEqual(2)
    expect(client.pendingCount()).toBe(0)
    const journal = join(dir, 'journal.jsonl')
    expect(existsSync(journal) ? readFileSync(journal, 'utf8') : '').not.toContain('heartbeat')
  })

  it('stops on close(), and close() leaves no heartbeat behind', async () => {
    const client = makeClient()
    const { run } = await client.createRun('hb_close')
    let markStarted: () => void = () => {}
    const started = new Promise<void>((resolve) => {
      markStarted = resolve
    })
    const stop = new AbortController()
    const pipeline = runPipeline({
      runId: run.id,
      client,
      complete: false,
      stages: five(async ({ signal }) => {
        markStarted()
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
      }),
      // Ended by the test once the client is closed, not by a timer: a 3 s one raced the first
      // heartbeat on a loaded machine.
      signal: stop.signal,
    })
    await started
    await vi.waitFor(() => expect(server().requestsTo('/heartbeat').length).toBeGreaterThanOrEqual(1), { timeout: 30_000, interval: 20 })
    await client.close({ timeoutMs: 100 })
    const count = server().requestsTo('/heartbeat').length
    stop.abort()
    await pipeline
    await new Promise((resolve) => setTimeout(resolve, INTERVAL * 1.5))
    expect(server().requestsTo('/heartbeat')).toHaveLength(count)
  })

  it('client.heartbeat sends one on demand and answers the run as stored', async () => {
    const client = makeClient()
    await client.createRun('hb_once')
    await client.markStageProcessing('hb_once', 1)
    const answer = await client.heartbeat('hb_once', 1)
    expect(answer).toMatchObject({ run: { id: 'hb_once', status: 'PROCESSING', heartbeatIntervalMs: INTERVAL } })
    expect(JSON.parse(server().requestsTo('/heartbeat')[0]?.body ?? '')).toEqual({ stageNumber: 1, intervalMs: INTERVAL })
  })

  it('refuses a heartbeat interval outside the contract at construction', () => {
    for (const heartbeatIntervalMs of [999, 3_600_001, 1500.5]) {
      expect(() => new PrismaAPIClient({ baseUrl: server().origin, secret: TEST_SECRET, heartbeatIntervalMs })).toThrow(
        /heartbeatIntervalMs must be a whole number of milliseconds from 1000 to 3600000/,
      )
    }
  })
})

describe('reportProgress', () => {
  it('assigns increasing seqs per stage, and the server keeps the newest', async () => {
    const client = makeClient()
    const { run } = await client.createRun('progress_seq')
    await runPipeline({
      runId: run.id,
      client,
      stages: five(async ({ reportProgress }) => {
        for (let i = 1; i <= 3; i++) expect(await reportProgress({ current: i, total: 3, message: `batch ${i}` })).toBe(true)
      }),
    })
    const reports = server()
      .requestsTo('/stage-update')
      .map((r) => JSON.parse(r.body) as { status: string; progress?: { seq: number; message: string } })
      .filter((b) => b.progress)
    expect(reports.map((b) => [b.status, b.progress?.message])).toEqual([
      ['PROCESSING', 'batch 1'],
      ['PROCESSING', 'batch 2'],
      ['PROCESSING', 'batch 3'],
    ])
    const seqs = reports.map((b) => b.progress?.seq ?? -1)
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
    expect(new Set(seqs).size).toBe(3)
    // Never below the clock: a later process reporting the same stage still wins.
    expect(seqs[0]).toBeGreaterThan(Date.parse('2026-01-01'))
    const stage2 = (await client.getStatus(run.id)).stages[1]
    expect(stage2?.progress).toEqual({ seq: seqs[2], current: 3, total: 3, message: 'batch 3' })
  })

  it('coalesces reports waiting behind the one in flight: the newest replaces them', async () => {
    const client = makeClient()
    await client.createRun('progress_lane')
    await client.markStageProcessing('progress_lane', 1)
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => client.reportProgress('progress_lane', 1, { current: i, total: 5, message: `m${i}` })))
    expect(results).toEqual([true, true, true, true, true])
    // The first went at once; the next four waited behind it and only the newest was sent.
    expect(wire('progress_lane')).toEqual(['1 PROCESSING', '1 progress m1', '1 progress m5'])
  })

  it('keeps only the newest pending progress per stage in the outbox, never merging status changes', async () => {
    const dir = outboxDir()
    const client = makeClient({ outbox: { dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling }, retry: { limit: 0 } })
    await client.createRun('progress_outbox')
    server().setFault({ status: 503 })
    expect(await client.markStageProcessing('progress_outbox', 1)).toBe(true)
    for (let i = 1; i <= 3; i++) expect(await client.reportProgress('progress_outbox', 1, { percent: i * 10, message: `s1 ${i}` })).toBe(true)
    expect(await client.markStageComplete('progress_outbox', 1, 'one')).toBe(true)
    // A late report of stage 1: it stays behind the status change, never replaces the one before it.
    expect(await client.reportProgress('progress_outbox', 1, { message: 's1 late' })).toBe(true)
    expect(await client.markStageProcessing('progress_outbox', 2)).toBe(true)
    for (let i = 1; i <= 2; i++) expect(await client.reportProgress('progress_outbox', 2, { percent: i * 40, message: `s2 ${i}` })).toBe(true)
    // Stage 1: PROCESSING, one progress, COMPLETED, the late one; stage 2: PROCESSING, one progress.
    expect(client.pendingCount('progress_outbox')).toBe(6)
    // The process ends during the outage; the next one reads the same queue from the journal.
    await client.close({ timeoutMs: 100 })
    server().setFault(undefined)
    const next = makeClient({ outbox: { dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling }, retry: { limit: 0 } })
    expect(next.pendingCount('progress_outbox')).toBe(6)
    const sentBefore = server().requests.length
    expect(await next.flush()).toEqual({ delivered: 6, rejected: 0, pending: 0 })
    const delivered = server().requests.slice(sentBefore).map((r) => {
      const body = JSON.parse(r.body) as { stageNumber: number; status: string; progress?: { message: string } }
      return body.progress ? `${body.stageNumber} progress ${body.progress.message}` : `${body.stageNumber} ${body.status}`
    })
    // The replacement took the older report's place in the queue.
    expect(delivered).toEqual(['1 PROCESSING', '1 progress s1 3', '1 COMPLETED', '1 progress s1 late', '2 PROCESSING', '2 progress s2 2'])
    const stages = (await next.getStatus('progress_outbox')).stages
    expect(stages[1]?.progress).toMatchObject({ percent: 80, message: 's2 2' })
  })

  it('refuses a report the contract refuses, naming the field, and sends nothing', async () => {
    const client = makeClient({ throwOnError: true })
    await client.createRun('progress_bad')
    await expect(client.reportProgress('progress_bad', 1, { percent: 101 })).rejects.toThrow(/progress.*percent/s)
    await expect(client.reportProgress('progress_bad', 1, { current: 4, total: 3 })).rejects.toThrow(/current must not exceed total/)
    expect(server().requestsTo('/stage-update')).toEqual([])
  })
})

describe('the runner learns that its run was finished elsewhere', () => {
  it('mark* resolve false after the web app cancelled the run; onRunFinished is called once with the reason', async () => {
    const events: RunFinishedEvent[] = []
    const client = makeClient({ onRunFinished: (event) => events.push(event) })
    await client.createRun('learn_cancel')
    await client.markStageProcessing('learn_cancel', 1)
    expect((await cancel('learn_cancel', 'the user pressed stop')).status).toBe(200)
    expect(await client.markStageComplete('learn_cancel', 1, 'late')).toBe(false)
    expect(await client.markStageProcessing('learn_cancel', 2)).toBe(false)
    expect(events).toEqual([
      expect.objectContaining({ runId: 'learn_cancel', status: 'CANCELLED', reason: 'the user pressed stop', learnedFrom: 'refusal' }),
    ])
    expect(client.runFinished('learn_cancel')).toEqual(events[0])
  })

  it('throws RunFinishedError with throwOnError', async () => {
    const client = makeClient({ throwOnError: true })
    await client.createRun('learn_throw')
    await client.markStageProcessing('learn_throw', 1)
    await cancel('learn_throw', 'no longer needed')
    const refused = client.markStageComplete('learn_throw', 1, 'late')
    await expect(refused).rejects.toThrow(RunFinishedError)
    await expect(refused).rejects.toMatchObject({ runId: 'learn_throw', status: 'CANCELLED', reason: 'no longer needed' })
    // A PROCESSING on the finished run is answered `stale`: refused the same way.
    const stale = await client.markStageProcessing('learn_throw', 2).catch((error: unknown) => error)
    expect(isRunFinishedError(stale)).toBe(true)
  })

  it('does not call onRunFinished when its own update finished the run', async () => {
    const events: RunFinishedEvent[] = []
    const client = makeClient({ onRunFinished: (event) => events.push(event) })
    await client.createRun('learn_self')
    expect(await client.markStageFailed('learn_self', 1, 'boom')).toBe(true)
    expect(await client.markStageCancelled('learn_self', 2)).toBe(false) // 409 run_finished: contradicts FAILED
    expect(events).toEqual([])
    expect(client.runFinished('learn_self')).toBeUndefined()
  })

  it('says once that a run the web app completed while all its updates waited in the outbox ended meanwhile, not that its id was reused', async () => {
    const events: RunFinishedEvent[] = []
    const logged: { level: string; message: string }[] = []
    const logger = {
      info: (message: string) => logged.push({ level: 'info', message }),
      warn: (message: string) => logged.push({ level: 'warn', message }),
      error: (message: string) => logged.push({ level: 'error', message }),
    }
    const client = makeClient({ outbox: { dir: outboxDir(), retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling }, retry: { limit: 0 }, logger, onRunFinished: (event) => events.push(event) })
    await client.createRun('offline_completed')
    // The runner cannot reach the server from its first update on; the web app completes the run meanwhile.
    server().setFault({ status: 503 })
    expect(await client.markStageProcessing('offline_completed', 1)).toBe(true)
    expect(await client.markStageComplete('offline_completed', 1, 'one')).toBe(true)
    server().setFault(undefined)
    const webApp = makeClient()
    expect(await webApp.completeRun('offline_completed', { status: 'COMPLETED' })).toMatchObject({ outcome: 'applied' })
    logged.length = 0

    expect(await client.flush()).toMatchObject({ pending: 0 })
    expect(events).toEqual([expect.objectContaining({ runId: 'offline_completed', status: 'COMPLETED' })])
    const warnings = logged.filter((line) => line.level !== 'info').map((line) => line.message)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/^Outbox: run offline_completed ended elsewhere while its updates waited /)
    expect(logged.map((line) => line.message.split(', not by this client: ')[1]).filter(Boolean)).toEqual([
      "it ended while this client's updates for it waited in the outbox",
    ])
    // A run completed before this client's first update was sent: the reused-id advice stays.
    await client.createRun('completed_before_first')
    expect(await webApp.completeRun('completed_before_first', { status: 'COMPLETED' })).toMatchObject({ outcome: 'applied' })
    logged.length = 0
    expect(await client.markStageProcessing('completed_before_first', 1)).toBe(false)
    expect(logged.find((line) => line.level === 'warn')?.message).toContain(
      "it finished before this client's first update for it: the run id was most likely reused",
    )
    await client.close({ timeoutMs: 1000 })
    await webApp.close({ timeoutMs: 1000 })
  })

  it('settles the queued updates of a run cancelled while the server was unreachable as superseded, not undelivered', async () => {
    const events: RunFinishedEvent[] = []
    const logged: { level: string; message: string }[] = []
    const logger = {
      warn: (message: string) => logged.push({ level: 'warn', message }),
      error: (message: string) => logged.push({ level: 'error', message }),
    }
    const dir = outboxDir()
    const client = makeClient({ outbox: { dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling }, retry: { limit: 0 }, logger, onRunFinished: (event) => events.push(event) })
    await client.createRun('offline_cancel')
    expect(await client.markStageProcessing('offline_cancel', 1)).toBe(true)
    expect(await client.markStageComplete('offline_cancel', 1, 'one')).toBe(true)
    expect(await client.markStageProcessing('offline_cancel', 2)).toBe(true)
    // The runner loses the server; the web app's user cancels the run meanwhile.
    server().setFault({ status: 503 })
    expect(await client.markStageComplete('offline_cancel', 2, 'two')).toBe(true)
    expect(await client.markStageProcessing('offline_cancel', 3)).toBe(true)
    expect(await client.reportProgress('offline_cancel', 3, { percent: 50, message: 'half' })).toBe(true)
    expect(await client.markStageComplete('offline_cancel', 3, 'three')).toBe(true)
    expect(await client.markStageProcessing('offline_cancel', 4)).toBe(true)
    expect(await client.markStageFailed('offline_cancel', 4, 'boom')).toBe(true)
    expect(client.pendingCount('offline_cancel')).toBe(6)
    server().setFault(undefined)
    expect((await cancel('offline_cancel', 'the user pressed stop')).status).toBe(200)
    logged.length = 0

    // Redelivered from the outbox: the late COMPLETED of stage 3 (no row yet) is stored; the rest is refused.
    expect(await client.flush()).toEqual({ delivered: 1, rejected: 0, pending: 0 })
    expect(events).toEqual([expect.objectContaining({ runId: 'offline_cancel', status: 'CANCELLED', reason: 'the user pressed stop' })])
    const kept = await client.deadLetters('offline_cancel')
    expect(kept.map((letter) => [describeBody(letter.body), letter.kind, letter.code])).toEqual([
      ['2 COMPLETED', 'superseded', 'stage_finished'],
      ['3 PROCESSING', 'superseded', undefined],
      ['3 progress half', 'superseded', undefined],
      ['4 PROCESSING', 'superseded', undefined],
      ['4 FAILED', 'superseded', 'run_finished'],
    ])
    const { stages, run } = await client.getStatus('offline_cancel')
    expect(run.status).toBe('CANCELLED')
    // Stages 4 and 5 have no row: the server refused all of stage 4.
    expect(stages.map((stage) => [stage.stageNumber, stage.status])).toEqual([
      [1, 'COMPLETED'],
      [2, 'CANCELLED'],
      [3, 'COMPLETED'],
    ])
    // Not a delivery failure: nothing undelivered, no error logged, one line for the run's end and one for its superseded updates.
    expect(await client.close({ timeoutMs: 1000 })).toEqual({ delivered: 0, rejected: 0, pending: 0, undelivered: {} })
    expect(logged.filter((line) => line.level === 'error')).toEqual([])
    expect(logged.filter((line) => /superseded/.test(line.message))).toHaveLength(1)
  })

  it('counts an invalid progress report as the caller\'s error: a warning in the summary, not undelivered at close', async () => {
    const client = makeClient()
    const { run } = await client.createRun('progress_invalid')
    const summary = await runPipeline({
      runId: run.id,
      client,
      stages: five(async ({ reportProgress }) => {
        expect(await reportProgress({ percent: 150 })).toBe(false)
        return 'two'
      }),
    })
    expect(summary.status).toBe('COMPLETED')
    expect(summary.delivered).toBe(true)
    expect(summary.warnings).toEqual([expect.stringMatching(/^Stage 2 progress report refused as invalid: .*percent/s)])
    expect(wire(run.id).filter((w) => w.includes('progress'))).toEqual([])
    expect(await client.close({ timeoutMs: 1000 })).toEqual({ delivered: 0, rejected: 0, pending: 0, undelivered: {} })
  })

  it('says a stage\'s many invalid progress reports in one warning with their count, not one warning each', async () => {
    const client = makeClient()
    const { run } = await client.createRun('progress_invalid_many')
    const summary = await runPipeline({
      runId: run.id,
      client,
      stages: five(async ({ reportProgress }) => {
        for (let i = 0; i < 300; i++) expect(await reportProgress({ percent: 150 + i })).toBe(false)
        expect(await reportProgress({ percent: 50 })).toBe(true)
        return 'two'
      }),
    })
    expect(summary.delivered).toBe(true)
    expect(summary.warnings).toEqual([expect.stringMatching(/^Stage 2 progress report refused as invalid ×300, the first: .*percent/s)])
  })

  it('runPipeline aborts the stage signal when a heartbeat shows the run cancelled, starts no further stage, reports CANCELLED', async () => {
    // Heartbeats only: the live stream would tell first (test/client/run-end-watch.test.ts).
    const client = makeClient({ followRunStream: false })
    const { run } = await client.createRun('learn_pipeline')
    const ran: number[] = []
    const events: string[] = []
    const summary = await runPipeline({
      runId: run.id,
      client,
      onProgress: (event) => events.push(event.type === 'run-finished-elsewhere' ? `elsewhere ${event.status}` : event.type),
      stages: [
        () => ran.push(1),
        async ({ signal }) => {
          ran.push(2)
          await cancel(run.id, 'stop it')
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
          expect(isRunFinishedError(signal.reason)).toBe(true)
          ran.push(2.5)
          throw signal.reason
        },
        () => ran.push(3),
        () => ran.push(4),
        () => ran.push(5),
      ],
    })
    expect(ran).toEqual([1, 2, 2.5])
    expect(summary).toMatchObject({
      status: 'CANCELLED',
      error: 'stop it',
      finishedElsewhere: { status: 'CANCELLED', reason: 'stop it', learnedFrom: 'heartbeat' },
    })
    expect(summary.stages.map((s) => s.status)).toEqual(['COMPLETED', 'CANCELLED', 'PENDING', 'PENDING', 'PENDING'])
    expect(summary.completion).toBeUndefined()
    expect(events).toContain('elsewhere CANCELLED')
    // Nothing was sent for the run after the cancel: no CANCELLED update, no completion.
    expect(wire(run.id).filter((w) => !w.startsWith('heartbeat') && w !== 'cancel').slice(-1)).toEqual(['2 PROCESSING'])
    const status = await client.getStatus(run.id)
    expect(status.run).toMatchObject({ status: 'CANCELLED', error: 'stop it' })
    expect(status.stages.map((s) => s.status)).toEqual(['COMPLETED', 'CANCELLED'])
  })
})

describe('runPipeline starts no stage of a run finished elsewhere', () => {
  it('when the stage that was cancelled returns anyway: its refused COMPLETED tells the runner, stage 2 never starts', async () => {
    // Without the live stream, which would abort the stage before it returns.
    const client = makeClient({ followRunStream: false })
    const { run } = await client.createRun('learn_refusal')
    const ran: number[] = []
    const summary = await runPipeline({
      runId: run.id,
      client,
      stages: [
        async () => {
          ran.push(1)
          await cancel(run.id, 'cancelled during stage 1')
          return 'one' // a stage that does not watch its signal, and finishes before the next heartbeat
        },
        () => ran.push(2),
        () => ran.push(3),
        () => ran.push(4),
        () => ran.push(5),
      ],
    })
    expect(ran).toEqual([1])
    expect(summary).toMatchObject({ status: 'CANCELLED', error: 'cancelled during stage 1', finishedElsewhere: { status: 'CANCELLED' } })
    // The stage's own COMPLETED was refused (the cancel had finished it): not reported.
    expect(summary.stages.map((s) => [s.status, s.reported])).toEqual([
      ['COMPLETED', false],
      ['PENDING', true],
      ['PENDING', true],
      ['PENDING', true],
      ['PENDING', true],
    ])
    expect(summary.finishedElsewhere?.learnedFrom).toMatch(/^(refusal|heartbeat)$/)
    expect(summary.completion).toBeUndefined()
  })

  it('when the run was cancelled before it started: no stage runs; stage 1 PROCESSING, answered stale, is all it sent', async () => {
    const client = makeClient()
    const { run } = await client.createRun('learn_before')
    expect((await cancel(run.id, 'not needed after all')).status).toBe(200)
    const ran: number[] = []
    const summary = await runPipeline({ runId: run.id, client, stages: [1, 2, 3, 4, 5].map((n) => () => ran.push(n)) })
    expect(ran).toEqual([])
    // The catalogue came with createRun's answer; the PROCESSING that starts the run tells it.
    expect(summary).toMatchObject({ status: 'CANCELLED', error: 'not needed after all', finishedElsewhere: { learnedFrom: 'stage-update' } })
    expect(summary.stages.every((s) => s.status === 'PENDING')).toBe(true)
    expect(wire(run.id)).toEqual(['cancel', '1 PROCESSING'])
    // A runner that did not create the run reads the status at start, and sends nothing at all.
    const other = makeClient()
    const again = await runPipeline({ runId: run.id, client: other, stages: [1, 2, 3, 4, 5].map((n) => () => ran.push(n)) })
    expect(ran).toEqual([])
    expect(again.finishedElsewhere).toMatchObject({ status: 'CANCELLED', learnedFrom: 'status' })
    expect(wire(run.id)).toEqual(['cancel', '1 PROCESSING', 'status'])
  })
})

describe('the catalogue handshake', () => {
  it('refuses to start when the run was created elsewhere and the server catalogues more stages', async () => {
    const client = makeClient()
    await client.createRun('shake_status')
    const other = makeClient() // knows nothing of the run: reads the catalogue with GET /status
    const attempt = runPipeline({ runId: 'shake_status', client: other, stages: [() => 1, () => 2] })
    await expect(attempt).rejects.toMatchObject({ name: 'CatalogueMismatchError', runnerStages: 2, serverStages: 5 })
    expect(wire('shake_status')).toEqual(['status'])
  })

  it('starts when the numbers agree (a 3-stage server and runner)', async () => {
    const three = DEFAULT_STAGES.slice(0, 3)
    server().setHandler(
      createPipelineStatusHandlers({ store: new MemoryStore(), secret: TEST_SECRET, stages: three, logger: { warn: () => {}, error: () => {} } }).fetch,
    )
    const client = makeClient({ stages: three })
    await client.createRun('shake_ok')
    const summary = await runPipeline({ runId: 'shake_ok', client, stages: [() => 1, () => 2, () => 3] })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [] })
    expect(new CatalogueMismatchError('r', 1, 2)).toBeInstanceOf(Error)
  })
})
