/**
 * LISTEN as the default whenever the app gives a direct connection (issue 31 item 1; DESIGN.md
 * "Live status"): `createPgConnections` decides the live mode from its URLs and
 * `db.handlerOptions({ prisma })` wires the notifying store and the listener together. Two
 * instances (two connections objects, two Express apps on real ports) share one throwaway
 * PostgreSQL database; polling is set to ten minutes where only LISTEN may deliver, so an update
 * that arrives came through a notification.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { PrismaPg } from '@prisma/adapter-pg'
import express from 'express'
import { createExpressRouter } from 'pipeline-status-sdk/express'
import { createPgConnections, type PgConnectionsOptions, type PgHandlerOptions } from 'pipeline-status-sdk/pg'
import { ServerConfigurationError } from 'pipeline-status-sdk/server'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'
import { postOk } from '../support/handler-requests.js'
import { until } from '../support/until.js'
import { openSse } from './sse-reader.js'

const SECRET = 'default-listen-secret'
/** Ten minutes: no poll (nor safety poll) runs within a test's wait. */
const NEVER_MS = 600_000

interface Instance {
  url: string
  wired: PgHandlerOptions<PrismaClient>
  liveMode: { mode: 'listen' | 'poll'; reason: string }
  info: string[]
  warnings: string[]
  close(): Promise<void>
}

const started: Instance[] = []

