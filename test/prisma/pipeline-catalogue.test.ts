/**
 * A pipeline's catalogue kept once under its digest (migration 20261207110000_pipeline_catalogue,
 * `WRITE_CATALOGUE_DIGEST` in src/server/storage/sql/functions.ts): a store sends a catalogue's
 * text with the first run's first update only, and each later run's first update the digest
 * alone; every run still stores its own catalogue, the same as before; a digest whose row is gone
 * is answered without a write and sent again whole.
 */
import { createHash } from 'node:crypto'
import { createPrismaStore } from 'pipeline-status-sdk/server'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listMigrations } from '../../examples/shared/database.js'
import { applyStageUpdate, createRun } from '../../src/core/operations.js'
import { CATALOGUE_DIGEST_UNKNOWN, STORE_FUNCTIONS_MIGRATION, storeFunctions } from '../../src/server/storage/sql/functions.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { openMigrationSession } from '../setup/migration-session.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'

const write = storeFunctions().writeRunStage

/** The write function's calls through `prisma`: per call, whether the catalogue's text (`$9`) and its digest (`$31`) were sent. */
function recordingWrites<Client extends object>(prisma: Client, calls: Array<{ text: boolean; digest: string | null }>): Client {
  return new Proxy(prisma, {
    get: (target, key) =>
      key === '$queryRawUnsafe'
        ? (sql: string, ...args: unknown[]) => {
            if (sql.startsWith(`SELECT ${write.name}(`)) calls.push({ text: args[8] !== null, digest: args[30] as string | null })
            return (target as { $queryRawUnsafe(sql: string, ...args: unknown[]): Promise<unknown> }).$queryRawUnsafe(sql, ...args)
          }
        : Reflect.get(target, key, target),
  })
}

const MIGRATION = '20261207110000_pipeline_catalogue'
/** The write function of migration 20261207100000_catalogue_json, which took no digest. */
const REPLACED_WRITE = 'pipeline_status_write_run_stage_9894af59'

describe('the pipeline-catalogue migration', () => {
  it('is the migration of the current functions: it replaces the write function and leaves stored catalogues alone', async () => {
    expect(STORE_FUNCTIONS_MIGRATION).toBe(MIGRATION)
    const session = await openMigrationSession()
    try {
      const migrations = listMigrations()
      const at = migrations.findIndex((migration) => migration.name === MIGRATION)
      expect(at).toBeGreaterThan(0)
      for (const migration of migrations.slice(0, at)) await session.exec(migration.sql)
      await session.exec(`INSERT INTO "PipelineRun" ("id", "updatedAt", "catalogue") VALUES ('before', now(), '[{"number":1,"name":"Fetch"}]')`)
      expect(await session.query(`SELECT to_regproc('${REPLACED_WRITE}') IS NOT NULL AS "ok"`)).toEqual([{ ok: true }])
      for (const migration of migrations.slice(at)) await session.exec(migration.sql)
      const functions = Object.values(storeFunctions()).map((fn) => fn.name.replaceAll('"', ''))
      const present = await session.query(`SELECT name, to_regproc(name) IS NOT NULL AS "ok" FROM unnest(ARRAY['${[REPLACED_WRITE, ...functions].join("','")}']) AS name`)
      expect(present).toEqual([{ name: REPLACED_WRITE, ok: false }, ...functions.map((name) => ({ name, ok: true }))])
      expect(await session.query(`SELECT "catalogue"::text AS "catalogue" FROM "PipelineRun"`)).toEqual([{ catalogue: '[{"number":1,"name":"Fetch"}]' }])
      expect(await session.query(`SELECT count(*)::int AS "n" FROM "PipelineCatalogue"`)).toEqual([{ n: 0 }])
    } finally {
      await session.close()
    }
  })
})

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex')

