/**
 * A pipeline's catalogue kept once under its digest (migration 20261207110000_pipeline_catalogue,
 * `WRITE_CATALOGUE_DIGEST` in src/server/storage/sql/functions.ts, the SQL in
 * src/server/storage/sql/catalogue.ts): a store sends a catalogue's text with the first run's
 * first update only, and each later run's first update the digest alone; every run still stores
 * its own catalogue, the same as before; a digest whose row is gone is answered without a write
 * and sent again whole. The same through the functions and through the statements sent inline (a
 * pool with named statements, `@@map` names); without the catalogue table the text is sent, said once.
 */
import { readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { createPrismaStore } from 'pipeline-status-sdk/server'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listMigrations } from '../../examples/shared/database.js'
import { applyStageUpdate, createRun } from '../../src/core/operations.js'
import { CATALOGUE_TABLE_PROBE } from '../../src/server/storage/catalogue-table.js'
import { CATALOGUE_DIGEST_UNKNOWN, STORE_FUNCTIONS_MIGRATION, storeFunctions } from '../../src/server/storage/sql/functions.js'
import { buildStatements, type StoreStatements } from '../../src/server/storage/sql/statements.js'
import { resolveTableNames } from '../../src/server/storage/table-names.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { MAPPED_NAMES } from '../support/mapped-names.js'
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

/** One statement sent inline that may fill a run's catalogue: which, and whether its parameters carried the catalogue's text and which digest. */
interface InlineWrite {
  statement: 'write' | 'write keeping' | 'write by digest' | 'insert' | 'insert keeping' | 'insert by digest'
  text: boolean
  digest: string | null
}

/**
 * Records the statements of `statements` that may fill a run's catalogue into `writes`: the stage
 * write's text is `$9` and its digest `$31`, the insert's `$10` and `$13`; the plain statements take no digest.
 */
function inlineWrites(statements: StoreStatements, writes: InlineWrite[]): (text: string, values: readonly unknown[]) => void {
  // Each form: its name, the text's index, the digest's (none: the statement's own values only) and how many values it takes.
  const forms = new Map<string, [InlineWrite['statement'], number, number | undefined, number]>([
    [statements.writeRunStage, ['write', 8, undefined, 30]],
    [statements.writeRunStageKeeping, ['write keeping', 8, 30, 31]],
    [statements.writeRunStageByDigest, ['write by digest', 8, 30, 31]],
    [statements.insertRun, ['insert', 9, undefined, 12]],
    [statements.insertRunKeeping, ['insert keeping', 9, 12, 13]],
    [statements.insertRunByDigest, ['insert by digest', 9, 12, 13]],
  ])
  return (text, values) => {
    const form = forms.get(text)
    if (!form) return
    const [statement, textAt, digestAt, count] = form
    expect(values).toHaveLength(count)
    writes.push({ statement, text: values[textAt] !== null, digest: digestAt === undefined ? null : (values[digestAt] as string | null) })
  }
}

/** `prisma` with each raw query's text and values given to `record` first. */
function recordingRaw<Client extends object>(prisma: Client, record: (text: string, values: readonly unknown[]) => void): Client {
  return new Proxy(prisma, {
    get: (target, key) =>
      key === '$queryRawUnsafe'
        ? (sql: string, ...args: unknown[]) => {
            record(sql, args)
            return (target as { $queryRawUnsafe(sql: string, ...args: unknown[]): Promise<unknown> }).$queryRawUnsafe(sql, ...args)
          }
        : Reflect.get(target, key, target),
  })
}

/** The statements a store of the default names sends inline. */
const inline = buildStatements(resolveTableNames({}, {}))

