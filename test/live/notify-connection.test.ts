/**
 * LISTEN-mode notification batches on a connection of their own (issue 31, item 1;
 * `createPgConnections(…).notifyPool`, `PrismaStoreOptions.notifyPool`): with every connection
 * of the writer's pool busy, a write's notification still reaches another instance's stream; a
 * notify connection the server ends is replaced by the next batch; one that cannot connect is
 * logged once with the cause and the fix while writes go on.
 */
import pg from 'pg'
import { RunUpdateEvent } from 'pipeline-status-sdk'
import { createPgConnections, createPgRunListener } from 'pipeline-status-sdk/pg'
import { createPipelineStatusHandlers, createPrismaStore, type RunChangeSource } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { readEvents } from '../contract/suite/read-events.js'
import { createTestDatabase, usesPostgres } from '../setup/test-database.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { handlerRequests } from '../support/handler-requests.js'
import { quiet, recordingLogger } from '../support/loggers.js'
import { until } from '../support/until.js'

const SECRET = 'notify-connection-secret'
const CHANNEL = 'pipeline_status'
const LOCK = 3131
const { get, post } = handlerRequests(SECRET)

type Query = { name?: string; text: string; values: unknown[] }

describe.skipIf(!usesPostgres())('LISTEN notification batches on their own connection (notifyPool)', () => {
  it("with the writer's only pool connection held by a blocked query, the write's notification still reaches the other instance", async () => {
    const db = await createTestDatabase()
    const url = db.url as string
    // The writer's request pool has one connection; notifyPool is its own connection on the direct URL.
    const connections = createPgConnections({ connectionString: url, pool: { max: 1 }, logger: quiet })
    const admin = new pg.Client({ connectionString: url })
    await admin.connect()
    let blockAfterWrite = false
    let blocker: Promise<unknown> | undefined
    let blockerSettled = false
    const writerStore = createPrismaStore({
      prisma: db.prisma,
      notifyChannel: CHANNEL,
      notifyPool: connections.notifyPool,
      pool: {
        query: async (config: Query) => {
          const result = await connections.pool.query(config)
          if (blockAfterWrite && /\b(UPDATE|INSERT)\b/i.test(config.text)) {
            blockAfterWrite = false
            // Right after the write commits, before the store queues its change, the pool's only
            // connection waits on a lock the test holds: every later statement of the pool queues.
            blocker = connections.pool.query(`SELECT pg_advisory_lock(${LOCK})`).finally(() => (blockerSettled = true))
            await waitForLockWaiter(admin)
          }
          return result
        },
      },
    })
    const readerListen = createPgRunListener({ connectionString: url, channel: CHANNEL })
    // What the reader's LISTEN connection hands its watcher. The stream's update may come from the
    // watcher's catch-up read when LISTEN connects (it can land after the write): the notification
    // itself is what this test proves arrives.
    const notified: string[] = []
    const readerSource: RunChangeSource = {
      start: (sink) =>
        readerListen.start({
          change: (runId, version) => {
            notified.push(`${runId}:${version}`)
            sink.change(runId, version)
          },
          connected: () => sink.connected(),
          disconnected: (error) => sink.disconnected(error),
        }),
      close: () => readerListen.close(),
    }
    const writer = createPipelineStatusHandlers({ store: writerStore, secret: SECRET, logger: quiet })
    // No safety poll within the test: only a notification can bring the writer's change.
    const reader = createPipelineStatusHandlers({
      store: createPrismaStore({ prisma: db.prisma }),
      secret: SECRET,
      logger: quiet,
      live: { listen: readerSource, safetyPollIntervalMs: 600_000 },
    })
    try {
      expect((await writer.fetch(post('/runs', { id: 'saturated' }))).status).toBe(201)
      // The creation is notified too, in a batch of its own before the write this test blocks.
      await until("the creation's notification", () => writerStore.notifyCounts?.batches === 1)
      const stream = readEvents(await reader.fetch(get('/saturated/events')))
      expect((await stream.next()).event).toBe('snapshot')
      await until('the reader to listen', () => readerListen.connected, 25_000)

      await admin.query(`SELECT pg_advisory_lock(${LOCK})`)
      blockAfterWrite = true
      const response = writer.fetch(post('/saturated/stage-update', makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' })))
      const event = await stream.next()
      expect(event.event).toBe('update')
      const update = RunUpdateEvent.parse(JSON.parse(event.data))
      expect(update.stages.map((stage) => [stage.stageNumber, stage.status])).toEqual([[1, 'PROCESSING']])
      // The creation was version 0; the write is the first change after it.
      await until("the write's notification at the reader", () => notified.includes('saturated:1'))
      // It arrived while the writer's pool was still held: the batch did not go through it.
      // The batch is counted when its statement returns to the writer, which can come after the
      // reader got the notification: wait for the count, still with the writer's pool held.
      await until("the write's batch to be counted", () => writerStore.notifyCounts?.batches === 2)
      expect(blockerSettled).toBe(false)
      expect(writerStore.notifyCounts).toMatchObject({ batches: 2, sent: 2, failedBatches: 0 })

      await admin.query(`SELECT pg_advisory_unlock(${LOCK})`)
      await blocker
      expect((await response).status).toBe(200)
      await connections.pool.query(`SELECT pg_advisory_unlock(${LOCK})`)
      await stream.cancel()
    } finally {
      // Lets the blocked pool go first, so that a failed expectation is reported, not a hang.
      await admin.query('SELECT pg_advisory_unlock_all()')
      await reader.close()
      await writer.close()
      await writerStore.close()
      await connections.close()
      await admin.end()
      await db.close()
    }
  }, 60_000)

  it('a notify connection the server ends is replaced by the next batch', async () => {
    const db = await createTestDatabase()
    const url = db.url as string
    const connections = createPgConnections({ connectionString: url, logger: quiet })
    const store = createPrismaStore({ prisma: db.prisma, pool: connections.pool, notifyChannel: CHANNEL, notifyPool: connections.notifyPool, logger: quiet })
    const listener = new pg.Client({ connectionString: url })
    await listener.connect()
    const received: string[] = []
    listener.on('notification', (message) => void received.push(message.payload ?? ''))
    await listener.query(`LISTEN ${CHANNEL}`)
    const handlers = createPipelineStatusHandlers({ store, secret: SECRET, logger: quiet })
    const update = (stageNumber: number) =>
      handlers.fetch(post('/replaced/stage-update', makeStageUpdate({ stageNumber, status: 'PROCESSING', output: '' })))
    try {
      expect((await handlers.fetch(post('/runs', { id: 'replaced' }))).status).toBe(201)
      // The creation is notified too.
      await until("the creation's batch", () => received.length === 1)
      expect((await update(1)).status).toBe(200)
      await until('the first update batch', () => received.length === 2)
      const [{ pid }] = (await connections.pool.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_notify%' AND pid <> pg_backend_pid()`,
      )).rows as [{ pid: number }]
      await connections.pool.query('SELECT pg_terminate_backend($1)', [pid])
      await until('the notify connection to be gone', () => connections.notifyPool.totalCount === 0)

      expect((await update(2)).status).toBe(200)
      await until('the batch on a new connection', () => received.length === 3)
      expect(received[2]).toMatch(/^replaced:\d+$/)
    } finally {
      await handlers.close()
      await store.close()
      await listener.end()
      await connections.close()
      await db.close()
    }
  }, 60_000)

  it('a notify connection that cannot connect: writes go on, and one line says why and what to check', async () => {
    const db = await createTestDatabase()
    const logger = recordingLogger()
    // Port 1 refuses connections: the direct URL is wrong.
    const connections = createPgConnections({ connectionString: db.url as string, directConnectionString: 'postgresql://postgres@127.0.0.1:1/postgres', logger: quiet })
    const store = createPrismaStore({ prisma: db.prisma, pool: connections.pool, notifyChannel: CHANNEL, notifyPool: connections.notifyPool, logger })
    const handlers = createPipelineStatusHandlers({ store, secret: SECRET, logger })
    try {
      expect((await handlers.fetch(post('/runs', { id: 'unreachable' }))).status).toBe(201)
      for (const stageNumber of [1, 2]) {
        expect((await handlers.fetch(post('/unreachable/stage-update', makeStageUpdate({ stageNumber, status: 'PROCESSING', output: '' })))).status).toBe(200)
      }
      await until('a failed batch', () => (store.notifyCounts?.failedBatches ?? 0) >= 2)
      const failures = logger.lines.filter((line) => line.level === 'warn' && /LISTEN notifications failed/.test(line.message))
      expect(failures).toHaveLength(1)
      expect(failures[0]?.message).toContain('Check that the database behind notifyPool (the direct URL, DIRECT_DATABASE_URL) is reachable')
      expect(failures[0]?.message).toContain('safety poll')
    } finally {
      await handlers.close()
      await store.close(0)
      await connections.close()
      await db.close()
    }
  }, 60_000)
})

/** Resolves once a session waits for the test's advisory lock. */
async function waitForLockWaiter(admin: pg.Client): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const { rows } = await admin.query<{ waiting: number }>(
      `SELECT count(*)::integer AS waiting FROM pg_locks WHERE locktype = 'advisory' AND objid = ${LOCK} AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    )
    if ((rows[0]?.waiting ?? 0) > 0) return
    if (Date.now() > deadline) throw new Error('Timed out after 10000 ms waiting for the pool to block on the lock')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
