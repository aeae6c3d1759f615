/**
 * A statement sent inline with the catalogue table (`"PipelineCatalogue"`, src/server/storage/
 * catalogue-table.ts) that PostgreSQL refuses with "no such table" or "no such column" (42P01,
 * 42703) is blamed on the catalogue table only when the error names it: a column missing from the
 * run table (its migration not applied) is said as what it is, with its fix, and leaves the
 * catalogue table in use. On real PostgreSQL, through a pool with named statements (so inline).
 */
import { createPrismaStore, StoreUnavailableError } from 'pipeline-status-sdk/server'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRun } from '../../src/core/operations.js'
import { buildStatements } from '../../src/server/storage/sql/statements.js'
import { resolveTableNames } from '../../src/server/storage/table-names.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'

const inline = buildStatements(resolveTableNames({}, {}))
/** The run inserts sent inline, by form. */
const INSERTS = new Map([
  [inline.insertRun, 'insert'],
  [inline.insertRunKeeping, 'insert keeping'],
  [inline.insertRunByDigest, 'insert by digest'],
])

describe.runIf(usesPostgres())('the catalogue table blamed only for its own errors (real PostgreSQL)', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase()
  })
  afterAll(() => db?.close())

  /** A store sending its statements inline on a pool with named statements, recording the run inserts it sends and what it logs. */
  function inlineStore() {
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    const inserts: string[] = []
    const warnings: string[] = []
    const recorded = {
      query: (config: { name?: string; text: string; values: unknown[] }) => {
        const form = INSERTS.get(config.text)
        if (form) inserts.push(form)
        return pool.query(config)
      },
    }
    const logger = { warn: (message: string) => void warnings.push(message), error: () => undefined }
    const store = createPrismaStore({ prisma: db.prisma, pool: recorded, namedStatements: true, logger })
    return { store, inserts, warnings, end: () => pool.end() }
  }

  const RESTORE_METADATA = `ALTER TABLE "PipelineRun" ADD COLUMN IF NOT EXISTS "metadata" JSONB NOT NULL DEFAULT '{}'`
  const stages = [
    { number: 1, name: 'Fetch' },
    { number: 2, name: 'Load' },
  ]

  it('a run table without a column of its migration: the real cause and its fix, nothing said of the catalogue table, which stays in use', async () => {
    const { store, inserts, warnings, end } = inlineStore()
    try {
      // The runs-collection migration's column, as if that migration were not applied.
      await db.prisma.$executeRawUnsafe(`ALTER TABLE "PipelineRun" DROP COLUMN "metadata"`)
      const refused = await createRun(store, { id: 'blame-1', now: new Date(), catalogue: stages }).then(
        () => undefined,
        (error: unknown) => error,
      )
      expect(refused).toBeInstanceOf(StoreUnavailableError)
      expect(refused).toMatchObject({ code: 'database_not_migrated' })
      expect((refused as Error).message).toContain('The column "metadata" does not exist')
      expect((refused as Error).message).toContain('npx pipeline-status migrate')
      // Only the statement with the table was sent: the error was not taken for the table's, so not sent again without it.
      expect(inserts).toEqual(['insert keeping'])
      expect(warnings).toEqual([])

      // The migration applied: the table is still used, the catalogue kept once and then sent by its digest.
      await db.prisma.$executeRawUnsafe(RESTORE_METADATA)
      expect((await createRun(store, { id: 'blame-2', now: new Date(), catalogue: stages })).created).toBe(true)
      expect((await createRun(store, { id: 'blame-3', now: new Date(), catalogue: stages })).created).toBe(true)
      expect(inserts).toEqual(['insert keeping', 'insert keeping', 'insert by digest'])
      expect(warnings).toEqual([])
      expect((await store.getRun('blame-3'))?.run.catalogue).toEqual(stages)
    } finally {
      await db.prisma.$executeRawUnsafe(RESTORE_METADATA)
      await end()
    }
  })

  it('a column of the catalogue table gone, or the table: blamed on it, said once, the run stored without it', async () => {
    for (const [what, drop, restore] of [
      ['a column', `ALTER TABLE "PipelineCatalogue" RENAME COLUMN "stages" TO "stages_gone"`, `ALTER TABLE "PipelineCatalogue" RENAME COLUMN "stages_gone" TO "stages"`],
      ['the table', `ALTER TABLE "PipelineCatalogue" RENAME TO "PipelineCatalogue_gone"`, `ALTER TABLE "PipelineCatalogue_gone" RENAME TO "PipelineCatalogue"`],
    ] as const) {
      const { store, inserts, warnings, end } = inlineStore()
      const id = what === 'a column' ? 'gone-column' : 'gone-table'
      try {
        expect((await createRun(store, { id: `${id}-0`, now: new Date(), catalogue: stages })).created).toBe(true)
        await db.prisma.$executeRawUnsafe(drop)
        // By its digest (kept), or another catalogue whole: either statement finds the table's part gone.
        const catalogue = what === 'a column' ? stages : [...stages, { number: 3, name: 'Report' }]
        expect((await createRun(store, { id, now: new Date(), catalogue })).created).toBe(true)
        expect(inserts).toEqual(['insert keeping', what === 'a column' ? 'insert by digest' : 'insert keeping', 'insert'])
        expect(warnings).toHaveLength(1)
        expect(warnings[0]).toContain("send each run's catalogue whole")
        expect(warnings[0]).toContain('a statement found it gone')
        expect((await store.getRun(id))?.run.catalogue).toEqual(catalogue)
      } finally {
        await db.prisma.$executeRawUnsafe(restore)
        await end()
      }
    }
  })
})
