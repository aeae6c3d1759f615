/**
 * A database the handlers cannot use: hung (a lock held by another session, so every statement
 * waits), without the SDK's tables (migrations not deployed), an older schema after an upgrade
 * (the `version` column a later migration adds is missing), or no database at all. Every route
 * answers 503 with `Retry-After` within the store's bounds, never waits forever, and a missing
 * schema is logged once, not per request.
 *
 * On PostgreSQL (DATABASE_URL) everything is real. Without it, the same cases run on PGlite; the
 * missing database then comes from a socket that answers the connection as PostgreSQL does for an
 * unknown database name (FATAL 3D000), since PGlite has a single database.
 */
import { randomBytes } from 'node:crypto'
import { PGlite } from '@electric-sql/pglite'
import { PrismaPg } from '@prisma/adapter-pg'
import { Problem } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers, createPrismaStore, type PipelineStatusHandlers } from 'pipeline-status-sdk/server'
import pg from 'pg'
import { PrismaPGlite } from 'pglite-prisma-adapter'
import { afterAll, describe, expect, it } from 'vitest'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { makeCompleteRun, makeStageUpdate } from '../support/fixtures.js'
import { createTestDatabase, usesPostgres } from '../setup/test-database.js'
import { noSuchDatabase, startRefusingPostgres } from '../support/refusing-postgres.js'

const SECRET = 'unavailable-secret'
/**
 * The store's bounds in the hung-database case, where they are what ends each request. Every
 * other request here uses the store's defaults, so a loaded machine cannot turn a slow answer
 * into a 503 (this file once failed 1 run in 4 that way, with 400 ms bounds everywhere).
 */
const BOUND_MS = 400
const cleanups: Array<() => Promise<unknown>> = []
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined)
})

/** Handlers on a store (with `boundMs`, short bounds; else the store's defaults), and the errors they logged. */
function handlersOn(prisma: PrismaClient, boundMs?: number) {
  const errors: string[] = []
  const warnings: string[] = []
  const bounds = boundMs === undefined ? {} : { queryTimeoutMs: boundMs, maxWaitMs: boundMs, timeoutMs: boundMs }
  const handlers = createPipelineStatusHandlers({
    store: createPrismaStore({ prisma, ...bounds }),
    secret: SECRET,
    retryAfterSeconds: 7,
    logger: { warn: (message) => void warnings.push(message), error: (message) => void errors.push(message) },
  })
  return { handlers, errors, warnings }
}

/** One request to each of the four routes. */
function everyRoute(handlers: PipelineStatusHandlers, runId: string): Array<Promise<Response>> {
  const base = 'https://app.example/api/pipeline'
  const headers = { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' }
  const post = (path: string, body: unknown) => handlers.fetch(new Request(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body) }))
  return [
    handlers.fetch(new Request(`${base}/${runId}/status`, { headers })),
    post('/runs', { id: runId }),
    post(`/${runId}/stage-update`, makeStageUpdate()),
    post(`/${runId}/complete`, makeCompleteRun()),
  ]
}

async function expect503(response: Response, code: string): Promise<Problem> {
  expect(response.status).toBe(503)
  expect(response.headers.get('retry-after')).toBe('7')
  const problem = Problem.parse(await response.json())
  expect(problem.code).toBe(code)
  return problem
}

/** A database with no tables at all: PostgreSQL's own, created empty, or a fresh PGlite. */
async function emptyDatabase(): Promise<PrismaClient> {
  const serverUrl = process.env['DATABASE_URL']
  if (!serverUrl) {
    const pglite = new PGlite()
    cleanups.push(() => pglite.close())
    const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) })
    cleanups.push(() => prisma.$disconnect())
    return prisma
  }
  const name = `pss_empty_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE "${name}"`)
  await admin.end()
  cleanups.push(async () => {
    const dropper = new pg.Client({ connectionString: serverUrl })
    await dropper.connect()
    await dropper.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    await dropper.end()
  })
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url.toString() }) })
  cleanups.push(() => prisma.$disconnect())
  return prisma
}