/** One app instance: its own connections, store, handlers and port. */
async function startInstance(connections: Omit<PgConnectionsOptions, 'logger'>, live: { pollIntervalMs: number; safetyPollIntervalMs: number }): Promise<Instance> {
  const info: string[] = []
  const warnings: string[] = []
  const db = createPgConnections({ ...connections, logger: { info: (line) => void info.push(line), warn: (line) => void warnings.push(line) } })
  const prisma = new PrismaClient({ adapter: new PrismaPg(db.pool) })
  const wired = db.handlerOptions({ prisma, live })
  const router = createExpressRouter({ ...wired, secret: SECRET, logger: { warn: (line) => void warnings.push(line), error: (line) => void warnings.push(line) } })
  const app = express()
  app.use('/api/pipeline', router)
  const server: Server = await new Promise((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening))
  })
  const instance: Instance = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/pipeline`,
    wired,
    liveMode: db.liveMode,
    info,
    warnings,
    close: async () => {
      await router.close()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      await wired.store.close()
      await prisma.$disconnect()
      await db.close()
    },
  }
  started.push(instance)
  return instance
}

const post = (base: string, path: string, body: unknown): Promise<Response> => postOk(SECRET, base, path, body)

/** Creates a run on `writer`, opens its stream on `reader`, posts a stage on `writer`: the update `reader`'s stream gets. */
async function crossInstanceUpdate(writer: Instance, reader: Instance, beforeWrite: () => Promise<void> = async () => {}): Promise<unknown> {
  const created = await post(writer.url, '/runs', {})
  const runId = ((await created.json()) as { run: { id: string } }).run.id
  const stream = await openSse(`${reader.url}/${runId}/events`, { 'X-Webhook-Secret': SECRET })
  try {
    await stream.waitFor((event) => event.event === 'snapshot')
    await beforeWrite()
    await post(writer.url, `/${runId}/stage-update`, { stageNumber: 1, stageName: 'Stage 1', status: 'COMPLETED', output: 'rows: 1280' })
    const event = await stream.waitFor((message) => message.event === 'update')
    return JSON.parse(event.data)
  } finally {
    stream.abort()
  }
}

describe('createPgConnections: the live mode rule', () => {
  it('refuses a live setting it does not know, naming the three', () => {
    expect(() => createPgConnections({ connectionString: 'postgresql://app@db.example.com:5432/app', live: 'notify' as never })).toThrow(ServerConfigurationError)
    expect(() => createPgConnections({ connectionString: 'postgresql://app@db.example.com:5432/app', live: 'notify' as never })).toThrow(
      `createPgConnections: live must be 'auto', 'listen' or 'poll', got "notify"`,
    )
  })

  it.each([
    ['a direct URL', { directConnectionString: 'postgresql://app@db.example.com:5432/app' }, 'listen'],
    ['one URL only, even a direct one', {}, 'poll'],
    ['one URL and live: listen', { live: 'listen' }, 'listen'],
    ['a direct URL and live: poll', { directConnectionString: 'postgresql://app@db.example.com:5432/app', live: 'poll' }, 'poll'],
    ['a direct URL that looks pooled', { directConnectionString: 'postgresql://app@db.example.com:6543/app' }, 'poll'],
    ['a pooled-looking direct URL and live: listen (a session-mode pooler)', { directConnectionString: 'postgresql://app@db.pooler.example.com:5432/app', live: 'listen' }, 'listen'],
  ] as const)('%s: %s', async (_what, options, mode) => {
    const db = createPgConnections({ connectionString: 'postgresql://app@db.example.com:5432/app', ...options, logger: { warn: () => {} } })
    expect(db.liveMode.mode).toBe(mode)
    await db.close()
  })

  it('never turns LISTEN on for a URL that only looks pooled, even when asked to', async () => {
    const db = createPgConnections({ connectionString: 'postgresql://app:s3cret@db.example.com:6543/app', live: 'listen', logger: { warn: () => {} } })
    expect(db.liveMode).toEqual({
      mode: 'poll',
      reason:
        "live: 'listen' was asked for, but only a pooled URL is given (DATABASE_URL, connectionString: db.example.com:6543). A transaction pooler never " +
        "delivers another session's notifications. Fix: set DIRECT_DATABASE_URL (directConnectionString) to the database's own host and port (or a pooler in session mode)",
    })
    await db.close()
  })
})

describe.skipIf(!usesPostgres())('the live mode on real PostgreSQL over real HTTP (needs DATABASE_URL)', () => {
  let db: TestDatabase

  beforeAll(async () => {
    db = await createTestDatabase()
  })
  afterEach(async () => {
    for (const instance of started.splice(0)) await instance.close()
  })
  afterAll(async () => {
    await db?.close()
  })

  it('with a direct URL, the default delivers a write on instance A to a stream on instance B through LISTEN, and says so once', async () => {
    const url = db.url as string
    const never = { pollIntervalMs: NEVER_MS, safetyPollIntervalMs: NEVER_MS }
    const a = await startInstance({ connectionString: url, directConnectionString: url }, never)
    const b = await startInstance({ connectionString: url, directConnectionString: url }, never)
    expect(b.liveMode).toEqual({ mode: 'listen', reason: 'a direct URL is given (DIRECT_DATABASE_URL, directConnectionString)' })
    const listener = b.wired.live.listen
    expect(listener?.state).toBe('idle')

    const update = await crossInstanceUpdate(a, b, () => until('B to listen', () => listener?.state === 'listening'))
    expect(update).toMatchObject({ stages: [{ stageNumber: 1, status: 'COMPLETED', output: 'rows: 1280' }] })
    // The store notified after commit, on its own connection, on the channel B listens on.
    // Counted when the batch's statement returns to A, which can be after B has the notification.
    await until("A's batch to be counted", () => (a.wired.store.notifyCounts?.sent ?? 0) >= 1)
    expect(b.info).toEqual([
      "pipeline-status: live streams use LISTEN on channel 'pipeline_status' (127.0.0.1:5432): a direct URL is given (DIRECT_DATABASE_URL, directConnectionString). " +
        "The store notifies after commit on a connection of its own; until the listener is proven to deliver, streams poll run versions. Opt out with createPgConnections({ live: 'poll' }) (docs/live-status.md)",
    ])
    expect([...a.warnings, ...b.warnings]).toEqual([])
  }, 30_000)

  it('with only a pooled-looking URL it polls, holds no LISTEN connection, and logs one line with the way to LISTEN', async () => {
    // Still the test database, but pgbouncer=true makes it look like a transaction pooler's.
    const pooled = `${db.url as string}?pgbouncer=true`
    const polling = { pollIntervalMs: 50, safetyPollIntervalMs: NEVER_MS }
    const a = await startInstance({ connectionString: pooled }, polling)
    const b = await startInstance({ connectionString: pooled }, polling)
    expect(b.liveMode.mode).toBe('poll')
    expect(b.wired.live).toEqual(polling)
    expect(a.wired.store.notifyCounts).toBeUndefined()

    const update = await crossInstanceUpdate(a, b)
    expect(update).toMatchObject({ stages: [{ stageNumber: 1, status: 'COMPLETED', output: 'rows: 1280' }] })
    expect(b.info).toEqual([
      'pipeline-status: live streams poll run versions every 50 ms: no direct URL is given (only DATABASE_URL, connectionString: 127.0.0.1:5432). ' +
        "To use LISTEN (a few milliseconds instead), set DIRECT_DATABASE_URL (createPgConnections' directConnectionString) to the database's own host and port " +
        "(or a pooler in session mode), or pass live: 'listen' when DATABASE_URL is direct itself (docs/live-status.md)",
    ])
    expect(b.warnings).toEqual([])
  }, 30_000)

  it('a direct URL that looks like a transaction pooler\'s never turns LISTEN on: it polls and warns once with the fix', async () => {
    const url = db.url as string
    const polling = { pollIntervalMs: 50, safetyPollIntervalMs: NEVER_MS }
    const b = await startInstance({ connectionString: url, directConnectionString: `${url}?pgbouncer=true` }, polling)
    expect(b.wired.live.listen).toBeUndefined()
    expect(b.info).toEqual([])
    expect(b.warnings).toEqual([
      'pipeline-status: live streams poll run versions every 50 ms: the direct URL (DIRECT_DATABASE_URL, directConnectionString: 127.0.0.1:5432) ' +
        "looks like a transaction pooler's (pgbouncer=true, port 6432 or 6543, or a pooler host), which never delivers another session's notifications. " +
        "Fix: give the database's own host and port, or pass live: 'listen' if it is a pooler in session mode (docs/live-status.md)",
    ])
  })

  it("live: 'poll' opts out with a direct URL: no notifications, no listener, polling delivers", async () => {
    const url = db.url as string
    const polling = { pollIntervalMs: 50, safetyPollIntervalMs: NEVER_MS }
    const a = await startInstance({ connectionString: url, directConnectionString: url, live: 'poll' }, polling)
    const b = await startInstance({ connectionString: url, directConnectionString: url, live: 'poll' }, polling)
    expect(b.wired.live.listen).toBeUndefined()
    expect(a.wired.store.notifyCounts).toBeUndefined()

    const update = await crossInstanceUpdate(a, b)
    expect(update).toMatchObject({ stages: [{ stageNumber: 1, status: 'COMPLETED', output: 'rows: 1280' }] })
    expect(b.info).toEqual([
      "pipeline-status: live streams poll run versions every 50 ms: createPgConnections was given live: 'poll'. To use LISTEN on the direct URL given, leave live unset (docs/live-status.md)",
    ])
  }, 30_000)

  it('with only a pooled-looking URL and polling set to ten minutes, a cross-instance write does not arrive: only LISTEN could bring it', async () => {
    // The control of the first test: the same wait, no direct URL, so nothing delivers.
    const pooled = `${db.url as string}?pgbouncer=true`
    const never = { pollIntervalMs: NEVER_MS, safetyPollIntervalMs: NEVER_MS }
    const a = await startInstance({ connectionString: pooled }, never)
    const b = await startInstance({ connectionString: pooled }, never)
    const created = await post(a.url, '/runs', {})
    const runId = ((await created.json()) as { run: { id: string } }).run.id
    const stream = await openSse(`${b.url}/${runId}/events`, { 'X-Webhook-Secret': SECRET })
    await stream.waitFor((event) => event.event === 'snapshot')
    await post(a.url, `/${runId}/stage-update`, { stageNumber: 1, stageName: 'Stage 1', status: 'COMPLETED' })
    await expect(stream.waitFor((message) => message.event === 'update', 1_000)).rejects.toThrow('No such event within 1000 ms')
    stream.abort()
  }, 30_000)
})
