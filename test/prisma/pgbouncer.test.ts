/**
 * PrismaStore behind a real PgBouncer in transaction mode (Debian's 1.18, started on a free port
 * by test/support/pgbouncer.ts; DESIGN.md "Never silent"), on both paths: every statement
 * through Prisma, and the store's own statements on the app's `pg` pool (`{ pool }`). In
 * transaction mode consecutive statements of one client run on different server connections,
 * so anything that lives on a server connection (named prepared statements) breaks.
 *
 * Each path: concurrent run creation and stage updates, `/complete` with the app's
 * `onRunCompleted` hook writing its own row, status reads, the stale-run sweeper, and a live
 * stream on a second instance that learns of the writes only by version polling; 0 error
 * answers, and every write is read back from the database directly (0 lost). Also: the
 * recommended connection bounds as startup parameters are refused by a default PgBouncer and the
 * error names the parameter; set on the database (`ALTER DATABASE … SET`), they apply.
 */
import { PrismaPg } from '@prisma/adapter-pg'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import pg from 'pg'
import { type RunStatusResponse } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers, createPrismaStore, createStaleRunSweeper, isStoreUnavailableError, type PrismaStore } from 'pipeline-status-sdk/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'
import { recordingLogger } from '../support/loggers.js'
import { toolForTests } from '../support/optional-tools.js'
import { type PgBouncer, pgbouncerTool, startPgBouncer } from '../support/pgbouncer.js'

const PGBOUNCER = toolForTests(pgbouncerTool())
const SECRET = 'pgbouncer-secret-5d1f'
const BASE = 'http://app.test/api/pipeline'
const STAGES = [1, 2, 3, 4, 5]
const RUNS = 6
const STALE_AFTER_MS = 15 * 60_000

let db: TestDatabase
let bouncer: PgBouncer
let direct: pg.Client

beforeAll(async () => {
  if (!PGBOUNCER || !usesPostgres()) return
  db = await createTestDatabase()
  // Fewer server connections than the clients' pools hold: statements of one client connection
  // really do land on different server connections.
  bouncer = await startPgBouncer({ databaseUrl: db.url as string, defaultPoolSize: 3, binary: PGBOUNCER })
  direct = new pg.Client({ connectionString: db.url })
  await direct.connect()
  await direct.query('CREATE TABLE "HookResult" ("runId" text PRIMARY KEY, "payload" jsonb NOT NULL)')
}, 60_000)
afterAll(async () => {
  await direct?.end()
  await bouncer?.stop()
  await db?.close()
})

/** Reads a live stream's events from a `Response` (the handlers' `GET …/events`) until it ends. */
function readEvents(response: Response): { events: EventSourceMessage[]; ended: Promise<void> } {
  const events: EventSourceMessage[] = []
  const parser = createParser({ onEvent: (event) => void events.push(event) })
  const ended = (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of response.body as ReadableStream<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }))
  })()
  return { events, ended }
}

