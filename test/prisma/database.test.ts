import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { listMigrations, openDatabase } from '../../examples/shared/database.js'
import { createTestDatabase, usesPostgres } from '../setup/test-database.js'
import { toolForTests } from '../support/optional-tools.js'
import { type PgBouncer, pgbouncerTool, startPgBouncer } from '../support/pgbouncer.js'

const PGBOUNCER = toolForTests(pgbouncerTool())

interface MigrationRow {
  migration_name: string
  checksum: string
  finished_at: Date | null
}

describe('openDatabase', () => {
  it('keeps a PGlite data folder between opens and applies each migration once', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'pss-pglite-'))
    try {
      const first = await openDatabase({ dataDir })
      expect(first.kind).toBe('pglite')
      await first.prisma.pipelineRun.create({ data: { id: 'kept' } })
      await first.close()

      const second = await openDatabase({ dataDir })
      try {
        expect(await second.prisma.pipelineRun.findUnique({ where: { id: 'kept' } })).toMatchObject({ status: 'PENDING' })
        const applied = await second.prisma.$queryRawUnsafe<MigrationRow[]>('SELECT * FROM "_prisma_migrations"')
        expect(applied.map((row) => row.migration_name)).toEqual(listMigrations().map((m) => m.name))
        expect(applied.every((row) => /^[0-9a-f]{64}$/.test(row.checksum) && row.finished_at !== null)).toBe(true)
      } finally {
        await second.close()
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it(`applies migrations to ${usesPostgres() ? 'a PostgreSQL URL' : 'a fresh in-memory PGlite'} and records them as prisma migrate does`, async () => {
    const db = await createTestDatabase()
    try {
      expect(db.kind).toBe(usesPostgres() ? 'postgres' : 'pglite')
      if (db.url) {
        // Opening the same database again finds nothing left to apply.
        const again = await openDatabase({ url: db.url })
        await again.close()
      }
      const applied = await db.prisma.$queryRawUnsafe<MigrationRow[]>('SELECT * FROM "_prisma_migrations"')
      expect(applied.map((row) => row.migration_name)).toEqual(listMigrations().map((m) => m.name))
      expect(await db.prisma.pipelineRun.count()).toBe(0)
    } finally {
      await db.close()
    }
  })
})

describe.skipIf(!PGBOUNCER || !usesPostgres())('openDatabase behind a default PgBouncer (needs DATABASE_URL)', () => {
  it('sends the bounds as startup parameters on a direct URL, and behind the pooler connects without them, warning once with the fix', async () => {
    const db = await createTestDatabase()
    const started: PgBouncer[] = []
    try {
      const direct = await openDatabase({ url: db.url })
      try {
        expect(direct.bounds).toBe('connection')
        expect(await showBounds(direct.prisma)).toEqual({ statement: '10s', idle: '20s' })
      } finally {
        await direct.close()
      }

      // A default PgBouncer refuses statement_timeout as a startup parameter.
      const bouncer = await startPgBouncer({ databaseUrl: db.url as string, binary: PGBOUNCER as string })
      started.push(bouncer)
      const role = ((await db.prisma.$queryRawUnsafe<Array<{ role: string }>>('SELECT current_user AS role'))[0] as { role: string }).role
      const warnings: string[] = []
      const pooled = await openDatabase({ url: bouncer.url, logger: { warn: (message) => void warnings.push(message) } })
      try {
        expect(pooled.bounds).toBe('database')
        expect(await pooled.prisma.pipelineRun.count()).toBe(0)
        expect(await showBounds(pooled.prisma)).toEqual({ statement: '0', idle: '0' })
      } finally {
        await pooled.close()
      }
      expect(warnings).toEqual([
        'The connection pooler refused statement_timeout and idle_in_transaction_session_timeout as startup parameters, so the pool ' +
          'connects without them, and the database sets no statement_timeout and idle_in_transaction_session_timeout either: a ' +
          `statement that never ends holds its server connection. Fix: ALTER ROLE "${role}" SET statement_timeout = '10s'; ALTER ROLE ` +
          `"${role}" SET idle_in_transaction_session_timeout = '20s'; (docs/operations.md, "Behind a pooler, a proxy or a load balancer")`,
      ])

      // Set on the database (here rather than on the shared role), new server connections carry them: no warning.
      const name = new URL(db.url as string).pathname.slice(1)
      await db.prisma.$executeRawUnsafe(`ALTER DATABASE "${name}" SET statement_timeout = '10s'`)
      await db.prisma.$executeRawUnsafe(`ALTER DATABASE "${name}" SET idle_in_transaction_session_timeout = '20s'`)
      const fresh = await startPgBouncer({ databaseUrl: db.url as string, binary: PGBOUNCER as string })
      started.push(fresh)
      const quiet: string[] = []
      const configured = await openDatabase({ url: fresh.url, logger: { warn: (message) => void quiet.push(message) } })
      try {
        expect(configured.bounds).toBe('database')
        expect(await showBounds(configured.prisma)).toEqual({ statement: '10s', idle: '20s' })
      } finally {
        await configured.close()
      }
      expect(quiet).toEqual([])
    } finally {
      for (const bouncer of started) await bouncer.stop()
      await db.close()
    }
  }, 60_000)
})

async function showBounds(prisma: { $queryRawUnsafe<T>(sql: string): Promise<T> }): Promise<{ statement: string; idle: string }> {
  const rows = await prisma.$queryRawUnsafe<Array<{ statement: string; idle: string }>>(
    "SELECT current_setting('statement_timeout') AS statement, current_setting('idle_in_transaction_session_timeout') AS idle",
  )
  return rows[0] as { statement: string; idle: string }
}
