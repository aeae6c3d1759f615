/**
 * The LISTEN connection proves it works (DESIGN.md "Never silent", issue 19 item 3), on real
 * PostgreSQL:
 * - through a TCP proxy that freezes the connection without FIN or RST, the missed liveness probe
 *   drops it, the streams keep updating by version polling while no new connection gets through,
 *   one warning names the cause, and LISTEN comes back once the path does;
 * - through PgBouncer in transaction mode, `LISTEN` succeeds but no notification from another
 *   session ever arrives: each instance logs one warning naming the pooler and the fix, `connected`
 *   stays false, and streams on both instances still see each other's changes.
 * Assertions are on logs, states and events; the option values below only make the waits short,
 * and every wait has a ceiling of 5× or more what it takes here.
 */
import { createPgRunListener, type PgRunListener, type PgRunListenerState } from 'pipeline-status-sdk/pg'
import { RunUpdateEvent } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers, createPrismaStore, MemoryStore, ServerConfigurationError, type Store } from 'pipeline-status-sdk/server'
import type { RunChangeSink, RunChangeSource } from 'pipeline-status-sdk/pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readEvents } from '../contract/suite/read-events.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { type FreezeProxy, startFreezeProxy } from '../support/freeze-proxy.js'
import { quiet, recordingLogger } from '../support/loggers.js'
import { toolForTests } from '../support/optional-tools.js'
import { listenThroughPgBouncerTool, type PgBouncer, startPgBouncer } from '../support/pgbouncer.js'
import { handlerRequests } from '../support/handler-requests.js'
import { until } from '../support/until.js'

const SECRET = 'listen-liveness-secret'
const CHANNEL = 'pipeline_status'
const PGBOUNCER = toolForTests(listenThroughPgBouncerTool())

const { get, post } = handlerRequests(SECRET)

/** `url` with its host and port replaced. */
function via(url: string, port: number): string {
  const next = new URL(url)
  next.hostname = '127.0.0.1'
  next.port = String(port)
  return next.href
}

/**
 * One "process": handlers on their own store object (so they hear other instances' writes only
 * through LISTEN or polling). `safetyPollIntervalMs`: the slow poll while LISTEN delivers (5 s by
 * default), which also brings other instances' writes.
 */
function instance(db: TestDatabase, listen: PgRunListener | undefined, logger = recordingLogger(), safetyPollIntervalMs?: number) {
  const handlers = createPipelineStatusHandlers({
    store: createPrismaStore({ prisma: db.prisma, notifyChannel: CHANNEL }),
    secret: SECRET,
    logger,
    live: { pollIntervalMs: 100, listen, safetyPollIntervalMs },
  })
  return { handlers, logger }
}

/** The stages of an `update` event as `[number, status]` pairs. */
function stagesOf(event: { event?: string | undefined; data: string }): Array<[number, string]> {
  expect(event.event).toBe('update')
  return RunUpdateEvent.parse(JSON.parse(event.data)).stages.map((stage) => [stage.stageNumber, stage.status])
}

