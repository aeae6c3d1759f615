/**
 * LISTEN mode's notifications leave the write (DESIGN.md "Live status"; issue 31): a write on one
 * instance reaches another instance's stream through a notification sent after commit, in a
 * batch of its own; no write statement, and nothing inside a transaction, calls pg_notify (the
 * writer's executor is recorded, on the Prisma path and on the pool path); and when the writing
 * instance is killed (SIGKILL) right after its write's 200, before its batch goes out, the other
 * instance's stream catches up through its safety poll.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { RunUpdateEvent } from 'pipeline-status-sdk'
import { createPgRunListener } from 'pipeline-status-sdk/pg'
import { createPipelineStatusHandlers, createPrismaStore } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { storeFunctions } from '../../src/server/storage/sql/functions.js'
import { readEvents } from '../contract/suite/read-events.js'
import { createTestDatabase, usesPostgres } from '../setup/test-database.js'
import { makeCompleteRun, makeStageUpdate } from '../support/fixtures.js'
import { handlerRequests } from '../support/handler-requests.js'
import { quiet, recordingLogger } from '../support/loggers.js'
import { until } from '../support/until.js'

const SECRET = 'notify-crash-secret'
const CHANNEL = 'pipeline_status'
const { get, post } = handlerRequests(SECRET)

/** One statement the writer sent, and whether it ran inside an interactive transaction. */
interface Sent {
  text: string
  inTransaction: boolean
}

type RawClient = { $queryRawUnsafe(text: string, ...values: unknown[]): Promise<unknown> }