function warnings(): { warn: (message: string) => void; error: () => void; messages: string[] } {
  const messages: string[] = []
  return { warn: (message) => void messages.push(message), error: () => undefined, messages }
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
  /** A store on a pool of named statements (so sent inline), connected as `connectionString`, recording its inline writes. */
  const namedInlineStore = (connectionString: string) => {
    const pool = new pg.Pool({ connectionString, max: 2 })
    const writes: InlineWrite[] = []
    const record = inlineWrites(inline, writes)
    const recorded = { query: (config: { name?: string; text: string; values: unknown[] }) => (record(config.text, config.values), pool.query(config)) }
    const logger = warnings()
    const store = createPrismaStore({ prisma: db.prisma, pool: recorded, namedStatements: true, logger })
    return { store, writes, logger, end: () => pool.end() }
  }
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

  it('in a table of another name (names.PipelineCatalogue) with the runs and stages default: the functions, which name "PipelineCatalogue", are not called; inline statements keep it there', async () => {
    await db.prisma.$executeRawUnsafe(`CREATE TABLE "renamed_catalogue" (LIKE "PipelineCatalogue" INCLUDING ALL)`)
    const writes: InlineWrite[] = []
    const functionCalls: string[] = []
    const renamed = buildStatements(resolveTableNames({}, { names: { PipelineCatalogue: { table: 'renamed_catalogue' } } }))
    const record = inlineWrites(renamed, writes)
    const prisma = recordingRaw(db.prisma, (text, values) => {
      if (Object.values(storeFunctions()).some((fn) => text.includes(fn.name))) functionCalls.push(text.slice(0, 60))
      record(text, values)
    })
    const store = createPrismaStore({ prisma, names: { PipelineCatalogue: { table: 'renamed_catalogue' } } })
    const stages = stagesOf('Renamed table stage', 9)
    const text = JSON.stringify(stages)
    for (const id of ['renamed-1', 'renamed-2']) {
      await createRun(store, { id, now: new Date() })
      const first = await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, stageName: 'Renamed table stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
      expect(first.outcome).toBe('applied')
      expect(await catalogueOf(id)).toBe(text)
    }
    expect(functionCalls).toEqual([])
    expect(writes.filter((w) => w.statement.startsWith('write'))).toEqual([
      { statement: 'write keeping', text: true, digest: sha256(text) },
      { statement: 'write by digest', text: false, digest: sha256(text) },
    ])
    const inRenamed = await db.prisma.$queryRawUnsafe<Array<{ digest: string }>>(`SELECT "digest" FROM "renamed_catalogue"`)
    expect(inRenamed).toEqual([{ digest: sha256(text) }])
    expect((await kept()).filter((row) => row.digest === sha256(text))).toEqual([])
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

  it.runIf(usesPostgres())('the function, and the statement sent inline, answer an unknown digest with CATALOGUE_DIGEST_UNKNOWN and write nothing', async () => {
    const store = createPrismaStore({ prisma: db.prisma })
    await createRun(store, { id: 'unknown-digest', now: new Date() })
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      const before = (await client.query(`SELECT "version", "catalogue" FROM "PipelineRun" WHERE "id" = 'unknown-digest'`)).rows
      // The run's first update by the function's own call and by the inline statement, with a digest no row has.
      const at = new Date().toISOString()
      const values = [
        'unknown-digest', 0, 'PROCESSING', null, null, null, at, 1, null, null, null, at,
        crypto.randomUUID(), 1, 'Stage 1', 'PROCESSING', null, null, null, at, at, at, null, null, null, null, null, [], null, null,
        '0'.repeat(64),
      ]
      for (const statement of [write.call, inline.writeRunStageByDigest]) {
        const answer = await client.query<{ written: number | null }>(statement, values)
        expect(answer.rows).toEqual([{ written: CATALOGUE_DIGEST_UNKNOWN }])
      }
      expect((await client.query(`SELECT "version", "catalogue" FROM "PipelineRun" WHERE "id" = 'unknown-digest'`)).rows).toEqual(before)
      expect((await client.query(`SELECT count(*)::int AS "n" FROM "StageOutput" WHERE "runId" = 'unknown-digest'`)).rows).toEqual([{ n: 0 }])
      // The run's insert by digest alone: nothing inserted either way.
      const insertValues = ['unknown-insert', 'PENDING', null, null, null, at, at, 0, 'default', null, [], '{}', '0'.repeat(64)]
      for (const statement of [storeFunctions().insertRun.call, inline.insertRunByDigest]) {
        const answer = await client.query<{ created: number | null }>(statement, insertValues)
        expect(answer.rows).toEqual([{ created: CATALOGUE_DIGEST_UNKNOWN }])
      }
      expect((await client.query(`SELECT count(*)::int AS "n" FROM "PipelineRun" WHERE "id" = 'unknown-insert'`)).rows).toEqual([{ n: 0 }])
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

  it.runIf(usesPostgres())('sent inline on a pool with named statements: whole with the first run’s first update, then by digest, creations too, and every run stores the same text', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    const writes: InlineWrite[] = []
    const sent: string[] = []
    const record = inlineWrites(inline, writes)
    const recorded = {
      query: (config: { name?: string; text: string; values: unknown[] }) => {
        sent.push(config.text)
        record(config.text, config.values)
        return pool.query(config)
      },
    }
    try {
      const logger = warnings()
      const store = createPrismaStore({ prisma: db.prisma, pool: recorded, namedStatements: true, logger })
      const stages = stagesOf('Named stage', 200)
      const text = JSON.stringify(stages)
      const digest = sha256(text)
      for (const id of ['named-1', 'named-2', 'named-3']) {
        await createRun(store, { id, now: new Date() })
        const first = await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, stageName: 'Named stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
        expect(first.outcome).toBe('applied')
      }
      // A later update fills no catalogue; runs created with the catalogue the store has kept send its digest alone.
      await applyStageUpdate(store, 'named-1', makeStageUpdate({ stageNumber: 1, stageName: 'Named stage 1', status: 'COMPLETED' }), { stages, now: new Date() })
      const created = []
      for (const id of ['named-c1', 'named-c2', 'named-c1']) created.push((await createRun(store, { id, now: new Date(), catalogue: stages })).created)
      expect(created).toEqual([true, true, false])
      expect(writes).toEqual([
        { statement: 'insert', text: false, digest: null },
        { statement: 'write keeping', text: true, digest },
        { statement: 'insert', text: false, digest: null },
        { statement: 'write by digest', text: false, digest },
        { statement: 'insert', text: false, digest: null },
        { statement: 'write by digest', text: false, digest },
        { statement: 'write', text: false, digest: null },
        { statement: 'insert by digest', text: false, digest },
        { statement: 'insert by digest', text: false, digest },
        { statement: 'insert by digest', text: false, digest },
      ])
      // Named statements: no function is called; the table was asked for once.
      expect(sent.filter((statement) => statement.includes('pipeline_status_'))).toEqual([])
      expect(sent.filter((statement) => statement === CATALOGUE_TABLE_PROBE)).toHaveLength(1)
      expect(logger.messages).toEqual([])
      expect((await kept()).filter((row) => row.digest === digest)).toEqual([{ digest, stages: text }])
      for (const id of ['named-1', 'named-2', 'named-3', 'named-c1', 'named-c2']) {
        expect(await catalogueOf(id)).toBe(text)
        expect((await store.getRun(id))?.run.catalogue).toEqual(stages)
      }
    } finally {
      await pool.end()
    }
  })

  it.runIf(usesPostgres())('sent inline by a role that may not insert into the catalogue table: the text is sent whole each time, stored right, and said once with that cause', async () => {
    const role = `pss_no_catalogue_${Math.random().toString(36).slice(2, 10)}`
    await db.prisma.$executeRawUnsafe(`CREATE ROLE "${role}" LOGIN`)
    await db.prisma.$executeRawUnsafe(`GRANT USAGE ON SCHEMA public TO "${role}"`)
    await db.prisma.$executeRawUnsafe(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "${role}"`)
    await db.prisma.$executeRawUnsafe(`REVOKE INSERT ON "PipelineCatalogue" FROM "${role}"`)
    const url = new URL(db.url as string)
    url.username = role
    const { store, writes, logger, end } = namedInlineStore(url.toString())
    try {
      const stages = stagesOf('Role stage', 12)
      const text = JSON.stringify(stages)
      for (const id of ['role-1', 'role-2']) {
        await createRun(store, { id, now: new Date() })
        const first = await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, stageName: 'Role stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
        expect(first.outcome).toBe('applied')
        expect(await catalogueOf(id)).toBe(text)
      }
      expect(writes.filter((w) => w.statement.startsWith('write'))).toEqual([
        { statement: 'write', text: true, digest: null },
        { statement: 'write', text: true, digest: null },
      ])
      expect(logger.messages).toHaveLength(1)
      expect(logger.messages[0]).toContain('that this role may read and insert into')
      expect((await kept()).filter((row) => row.digest === sha256(text))).toEqual([])
    } finally {
      await end()
      await db.prisma.$executeRawUnsafe(`DROP OWNED BY "${role}"`)
      await db.prisma.$executeRawUnsafe(`DROP ROLE "${role}"`)
    }
  })

  it.runIf(usesPostgres())('sent inline, deleted by hand: the next first update and creation are answered unknown, sent again whole, stored right, said once', async () => {
    const { store, writes, logger, end } = namedInlineStore(db.url as string)
    try {
      const stages = stagesOf('Inline gone stage', 6)
      const text = JSON.stringify(stages)
      const digest = sha256(text)
      const deleteRow = () => db.prisma.$executeRawUnsafe(`DELETE FROM "PipelineCatalogue" WHERE "digest" = $1`, digest)
      await createRun(store, { id: 'inline-gone-1', now: new Date() })
      await applyStageUpdate(store, 'inline-gone-1', makeStageUpdate({ stageNumber: 1, stageName: 'Inline gone stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
      await deleteRow()
      await createRun(store, { id: 'inline-gone-2', now: new Date() })
      const second = await applyStageUpdate(store, 'inline-gone-2', makeStageUpdate({ stageNumber: 1, stageName: 'Inline gone stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
      expect(second.outcome).toBe('applied')
      await deleteRow()
      expect((await createRun(store, { id: 'inline-gone-3', now: new Date(), catalogue: stages })).created).toBe(true)
      expect(writes.filter((sent) => sent.digest !== null)).toEqual([
        { statement: 'write keeping', text: true, digest },
        { statement: 'write by digest', text: false, digest },
        { statement: 'write keeping', text: true, digest },
        { statement: 'insert by digest', text: false, digest },
        { statement: 'insert keeping', text: true, digest },
      ])
      for (const id of ['inline-gone-1', 'inline-gone-2', 'inline-gone-3']) expect(await catalogueOf(id)).toBe(text)
      expect((await kept()).filter((row) => row.digest === digest)).toEqual([{ digest, stages: text }])
      expect(logger.messages).toEqual([expect.stringContaining(`"PipelineCatalogue" no longer holds catalogue ${digest}, which this store kept there (a row deleted?)`)])
    } finally {
      await end()
    }
  })

  describe('with @@map names (the app’s own schema "pipeline", test/prisma/fixtures/mapped-schema.sql), sent inline through the Prisma client', () => {
    const mappedStatements = (names: typeof MAPPED_NAMES | Omit<typeof MAPPED_NAMES, 'PipelineCatalogue'>) =>
      buildStatements(resolveTableNames({}, { schema: 'pipeline', names }))
    const { PipelineCatalogue: _catalogueTable, ...withoutCatalogueTable } = MAPPED_NAMES
    const mappedCatalogueOf = async (runId: string) =>
      (
        await db.prisma.$queryRawUnsafe<Array<{ catalogue: string | null }>>(
          `SELECT "stage_catalogue"::text AS "catalogue" FROM "pipeline"."pipeline_runs" WHERE "id" = $1`,
          runId,
        )
      )[0]?.catalogue
    beforeAll(async () => {
      const fixture = readFileSync(new URL('./fixtures/mapped-schema.sql', import.meta.url), 'utf8')
      for (const statement of fixture.split(/;\s*\n/)) if (statement.trim() !== '') await db.prisma.$executeRawUnsafe(statement)
    })

    it('keeps it in the renamed catalogue table: whole once, then by digest, each run storing it (a jsonb column there)', async () => {
      const writes: InlineWrite[] = []
      const logger = warnings()
      const store = createPrismaStore({
        prisma: recordingRaw(db.prisma, inlineWrites(mappedStatements(MAPPED_NAMES), writes)),
        schema: 'pipeline',
        names: MAPPED_NAMES,
        logger,
      })
      const stages = stagesOf('Mapped stage', 25)
      const text = JSON.stringify(stages)
      const digest = sha256(text)
      for (const id of ['mapped-1', 'mapped-2']) {
        await createRun(store, { id, now: new Date() })
        const first = await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, stageName: 'Mapped stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
        expect(first.outcome).toBe('applied')
      }
      expect((await createRun(store, { id: 'mapped-3', now: new Date(), catalogue: stages })).created).toBe(true)
      expect(writes.filter((sent) => sent.digest !== null)).toEqual([
        { statement: 'write keeping', text: true, digest },
        { statement: 'write by digest', text: false, digest },
        { statement: 'insert by digest', text: false, digest },
      ])
      for (const id of ['mapped-1', 'mapped-2', 'mapped-3']) {
        expect(JSON.parse((await mappedCatalogueOf(id)) ?? 'null')).toEqual(stages)
        expect((await store.getRun(id))?.run.catalogue).toEqual(stages)
      }
      const mappedKept = await db.prisma.$queryRawUnsafe<Array<{ digest: string; stages: string }>>(
        `SELECT "catalogue_digest" AS "digest", "catalogue_stages"::text AS "stages" FROM "pipeline"."pipeline_catalogues"`,
      )
      expect(mappedKept).toEqual([{ digest, stages: text }])
      expect((await kept()).filter((row) => row.digest === digest)).toEqual([])
      // Said once: the statements go inline (other names); nothing about the catalogue table.
      expect(logger.messages).toEqual([expect.stringContaining('other names than the defaults (@@map, @map)')])
    })

    it('without a catalogue table under the names it resolves to: the text is sent each time, stored right, said once, asked once', async () => {
      const writes: InlineWrite[] = []
      const sent: string[] = []
      const record = inlineWrites(mappedStatements(withoutCatalogueTable), writes)
      const logger = warnings()
      const store = createPrismaStore({
        prisma: recordingRaw(db.prisma, (statement, values) => (sent.push(statement), record(statement, values))),
        schema: 'pipeline',
        names: withoutCatalogueTable,
        logger,
      })
      const stages = stagesOf('Unkept stage', 9)
      for (const id of ['unkept-1', 'unkept-2']) {
        await createRun(store, { id, now: new Date() })
        const first = await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, stageName: 'Unkept stage 1', status: 'PROCESSING' }), { stages, now: new Date() })
        expect(first.outcome).toBe('applied')
      }
      expect((await createRun(store, { id: 'unkept-3', now: new Date(), catalogue: stages })).created).toBe(true)
      expect(writes).toEqual([
        { statement: 'insert', text: false, digest: null },
        { statement: 'write', text: true, digest: null },
        { statement: 'insert', text: false, digest: null },
        { statement: 'write', text: true, digest: null },
        { statement: 'insert', text: true, digest: null },
      ])
      expect(sent.filter((statement) => statement === CATALOGUE_TABLE_PROBE)).toHaveLength(1)
      for (const id of ['unkept-1', 'unkept-2', 'unkept-3']) expect(JSON.parse((await mappedCatalogueOf(id)) ?? 'null')).toEqual(stages)
      expect(logger.messages).toHaveLength(2)
      expect(logger.messages[0]).toContain('other names than the defaults (@@map, @map)')
      expect(logger.messages[1]).toContain('send each run\'s catalogue whole')
      expect(logger.messages[1]).toContain('the database has no table "pipeline"."PipelineCatalogue" with columns "digest", "stages"')
      expect(logger.messages[1]).toContain('names.PipelineCatalogue')
    })
  })
})