async function withDeadline<T>(pending: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no end within ${ms} ms`)), ms)))
  try {
    return await Promise.race([pending, deadline])
  } finally {
    clearTimeout(timer)
  }
}

for (const path of ['prisma', 'pool'] as const) {
  describe.skipIf(!PGBOUNCER || !usesPostgres())(`PrismaStore behind PgBouncer in transaction mode (${path} path; needs DATABASE_URL)`, () => {
    let prisma: PrismaClient
    let pool: pg.Pool | undefined
    let readerPrisma: PrismaClient
    const errors: string[] = []

    beforeAll(() => {
      // No startup parameters: a default PgBouncer refuses them (see the last describe).
      pool = path === 'pool' ? new pg.Pool({ connectionString: bouncer.url, max: 10 }) : undefined
      prisma = new PrismaClient({ adapter: pool ? new PrismaPg(pool) : new PrismaPg({ connectionString: bouncer.url, max: 10 }) })
      readerPrisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: bouncer.url, max: 2 }) })
    })
    afterAll(async () => {
      await prisma?.$disconnect()
      await readerPrisma?.$disconnect()
      await pool?.end()
    })

    it('stage updates, /complete with onRunCompleted, status reads, the sweeper and a polling stream: 0 errors, 0 lost', async () => {
      let now = Date.parse('2026-03-01T09:00:00.000Z')
      const clock = () => new Date(now)
      const logger = recordingLogger()
      // The pool path's default: named statements until the pooler refuses one, then unnamed.
      const store = createPrismaStore({ prisma, ...(pool ? { pool, logger } : { logger }) })
      const handlers = createPipelineStatusHandlers({
        store,
        secret: SECRET,
        clock,
        logger,
        onRunCompleted: async (tx, run, payload) => {
          await tx.$executeRawUnsafe('INSERT INTO "HookResult" ("runId", "payload") VALUES ($1, $2::jsonb)', run.id, JSON.stringify(payload))
        },
      })
      // A second instance on its own store: it hears of the first one's writes only by polling versions.
      const reader = createPipelineStatusHandlers({
        store: createPrismaStore({ prisma: readerPrisma }),
        secret: SECRET,
        clock,
        logger,
        live: { pollIntervalMs: 50 },
      })
      const send = async (method: string, route: string, body?: unknown, via = handlers): Promise<Response> => {
        const response = await via.fetch(
          new Request(`${BASE}${route}`, {
            method,
            headers: { 'X-Webhook-Secret': SECRET, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
            ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          }),
        )
        if (response.status >= 300) errors.push(`${method} ${route}: ${response.status} ${await response.clone().text()}`)
        return response
      }

      const runIds = Array.from({ length: RUNS }, (_, i) => `bouncer-${path}-${i}`)
      await Promise.all(runIds.map((id) => send('POST', '/runs', { id })))
      const streams = await Promise.all(runIds.map(async (id) => readEvents(await send('GET', `/${id}/events`, undefined, reader))))

      // Stages 1–4 of every run at once, each PROCESSING then COMPLETED; then stage 5, whose
      // COMPLETED ends the run (an earlier one would end it with stages still running).
      const report = async (id: string, stageNumber: number) => {
        for (const status of ['PROCESSING', 'COMPLETED'] as const) {
          await send('POST', `/${id}/stage-update`, { stageNumber, stageName: `Stage ${stageNumber}`, status, output: `${id} ${stageNumber} ${status}` })
        }
      }
      await Promise.all(runIds.flatMap((id) => STAGES.slice(0, -1).map((stageNumber) => report(id, stageNumber))))
      await Promise.all(runIds.map((id) => report(id, STAGES.length)))
      const completions = await Promise.all(
        runIds.map(async (id) => (await (await send('POST', `/${id}/complete`, { status: 'COMPLETED', report: `report of ${id}` })).json()) as { outcome: string }),
      )
      expect(completions.map((answer) => answer.outcome)).toEqual(runIds.map(() => 'applied'))
      for (const id of runIds) {
        const status = (await (await send('GET', `/${id}/status`)).json()) as RunStatusResponse
        expect(status.run.status).toBe('COMPLETED')
        expect(status.stages.map((stage) => [stage.stageNumber, stage.status, stage.output])).toEqual(
          STAGES.map((n) => [n, 'COMPLETED', `${id} ${n} COMPLETED`]),
        )
      }

      // The polling instance streamed every run to its end, in increasing versions.
      await withDeadline(Promise.all(streams.map((stream) => stream.ended)), 30_000, 'the polling streams')
      for (const stream of streams) {
        expect(stream.events[0]?.event).toBe('snapshot')
        const last = stream.events.at(-1)
        expect(last?.event).toBe('end')
        expect((JSON.parse(last?.data ?? '{}') as RunStatusResponse).run.status).toBe('COMPLETED')
        // Update events carry the stages that changed: folded over the snapshot, every stage ended COMPLETED.
        const folded = new Map<number, string>()
        for (const event of stream.events.filter((candidate) => candidate.event !== 'end')) {
          for (const stage of (JSON.parse(event.data) as RunStatusResponse).stages) folded.set(stage.stageNumber, stage.status)
        }
        expect([...folded].sort(([a], [b]) => a - b)).toEqual(STAGES.map((n) => [n, 'COMPLETED']))
        const ids = stream.events.filter((event) => event.event !== 'end').map((event) => Number(event.id))
        for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number)
      }

      // The sweeper through the pooler: a silent run is failed, the finished ones are untouched.
      const silent = `bouncer-${path}-silent`
      await send('POST', '/runs', { id: silent })
      await send('POST', `/${silent}/stage-update`, { stageNumber: 1, stageName: 'Stage 1', status: 'PROCESSING' })
      const sweeper = createStaleRunSweeper({ store, staleAfterMs: STALE_AFTER_MS, clock, logger })
      expect(await sweeper.sweep()).toEqual([])
      now += STALE_AFTER_MS + 60_000
      expect((await sweeper.sweep()).map((run) => run.id)).toEqual([silent])

      expect(errors).toEqual([])
      expect(logger.lines.filter((line) => line.level === 'error')).toEqual([])
      // At most one line says the store turned to unnamed statements (PgBouncer refused a named one).
      expect(logger.lines.filter((line) => /named prepared statement/.test(line.message)).length).toBeLessThanOrEqual(path === 'pool' ? 1 : 0)

      // Read back from the database itself, past the pooler: nothing lost.
      const runs = await direct.query<{ id: string; status: string; version: number; stages: string; hook: string | null }>(
        `SELECT r.id, r.status::text AS status, r.version,
                (SELECT string_agg(s."stageNumber" || ':' || s.status::text || ':' || COALESCE(s.output, ''), ',' ORDER BY s."stageNumber") FROM "StageOutput" s WHERE s."runId" = r.id) AS stages,
                (SELECT h.payload->>'report' FROM "HookResult" h WHERE h."runId" = r.id) AS hook
         FROM "PipelineRun" r WHERE r.id LIKE $1 ORDER BY r.id`,
        [`bouncer-${path}-%`],
      )
      expect(runs.rows).toEqual([
        ...runIds.map((id) => ({
          id,
          status: 'COMPLETED',
          // Creation, ten stage changes, /complete: one version each.
          version: 11,
          stages: STAGES.map((n) => `${n}:COMPLETED:${id} ${n} COMPLETED`).join(','),
          hook: `report of ${id}`,
        })),
        { id: silent, status: 'FAILED', version: 2, stages: '1:PROCESSING:', hook: null },
      ].sort((a, b) => a.id.localeCompare(b.id)))
    }, 120_000)
  })
}

describe.skipIf(!PGBOUNCER || !usesPostgres())('connection settings behind a default PgBouncer (needs DATABASE_URL)', () => {
  it('a refused startup parameter is named in the error and the log, with the fix', async () => {
    const pool = new pg.Pool({ connectionString: bouncer.url, max: 2, statement_timeout: 10_000, idle_in_transaction_session_timeout: 20_000 })
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: bouncer.url, max: 2, statement_timeout: 10_000 }) })
    try {
      for (const store of [createPrismaStore({ prisma }), createPrismaStore({ prisma, pool })]) {
        const error = await store.readRun('any').then(() => undefined, (caught: unknown) => caught)
        expect(isStoreUnavailableError(error)).toBe(true)
        expect((error as Error).message).toMatch(/^The connection pooler refused the startup parameter "statement_timeout" .*ALTER ROLE <app user> SET statement_timeout/)
      }
      const logger = recordingLogger()
      const handlers = createPipelineStatusHandlers({ store: createPrismaStore({ prisma, pool }), secret: SECRET, logger })
      const response = await handlers.fetch(new Request(`${BASE}/any/status`, { headers: { 'X-Webhook-Secret': SECRET } }))
      expect(response.status).toBe(503)
      expect(logger.lines.map((line) => line.message)).toEqual([expect.stringContaining('refused the startup parameter "statement_timeout"')])
      expect(bouncer.log()).toContain('unsupported startup parameter: statement_timeout')
    } finally {
      await prisma.$disconnect()
      await pool.end()
    }
  })

  it('the same bounds set on the database apply to connections through the pooler', async () => {
    const name = new URL(db.url as string).pathname.slice(1)
    await direct.query(`ALTER DATABASE "${name}" SET statement_timeout = '10s'`)
    await direct.query(`ALTER DATABASE "${name}" SET idle_in_transaction_session_timeout = '20s'`)
    // PgBouncer keeps server connections open; new ones read the database's settings.
    const fresh = await startPgBouncer({ databaseUrl: db.url as string, binary: PGBOUNCER as string })
    const pool = new pg.Pool({ connectionString: fresh.url, max: 1 })
    try {
      const { rows } = await pool.query<{ statement: string; idle: string }>(
        `SELECT current_setting('statement_timeout') AS statement, current_setting('idle_in_transaction_session_timeout') AS idle`,
      )
      expect(rows).toEqual([{ statement: '10s', idle: '20s' }])
      const store = createPrismaStore({ prisma: new PrismaClient({ adapter: new PrismaPg(pool) }), pool })
      expect(await store.readRun('none')).toBeNull()
    } finally {
      await pool.end()
      await fresh.stop()
    }
  })

  it('named statements fail through it; unnamed ones do not; the default turns to unnamed at the first refusal, says so once and loses nothing', async () => {
    // 6 client connections on 3 server connections: two clients' first Parse of a statement land
    // on one server connection, so the second is refused (42P05), if not a Bind elsewhere (26000).
    const pool = new pg.Pool({ connectionString: bouncer.url, max: 6 })
    pool.on('error', () => undefined)
    const prisma = new PrismaClient({ adapter: new PrismaPg(pool) })
    try {
      const attempt = async (store: PrismaStore<PrismaClient>) => {
        const results = await Promise.allSettled(Array.from({ length: 60 }, () => store.readRun('none')))
        const refused = results.flatMap((result) => (result.status === 'rejected' ? [String((result.reason as { code?: unknown }).code)] : []))
        return { refused: refused.length, codes: [...new Set(refused)] }
      }
      const logger = recordingLogger()
      const named = await attempt(createPrismaStore({ prisma, pool, namedStatements: true, logger }))
      expect(named.refused).toBeGreaterThan(0)
      expect(named.codes.every((code) => code === '26000' || code === '42P05')).toBe(true)
      expect(await attempt(createPrismaStore({ prisma, pool, namedStatements: false, logger }))).toEqual({ refused: 0, codes: [] })
      expect(logger.lines).toEqual([])

      const byDefault = createPrismaStore({ prisma, pool, logger })
      expect(await attempt(byDefault)).toEqual({ refused: 0, codes: [] })
      expect(await attempt(byDefault)).toEqual({ refused: 0, codes: [] })
      expect(logger.lines).toEqual([
        {
          level: 'warn',
          message: expect.stringMatching(/^pipeline-status: the database refused a named prepared statement \((26000|42P05): .*Pass namedStatements: false/),
          details: { code: expect.stringMatching(/^(26000|42P05)$/) },
        },
      ])
    } finally {
      await prisma.$disconnect()
      await pool.end()
    }
  })
})
