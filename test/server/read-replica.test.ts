/**
 * Reads from a real streaming replica (issue 32, docs/read-replicas.md): a throwaway primary and
 * its standby (test/support/replica.ts), replay paused mid-test with `pg_wal_replay_pause()`.
 * While the standby lags, every read of one run answers at least the newest version the instance
 * knows (its own write, its live streams' version polls) or the client presents
 * (`If-None-Match`, `Last-Event-ID`); reads of unchanged runs, lists and counts still come from
 * the replica, counted in `readStats()` and the instrumentation; once replay resumes, reads of the
 * changed run return to the replica. An instance that knows nothing of a write may answer the
 * replica's older copy to a client that presents no version: the documented limit.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { createPgConnections } from 'pipeline-status-sdk/pg'
import {
  createPipelineStatusHandlers,
  createPrismaStore,
  type PipelineStatusHandlers,
  type ReadReplicaOptions,
  type ServedRead,
} from 'pipeline-status-sdk/server'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type Database, openDatabase } from '../../examples/shared/database.js'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { handlerRequests } from '../support/handler-requests.js'
import { freePort } from '../support/pgbouncer.js'
import { type ReplicaCluster, replicaTool, startReplicaCluster } from '../support/replica.js'
import { toolForTests } from '../support/optional-tools.js'

const SECRET = 'read-replica-secret'
const requests = handlerRequests(SECRET)
const binDir = toolForTests(replicaTool())

/** Every warning, for the once-per-outage log. */
function collectingLogger() {
  const warnings: string[] = []
  return { warnings, logger: { warn: (message: string) => void warnings.push(message), error: () => {}, info: () => {} } }
}

/**
 * The version of the stream's first event, read in memory; the stream is then dropped. Without
 * `lastEventId` that event is the snapshot; with one the run had, the stream resumes exactly
 * (docs/contract.md, "Resuming exactly"): its first event is the `update` that brings the client
 * up to date, whose `id:` is the version the client is brought to.
 */
async function snapshotVersion(handlers: PipelineStatusHandlers, runId: string, lastEventId?: number): Promise<number> {
  const controller = new AbortController()
  const headers: Record<string, string> = { 'X-Webhook-Secret': SECRET, Accept: 'text/event-stream' }
  if (lastEventId !== undefined) headers['Last-Event-ID'] = String(lastEventId)
  const response = await handlers.fetch(new Request(`http://app.test/api/pipeline/${runId}/events`, { headers, signal: controller.signal }))
  expect(response.status).toBe(200)
  const reader = response.body!.getReader()
  let first: EventSourceMessage | undefined
  const parser = createParser({ onEvent: (event) => void (first ??= event) })
  const decoder = new TextDecoder()
  const deadline = Date.now() + 10_000
  try {
    while (!first) {
      if (Date.now() > deadline) throw new Error('no snapshot within 10 s')
      const { value, done } = await reader.read()
      if (done) break
      parser.feed(decoder.decode(value, { stream: true }))
    }
  } finally {
    controller.abort()
    await reader.cancel().catch(() => {})
  }
  expect(first?.event).toBe(lastEventId === undefined ? 'snapshot' : 'update')
  return Number(first?.id)
}