describe(`a database the handlers cannot use (${usesPostgres() ? 'PostgreSQL' : 'PGlite'})`, () => {
  it('hung (tables locked by another session): every route answers 503 within its bound, then recovers', async () => {
    const db = await createTestDatabase()
    cleanups.push(() => db.close())
    const { handlers, errors, warnings } = handlersOn(db.prisma, BOUND_MS)
    const unbounded = handlersOn(db.prisma).handlers
    const runId = 'hung-run'
    expect((await everyRoute(unbounded, runId)[1])?.status).toBe(201)

    let release = (): void => {}
    const released = new Promise<void>((resolve) => (release = resolve))
    let holder: Promise<unknown>
    if (db.url) {
      const locker = new pg.Client({ connectionString: db.url })
      await locker.connect()
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE "PipelineRun", "StageOutput" IN ACCESS EXCLUSIVE MODE')
      holder = released.then(async () => {
        await locker.query('ROLLBACK')
        await locker.end()
      })
    } else {
      // PGlite runs one statement at a time: a transaction that stays open holds everything.
      let locked = (): void => {}
      const isLocked = new Promise<void>((resolve) => (locked = resolve))
      holder = (db.pglite as PGlite).transaction(async (tx) => {
        await tx.exec('LOCK TABLE "PipelineRun", "StageOutput" IN ACCESS EXCLUSIVE MODE')
        locked()
        await released
      })
      await isLocked
    }
    cleanups.push(async () => {
      release()
      await holder
    })

    try {
      const started = Date.now()
      const responses = await Promise.all(everyRoute(handlers, runId))
      const elapsed = Date.now() - started
      for (const response of responses) await expect503(response, 'database_unavailable')
      // The lock is held until `release()` below, so only the store's bounds can end these
      // requests: that they answered at all proves them. The ceiling, 5× the longest bound (the
      // transaction of /complete: maxWaitMs + timeoutMs + 1 s of grace), only catches a bound ignored.
      expect(elapsed).toBeLessThan(5 * (2 * BOUND_MS + 1_000))
      expect(warnings.length).toBeGreaterThanOrEqual(4)
      expect(errors).toEqual([])
    } finally {
      release()
      await holder
    }
    // Once the lock is gone, the same store works again (read with default bounds: a loaded
    // machine may take longer than BOUND_MS for a healthy read, which is not what is tested).
    const status = await unbounded.fetch(
      new Request(`https://app.example/api/pipeline/${runId}/status`, { headers: { 'X-Webhook-Secret': SECRET } }),
    )
    expect(status.status).toBe(200)
  })

  it('without tables (migrations not deployed): 503 database_not_migrated naming the table and the command, logged once', async () => {
    const { handlers, errors } = handlersOn(await emptyDatabase())
    for (let round = 0; round < 3; round++) {
      for (const response of await Promise.all(everyRoute(handlers, 'no-tables'))) {
        const problem = await expect503(response, 'database_not_migrated')
        expect(problem.detail).toMatch(/table "(public\.)?(PipelineRun|StageOutput)" does not exist/)
        expect(problem.detail).toContain('prisma migrate deploy')
      }
    }
    expect(errors.length).toBeGreaterThanOrEqual(1)
    // One line per distinct problem (the run table, perhaps the stage table), not one per request.
    expect(errors.length).toBeLessThanOrEqual(2)
    expect(new Set(errors).size).toBe(errors.length)
    for (const line of errors) expect(line).toContain('prisma migrate deploy')
  })

  it('an older schema (the version column of a later migration missing): 503 naming the column, logged once', async () => {
    const db = await createTestDatabase()
    cleanups.push(() => db.close())
    await db.prisma.$executeRawUnsafe('ALTER TABLE "PipelineRun" DROP COLUMN "version"')
    await db.prisma.$executeRawUnsafe(
      `INSERT INTO "PipelineRun" ("id", "status", "updatedAt") VALUES ('old-run', 'PROCESSING', now())`,
    )
    const { handlers, errors } = handlersOn(db.prisma)
    for (let round = 0; round < 3; round++) {
      const [status, , stageUpdate] = await Promise.all(everyRoute(handlers, 'old-run'))
      for (const response of [status, stageUpdate]) {
        const problem = await expect503(response as Response, 'database_not_migrated')
        expect(problem.detail).toContain('column "version" does not exist')
        expect(problem.detail).toContain('prisma migrate deploy')
      }
    }
    expect(errors).toHaveLength(1)
    expect(errors[0]).toContain('column "version"')
  })

  it('a database that does not exist: 503 database_not_migrated naming it, logged once', async () => {
    const name = `pss_missing_${randomBytes(6).toString('hex')}`
    let url: string
    if (process.env['DATABASE_URL']) {
      const parsed = new URL(process.env['DATABASE_URL'])
      parsed.pathname = `/${name}`
      url = parsed.toString()
    } else {
      // PGlite has a single database: the refusal comes from a socket that answers as PostgreSQL does.
      const { port, close } = await startRefusingPostgres(noSuchDatabase(name))
      cleanups.push(close)
      url = `postgresql://postgres@127.0.0.1:${port}/${name}`
    }
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url }) })
    cleanups.push(() => prisma.$disconnect())
    const { handlers, errors } = handlersOn(prisma)
    for (let round = 0; round < 3; round++) {
      for (const response of await Promise.all(everyRoute(handlers, 'any-run'))) {
        const problem = await expect503(response, 'database_not_migrated')
        expect(problem.detail).toContain(`database "${name}" does not exist`)
        expect(problem.detail).toContain('prisma migrate deploy')
      }
    }
    expect(errors).toHaveLength(1)
  })
})
