/**
 * `applyMigrations` (pipeline-status-sdk/pg, the `pipeline-status migrate` command) on empty
 * databases, real PostgreSQL (when DATABASE_URL is set) and PGlite: what it records is checked
 * against a fixture of what Prisma 7's `migrate deploy` writes (derived from prisma-engines, see
 * the fixture's $comment); then the handlers work on the result; reruns change nothing; foreign
 * or altered history is refused; `schema`; the CONCURRENTLY rule; failures and the lock; a
 * transaction pooler (a real PgBouncer) is refused before anything changes, a session pooler is not.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { PrismaPGlite } from 'pglite-prisma-adapter'
import { HeartbeatResponse, StageUpdateResponse } from 'pipeline-status-sdk'
import { applyMigrations, MigrationError } from 'pipeline-status-sdk/pg'
import { createPipelineStatusHandlers, createPrismaStore } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it } from 'vitest'
import { openDatabase } from '../../examples/shared/database.js'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { createRun } from '../../src/core/operations.js'
import { CREATE_MIGRATIONS_TABLE } from '../../src/pg/migrate.js'
import { migrationChecksum } from '../../src/pg/migration-files.js'
import { usesPostgres } from '../setup/test-database.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { toolForTests } from '../support/optional-tools.js'
import { pgbouncerTool, startPgBouncer } from '../support/pgbouncer.js'
import fixture from './fixtures/prisma7-migrations-table.json' with { type: 'json' }

/**
 * Per test: a fresh in-memory PGlite runs initdb, measured at 21-31 s on this loaded 2-core machine
 * (about 1 s when idle); 180 s keeps a margin of 5x or more.
 */
const TIMEOUT_MS = 180_000

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** An empty database on one engine: what to hand applyMigrations, SQL on the side, and Prisma on it. */
interface EmptyDatabase {
  target: string | PGlite
  sql<Row = Record<string, unknown>>(text: string, params?: unknown[]): Promise<Row[]>
  prisma(schema?: string): PrismaClient
  url?: string
  close(): Promise<void>
}

const opened: EmptyDatabase[] = []
afterEach(async () => {
  for (const db of opened.splice(0)) await db.close()
})

async function emptyPostgres(): Promise<EmptyDatabase> {
  const server = process.env['DATABASE_URL']!
  const name = `pss_migrate_${Math.random().toString(16).slice(2, 10)}`
  const admin = new pg.Client({ connectionString: server })
  await admin.connect()
  await admin.query(`CREATE DATABASE "${name}"`)
  const url = new URL(server)
  url.pathname = `/${name}`
  const client = new pg.Client({ connectionString: url.toString() })
  await client.connect()
  const clients: PrismaClient[] = []
  const db: EmptyDatabase = {
    target: url.toString(),
    url: url.toString(),
    sql: async (text, params) => (await client.query(text, params)).rows,
    prisma: (schema) => {
      const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url.toString() }, schema ? { schema } : {}) })
      clients.push(prisma)
      return prisma
    },
    close: async () => {
      for (const prisma of clients) await prisma.$disconnect()
      await client.end()
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      await admin.end()
    },
  }
  opened.push(db)
  return db
}

async function emptyPGlite(): Promise<EmptyDatabase> {
  const pglite = new PGlite()
  const clients: PrismaClient[] = []
  const db: EmptyDatabase = {
    target: pglite,
    sql: async (text, params) => (await pglite.query(text, params)).rows as never,
    prisma: () => {
      const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) })
      clients.push(prisma)
      return prisma
    },
    close: async () => {
      for (const prisma of clients) await prisma.$disconnect()
      await pglite.close()
    },
  }
  opened.push(db)
  return db
}

const engines: Array<[string, () => Promise<EmptyDatabase>]> = [['PGlite', emptyPGlite]]
if (usesPostgres()) engines.unshift(['PostgreSQL', emptyPostgres])