describe.skipIf(!binDir)('status reads from a read replica', () => {
  let cluster: ReplicaCluster
  let db: Database
  let replicaPool: pg.Pool
  const opened: PipelineStatusHandlers[] = []

  beforeAll(async () => {
    cluster = await startReplicaCluster(binDir!)
    db = await openDatabase({ url: cluster.primaryUrl, poolSize: 4, logger: { warn: () => {} } })
    await cluster.caughtUp()
    replicaPool = new pg.Pool({ connectionString: cluster.replicaUrl, max: 4, connectionTimeoutMillis: 5_000 })
  }, 120_000)

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((handlers) => handlers.close()))
  })

  afterAll(async () => {
    await replicaPool?.end()
    await db?.close()
    await cluster?.stop()
  }, 60_000)

  /** An instance of the handlers: its own store on the primary, the replica's pool (or `readReplica`). */
  function instance(readReplica?: ReadReplicaOptions, logger = collectingLogger().logger, served?: ServedRead[]) {
    const handlers = createPipelineStatusHandlers({
      store: createPrismaStore({ prisma: db.prisma, pool: db.connections!.pool }),
      secret: SECRET,
      readReplica: readReplica ?? { pool: replicaPool },
      logger,
      live: { pollIntervalMs: 50 },
      ...(served ? { instrumentation: { readServed: (read: ServedRead) => void served.push(read) } } : {}),
    })
    opened.push(handlers)
    return handlers
  }

  async function statusOf(handlers: PipelineStatusHandlers, runId: string, ifNoneMatch?: string): Promise<{ status: number; version: number | undefined }> {
    const request = requests.get(`/${runId}/status`)
    if (ifNoneMatch !== undefined) request.headers.set('If-None-Match', ifNoneMatch)
    const response = await handlers.fetch(request)
    const etag = response.headers.get('etag')
    return { status: response.status, version: etag === null ? undefined : Number(etag.replaceAll('"', '')) }
  }

  async function createRun(handlers: PipelineStatusHandlers, runId: string): Promise<void> {
    const response = await handlers.fetch(requests.post('/runs', { id: runId }))
    expect(response.status, await response.clone().text()).toBeLessThan(300)
  }

  async function stageUpdate(handlers: PipelineStatusHandlers, runId: string, stageNumber: number, status: 'PROCESSING' | 'COMPLETED'): Promise<number> {
    const response = await handlers.fetch(requests.post(`/${runId}/stage-update`, { stageNumber, stageName: `Stage ${stageNumber}`, status }))
    expect(response.status, await response.clone().text()).toBe(200)
    // The version as the primary stores it.
    const rows = await db.connections!.pool.query<{ version: number }>('SELECT version FROM "PipelineRun" WHERE id = $1', [runId])
    return Number(rows.rows[0]?.version)
  }

  it('answers the newest version a client could know while replay is paused, reads unchanged runs from the replica, and returns to it on resume', async () => {
    const served: ServedRead[] = []
    const writer = instance(undefined, undefined, served)
    const other = instance()
    await createRun(writer, 'changed')
    await createRun(writer, 'unchanged')
    await cluster.caughtUp()
    expect(await statusOf(writer, 'changed')).toEqual({ status: 200, version: 0 })
    expect(await statusOf(writer, 'unchanged')).toEqual({ status: 200, version: 0 })
    expect(writer.readStats()).toMatchObject({ replica: true, replicaReads: 2, primaryFallbacks: { behind: 0, missing: 0, replica_error: 0 } })

    await cluster.pause()
    try {
      const version = await stageUpdate(writer, 'changed', 1, 'PROCESSING')
      expect(version).toBe(1)
      // The replica still has version 0, the primary version 1.
      expect((await replicaPool.query(`SELECT version FROM "PipelineRun" WHERE id = 'changed'`)).rows[0]).toEqual({ version: 0 })

      // After its own write, the instance reads the changed run from the primary…
      expect(await statusOf(writer, 'changed')).toEqual({ status: 200, version: 1 })
      // …and the unchanged one from the replica.
      expect(await statusOf(writer, 'unchanged')).toEqual({ status: 200, version: 0 })
      expect(await snapshotVersion(writer, 'changed')).toBe(1)
      // A run created while replay is paused is not on the replica: never a 404 from it.
      await createRun(writer, 'created-while-paused')
      expect(await statusOf(writer, 'created-while-paused')).toEqual({ status: 200, version: 0 })
      expect(writer.readStats()).toMatchObject({ replicaReads: 3, primaryFallbacks: { behind: 2, missing: 1, replica_error: 0 } })

      // Lists and counts come from the replica and may lag (documented); the run opened from the list does not.
      const list = (await (await writer.fetch(requests.get('/runs'))).json()) as { runs: { id: string }[] }
      expect(list.runs.map((run) => run.id).sort()).toEqual(['changed', 'unchanged'])
      const counts = (await (await writer.fetch(requests.get('/runs/counts?groupBy=status'))).json()) as { counts: Record<string, number> }
      expect(counts.counts).toEqual({ PENDING: 2 })
      expect(await statusOf(writer, 'changed')).toEqual({ status: 200, version: 1 })
      expect(writer.readStats()).toMatchObject({ replicaReads: 5, primaryFallbacks: { behind: 3, missing: 1, replica_error: 0 } })
      expect(served.filter((read) => read.source === 'replica').map((read) => read.kind)).toEqual(['status', 'status', 'status', 'list', 'count'])
      expect(served.filter((read) => read.source === 'primary').map((read) => `${read.kind}:${read.reason}`)).toEqual([
        'status:behind',
        'snapshot:behind',
        'status:missing',
        'status:behind',
      ])

      // An instance that never saw the write answers the replica's copy to a client presenting
      // no version: the honest limit of a process-local map (docs/read-replicas.md)…
      expect(await statusOf(other, 'changed')).toEqual({ status: 200, version: 0 })
      // …but never an older version than the client presents: If-None-Match…
      expect(await statusOf(other, 'changed', '"1"')).toEqual({ status: 304, version: 1 })
      expect(await statusOf(other, 'changed', 'W/"0", "1"')).toEqual({ status: 304, version: 1 })
      // …and a stream resumed with Last-Event-ID.
      expect(await snapshotVersion(other, 'changed', 1)).toBe(1)
      // Having read version 1 from the primary, it now knows it for every client.
      expect(await statusOf(other, 'changed')).toEqual({ status: 200, version: 1 })
      expect(other.readStats()).toMatchObject({ replicaReads: 1, primaryFallbacks: { behind: 4, missing: 0, replica_error: 0 } })
    } finally {
      await cluster.resume()
    }

    // Replay caught up: the changed run is read from the replica again, by both instances.
    const before = writer.readStats()
    expect(await statusOf(writer, 'changed')).toEqual({ status: 200, version: 1 })
    expect(await statusOf(other, 'changed')).toEqual({ status: 200, version: 1 })
    expect(writer.readStats().replicaReads).toBe(before.replicaReads + 1)
    expect(writer.readStats().primaryFallbacks).toEqual(before.primaryFallbacks)
    expect(other.readStats()).toMatchObject({ replicaReads: 2, primaryFallbacks: { behind: 4 } })
  }, 60_000)

  it('learns versions written elsewhere from its live streams\' version polls', async () => {
    const writer = instance()
    const watcher = instance()
    await createRun(writer, 'watched')
    await cluster.caughtUp()
    // A stream keeps the run polled by the second instance's run watcher (every 50 ms here).
    const controller = new AbortController()
    const stream = await watcher.fetch(
      new Request('http://app.test/api/pipeline/watched/events', { headers: { 'X-Webhook-Secret': SECRET }, signal: controller.signal }),
    )
    expect(stream.status).toBe(200)
    const reader = stream.body!.getReader()
    const ids: string[] = []
    const parser = createParser({ onEvent: (event) => void (event.id !== undefined && ids.push(event.id)) })
    const decoder = new TextDecoder()
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }))
        if (done) return
        parser.feed(decoder.decode(value, { stream: true }))
      }
    })()
    await cluster.pause()
    try {
      expect(await stageUpdate(writer, 'watched', 1, 'PROCESSING')).toBe(1)
      const deadline = Date.now() + 10_000
      while (!ids.includes('1')) {
        if (Date.now() > deadline) throw new Error(`the stream did not get version 1 within 10 s (ids: ${ids.join(',')})`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      // The watcher's poll told the read source: the lagging replica is not used for this run.
      expect(await statusOf(watcher, 'watched')).toEqual({ status: 200, version: 1 })
      expect(watcher.readStats().primaryFallbacks.behind).toBe(1)
    } finally {
      controller.abort()
      await reader.cancel().catch(() => {})
      await reading
      await cluster.resume()
    }
  }, 60_000)

  it('takes the replica as createPgConnections({ replicaConnectionString }).readReplica or as a second PrismaClient', async () => {
    const connections = createPgConnections({ connectionString: cluster.primaryUrl, replicaConnectionString: cluster.replicaUrl, pool: { max: 2 } })
    const replicaPrisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: cluster.replicaUrl, max: 2 }) })
    try {
      const viaPg = instance(connections.readReplica)
      const viaPrisma = instance({ prisma: replicaPrisma })
      await createRun(viaPg, 'both-forms')
      await cluster.caughtUp()
      for (const handlers of [viaPg, viaPrisma]) {
        expect(await statusOf(handlers, 'both-forms')).toEqual({ status: 200, version: 0 })
        expect(handlers.readStats()).toMatchObject({ replicaReads: 1, primaryFallbacks: { behind: 0, missing: 0, replica_error: 0 } })
      }
    } finally {
      await replicaPrisma.$disconnect()
      await connections.close()
    }
  }, 30_000)

  it('falls back to the primary when the replica is down, logging once with the cause and the fix', async () => {
    const port = await freePort()
    const down = new pg.Pool({ connectionString: `postgresql://postgres@127.0.0.1:${port}/postgres`, connectionTimeoutMillis: 2_000 })
    try {
      const { warnings, logger } = collectingLogger()
      const handlers = instance({ pool: down, retryAfterMs: 60_000 }, logger)
      await createRun(handlers, 'replica-down')
      expect(await statusOf(handlers, 'replica-down')).toEqual({ status: 200, version: 0 })
      expect(await statusOf(handlers, 'replica-down')).toEqual({ status: 200, version: 0 })
      const list = await handlers.fetch(requests.get('/runs'))
      expect(list.status).toBe(200)
      expect(handlers.readStats()).toMatchObject({ replicaReads: 0, primaryFallbacks: { behind: 0, missing: 0, replica_error: 3 } })
      const replicaWarnings = warnings.filter((warning) => warning.includes('read replica'))
      expect(replicaWarnings).toHaveLength(1)
      expect(replicaWarnings[0]).toMatch(/ECONNREFUSED|connect/)
      expect(replicaWarnings[0]).toContain('readReplica.retryAfterMs')
    } finally {
      await down.end()
    }
  }, 30_000)
})
