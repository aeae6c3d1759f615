/**
 * The runner learns, against the Express example (examples/express) on the test database (real
 * PostgreSQL with DATABASE_URL set, else PGlite): the web app cancels a run, or the stale-run
 * sweeper fails it, while stage 2 waits on its `signal`; the signal aborts, stage 3 never
 * starts, the summary says how the run really ended. And a run whose stage takes ten times
 * `staleAfterMs` while heartbeating is never swept. Assertions are on events and stored
 * state, never on how long something took.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { type StageOutputRecord, subscribeToRun } from 'pipeline-status-sdk'
import { PrismaAPIClient, type PipelineProgressEvent, isRunFinishedError, runPipeline } from 'pipeline-status-sdk/client'
import { afterAll, beforeAll, expect, it, vi } from 'vitest'
import { type ExpressExample, startExpressExample } from '../../examples/express/app.js'
import { until } from '../support/until.js'
import { type TestDatabase, createTestDatabase, usesPostgres } from '../setup/test-database.js'

const SECRET = 'express-control-secret'
/** The contract's shortest heartbeat interval. */
const HEARTBEAT_MS = 1000
/** Runs without heartbeats are stale after this; heartbeating ones are judged by their interval. */
const STALE_AFTER_MS = 200

let db: TestDatabase | undefined
let example: ExpressExample
beforeAll(async () => {
  // On PGlite the example keeps its own database in memory.
  db = usesPostgres() ? await createTestDatabase() : undefined
  const quiet = { info: () => {}, warn: () => {}, error: () => {} }
  example = await startExpressExample({
    port: 0,
    secret: SECRET,
    databaseUrl: db?.url,
    log: quiet,
    // Timed sweeps far apart: the tests sweep on demand.
    staleRunSweeper: { staleAfterMs: STALE_AFTER_MS, intervalMs: 3_600_000 },
  })
})
afterAll(async () => {
  await example?.close()
  await db?.close()
})

function makeClient(fetchImpl?: (url: string, init: RequestInit) => Promise<Response>, heartbeatIntervalMs = HEARTBEAT_MS): PrismaAPIClient {
  const quiet = { info: () => {}, warn: () => {}, error: () => {} }
  return new PrismaAPIClient({
    baseUrl: example.url,
    secret: SECRET,
    logger: quiet,
    retry: { limit: 2, baseDelayMs: 10 },
    heartbeatIntervalMs,
    ...(fetchImpl ? { fetch: fetchImpl } : {}),
  })
}

/** Five stages; stage 2 waits until its signal aborts (and records the reason), the others record that they ran. */
function stagesWaitingInStage2(ran: string[], onStage2: () => Promise<void> | void) {
  const record = (name: string) => () => {
    ran.push(name)
    return name
  }
  return [
    record('stage 1'),
    async ({ signal }: { signal: AbortSignal }) => {
      ran.push('stage 2 started')
      await onStage2()
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
      ran.push(isRunFinishedError(signal.reason) ? `stage 2 aborted: run ${signal.reason.status}` : 'stage 2 aborted: other')
      throw signal.reason
    },
    record('stage 3'),
    record('stage 4'),
    record('stage 5'),
  ]
}

it('the web app cancels the run while stage 2 waits: its signal aborts, stage 3 never starts, the summary says CANCELLED', async () => {
  const client = makeClient()
  try {
    const { run } = await client.createRun()
    const ran: string[] = []
    const events: PipelineProgressEvent[] = []
    const summary = await runPipeline({
      runId: run.id,
      client,
      onProgress: (event) => events.push(event),
      stages: stagesWaitingInStage2(ran, async () => {
        // What the web app's "Stop" button does.
        const response = await fetch(`${example.url}/${run.id}/cancel`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-webhook-secret': SECRET },
          body: JSON.stringify({ reason: 'stopped by the user' }),
        })
        expect(response.status).toBe(200)
      }),
    })

    expect(ran).toEqual(['stage 1', 'stage 2 started', 'stage 2 aborted: run CANCELLED'])
    expect(summary).toMatchObject({
      status: 'CANCELLED',
      error: 'stopped by the user',
      // The run's live stream told the runner (the heartbeats are its fallback).
      finishedElsewhere: { runId: run.id, status: 'CANCELLED', reason: 'stopped by the user', learnedFrom: 'stream' },
    })
    expect(summary.stages.map((s) => s.status)).toEqual(['COMPLETED', 'CANCELLED', 'PENDING', 'PENDING', 'PENDING'])
    expect(summary.completion).toBeUndefined()
    // The event came before the stage ended and the run ended.
    const types = events.map((e) => e.type)
    expect(types.indexOf('run-finished-elsewhere')).toBeLessThan(types.lastIndexOf('stage-finished'))
    expect(types.at(-1)).toBe('run-finished')

    const status = await client.getStatus(run.id)
    expect(status.run).toMatchObject({ status: 'CANCELLED', error: 'stopped by the user' })
    expect(status.stages.map((s) => [s.stageNumber, s.status])).toEqual([
      [1, 'COMPLETED'],
      [2, 'CANCELLED'],
    ])
  } finally {
    await client.close()
  }
})