const PACKAGE_MIGRATIONS = fixture.rows.map((row) => row.migration_name)

async function history(db: EmptyDatabase, schema = 'public') {
  return db.sql<Record<string, unknown>>(`SELECT * FROM "${schema}"._prisma_migrations ORDER BY started_at, migration_name`)
}

/** A run driven through the real handlers on the Prisma client: every migrated column is used. */
async function exerciseHandlers(prisma: PrismaClient, schema?: string): Promise<void> {
  const store = createPrismaStore({ prisma, ...(schema ? { schema } : {}) })
  const handlers = createPipelineStatusHandlers({ store, secret: 'migrate-secret', logger: { warn: () => {}, error: () => {} } })
  const post = async (path: string, body: unknown) => {
    const response = await handlers.fetch(
      new Request(`http://app.test/api/pipeline${path}`, {
        method: 'POST',
        headers: { 'x-webhook-secret': 'migrate-secret', 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }),
    )
    expect(response.status, await response.clone().text()).toBe(200)
    return (await response.json()) as unknown
  }
  await createRun(store, { id: 'migrated-run', now: new Date() })
  const update = StageUpdateResponse.parse(await post('/migrated-run/stage-update', makeStageUpdate()))
  expect(update).toMatchObject({ outcome: 'applied', run: { status: 'PROCESSING' } })
  const beat = HeartbeatResponse.parse(
    await post('/migrated-run/heartbeat', { stageNumber: 1, intervalMs: 10_000, progress: { seq: 1, current: 37, total: 40 } }),
  )
  expect(beat.run.status).toBe('PROCESSING')
  expect(await prisma.stageOutput.findFirst({ where: { runId: 'migrated-run' } })).toMatchObject({
    progress: { current: 37, total: 40 },
  })
}

describe.each(engines)('applyMigrations on an empty %s database', (_engine, empty) => {
  it('records every package migration exactly as Prisma 7 does (the fixture), and the handlers work on the result', async () => {
    const db = await empty()
    const before = Date.now()
    const result = await applyMigrations(db.target)
    expect(result).toMatchObject({ applied: PACKAGE_MIGRATIONS, alreadyApplied: [], schema: 'public' })
    expect(result.summary).toBe(`applied ${PACKAGE_MIGRATIONS.length} migrations to schema "public" (${PACKAGE_MIGRATIONS.join(', ')})`)

    const columns = await db.sql(
      `SELECT column_name AS name, data_type AS type, character_maximum_length AS length,
              is_nullable = 'YES' AS nullable, column_default AS default
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '_prisma_migrations'
        ORDER BY ordinal_position`,
    )
    expect(columns).toEqual(fixture.columns)
    const key = await db.sql<{ column: string }>(
      `SELECT a.attname AS column FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = 'public._prisma_migrations'::regclass AND i.indisprimary`,
    )
    expect(key.map((row) => row.column)).toEqual(fixture.primaryKey)

    const rows = await history(db)
    expect(rows.map(({ migration_name, checksum, logs, rolled_back_at, applied_steps_count }) => ({ migration_name, checksum, logs, rolled_back_at, applied_steps_count }))).toEqual(
      fixture.rows,
    )
    for (const row of rows) {
      expect(row['id']).toMatch(UUID_V4)
      const started = (row['started_at'] as Date).getTime()
      const finished = (row['finished_at'] as Date).getTime()
      expect(started).toBeGreaterThanOrEqual(before - 1)
      expect(finished).toBeGreaterThanOrEqual(started)
    }

    await exerciseHandlers(db.prisma())
  }, TIMEOUT_MS)

  it('changes nothing on a second run', async () => {
    const db = await empty()
    await applyMigrations(db.target)
    const rows = await history(db)
    const again = await applyMigrations(db.target)
    expect(again).toMatchObject({ applied: [], alreadyApplied: PACKAGE_MIGRATIONS })
    expect(again.summary).toBe(`nothing to apply: all ${PACKAGE_MIGRATIONS.length} migrations of pipeline-status-sdk are applied to schema "public"`)
    expect(await history(db)).toEqual(rows)
  }, TIMEOUT_MS)

  it("refuses a database whose history holds an app's own migrations, naming --into, and changes nothing", async () => {
    const db = await empty()
    await db.sql(CREATE_MIGRATIONS_TABLE)
    await db.sql(`CREATE TABLE "User" (id TEXT PRIMARY KEY)`)
    await db.sql(
      `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count)
       VALUES ('8d5ac1c7-3f77-4e0b-9a4c-6b0f0f5f2f3a', $1, now(), '20250101000000_app_init', 1)`,
      [migrationChecksum('CREATE TABLE "User" (id TEXT PRIMARY KEY);')],
    )
    const error = await applyMigrations(db.target).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(MigrationError)
    expect(error).toMatchObject({ code: 'foreign-history' })
    expect((error as Error).message).toContain('20250101000000_app_init')
    expect((error as Error).message).toContain('pipeline-status migrate --into prisma/migrations')
    expect(await db.sql(`SELECT to_regclass('"PipelineRun"') AS t`)).toEqual([{ t: null }])
    expect(await history(db)).toHaveLength(1)
  }, TIMEOUT_MS)

  it('refuses tables without a history, as Prisma does (P3005)', async () => {
    const db = await empty()
    await db.sql(`CREATE TABLE "User" (id TEXT PRIMARY KEY)`)
    await expect(applyMigrations(db.target)).rejects.toMatchObject({
      code: 'schema-not-empty',
      message: expect.stringContaining('Schema "public" has tables (User) but no migration history'),
    })
  }, TIMEOUT_MS)

  it('refuses tables beside an empty history, or one of rolled-back attempts only, as it refuses them with none, and changes nothing', async () => {
    const db = await empty()
    await db.sql(`CREATE TABLE "User" (id TEXT PRIMARY KEY)`)
    // What `prisma migrate deploy` leaves with no migrations yet, or a refused attempt behind it.
    await db.sql(`CREATE TABLE "_prisma_migrations" (id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ,
      migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ, started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0)`)
    await expect(applyMigrations(db.target)).rejects.toMatchObject({
      code: 'schema-not-empty',
      message: expect.stringContaining('Schema "public" has tables (User) but no migration history ("_prisma_migrations" records no applied migration)'),
    })
    await db.sql(
      `INSERT INTO _prisma_migrations (id, checksum, migration_name, rolled_back_at) VALUES ('1d5ac1c7-3f77-4e0b-9a4c-6b0f0f5f2f3a', 'x', '20261124204841_init', now())`,
    )
    await expect(applyMigrations(db.target)).rejects.toMatchObject({ code: 'schema-not-empty' })
    expect(await db.sql(`SELECT to_regclass('"PipelineRun"') AS t`)).toEqual([{ t: null }])
    expect(await history(db)).toHaveLength(1)
  }, TIMEOUT_MS)

  it('refuses a recorded package migration with another checksum, and accepts one that differs only in line endings', async () => {
    const db = await empty()
    await applyMigrations(db.target)
    const [init] = await db.sql<{ id: string; checksum: string }>(`SELECT id, checksum FROM _prisma_migrations WHERE migration_name = '20261124204841_init'`)
    // Prisma's rule: a checksum of the script with CRLF line endings (git on Windows) still matches.
    const { readFile } = await import('node:fs/promises')
    const script = await readFile(new URL('../../prisma/migrations/20261124204841_init/migration.sql', import.meta.url), 'utf8')
    await db.sql(`UPDATE _prisma_migrations SET checksum = $1 WHERE id = $2`, [migrationChecksum(script.replaceAll('\n', '\r\n')), init!.id])
    expect((await applyMigrations(db.target)).applied).toEqual([])

    const other = migrationChecksum(`${script}-- edited\n`)
    await db.sql(`UPDATE _prisma_migrations SET checksum = $1 WHERE id = $2`, [other, init!.id])
    await expect(applyMigrations(db.target)).rejects.toMatchObject({
      name: 'MigrationError',
      code: 'checksum-mismatch',
      migration: '20261124204841_init',
      message: expect.stringContaining(`Migration 20261124204841_init was applied with checksum ${other}, but the package's migration.sql now has ${init!.checksum}`),
    })
  }, TIMEOUT_MS)

  it('migrates the schema it is given, creating it, and leaves public alone', async () => {
    const db = await empty()
    const result = await applyMigrations(db.target, { schema: 'pipeline status' })
    expect(result.schema).toBe('pipeline status')
    expect(await db.sql(`SELECT to_regclass('public._prisma_migrations') AS t`)).toEqual([{ t: null }])
    expect((await history(db, 'pipeline status')).map((row) => row['migration_name'])).toEqual(PACKAGE_MIGRATIONS)
    const tables = await db.sql<{ name: string }>(
      `SELECT tablename AS name FROM pg_tables WHERE schemaname = 'pipeline status' ORDER BY 1`,
    )
    expect(tables.map((row) => row.name)).toEqual(['PipelineCatalogue', 'PipelineRun', 'StageOutput', 'StageOutputChunk', 'WebhookMessage', '_prisma_migrations'])
    // The search_path of a client passed in is put back.
    if (typeof db.target !== 'string') expect(await db.sql(`SELECT current_schema() AS s`)).toEqual([{ s: 'public' }])
    expect((await applyMigrations(db.target, { schema: 'pipeline status' })).applied).toEqual([])
  }, TIMEOUT_MS)

  it('refuses a schema name over 63 bytes of UTF-8, which PostgreSQL would truncate, before creating anything', async () => {
    const db = await empty()
    // 32 two-byte characters: 64 bytes, though 32 characters.
    const long = 'ü'.repeat(32)
    await expect(applyMigrations(db.target, { schema: long })).rejects.toThrow(
      new RangeError(`schema name "${long}" is 64 bytes in UTF-8, over PostgreSQL's limit of 63 bytes for a name (NAMEDATALEN − 1), which it would silently truncate: give a shorter name`),
    )
    expect(await db.sql(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ü%'`)).toEqual([])
    // 63 bytes is PostgreSQL's own limit, and taken as it is.
    const longest = `${'ü'.repeat(31)}x`
    expect((await applyMigrations(db.target, { schema: longest })).schema).toBe(longest)
    expect(await db.sql(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ü%'`)).toEqual([{ nspname: longest }])
  }, TIMEOUT_MS)

  it('runs a file holding only CREATE INDEX CONCURRENTLY outside a transaction, and a failing file of several statements not at all', async () => {
    const db = await empty()
    const dir = await mkdtemp(join(tmpdir(), 'pss-migrations-'))
    try {
      const write = async (name: string, sql: string) => {
        await mkdir(join(dir, name))
        await writeFile(join(dir, name, 'migration.sql'), sql)
      }
      await write('20260101000000_table', 'CREATE TABLE "Thing" ("id" TEXT NOT NULL, "n" INTEGER);\n')
      await write('20260101000001_concurrent', '-- CreateIndex\nCREATE INDEX CONCURRENTLY "Thing_n_idx" ON "Thing"("n");\n')
      expect((await applyMigrations(db.target, { migrationsDir: dir })).applied).toEqual(['20260101000000_table', '20260101000001_concurrent'])
      expect(await db.sql(`SELECT to_regclass('"Thing_n_idx"')::text AS t`)).toEqual([{ t: '"Thing_n_idx"' }])

      // Two statements, the second fails: PostgreSQL's implicit transaction keeps neither.
      await write('20260101000002_broken', 'CREATE TABLE "Kept" ("id" TEXT);\nALTER TABLE "Missing" ADD COLUMN "x" INTEGER;\n')
      const error = await applyMigrations(db.target, { migrationsDir: dir }).catch((caught: unknown) => caught)
      expect(error).toMatchObject({ code: 'migration-failed', migration: '20260101000002_broken' })
      expect((error as Error).message).toMatch(/^Migration 20260101000002_broken failed: 42P01 relation "Missing" does not exist\b.*\. Nothing of it was kept/)
      expect(await db.sql(`SELECT to_regclass('"Kept"') AS t`)).toEqual([{ t: null }])
      const [failed] = await db.sql(`SELECT finished_at, logs, applied_steps_count FROM _prisma_migrations WHERE migration_name = '20260101000002_broken'`)
      expect(failed).toMatchObject({ finished_at: null, applied_steps_count: 0, logs: expect.stringContaining('relation "Missing" does not exist') })

      // As Prisma (P3009): nothing runs after a failed migration until it is marked rolled back.
      await expect(applyMigrations(db.target, { migrationsDir: dir })).rejects.toMatchObject({ code: 'failed-migration', migration: '20260101000002_broken' })
      await db.sql(`UPDATE _prisma_migrations SET rolled_back_at = now() WHERE finished_at IS NULL`)
      await writeFile(join(dir, '20260101000002_broken', 'migration.sql'), 'CREATE TABLE "Kept" ("id" TEXT);\n')
      expect((await applyMigrations(db.target, { migrationsDir: dir })).applied).toEqual(['20260101000002_broken'])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, TIMEOUT_MS)
})

describe.runIf(usesPostgres())('applyMigrations on PostgreSQL only', () => {
  it("honours the URL's ?schema= as Prisma does, and hands the database to examples/shared/database.ts with nothing left to apply", async () => {
    const db = await emptyPostgres()
    const withSchema = new URL(db.url!)
    withSchema.searchParams.set('schema', 'status')
    expect((await applyMigrations(withSchema.toString())).schema).toBe('status')
    expect((await history(db, 'status')).map((row) => row['migration_name'])).toEqual(PACKAGE_MIGRATIONS)
    await exerciseHandlers(db.prisma('status'), 'status')

    // The examples' own migrator (public schema) on a database migrated by applyMigrations.
    const other = await emptyPostgres()
    await applyMigrations(other.url!)
    const rows = await history(other)
    const example = await openDatabase({ url: other.url! })
    try {
      expect(await example.prisma.pipelineRun.count()).toBe(0)
    } finally {
      await example.close()
    }
    expect(await history(other)).toEqual(rows)
  }, TIMEOUT_MS)

  it("answers 503 naming the schema and the adapter's schema option when the app's adapter is given the URL's ?schema=, which it ignores", async () => {
    const db = await emptyPostgres()
    const withSchema = new URL(db.url!)
    withSchema.searchParams.set('schema', 'pipeline')
    await applyMigrations(withSchema.toString())
    // What a user writes first: the same URL for the adapter, which does not read ?schema=.
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: withSchema.toString() }) })
    const pool = new pg.Pool({ connectionString: db.url!, max: 1 })
    try {
      for (const store of [createPrismaStore({ prisma }), createPrismaStore({ prisma, pool })]) {
        const handlers = createPipelineStatusHandlers({ store, secret: 'migrate-secret', logger: { warn: () => {}, error: () => {} } })
        const response = await handlers.fetch(new Request('http://app.test/api/pipeline/any-run/status', { headers: { 'x-webhook-secret': 'migrate-secret' } }))
        expect(response.status).toBe(503)
        const problem = (await response.json()) as { code: string; detail: string }
        expect(problem.code).toBe('database_not_migrated')
        expect(problem.detail).toMatch(/^The table "(PipelineRun|StageOutput)" does not exist in (schema "public"|the schema of the connection's search_path \(normally "public"\))/)
        expect(problem.detail).toContain('`?schema=NAME` in the URL, which @prisma/adapter-pg ignores')
        expect(problem.detail).toContain("new PrismaPg({ connectionString }, { schema: 'NAME' }) and createPrismaStore({ prisma, schema: 'NAME' })")
      }
    } finally {
      await pool.end()
      await prisma.$disconnect()
    }
  }, TIMEOUT_MS)

  it("waits for Prisma's advisory lock and gives up after lockTimeoutMs, naming the holder (of this database only)", async () => {
    const db = await emptyPostgres()
    const other = await emptyPostgres()
    const holder = new pg.Client({ connectionString: db.url! })
    // A migration of another database holds the same key in its own: not this one's holder.
    const elsewhere = new pg.Client({ connectionString: other.url! })
    await holder.connect()
    await elsewhere.connect()
    try {
      await elsewhere.query('SELECT pg_advisory_lock(72707369)')
      const [{ pid }] = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid, pg_advisory_lock(72707369)')).rows as [{ pid: number }]
      await expect(applyMigrations(db.url!, { lockTimeoutMs: 200 })).rejects.toMatchObject({
        code: 'lock-timeout',
        message: expect.stringContaining(`Another migration holds Prisma's advisory lock 72707369 (server process ${pid}); gave up after 200 ms`),
      })
      await holder.query('SELECT pg_advisory_unlock(72707369)')
      expect((await applyMigrations(db.url!)).applied).toEqual(PACKAGE_MIGRATIONS)
    } finally {
      await holder.end()
      await elsewhere.end()
    }
  }, TIMEOUT_MS)

  it('uses one connection of a pg.Pool and releases it', async () => {
    const db = await emptyPostgres()
    const pool = new pg.Pool({ connectionString: db.url!, max: 1 })
    try {
      expect((await applyMigrations(pool)).applied).toEqual(PACKAGE_MIGRATIONS)
      expect(pool.idleCount).toBe(1)
      expect((await pool.query(`SELECT count(*)::int AS n FROM "PipelineRun"`)).rows).toEqual([{ n: 0 }])
    } finally {
      await pool.end()
    }
  }, TIMEOUT_MS)
})

const PGBOUNCER = toolForTests(pgbouncerTool('test/prisma/apply-migrations.test.ts', 'applyMigrations behind PgBouncer'))

describe.skipIf(!PGBOUNCER || !usesPostgres())('applyMigrations behind PgBouncer (needs DATABASE_URL)', () => {
  it('refuses a pooler in transaction mode before changing anything, naming DIRECT_DATABASE_URL; migrates through one in session mode', async () => {
    const db = await emptyPostgres()
    const transaction = await startPgBouncer({ databaseUrl: db.url!, poolMode: 'transaction', binary: PGBOUNCER as string })
    try {
      const error = await applyMigrations(transaction.url).catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(MigrationError)
      expect(error).toMatchObject({ code: 'transaction-pooler' })
      expect((error as Error).message).toMatch(
        /^The connection goes through a connection pooler in transaction mode \(PgBouncer's pool_mode = transaction, or a provider's pooled port\): two connections of this migration were served by the same server process \(\d+\), so Prisma's advisory lock 72707369/,
      )
      expect((error as Error).message).toContain('Nothing was changed. Migrate over a direct connection to PostgreSQL: set DIRECT_DATABASE_URL (or --database-url)')
      // Refused before the lock and the history: nothing to clean up on a pooled server connection.
      // (In this database: other tests' migrations hold the same key in theirs.)
      expect(await db.sql(`SELECT to_regclass('public._prisma_migrations') AS t`)).toEqual([{ t: null }])
      expect(await db.sql(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 72707369 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)).toEqual([{ n: 0 }])
    } finally {
      await transaction.stop()
    }

    const session = await startPgBouncer({ databaseUrl: db.url!, poolMode: 'session', binary: PGBOUNCER as string })
    try {
      expect((await applyMigrations(session.url)).applied).toEqual(PACKAGE_MIGRATIONS)
    } finally {
      await session.stop()
    }
  }, TIMEOUT_MS)
})