describe.skipIf(!usesPostgres())('a LISTEN connection through a proxy that freezes it', () => {
  let db: TestDatabase
  let proxy: FreezeProxy
  beforeAll(async () => {
    db = await createTestDatabase()
    const upstream = new URL(db.url as string)
    proxy = await startFreezeProxy({ host: upstream.hostname, port: Number(upstream.port || 5432) })
  })
  afterAll(async () => {
    await proxy?.close()
    await db?.close()
  })

  it('is dropped by its missed probe, streams update by polling meanwhile, one warning, and LISTEN recovers', async () => {
    const states: PgRunListenerState[] = []
    const listen = createPgRunListener({
      connectionString: via(db.url as string, proxy.port),
      channel: CHANNEL,
      probeIntervalMs: 200,
      probeTimeoutMs: 500,
      connectTimeoutMs: 1_000,
      deliveryCheckTimeoutMs: 2_000,
      reconnectDelayMs: 100,
      onStateChange: (state) => void states.push(state),
    })
    // No safety poll within the test: it would bring the write made after the freeze whenever its
    // tick (5 s after LISTEN was verified, by default) came before the missed probe dropped LISTEN,
    // with LISTEN still counted connected. Only the polling that follows the drop may bring it.
    const reader = instance(db, listen, recordingLogger(), 600_000)
    const writer = instance(db, undefined)
    try {
      expect((await writer.handlers.fetch(post('/runs', { id: 'frozen' }))).status).toBe(201)
      const stream = readEvents(await reader.handlers.fetch(get('/frozen/events')))
      expect((await stream.next()).event).toBe('snapshot')
      // The delivery check passes on a direct path.
      await until('LISTEN to be verified', () => listen.connected, 10_000)
      expect(states).toEqual(['connecting', 'checking', 'listening'])
      await writer.handlers.fetch(post('/frozen/stage-update', makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' })))
      expect(stagesOf(await stream.next())).toEqual([[1, 'PROCESSING']])

      // The path dies silently, for this connection and every new one.
      proxy.freeze({ hangNew: true })
      await writer.handlers.fetch(post('/frozen/stage-update', makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'one' })))
      // Only polling can deliver this: the LISTEN path is frozen and no new connection gets through.
      expect(stagesOf(await stream.next())).toEqual([[1, 'COMPLETED']])
      expect(listen.connected).toBe(false)
      expect(states.slice(0, 4)).toEqual(['connecting', 'checking', 'listening', 'reconnecting'])
      await writer.handlers.fetch(post('/frozen/stage-update', makeStageUpdate({ stageNumber: 2, status: 'PROCESSING', output: '' })))
      expect(stagesOf(await stream.next())).toEqual([[2, 'PROCESSING']])
      // Reconnection attempts hang and time out meanwhile, and say nothing more.
      await until('a reconnection attempt to time out', () => listen.counts.failedConnects >= 1, 10_000)
      expect(listen.connected).toBe(false)

      proxy.thaw()
      await until('LISTEN to come back', () => listen.connected, 30_000)
      await writer.handlers.fetch(post('/frozen/stage-update', makeStageUpdate({ stageNumber: 2, status: 'COMPLETED', output: 'two' })))
      expect(stagesOf(await stream.next())).toEqual([[2, 'COMPLETED']])

      // listening → (reconnecting ⇄ connecting)* → checking → listening
      expect(states.at(-2)).toBe('checking')
      expect(states.at(-1)).toBe('listening')
      expect(new Set(states.slice(4, -2))).toEqual(new Set(['connecting', 'reconnecting']))
      expect(listen.counts).toMatchObject({ drops: 1, failedProbes: 1, failedDeliveryChecks: 0 })
      const warnings = reader.logger.lines.filter((line) => line.level === 'warn')
      expect(warnings).toHaveLength(1)
      expect(warnings[0]?.message).toMatch(/LISTEN is not delivering notifications; live streams poll run versions/)
      expect(String((warnings[0]?.details?.['error'] as Error).message)).toMatch(/did not answer its liveness probe \(SELECT 1\) within 500 ms.*half-open/)
      await stream.cancel()
    } finally {
      await reader.handlers.close()
      await writer.handlers.close()
    }
    expect(listen.state).toBe('closed')
  }, 60_000)
})

