/**
 * The runs-collection migration is additive: rows written before it (here by the migrations
 * before it, with only their own columns) read afterwards as pipeline `default`, no catalogue (=
 * the default pipeline's current one), no tags, metadata `{}` and no start. On PostgreSQL when
 * `DATABASE_URL` is set (a throwaway database), else on embedded PGlite.
 */
import { describe, expect, it } from 'vitest'
import { listMigrations } from '../../examples/shared/database.js'
import { openMigrationSession as openSession } from '../setup/migration-session.js'

const MIGRATION = '20261206090000_runs_collection'

describe('the runs-collection migration', () => {
  it('leaves existing rows as pipeline default with no catalogue, no tags and {} metadata', async () => {
    const session = await openSession()
    try {
      const migrations = listMigrations()
      const at = migrations.findIndex((migration) => migration.name === MIGRATION)
      expect(at).toBeGreaterThan(0)
      for (const migration of migrations.slice(0, at)) await session.exec(migration.sql)
      // A row as the schema before it had them, finished and not.
      await session.exec(
        `INSERT INTO "PipelineRun" ("id", "status", "updatedAt") VALUES ('old-pending', 'PENDING', now()), ('old-done', 'COMPLETED', now())`,
      )
      for (const migration of migrations.slice(at)) await session.exec(migration.sql)
      const rows = await session.query<Record<string, unknown>>(
        `SELECT "id", "pipeline", "catalogue", "tags"::text AS "tags", "metadata"::text AS "metadata", "startedAt" FROM "PipelineRun" ORDER BY "id"`,
      )
      expect(rows).toEqual([
        { id: 'old-done', pipeline: 'default', catalogue: null, tags: '{}', metadata: '{}', startedAt: null },
        { id: 'old-pending', pipeline: 'default', catalogue: null, tags: '{}', metadata: '{}', startedAt: null },
      ])
      // A row written later without the new columns (an app's own INSERT) gets the same.
      await session.exec(`INSERT INTO "PipelineRun" ("id", "updatedAt") VALUES ('new-bare', now())`)
      const [bare] = await session.query<Record<string, unknown>>(`SELECT "pipeline", "tags"::text AS "tags", "metadata"::text AS "metadata" FROM "PipelineRun" WHERE "id" = 'new-bare'`)
      expect(bare).toEqual({ pipeline: 'default', tags: '{}', metadata: '{}' })
    } finally {
      await session.close()
    }
  })
})