it('the stale-run sweeper fails the run while stage 2 lost its heartbeats: the runner learns at the next one, stage 3 never starts', async () => {
  // The runner's heartbeats are lost (a network partition) until the sweeper has failed the run;
  // its live stream never gets through, so the heartbeat is what tells it.
  let partitioned = false
  const client = makeClient((url, init) =>
    (partitioned && url.endsWith('/heartbeat')) || new URL(url).pathname.endsWith('/events') ? Promise.reject(new TypeError('fetch failed')) : fetch(url, init),
  )
  try {
    const { run } = await client.createRun()
    const ran: string[] = []
    const swept: string[] = []
    const summary = await runPipeline({
      runId: run.id,
      client,
      stages: stagesWaitingInStage2(ran, async () => {
        partitioned = true
        // Sweep until the sweeper fails this run, then let the heartbeats through again.
        await vi.waitFor(
          async () => {
            for (const failed of await example.sweepStaleRuns()) swept.push(failed.id)
            expect(swept).toContain(run.id)
          },
          { timeout: 30_000, interval: 100 },
        )
        partitioned = false
      }),
    })

    expect(swept.filter((id) => id === run.id)).toHaveLength(1)
    expect(ran).toEqual(['stage 1', 'stage 2 started', 'stage 2 aborted: run FAILED'])
    expect(summary).toMatchObject({ status: 'FAILED', finishedElsewhere: { status: 'FAILED', learnedFrom: 'heartbeat' } })
    expect(summary.error).toMatch(/heartbeat|stale|no update/i)
    expect(summary.stages.map((s) => s.status)).toEqual(['COMPLETED', 'CANCELLED', 'PENDING', 'PENDING', 'PENDING'])
    expect(summary.completion).toBeUndefined()
    const status = await client.getStatus(run.id)
    expect(status.run.status).toBe('FAILED')
    expect(status.run.error).toBe(summary.error)
  } finally {
    await client.close()
  }
})

it('a stage that takes ten times staleAfterMs while heartbeating is never swept', async () => {
  const client = makeClient()
  try {
    const { run } = await client.createRun()
    const sweptIds: string[] = []
    let sweeps = 0
    const summary = await runPipeline({
      runId: run.id,
      client,
      stages: [
        () => 1,
        async () => {
          // Ten times staleAfterMs of work, sweeping all along.
          const end = Date.now() + 10 * STALE_AFTER_MS
          while (Date.now() < end) {
            for (const failed of await example.sweepStaleRuns()) sweptIds.push(failed.id)
            sweeps++
            await new Promise((resolve) => setTimeout(resolve, STALE_AFTER_MS / 4))
          }
          return 2
        },
        () => 3,
        () => 4,
        () => 5,
      ],
    })
    expect(sweeps).toBeGreaterThan(10)
    expect(sweptIds).not.toContain(run.id)
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [] })
    expect(summary.finishedElsewhere).toBeUndefined()
    expect((await client.getStatus(run.id)).run).toMatchObject({ status: 'COMPLETED', error: null, heartbeatIntervalMs: HEARTBEAT_MS })
  } finally {
    await client.close()
  }
})

