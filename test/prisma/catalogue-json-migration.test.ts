/**
 * Migration 20261207100000_catalogue_json turns the run's catalogue from jsonb into json (stored
 * as the text written: a run's first update no longer parses and compresses it into jsonb's binary
 * form) and replaces the stage update's write function, whose SQL wrote jsonb, and its read, which
 * now leaves out a catalogue the store knows by digest. Rows written before
 * keep their catalogue; the store writes the catalogue as the text it sends. On PostgreSQL when
 * `DATABASE_URL` is set (a throwaway database), else on embedded PGlite.
 */
import { createPrismaStore } from 'pipeline-status-sdk/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listMigrations } from '../../examples/shared/database.js'
import { applyStageUpdate, createRun, recordHeartbeat } from '../../src/core/operations.js'
import { storeFunctions } from '../../src/server/storage/sql/functions.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { openMigrationSession } from '../setup/migration-session.js'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'

const MIGRATION = '20261207100000_catalogue_json'
/** The functions of migration 20261207090000_store_functions (the write wrote the catalogue as jsonb; the read and the heartbeat returned it whole every time). */
const REPLACED_FUNCTIONS = ['pipeline_status_write_run_stage_9f805351', 'pipeline_status_read_run_stage_de89be8c', 'pipeline_status_touch_run_a3b48bf1']

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
      const before = await session.query<{ ok: boolean }>(`SELECT bool_and(to_regproc(name) IS NOT NULL) AS "ok" FROM unnest(ARRAY['${REPLACED_FUNCTIONS.join("','")}']) AS name`)
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
        `SELECT name, to_regproc(name) IS NOT NULL AS "ok" FROM unnest(ARRAY['${[...REPLACED_FUNCTIONS, ...functions].join("','")}']) AS name`,
      )
      expect(present).toEqual([...REPLACED_FUNCTIONS.map((name) => ({ name, ok: false })), ...functions.map((name) => ({ name, ok: true }))])
    } finally {
      await session.close()
    }
  })
})

type AnswerRow = Record<string, unknown>

/** `prisma` with every `$queryRawUnsafe` answer handed to `answer` (sql, parameters, rows), which returns the rows to answer with. */
function intercepted<Client extends object>(prisma: Client, answer: (sql: string, args: unknown[], rows: AnswerRow[]) => AnswerRow[]): Client {
  return new Proxy(prisma, {
    get: (target, key) =>
      key === '$queryRawUnsafe'
        ? async (sql: string, ...args: unknown[]) =>
            answer(sql, args, (await (target as { $queryRawUnsafe(sql: string, ...args: unknown[]): Promise<AnswerRow[]> }).$queryRawUnsafe(sql, ...args)))
        : Reflect.get(target, key, target),
  })
}

