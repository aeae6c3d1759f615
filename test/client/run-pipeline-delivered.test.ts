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
import { PrismaAPIClient, type PrismaAPIClientOptions, type StageFunction, runPipeline, silentLogger } from 'pipeline-status-sdk/client'
import { createPipelineMock } from 'pipeline-status-sdk/msw'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { until } from '../support/until.js'
import { clientFactory } from './support/client-factory.js'

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
  outbox: { dir, retryDelayMs: 600_000, maxRetryDelayMs: 600_000 },
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

const stored = async (runId: string) => {
  const status = await mock.getRun(runId)
  return { run: status?.run.status, stages: status?.stages.map((stage) => `${stage.stageNumber} ${stage.status} ${stage.output}`) }
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