it('a cancel from the web app aborts a running 60 s stage through the run stream, not a heartbeat', async () => {
  // The contract's longest interval: after the one at the stage's start, no heartbeat within the test.
  // Counted once answered: an answer still on its way when the cancel lands could tell the runner first.
  const beats: string[] = []
  const client = makeClient(async (url, init) => {
    const response = await fetch(url, init)
    if (url.endsWith('/heartbeat')) beats.push(url)
    return response
  }, 3_600_000)
  try {
    const { run } = await client.createRun()
    let reason: unknown
    let running = false
    const pipeline = runPipeline({
      runId: run.id,
      client,
      stages: [
        async ({ signal }) => {
          running = true
          try {
            await delay(60_000, undefined, { signal })
          } catch (error) {
            reason = signal.reason
            throw error
          }
        },
        () => 2,
        () => 3,
        () => 4,
        () => 5,
      ],
    })
    await until('stage 1 to run', () => running && beats.length === 1)
    const response = await fetch(`${example.url}/${run.id}/cancel`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-webhook-secret': SECRET },
      body: JSON.stringify({ reason: 'stopped by the user' }),
    })
    expect(response.status).toBe(200)
    const summary = await pipeline
    await until('the stage to see its abort', () => reason !== undefined)
    expect(isRunFinishedError(reason)).toBe(true)
    expect(summary.finishedElsewhere).toMatchObject({ status: 'CANCELLED', reason: 'stopped by the user', learnedFrom: 'stream' })
    expect(beats).toHaveLength(1)
  } finally {
    await client.close()
  }
})

it('a stage that fails twice, then succeeds under retry: { attempts: 3 }: stored attempt 3, run COMPLETED, the retries in the events', async () => {
  const client = makeClient()
  try {
    const { run } = await client.createRun()
    // What a page sees of stage 2: every version of it the live stream sent.
    const seen: Array<Pick<StageOutputRecord, 'status' | 'attempt' | 'maxAttempts' | 'lastError' | 'nextRetryAt'>> = []
    const subscription = subscribeToRun(run.id, {
      url: example.url,
      headers: { 'x-webhook-secret': SECRET },
      onUpdate: ({ stages }) => {
        const stage = stages.find((s) => s.stageNumber === 2)
        if (stage) seen.push({ status: stage.status, attempt: stage.attempt, maxAttempts: stage.maxAttempts, lastError: stage.lastError, nextRetryAt: stage.nextRetryAt })
      },
    })
    const retrying: PipelineProgressEvent[] = []
    const summary = await runPipeline({
      runId: run.id,
      client,
      retry: { attempts: 3, backoffMs: 0 },
      onProgress: (event) => {
        if (event.type === 'stage-retrying') retrying.push(event)
      },
      stages: [
        () => 1,
        async ({ attempt }) => {
          // Each attempt runs once the page has seen it, so no two attempts share one event.
          await until(`attempt ${attempt} in the events`, () => seen.some((s) => s.attempt === attempt))
          if (attempt < 3) throw new Error(`model timed out (attempt ${attempt})`)
          return 'found it'
        },
        () => 3,
        () => 4,
        () => 5,
      ],
    })
    await subscription.done
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true })
    expect(summary.stages[1]).toMatchObject({ status: 'COMPLETED', attempts: 3 })
    expect(retrying).toMatchObject([
      { stageNumber: 2, attempt: 2, maxAttempts: 3, error: 'model timed out (attempt 1)' },
      { stageNumber: 2, attempt: 3, maxAttempts: 3, error: 'model timed out (attempt 2)' },
    ])
    const status = await client.getStatus(run.id)
    expect(status.run.status).toBe('COMPLETED')
    expect(status.stages[1]).toMatchObject({ status: 'COMPLETED', attempt: 3, maxAttempts: 3, lastError: 'model timed out (attempt 2)', nextRetryAt: null, output: 'found it' })
    expect(seen).toContainEqual({ status: 'PROCESSING', attempt: 1, maxAttempts: 3, lastError: null, nextRetryAt: null })
    expect(seen).toContainEqual(expect.objectContaining({ status: 'PROCESSING', attempt: 2, lastError: 'model timed out (attempt 1)' }))
    expect(seen).toContainEqual(expect.objectContaining({ status: 'PROCESSING', attempt: 3, lastError: 'model timed out (attempt 2)' }))
    expect(seen.at(-1)).toMatchObject({ status: 'COMPLETED', attempt: 3 })
    // Attempts only go up in the events.
    const attempts = seen.map((s) => s.attempt ?? 0)
    expect(attempts).toEqual([...attempts].sort((a, b) => a - b))
  } finally {
    await client.close()
  }
})
