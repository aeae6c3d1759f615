import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { listMigrations, openDatabase } from '../../examples/shared/database.js'
import { createTestDatabase, usesPostgres } from '../setup/test-database.js'

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