/** A row's catalogue columns as the database answered them (a function's row is JSON text in `row`). */
function catalogueColumns(row: AnswerRow): { catalogue: string | null; catalogueDigest: string | null } | undefined {
  const parsed = (typeof row['row'] === 'string' ? JSON.parse(row['row']) : row) as AnswerRow
  return 'catalogueDigest' in parsed ? { catalogue: parsed['catalogue'] as string | null, catalogueDigest: parsed['catalogueDigest'] as string | null } : undefined
}

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

  it('is read back by a stage update only while the store does not know it: later reads leave it out and give its digest', async () => {
    const reads: Array<{ catalogue: string | null; catalogueDigest: string | null }> = []
    // The stage update's reads, as the database answered them (through the function or inline).
    const recording = intercepted(db.prisma, (sql, args, rows) => {
      if (sql.includes('read_run_stage') || (sql.includes('LEFT JOIN') && args.length === 3)) for (const row of rows) reads.push(catalogueColumns(row) ?? { catalogue: 'none', catalogueDigest: null })
      return rows
    })
    const store = createPrismaStore({ prisma: recording })
    const stages = Array.from({ length: 12 }, (_, i) => ({ number: i + 1, name: `Digest stage ${i + 1}` }))
    await createRun(store, { id: 'digest', now: new Date(), catalogue: stages })
    for (const stageNumber of [1, 2, 3]) {
      const update = await applyStageUpdate(store, 'digest', makeStageUpdate({ stageNumber, stageName: `Digest stage ${stageNumber}`, status: 'COMPLETED' }), { stages, now: new Date() })
      expect(update.outcome).toBe('applied')
    }
    const [stored] = await db.prisma.$queryRawUnsafe<Array<{ digest: string }>>(`SELECT md5("catalogue"::text) AS "digest" FROM "PipelineRun" WHERE "id" = 'digest'`)
    const digest = stored?.digest
    // The first read brings the text (and its digest); the next ones only the digest.
    expect(reads).toEqual([
      { catalogue: JSON.stringify(stages), catalogueDigest: digest },
      { catalogue: null, catalogueDigest: digest },
      { catalogue: null, catalogueDigest: digest },
    ])
    expect((await store.getRun('digest'))?.run.catalogue).toEqual(stages)
  })

  it('is left out, once known, by the heartbeat and by the reads of runs with their stages (status, live streams), which give the same catalogue', async () => {
    const rows: Array<{ catalogue: string | null; catalogueDigest: string | null }> = []
    // Every row that carries a catalogue digest.
    const recording = intercepted(db.prisma, (_sql, _args, answer) => {
      for (const row of answer) {
        const columns = catalogueColumns(row)
        if (columns && columns.catalogueDigest !== null) rows.push(columns)
      }
      return answer
    })
    const store = createPrismaStore({ prisma: recording })
    const stages = Array.from({ length: 9 }, (_, i) => ({ number: i + 1, name: `Known stage ${i + 1}` }))
    await createRun(store, { id: 'known-a', now: new Date(), catalogue: stages })
    await createRun(store, { id: 'known-b', now: new Date(), catalogue: stages })
    for (const runId of ['known-a', 'known-b']) {
      await applyStageUpdate(store, runId, makeStageUpdate({ stageNumber: 1, stageName: 'Known stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
      await applyStageUpdate(store, runId, makeStageUpdate({ stageNumber: 2, stageName: 'Known stage 2', status: 'PROCESSING' }), { stages, now: new Date() })
    }
    rows.length = 0
    const beat = await recordHeartbeat(store, 'known-a', { stageNumber: 2, intervalMs: 10_000 }, { now: new Date() })
    const one = await store.getRun('known-a')
    const many = await store.getRuns(['known-a', 'known-b'], { streamedText: false })
    expect(beat.outcome).toBe('recorded')
    // One row per read of a run (the heartbeat's, getRun's first row, getRuns' first row per run): digests only.
    expect(rows).toHaveLength(4)
    expect(rows.every((row) => row.catalogue === null && /^[0-9a-f]{32}$/.test(row.catalogueDigest ?? ''))).toBe(true)
    expect([one?.run.catalogue, many.get('known-a')?.run.catalogue, many.get('known-b')?.run.catalogue]).toEqual([stages, stages, stages])
    expect(one?.stages.map((stage) => stage.stageNumber)).toEqual([1, 2])
  })

  it('reads the catalogue whole again when a read left out one the store no longer knows', async () => {
    let forged = false
    // A read that answers as if the store had sent a digest it has since forgotten: text left out, an unknown digest.
    const forgetting = intercepted(db.prisma, (sql, _args, rows) => {
      if (forged || !sql.includes('read_run_stage') || typeof rows[0]?.['row'] !== 'string') return rows
      forged = true
      return [{ row: JSON.stringify({ ...(JSON.parse(rows[0]['row']) as AnswerRow), catalogue: null, catalogueDigest: '0'.repeat(32) }) }]
    })
    const store = createPrismaStore({ prisma: forgetting })
    const stages = [
      { number: 1, name: 'Forgotten 1' },
      { number: 2, name: 'Forgotten 2' },
    ]
    await createRun(store, { id: 'forgotten', now: new Date(), catalogue: stages })
    const update = await applyStageUpdate(store, 'forgotten', makeStageUpdate({ stageNumber: 2, stageName: 'Forgotten 2', status: 'PROCESSING' }), { stages, now: new Date() })
    expect([forged, update.outcome]).toEqual([true, 'applied'])
    expect((await store.getRun('forgotten'))?.run.catalogue).toEqual(stages)
  })
})
