/**
 * Migration 20261207100000_catalogue_json turns the run's catalogue from jsonb into json (stored
 * as the text written: a run's first update no longer parses and compresses it into jsonb's binary
 * form) and replaces the stage update's write function, whose SQL wrote jsonb. Rows written before
 * keep their catalogue; the store writes the catalogue as the text it sends. On PostgreSQL when
 * `DATABASE_URL` is set (a throwaway database), else on embedded PGlite.
 */
import { createPrismaStore } from 'pipeline-status-sdk/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listMigrations } from '../../examples/shared/database.js'
import { applyStageUpdate, createRun } from '../../src/core/operations.js'
import { STORE_FUNCTIONS_MIGRATION, storeFunctions } from '../../src/server/storage/sql/functions.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { openMigrationSession } from '../setup/migration-session.js'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'

const MIGRATION = '20261207100000_catalogue_json'
/** The write function of migration 20261207090000_store_functions (its SQL wrote the catalogue as jsonb). */
const REPLACED_WRITE_FUNCTION = 'pipeline_status_write_run_stage_9f805351'

describe('the catalogue-json migration', () => {
  it('keeps every catalogue written before it, as json, and replaces the write function', async () => {
    const session = await openMigrationSession()
    try {
      const migrations = listMigrations()
      const at = migrations.findIndex((migration) => migration.name === MIGRATION)
      expect(at).toBeGreaterThan(0)
      for (const migration of migrations.slice(0, at)) await session.exec(migration.sql)
      const catalogue = [
        { number: 1, name: 'Fetch "sources"' },
        { number: 2, name: 'Résumé ✓' },
      ]
      await session.exec(
        `INSERT INTO "PipelineRun" ("id", "updatedAt", "catalogue") VALUES ('with', now(), '${JSON.stringify(catalogue)}'::jsonb), ('without', now(), NULL)`,
      )
      const before = await session.query<{ ok: boolean }>(`SELECT to_regproc('${REPLACED_WRITE_FUNCTION}') IS NOT NULL AS "ok"`)
      expect(before).toEqual([{ ok: true }])

      for (const migration of migrations.slice(at)) await session.exec(migration.sql)

      const type = await session.query<{ type: string }>(
        `SELECT format_type(atttypid, atttypmod) AS "type" FROM pg_attribute WHERE attrelid = '"PipelineRun"'::regclass AND attname = 'catalogue'`,
      )
      expect(type).toEqual([{ type: 'json' }])
      const rows = await session.query<{ id: string; catalogue: string | null }>(`SELECT "id", "catalogue"::text AS "catalogue" FROM "PipelineRun" ORDER BY "id"`)
      expect(rows.map((row) => [row.id, row.catalogue === null ? null : JSON.parse(row.catalogue)])).toEqual([
        ['with', catalogue],
        ['without', null],
      ])
      const functions = Object.values(storeFunctions()).map((fn) => fn.name.replaceAll('"', ''))
      const present = await session.query<{ name: string; ok: boolean }>(
        `SELECT name, to_regproc(name) IS NOT NULL AS "ok" FROM unnest(ARRAY['${[REPLACED_WRITE_FUNCTION, ...functions].join("','")}']) AS name`,
      )
      expect(present).toEqual([{ name: REPLACED_WRITE_FUNCTION, ok: false }, ...functions.map((name) => ({ name, ok: true }))])
    } finally {
      await session.close()
    }
  })

  it('is the migration that creates the functions of the current code', () => {
    expect(STORE_FUNCTIONS_MIGRATION).toBe(MIGRATION)
  })
})

describe('a run’s catalogue in the json column', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase()
  })
  afterAll(() => db?.close())

  it('is stored as the text the store sent, by a run’s creation and by its first stage update', async () => {
    const store = createPrismaStore({ prisma: db.prisma })
    // Keys in the order the store writes them; jsonb would have stored "name" first.
    const stages = [
      { number: 1, name: 'Plan' },
      { number: 2, name: 'Write "draft"' },
    ]
    const expected = JSON.stringify(stages)
    expect((await createRun(store, { id: 'created', now: new Date(), catalogue: stages })).created).toBe(true)
    await createRun(store, { id: 'updated', now: new Date() })
    const update = await applyStageUpdate(store, 'updated', makeStageUpdate({ stageNumber: 1, stageName: 'Plan', status: 'PROCESSING' }), { stages, now: new Date() })
    expect(update.outcome).toBe('applied')
    const rows = await db.prisma.$queryRawUnsafe<Array<{ id: string; catalogue: string }>>(
      `SELECT "id", "catalogue"::text AS "catalogue" FROM "PipelineRun" WHERE "id" IN ('created', 'updated') ORDER BY "id"`,
    )
    expect(rows).toEqual([
      { id: 'created', catalogue: expected },
      { id: 'updated', catalogue: expected },
    ])
    expect((await store.getRun('updated'))?.run.catalogue).toEqual(stages)
  })
})