/** The app's PrismaClient with every raw statement (also those inside `$transaction`) recorded in `sent`. */
function recordingPrisma<P extends object>(prisma: P, sent: Sent[]): P {
  const record = (client: object, inTransaction: boolean): object =>
    new Proxy(client, {
      get(target, key, receiver) {
        if (key === '$queryRawUnsafe') {
          return (text: string, ...values: unknown[]) => {
            sent.push({ text, inTransaction })
            return (target as RawClient).$queryRawUnsafe(text, ...values)
          }
        }
        if (key === '$transaction') {
          return (fn: (tx: object) => Promise<unknown>, options: unknown) =>
            (target as { $transaction(fn: (tx: object) => Promise<unknown>, options: unknown): Promise<unknown> }).$transaction(
              (tx) => fn(record(tx, true)),
              options,
            )
        }
        const value = Reflect.get(target, key, receiver) as unknown
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    })
  return record(prisma, false) as P
}

function stagesOf(event: { event?: string | undefined; data: string }): Array<[number, string]> {
  expect(event.event).toBe('update')
  return RunUpdateEvent.parse(JSON.parse(event.data)).stages.map((stage) => [stage.stageNumber, stage.status])
}

describe.skipIf(!usesPostgres())('LISTEN notifications sent after commit, in batches', () => {
  for (const path of ['prisma', 'pool'] as const) {
    it(`a write on one instance reaches the other's stream, and no write statement calls pg_notify (${path} path)`, async () => {
      const db = await createTestDatabase()
      const pool = new pg.Pool({ connectionString: db.url as string, max: 4 })
      const sent: Sent[] = []
      const writerStore = createPrismaStore({
        prisma: recordingPrisma(db.prisma, sent),
        notifyChannel: CHANNEL,
        ...(path === 'pool'
          ? {
              pool: {
                query: (config: { name?: string; text: string; values: unknown[] }) => {
                  sent.push({ text: config.text, inTransaction: false })
                  return pool.query(config)
                },
              },
            }
          : {}),
      })
      const writerListen = createPgRunListener({ connectionString: db.url as string, channel: CHANNEL })
      const readerListen = createPgRunListener({ connectionString: db.url as string, channel: CHANNEL })
      const writer = createPipelineStatusHandlers({
        store: writerStore,
        secret: SECRET,
        logger: quiet,
        live: { listen: writerListen },
        // A hook makes /complete lock the run in an interactive transaction.
        onRunCompleted: () => {},
      })
      // No safety poll within the test: only a notification can bring the writer's changes.
      const reader = createPipelineStatusHandlers({
        store: createPrismaStore({ prisma: db.prisma, notifyChannel: CHANNEL }),
        secret: SECRET,
        logger: quiet,
        live: { listen: readerListen, safetyPollIntervalMs: 600_000 },
      })
      try {
        expect((await writer.fetch(post('/runs', { id: 'batched' }))).status).toBe(201)
        const stream = readEvents(await reader.fetch(get('/batched/events')))
        expect((await stream.next()).event).toBe('snapshot')
        await until('the reader to listen', () => readerListen.connected, 25_000)

        expect((await writer.fetch(post('/batched/stage-update', makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' })))).status).toBe(200)
        expect(stagesOf(await stream.next())).toEqual([[1, 'PROCESSING']])
        expect((await writer.fetch(post('/batched/complete', makeCompleteRun({ status: 'COMPLETED' })))).status).toBe(200)
        // The finished run's last update, then its end.
        let event = await stream.next()
        while (event.event === 'update') event = await stream.next()
        expect(event.event).toBe('end')

        // Writes sent inline, and the calls of the functions that write (the run's insert, the stage update's write).
        const writeFunctions = [storeFunctions().insertRun, storeFunctions().writeRunStage]
        const writes = sent.filter(
          (statement) => /\b(UPDATE|INSERT)\b/i.test(statement.text) || writeFunctions.some((fn) => statement.text.startsWith(`SELECT ${fn.name}(`)),
        )
        expect(writes.length).toBeGreaterThanOrEqual(3)
        for (const statement of writes) expect(statement.text).not.toMatch(/pg_notify/i)
        for (const fn of Object.values(storeFunctions())) expect(fn.create).not.toMatch(/pg_notify/i)
        expect(sent.filter((statement) => statement.inTransaction && /pg_notify/i.test(statement.text))).toEqual([])
        expect(sent.some((statement) => statement.inTransaction)).toBe(true)
        // The notifications went out as batches of their own, outside any transaction.
        const batches = sent.filter((statement) => /pg_notify/i.test(statement.text))
        expect(batches.length).toBeGreaterThanOrEqual(1)
        for (const batch of batches) expect(batch).toEqual({ text: expect.stringMatching(/unnest/), inTransaction: false })
        // A batch is counted when its statement returns, which can be after the reader has it.
        await until('the batches to be counted', () => (writerStore.notifyCounts?.sent ?? 0) >= 2)
        expect(writerStore.notifyCounts).toMatchObject({ failedBatches: 0, dropped: 0 })
        await stream.cancel()
      } finally {
        await reader.close()
        await writer.close()
        await writerStore.close()
        await pool.end()
        await db.close()
      }
    }, 60_000)
  }

  it('writes never wait for a blocked batch; a run is queued once with its newest version; overflow and a failed batch are logged once and counted', async () => {
    const db = await createTestDatabase()
    const pool = new pg.Pool({ connectionString: db.url as string, max: 4 })
    // The batcher's statements wait here until released; the first one released then fails.
    const held: Array<{ payloads: string[]; release: () => void }> = []
    const sentBatches: string[][] = []
    let failNext = true
    const logger = recordingLogger()
    const store = createPrismaStore({
      prisma: db.prisma,
      notifyChannel: CHANNEL,
      notifyMaxQueue: 2,
      pool: {
        query: async (config: { name?: string; text: string; values: unknown[] }) => {
          if (!/pg_notify/.test(config.text)) return pool.query(config)
          const payloads = config.values[1] as string[]
          await new Promise<void>((release) => held.push({ payloads, release }))
          if (failNext) {
            failNext = false
            throw new Error('the batch connection broke')
          }
          sentBatches.push(payloads)
          return pool.query(config)
        },
      },
    })
    const handlers = createPipelineStatusHandlers({ store, secret: SECRET, logger })
    const update = (id: string, stageNumber: number) =>
      handlers.fetch(post(`/${id}/stage-update`, makeStageUpdate({ stageNumber, status: 'PROCESSING', output: '' })))
    try {
      // Created through a store without notifyChannel: a creation is notified too, and these
      // notifications would take the queue's places this test counts.
      const setup = createPipelineStatusHandlers({ store: createPrismaStore({ prisma: db.prisma }), secret: SECRET, logger })
      for (const id of ['a', 'b', 'c']) expect((await setup.fetch(post('/runs', { id }))).status).toBe(201)
      expect((await update('a', 1)).status).toBe(200)
      await until('the first batch to be held', () => held.length === 1)
      // Every write answers while the batch is stuck.
      for (const [id, stageNumber] of [['a', 2], ['a', 3], ['b', 1], ['c', 1]] as const) expect((await update(id, stageNumber)).status).toBe(200)
      // Queue: a (once, its newest version) and b; c found it full.
      expect(store.notifyCounts).toMatchObject({ dropped: 1, batches: 0 })
      const versions = new Map<string, number>()
      for (const id of ['a', 'b']) versions.set(id, Number((await handlers.fetch(get(`/${id}/status`))).headers.get('etag')?.replace(/\D/g, '')))

      held[0]?.release()
      await until('the retry to be held', () => held.length === 2)
      expect(store.notifyCounts).toMatchObject({ failedBatches: 1 })
      held[1]?.release()
      await until('the retry to be sent', () => store.notifyCounts?.batches === 1)
      // The failed batch (a's first version) merged into the queue: one notification per run, the newest version.
      expect([...(sentBatches[0] ?? [])].sort()).toEqual([`a:${versions.get('a')}`, `b:${versions.get('b')}`])
      const warnings = logger.lines.filter((line) => line.level === 'warn').map((line) => line.message)
      expect(warnings.filter((message) => /notification queue is full \(2 runs waiting\)/.test(message))).toHaveLength(1)
      expect(warnings.filter((message) => /sending a batch of 1 LISTEN notifications failed/.test(message))).toHaveLength(1)
      expect(warnings.every((message) => /safety poll/.test(message))).toBe(true)
    } finally {
      for (const entry of held) entry.release()
      await handlers.close()
      await store.close()
      await pool.end()
      await db.close()
    }
  }, 60_000)

  it('a writer killed (SIGKILL) right after its write, before its batch went out: the other instance catches up by its safety poll', async () => {
    const db = await createTestDatabase()
    const listen = createPgRunListener({ connectionString: db.url as string, channel: CHANNEL })
    const reader = createPipelineStatusHandlers({
      store: createPrismaStore({ prisma: db.prisma, notifyChannel: CHANNEL }),
      secret: SECRET,
      logger: quiet,
      live: { listen, safetyPollIntervalMs: 300 },
    })
    try {
      expect((await reader.fetch(post('/runs', { id: 'doomed' }))).status).toBe(201)
      const stream = readEvents(await reader.fetch(get('/doomed/events')))
      expect((await stream.next()).event).toBe('snapshot')
      await until('the reader to listen', () => listen.connected, 25_000)

      const child = fork(fileURLToPath(new URL('./notify-crash-child.ts', import.meta.url)), [db.url as string, CHANNEL, 'doomed'], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)))
      const written = await new Promise<{ status: number; queued: { sent: number } }>((resolve, reject) => {
        child.once('message', (message) => resolve(message as { status: number; queued: { sent: number } }))
        child.once('error', reject)
        child.once('exit', (code) => reject(new Error(`the writer exited (${code}) before its write`)))
      })
      child.kill('SIGKILL')
      expect(written.status).toBe(200)
      // Its notification was still queued: never sent.
      expect(written.queued.sent).toBe(0)
      expect(await exited).toBe('SIGKILL')

      // No notification will ever come; the safety poll finds the new version.
      expect(stagesOf(await stream.next())).toEqual([[2, 'PROCESSING']])
      expect(listen.connected).toBe(true)
      await stream.cancel()
    } finally {
      await reader.close()
      await db.close()
    }
  }, 60_000)
})