describe('a pipeline’s catalogue kept once under its digest', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase()
  })
  afterAll(() => db?.close())

  const stagesOf = (name: string, count: number) => Array.from({ length: count }, (_, i) => ({ number: i + 1, name: `${name} ${i + 1}` }))
  const catalogueOf = async (runId: string) =>
    (await db.prisma.$queryRawUnsafe<Array<{ catalogue: string | null }>>(`SELECT "catalogue"::text AS "catalogue" FROM "PipelineRun" WHERE "id" = $1`, runId))[0]?.catalogue
  const kept = () => db.prisma.$queryRawUnsafe<Array<{ digest: string; stages: string }>>(`SELECT "digest", "stages"::text AS "stages" FROM "PipelineCatalogue" ORDER BY "createdAt", "digest"`)

  it('is sent whole by the first run’s first update only, then by digest, and every run stores the same text', async () => {
    const calls: Array<{ text: boolean; digest: string | null }> = []
    const store = createPrismaStore({ prisma: recordingWrites(db.prisma, calls) })
    const stages = stagesOf('Kept stage', 40)
    const text = JSON.stringify(stages)
    for (const id of ['kept-1', 'kept-2', 'kept-3']) {
      await createRun(store, { id, now: new Date() })
      const first = await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, stageName: 'Kept stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
      expect(first.outcome).toBe('applied')
    }
    // A later update of a run fills no catalogue: neither is sent.
    await applyStageUpdate(store, 'kept-1', makeStageUpdate({ stageNumber: 1, stageName: 'Kept stage 1', status: 'COMPLETED' }), { stages, now: new Date() })
    expect(calls).toEqual([
      { text: true, digest: sha256(text) },
      { text: false, digest: sha256(text) },
      { text: false, digest: sha256(text) },
      { text: false, digest: null },
    ])
    expect(await kept()).toEqual([{ digest: sha256(text), stages: text }])
    for (const id of ['kept-1', 'kept-2', 'kept-3']) {
      expect(await catalogueOf(id)).toBe(text)
      expect((await store.getRun(id))?.run.catalogue).toEqual(stages)
    }
  })

  it('is sent whole by a store’s first run created with it only (POST /runs, createRun), then by digest, and every run stores the same text', async () => {
    const calls: Array<{ text: boolean; digest: string | null }> = []
    const insert = storeFunctions().insertRun
    // The insert's call: its catalogue is `$10`, its digest `$13`.
    const prisma = new Proxy(db.prisma, {
      get: (target, key) =>
        key === '$queryRawUnsafe'
          ? (sql: string, ...args: unknown[]) => {
              if (sql.startsWith(`SELECT ${insert.name}(`)) calls.push({ text: args[9] !== null, digest: args[12] as string | null })
              return target.$queryRawUnsafe(sql, ...args)
            }
          : Reflect.get(target, key, target),
    })
    const store = createPrismaStore({ prisma })
    const stages = stagesOf('Created stage', 30)
    const text = JSON.stringify(stages)
    const created = []
    for (const id of ['created-1', 'created-2', 'created-3']) created.push((await createRun(store, { id, now: new Date(), catalogue: stages })).created)
    // A second create of an existing id: created false, the stored run kept.
    created.push((await createRun(store, { id: 'created-1', now: new Date(), catalogue: stages })).created)
    expect(created).toEqual([true, true, true, false])
    expect(calls).toEqual([
      { text: true, digest: sha256(text) },
      { text: false, digest: sha256(text) },
      { text: false, digest: sha256(text) },
      { text: false, digest: sha256(text) },
    ])
    expect((await kept()).filter((row) => row.digest === sha256(text))).toEqual([{ digest: sha256(text), stages: text }])
    for (const id of ['created-1', 'created-2', 'created-3']) {
      expect(await catalogueOf(id)).toBe(text)
      expect((await store.getRun(id))?.run.catalogue).toEqual(stages)
    }
    // A run created without a catalogue sends neither.
    await createRun(store, { id: 'created-bare', now: new Date() })
    expect(calls.at(-1)).toEqual({ text: false, digest: null })
    expect(await catalogueOf('created-bare')).toBeNull()
  })

  it('keeps one row per distinct catalogue, shared by stores on the same database', async () => {
    const stages = stagesOf('Shared stage', 7)
    const text = JSON.stringify(stages)
    const callsA: Array<{ text: boolean; digest: string | null }> = []
    const callsB: Array<{ text: boolean; digest: string | null }> = []
    const a = createPrismaStore({ prisma: recordingWrites(db.prisma, callsA) })
    const b = createPrismaStore({ prisma: recordingWrites(db.prisma, callsB) })
    for (const [store, id] of [[a, 'shared-a'], [b, 'shared-b']] as const) {
      await createRun(store, { id, now: new Date() })
      await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, stageName: 'Shared stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
    }
    // Each store sends the text once of its own (it cannot know another has kept it); the row is one.
    expect([callsA, callsB]).toEqual([[{ text: true, digest: sha256(text) }], [{ text: true, digest: sha256(text) }]])
    expect((await kept()).filter((row) => row.digest === sha256(text))).toEqual([{ digest: sha256(text), stages: text }])
    expect([await catalogueOf('shared-a'), await catalogueOf('shared-b')]).toEqual([text, text])
  })

  it('deleted by hand: the next first update is answered without a write, sent again whole, stored right, and kept again, said once', async () => {
    const calls: Array<{ text: boolean; digest: string | null }> = []
    const warnings: string[] = []
    const logger = { warn: (message: string) => void warnings.push(message), error: () => undefined }
    const store = createPrismaStore({ prisma: recordingWrites(db.prisma, calls), logger })
    const stages = stagesOf('Gone stage', 5)
    const text = JSON.stringify(stages)
    await createRun(store, { id: 'gone-1', now: new Date() })
    await applyStageUpdate(store, 'gone-1', makeStageUpdate({ stageNumber: 1, stageName: 'Gone stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
    await db.prisma.$executeRawUnsafe(`DELETE FROM "PipelineCatalogue" WHERE "digest" = $1`, sha256(text))
    await createRun(store, { id: 'gone-2', now: new Date() })
    const second = await applyStageUpdate(store, 'gone-2', makeStageUpdate({ stageNumber: 1, stageName: 'Gone stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
    expect(second.outcome).toBe('applied')
    expect(calls).toEqual([
      { text: true, digest: sha256(text) },
      { text: false, digest: sha256(text) },
      { text: true, digest: sha256(text) },
    ])
    expect(await catalogueOf('gone-2')).toBe(text)
    expect((await kept()).filter((row) => row.digest === sha256(text))).toEqual([{ digest: sha256(text), stages: text }])
    expect(warnings).toEqual([expect.stringContaining(`"PipelineCatalogue" no longer holds catalogue ${sha256(text)}, which this store kept there (a row deleted?)`)])
    // Gone again: stored right again, not said twice.
    await db.prisma.$executeRawUnsafe(`DELETE FROM "PipelineCatalogue" WHERE "digest" = $1`, sha256(text))
    await createRun(store, { id: 'gone-3', now: new Date() })
    await applyStageUpdate(store, 'gone-3', makeStageUpdate({ stageNumber: 1, stageName: 'Gone stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
    expect(await catalogueOf('gone-3')).toBe(text)
    expect(warnings).toHaveLength(1)
  })

  it.runIf(usesPostgres())('the function answers an unknown digest with CATALOGUE_DIGEST_UNKNOWN and writes nothing', async () => {
    const store = createPrismaStore({ prisma: db.prisma })
    await createRun(store, { id: 'unknown-digest', now: new Date() })
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      const before = (await client.query(`SELECT "version", "catalogue" FROM "PipelineRun" WHERE "id" = 'unknown-digest'`)).rows
      // The run's first update by the function's own call, with a digest no row has.
      const at = new Date().toISOString()
      const values = [
        'unknown-digest', 0, 'PROCESSING', null, null, null, at, 1, null, null, null, at,
        crypto.randomUUID(), 1, 'Stage 1', 'PROCESSING', null, null, null, at, at, at, null, null, null, null, null, [], null, null,
        '0'.repeat(64),
      ]
      const answer = await client.query<{ written: number | null }>(write.call, values)
      expect(answer.rows).toEqual([{ written: CATALOGUE_DIGEST_UNKNOWN }])
      expect((await client.query(`SELECT "version", "catalogue" FROM "PipelineRun" WHERE "id" = 'unknown-digest'`)).rows).toEqual(before)
      expect((await client.query(`SELECT count(*)::int AS "n" FROM "StageOutput" WHERE "runId" = 'unknown-digest'`)).rows).toEqual([{ n: 0 }])
    } finally {
      await client.end()
    }
  })

  it.runIf(usesPostgres())('a pool with unnamed statements (behind a transaction pooler) sends it by digest too', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    try {
      const store = createPrismaStore({ prisma: db.prisma, pool, namedStatements: false })
      const stages = stagesOf('Pooled stage', 12)
      const text = JSON.stringify(stages)
      for (const id of ['pooled-1', 'pooled-2']) {
        await createRun(store, { id, now: new Date() })
        const update = await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, stageName: 'Pooled stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
        expect(update.outcome).toBe('applied')
      }
      expect([await catalogueOf('pooled-1'), await catalogueOf('pooled-2')]).toEqual([text, text])
      expect((await kept()).filter((row) => row.digest === sha256(text))).toEqual([{ digest: sha256(text), stages: text }])
    } finally {
      await pool.end()
    }
  })
})