describe.skipIf(!usesPostgres() || !PGBOUNCER)('LISTEN through PgBouncer in transaction mode', () => {
  let db: TestDatabase
  let bouncer: PgBouncer
  beforeAll(async () => {
    db = await createTestDatabase()
    bouncer = await startPgBouncer({ databaseUrl: db.url as string, poolMode: 'transaction' })
  })
  afterAll(async () => {
    await bouncer?.stop()
    await db?.close()
  })

  it('warns once per instance naming the pooler and the fix, connected stays false, and streams on two instances still update', async () => {
    const listener = () =>
      createPgRunListener({ connectionString: bouncer.url, channel: CHANNEL, deliveryCheckTimeoutMs: 1_500, probeIntervalMs: 300, probeTimeoutMs: 2_000 })
    const listeners = [listener(), listener()] as const
    const [a, b] = [instance(db, listeners[0]), instance(db, listeners[1])]
    try {
      expect((await a.handlers.fetch(post('/runs', { id: 'pooled' }))).status).toBe(201)
      const onA = readEvents(await a.handlers.fetch(get('/pooled/events')))
      const onB = readEvents(await b.handlers.fetch(get('/pooled/events')))
      expect([(await onA.next()).event, (await onB.next()).event]).toEqual(['snapshot', 'snapshot'])
      // LISTEN itself succeeds through the pooler; the check is what finds that nothing arrives.
      await until('both delivery checks to fail', () => listeners.every((listen) => listen.state === 'unverified'), 20_000)
      for (const listen of listeners) {
        expect(listen.connected).toBe(false)
        expect(listen.backendPid).toEqual(expect.any(Number))
      }

      // Written on B, seen on A (and on B itself, in-process), and the other way round.
      await b.handlers.fetch(post('/pooled/stage-update', makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' })))
      expect(stagesOf(await onA.next())).toEqual([[1, 'PROCESSING']])
      expect(stagesOf(await onB.next())).toEqual([[1, 'PROCESSING']])
      await a.handlers.fetch(post('/pooled/stage-update', makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'one' })))
      expect(stagesOf(await onB.next())).toEqual([[1, 'COMPLETED']])
      expect(stagesOf(await onA.next())).toEqual([[1, 'COMPLETED']])

      // The check is repeated (with backoff) and fails again, silently.
      await until('a repeated delivery check', () => listeners.every((listen) => listen.counts.failedDeliveryChecks >= 2), 20_000)
      for (const [index, { logger }] of [a, b].entries()) {
        const warnings = logger.lines.filter((line) => line.level === 'warn')
        expect(warnings, `instance ${index}`).toHaveLength(1)
        expect(warnings[0]?.message).toMatch(/LISTEN is not delivering notifications/)
        const cause = String((warnings[0]?.details?.['error'] as Error).message)
        expect(cause).toMatch(/notification sent from another session did not arrive within 1500 ms/)
        expect(cause).toMatch(/transaction pooler/)
        // Where, and the free evidence (PgBouncer announces a process id of its own at start-up).
        expect(cause).toContain(`The connection string (${new URL(bouncer.url).hostname}:${new URL(bouncer.url).port}) most likely points at a transaction pooler`)
        expect(cause).toMatch(/never other sessions'\. A pooler does sit in between: the connection announced server process -?\d+ at start-up, but pg_backend_pid\(\) is another\. Give it a direct/)
        expect(cause).toMatch(/direct, non-pooled URL/)
        // The fix a createPgConnections user can apply: the variable, or polling, in their own words.
        expect(cause).toContain("Give it a direct, non-pooled URL: set DIRECT_DATABASE_URL (createPgConnections' directConnectionString, or createPgRunListener's connectionString) to the database's own host and port")
        expect(cause).toContain("or use version polling: createPgConnections({ live: 'poll' })")
        expect(listeners[index]?.connected).toBe(false)
      }
      await onA.cancel()
      await onB.cancel()
    } finally {
      await a.handlers.close()
      await b.handlers.close()
    }
  }, 60_000)
})

describe('a LISTEN connection to a database it cannot reach', () => {
  it('says host:port (never the password) and what to check, as the cause the handlers log', async () => {
    const causes: Error[] = []
    const reported: unknown[] = []
    // Port 1 on the loopback is closed: refused at once, no timeout involved; no retry within the test.
    const listen = createPgRunListener({
      connectionString: 'postgresql://app:hunter2@127.0.0.1:1/app',
      reconnectDelayMs: 60_000,
      onStateChange: (state, cause) => void (state === 'reconnecting' && cause && causes.push(cause)),
    })
    listen.start({ change() {}, connected() {}, disconnected: (error) => void reported.push(error) })
    try {
      await until('the first connect to fail', () => causes.length === 1, 10_000)
    } finally {
      await listen.close()
    }
    expect(reported).toEqual([causes[0]])
    expect(listen.counts.failedConnects).toBe(1)
    const { message } = causes[0]!
    expect(message).toMatch(/^the LISTEN connection to 127\.0\.0\.1:1 could not be opened: .*ECONNREFUSED/)
    expect(message).toContain(
      "Check DIRECT_DATABASE_URL (createPgConnections' directConnectionString): that 127.0.0.1:1 is the database's own host and port, that it is reachable from here, and that the database is up",
    )
    expect(message).not.toContain('hunter2')
  })
})

describe.skipIf(!usesPostgres())('a LISTEN connection on a direct URL', () => {
  it('is verified by the check notification from another session, logs nothing and counts nothing', async () => {
    const db = await createTestDatabase()
    const states: PgRunListenerState[] = []
    const listen = createPgRunListener({ connectionString: db.url as string, channel: CHANNEL, onStateChange: (state) => void states.push(state) })
    const reader = instance(db, listen, recordingLogger())
    try {
      await reader.handlers.fetch(post('/runs', { id: 'direct' }))
      const stream = readEvents(await reader.handlers.fetch(get('/direct/events')))
      expect((await stream.next()).event).toBe('snapshot')
      await until('LISTEN to be verified', () => listen.connected, 25_000)
      expect(states).toEqual(['connecting', 'checking', 'listening'])
      expect(listen.counts).toEqual({ drops: 0, failedProbes: 0, failedConnects: 0, failedDeliveryChecks: 0 })
      expect(reader.logger.lines).toEqual([])
      await stream.cancel()
    } finally {
      await reader.handlers.close()
      await db.close()
    }
  }, 60_000)
})

describe('the run watcher with a LISTEN source', () => {
  it('warns once when the source stops delivering, and re-reads every streamed run when it is back', async () => {
    let sink: RunChangeSink | undefined
    const source: RunChangeSource = { start: (target) => void (sink = target), close: async () => {} }
    const memory = new MemoryStore()
    const reads: string[] = []
    // Another instance's view: no onRunChange and no getRunVersions, so nothing but the source
    // (and the re-read when it is back) can bring a change to these streams.
    const store: Store<unknown> = {
      transaction: (fn) => memory.transaction(fn as never),
      insertRun: (run) => memory.insertRun(run),
      getRun: async (runId) => {
        reads.push(runId)
        return memory.getRun(runId)
      },
    }
    const logger = recordingLogger()
    const reader = createPipelineStatusHandlers({ store, secret: SECRET, logger, live: { pollIntervalMs: 20, listen: source } })
    const writer = createPipelineStatusHandlers({ store: memory, secret: SECRET, logger: quiet })
    try {
      for (const id of ['back-1', 'back-2']) expect((await writer.fetch(post('/runs', { id }))).status).toBe(201)
      const streams = await Promise.all(['back-1', 'back-2'].map(async (id) => readEvents(await reader.fetch(get(`/${id}/events`)))))
      for (const stream of streams) expect((await stream.next()).event).toBe('snapshot')
      sink?.connected()
      sink?.disconnected(new Error('the LISTEN connection did not answer its liveness probe'))
      // Missed while the source is down: no notification comes for these.
      for (const id of ['back-1', 'back-2']) {
        await writer.fetch(post(`/${id}/stage-update`, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' })))
      }
      const before = reads.length
      sink?.connected()
      for (const stream of streams) expect(stagesOf(await stream.next())).toEqual([[1, 'PROCESSING']])
      expect(reads.slice(before).sort()).toEqual(['back-1', 'back-2'])
      const warnings = logger.lines.filter((line) => line.level === 'warn')
      expect(warnings).toHaveLength(1)
      expect(warnings[0]?.message).toMatch(/LISTEN is not delivering notifications; live streams poll run versions/)
      expect((warnings[0]?.details?.['error'] as Error).message).toMatch(/liveness probe/)
      for (const stream of streams) await stream.cancel()
    } finally {
      await reader.close()
      await writer.close()
    }
  })
})

it('refuses an empty channel, a channel too long for the check channel, and durations that are not positive', () => {
  expect(() => createPgRunListener({ connectionString: 'postgresql://x', channel: 'c'.repeat(58) })).toThrow(ServerConfigurationError)
  expect(() => createPgRunListener({ connectionString: 'postgresql://x', channel: 'c'.repeat(57) })).not.toThrow()
  // An empty channel would fail every LISTEN (a zero-length identifier) and reconnect forever.
  expect(() => createPgRunListener({ connectionString: 'postgresql://x', channel: '' })).toThrow(ServerConfigurationError)
  expect(() => createPgRunListener({ connectionString: 'postgresql://x', channel: '' })).toThrow(/channel must not be empty/)
  expect(() => createPgRunListener({ connectionString: 'postgresql://x', probeTimeoutMs: 0 })).toThrow(/probeTimeoutMs must be a positive number/)
})
