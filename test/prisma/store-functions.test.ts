/**
 * The stage update's statements as PL/pgSQL functions (src/server/storage/sql/functions.ts): the
 * migration creates exactly the functions of the SQL the store would send; a store whose
 * statements go unnamed (the Prisma client, a pool with `namedStatements: false`) calls them and
 * stores what the inline statements store; without them it sends the SQL inline and says so once.
 */
import { readFileSync } from 'node:fs'
import { DEFAULT_STAGES } from 'pipeline-status-sdk'
import { createPrismaStore, type PrismaStore } from 'pipeline-status-sdk/server'
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { applyMigrations } from 'pipeline-status-sdk/pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { applyStageUpdate, createRun, recordHeartbeat } from '../../src/core/operations.js'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import {
  INSERT_RUN_TYPES,
  READ_RUN_STAGE_TYPES,
  TOUCH_RUN_TYPES,
  STORE_FUNCTIONS_MIGRATION,
  storeFunctions,
  WRITE_CATALOGUE_DIGEST,
  WRITE_RUN_STAGE_TYPES,
} from '../../src/server/storage/sql/functions.js'
import { buildStatements } from '../../src/server/storage/sql/statements.js'
import { resolveTableNames } from '../../src/server/storage/table-names.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'

const statements = buildStatements(resolveTableNames({}, {}))
const functions = storeFunctions()
const stages = DEFAULT_STAGES
const now = new Date('2026-12-07T08:00:00.000Z')

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase()
})
afterAll(() => db?.close())

/** The Prisma client with every raw statement's text recorded in `sent`. */
function recording(prisma: PrismaClient, sent: string[]): PrismaClient {
  return new Proxy(prisma, {
    get(target, key, receiver) {
      if (key === '$queryRawUnsafe') {
        return (sql: string, ...values: unknown[]) => {
          sent.push(sql)
          return target.$queryRawUnsafe(sql, ...values)
        }
      }
      return Reflect.get(target, key, receiver) as unknown
    },
  })
}

function warnings(): { warn: (message: string) => void; error: () => void; messages: string[] } {
  const messages: string[] = []
  return { warn: (message) => void messages.push(message), error: () => undefined, messages }
}

/**
 * A run with every column the read returns filled, stage updates and heartbeats (one before a
 * stage, one without one, one after the run failed) through `store`: each outcome, in order.
 */
async function fullRun(store: PrismaStore<PrismaClient>, id: string) {
  await createRun(store, { id, tags: ['night', 'team-a'], metadata: { owner: 'ana', n: 1 }, now })
  const later = (ms: number) => ({ stages, now: new Date(now.getTime() + ms) })
  const update = async (fields: Parameters<typeof makeStageUpdate>[0], ms: number) => (await applyStageUpdate(store, id, makeStageUpdate(fields), later(ms))).outcome
  const beat = async (heartbeat: Parameters<typeof recordHeartbeat>[2], ms: number) => (await recordHeartbeat(store, id, heartbeat, later(ms))).outcome
  return [
    await update({ stageNumber: 1, status: 'PROCESSING', output: 'reading', progress: { seq: 1, current: 3, total: 10, message: 'rows' } }, 1000),
    await beat({ stageNumber: 1, intervalMs: 5_000 }, 1500),
    await beat({ intervalMs: 7_000 }, 1750),
    await update({ stageNumber: 1, status: 'COMPLETED', output: '{"rows": 12}', completedAt: '2026-12-07T08:00:01.250Z' }, 2000),
    await update({ stageNumber: 2, status: 'FAILED', output: 'model timed out' }, 2500),
    await beat({ stageNumber: 2 }, 3000),
  ]
}

/** What `fullRun` answers, in order. */
const OUTCOMES = ['applied', 'recorded', 'recorded', 'applied', 'applied', 'stale']

describe('the store functions', () => {
  it('are created by the migration exactly as the store names and defines them', () => {
    const migration = readFileSync(new URL(`../../prisma/migrations/${STORE_FUNCTIONS_MIGRATION}/migration.sql`, import.meta.url), 'utf8')
    // On failure the stage update's SQL changed: add a migration that creates the new functions
    // (their names change with their definition) and point STORE_FUNCTIONS_MIGRATION at it.
    expect(migration).toContain(functions.readRunStage.create)
    expect(migration).toContain(functions.writeRunStage.create)
    expect(migration).toContain(functions.touchRun.create)
    expect(migration).toContain(functions.insertRun.create)
    expect(functions.insertRun.name).toMatch(/^"pipeline_status_insert_run_[0-9a-f]{8}"$/)
    expect(functions.touchRun.name).toMatch(/^"pipeline_status_touch_run_[0-9a-f]{8}"$/)
    expect(functions.readRunStage.name).toMatch(/^"pipeline_status_read_run_stage_[0-9a-f]{8}"$/)
    expect(functions.writeRunStage.name).toMatch(/^"pipeline_status_write_run_stage_[0-9a-f]{8}"$/)
  })

  it('take the parameter types PostgreSQL infers for the inline statements', async () => {
    // One connection: PREPARE, the read and DEALLOCATE must meet on the same session.
    await db.prisma.$transaction(async (tx) => {
      const inferred = async (sql: string) => {
        await tx.$executeRawUnsafe(`PREPARE pss_types_probe AS ${sql}`)
        const rows = await tx.$queryRawUnsafe<Array<{ types: string[] }>>(
          `SELECT parameter_types::text[] AS "types" FROM pg_prepared_statements WHERE name = 'pss_types_probe'`,
        )
        await tx.$executeRawUnsafe('DEALLOCATE pss_types_probe')
        return rows[0]?.types
      }
      expect(await inferred(statements.readRunStage)).toEqual(READ_RUN_STAGE_TYPES)
      expect(await inferred(statements.writeRunStage)).toEqual(WRITE_RUN_STAGE_TYPES)
      expect(await inferred(statements.touchRun)).toEqual(TOUCH_RUN_TYPES)
      expect(await inferred(statements.insertRun)).toEqual(INSERT_RUN_TYPES)
      // Sent inline with the catalogue's digest: the function's arguments, the digest last.
      expect(await inferred(statements.writeRunStageKeeping)).toEqual([...WRITE_RUN_STAGE_TYPES, WRITE_CATALOGUE_DIGEST])
      expect(await inferred(statements.writeRunStageByDigest)).toEqual([...WRITE_RUN_STAGE_TYPES, WRITE_CATALOGUE_DIGEST])
      expect(await inferred(statements.insertRunKeeping)).toEqual([...INSERT_RUN_TYPES, WRITE_CATALOGUE_DIGEST])
      expect(await inferred(statements.insertRunByDigest)).toEqual([...INSERT_RUN_TYPES, WRITE_CATALOGUE_DIGEST])
    })
  })

  it('are what a store on the Prisma client calls for each stage update', async () => {
    const sent: string[] = []
    const logger = warnings()
    const store = createPrismaStore({ prisma: recording(db.prisma, sent), logger })
    expect(await fullRun(store, 'fn-prisma')).toEqual(OUTCOMES)
    // Three stage updates' reads, and the read after the heartbeat that found the run finished.
    expect(sent.filter((sql) => sql.startsWith(`SELECT ${functions.readRunStage.name}(`))).toHaveLength(4)
    expect(sent.filter((sql) => sql.startsWith(`SELECT ${functions.writeRunStage.name}(`))).toHaveLength(3)
    expect(sent.filter((sql) => sql.startsWith(`SELECT ${functions.touchRun.name}(`))).toHaveLength(3)
    expect(sent.filter((sql) => sql.startsWith(`SELECT ${functions.insertRun.name}(`))).toHaveLength(1)
    expect(sent).not.toContain(statements.touchRun)
    expect(sent).not.toContain(statements.insertRun)
    expect(sent).not.toContain(statements.readRunStage)
    expect(sent).not.toContain(statements.writeRunStage)
    // Asked once, before the first read.
    expect(sent.filter((sql) => sql.includes('to_regproc'))).toHaveLength(1)
    expect(logger.messages).toEqual([])
    const snapshot = await store.getRun('fn-prisma')
    expect(snapshot?.run).toMatchObject({ status: 'FAILED', error: expect.stringContaining('model timed out'), tags: ['night', 'team-a'], metadata: { owner: 'ana', n: 1 } })
    expect(snapshot?.stages.map((stage) => [stage.stageNumber, stage.status, stage.output, stage.completedAt?.toISOString()])).toEqual([
      [1, 'COMPLETED', '{"rows": 12}', '2026-12-07T08:00:01.250Z'],
      [2, 'FAILED', 'model timed out', '2026-12-07T08:00:02.500Z'],
    ])
    expect(snapshot?.version).toBe(3)
  })
})

describe.skipIf(!usesPostgres())('the store functions on PostgreSQL, against the inline statements (needs DATABASE_URL)', () => {
  it('store and read what the inline statements do, field for field', async () => {
    const viaFunctions = createPrismaStore({ prisma: db.prisma })
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    pool.on('error', () => undefined)
    try {
      // Named prepared statements: the inline SQL, planned once per connection; no functions.
      const inline = createPrismaStore({ prisma: db.prisma, pool, namedStatements: true })
      const outcomes = await fullRun(viaFunctions, 'fn-a')
      expect(outcomes).toEqual(OUTCOMES)
      expect(await fullRun(inline, 'fn-b')).toEqual(outcomes)
      // The same run read both ways, and each path's run read by the other: equal field for field.
      for (const [id, stageNumber] of [['fn-a', 1], ['fn-a', 2], ['fn-a', 3], ['fn-b', 1], ['missing', 1]] as const) {
        expect(await viaFunctions.readRunStage(id, stageNumber)).toEqual(await inline.readRunStage(id, stageNumber))
      }
      const a = await viaFunctions.getRun('fn-a')
      const b = await inline.getRun('fn-b')
      expect({ ...b, run: { ...b?.run, id: 'fn-a' } }).toEqual(a)
    } finally {
      await pool.end()
    }
  })

  it('are called by a pool that sends unnamed statements, not by one that prepares them', async () => {
    const sent: string[] = []
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    pool.on('error', () => undefined)
    const recorded = { query: (config: { name?: string; text: string; values: unknown[] }) => (sent.push(config.text), pool.query(config)) }
    try {
      await fullRun(createPrismaStore({ prisma: db.prisma, pool: recorded, namedStatements: false }), 'fn-unnamed')
      expect(sent.filter((sql) => sql.startsWith(`SELECT ${functions.writeRunStage.name}(`))).toHaveLength(3)
      sent.length = 0
      await fullRun(createPrismaStore({ prisma: db.prisma, pool: recorded, namedStatements: true }), 'fn-named')
      expect(sent.filter((sql) => sql.includes('pipeline_status_'))).toEqual([])
      // The run's first update keeps its catalogue in "PipelineCatalogue" (test/prisma/pipeline-catalogue.test.ts).
      expect(sent.filter((sql) => sql === statements.writeRunStageKeeping)).toHaveLength(1)
      expect(sent.filter((sql) => sql === statements.writeRunStage)).toHaveLength(2)
    } finally {
      await pool.end()
    }
  })

  it('in a schema of their own (pipeline-status migrate --schema): called there, the tables beside them written', async () => {
    const schema = 'fn schema'
    expect((await applyMigrations(db.url!, { schema })).applied).toContain(STORE_FUNCTIONS_MIGRATION)
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: db.url! }, { schema }) })
    try {
      const sent: string[] = []
      const logger = warnings()
      const store = createPrismaStore({ prisma: recording(prisma, sent), logger, schema })
      expect(await fullRun(store, 'fn-schema')).toEqual(OUTCOMES)
      const inSchema = storeFunctions(schema)
      expect(inSchema.writeRunStage.name).toBe(`"fn schema".${functions.writeRunStage.name}`)
      expect(sent.filter((sql) => sql.startsWith(`SELECT "fn schema"."pipeline_status_write_run_stage_`))).toHaveLength(3)
      expect(sent.filter((sql) => sql.startsWith(`SELECT "fn schema"."pipeline_status_read_run_stage_`))).toHaveLength(4)
      expect(sent.filter((sql) => sql.startsWith(`SELECT "fn schema"."pipeline_status_touch_run_`))).toHaveLength(3)
      expect(logger.messages).toEqual([])
      const count = async (table: string) =>
        (await db.prisma.$queryRawUnsafe<Array<{ n: number }>>(`SELECT count(*)::int AS n FROM ${table} WHERE "runId" = 'fn-schema'`))[0]?.n
      expect(await count('"fn schema"."StageOutput"')).toBe(2)
      expect(await count('public."StageOutput"')).toBe(0)
    } finally {
      await prisma.$disconnect()
    }
  })

  it('two installs on the search_path (a role\'s schema and public): called as the call resolves them, by search_path order, no warning', async () => {
    // The write function's overloads differ in their enum argument per schema ("alice"."RunStatus",
    // public."RunStatus"), so to_regproc(name) was NULL and the store stayed inline for good.
    const two = await createTestDatabase()
    const schema = 'alice'
    expect((await applyMigrations(two.url!, { schema })).applied).toContain(STORE_FUNCTIONS_MIGRATION)
    const url = new URL(two.url!)
    url.searchParams.set('options', `-c search_path=${schema},public`)
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url.toString() }) })
    try {
      const path = await prisma.$queryRawUnsafe<Array<{ path: string }>>("SELECT current_setting('search_path') AS path")
      expect(path[0]?.path).toBe(`${schema},public`)
      const sent: string[] = []
      const logger = warnings()
      const store = createPrismaStore({ prisma: recording(prisma, sent), logger })
      expect(await fullRun(store, 'fn-two')).toEqual(OUTCOMES)
      expect(sent.filter((sql) => sql.startsWith(`SELECT ${functions.writeRunStage.name}(`))).toHaveLength(3)
      expect(sent.filter((sql) => sql.startsWith(`SELECT ${functions.readRunStage.name}(`))).toHaveLength(4)
      expect(sent.filter((sql) => sql.startsWith(`SELECT ${functions.touchRun.name}(`))).toHaveLength(3)
      expect(sent).not.toContain(statements.writeRunStage)
      expect(logger.messages).toEqual([])
      // Written where the search_path's first install is, as the unqualified inline SQL would.
      const count = async (table: string) =>
        (await two.prisma.$queryRawUnsafe<Array<{ n: number }>>(`SELECT count(*)::int AS n FROM ${table} WHERE "runId" = 'fn-two'`))[0]?.n
      expect(await count(`"${schema}"."StageOutput"`)).toBe(2)
      expect(await count('public."StageOutput"')).toBe(0)
    } finally {
      await prisma.$disconnect()
      await two.close()
    }
  })

  it('other names (@@map, @map): the store sends the SQL inline and says so once, why and what to do', async () => {
    const sent: string[] = []
    const logger = warnings()
    const store = createPrismaStore({ prisma: recording(db.prisma, sent), logger, names: { PipelineRun: { table: 'pss_runs_elsewhere' } } })
    // No such table here: the read fails as unmigrated, after the store said why it sends SQL inline.
    await expect(store.readRunStage('fn-names', 1)).rejects.toMatchObject({ code: 'database_not_migrated' })
    await expect(store.readRunStage('fn-names', 1)).rejects.toMatchObject({ code: 'database_not_migrated' })
    expect(sent.filter((sql) => sql.includes('pipeline_status_'))).toEqual([])
    expect(sent.filter((sql) => sql.includes('"pss_runs_elsewhere"'))).toHaveLength(2)
    expect(logger.messages).toHaveLength(1)
    expect(logger.messages[0]).toContain('other names than the defaults (@@map, @map)')
    expect(logger.messages[0]).toContain('give createPrismaStore a pool on a direct URL')
  })

  it('dropped while in use: the next stage update is stored inline, not a 500, said once, on the Prisma client and on a pool', async () => {
    const gone = await createTestDatabase()
    const pool = new pg.Pool({ connectionString: gone.url, max: 2 })
    pool.on('error', () => undefined)
    try {
      const logger = warnings()
      const viaPrisma = createPrismaStore({ prisma: gone.prisma, logger })
      const viaPool = createPrismaStore({ prisma: gone.prisma, pool, namedStatements: false, logger })
      for (const [store, id] of [[viaPrisma, 'fn-gone-a'], [viaPool, 'fn-gone-b']] as const) {
        await createRun(store, { id, now })
        expect((await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING' }), { stages, now })).outcome).toBe('applied')
      }
      expect(logger.messages).toEqual([])
      for (const fn of Object.values(functions)) await gone.prisma.$executeRawUnsafe(`DROP FUNCTION ${fn.name}`)
      for (const [store, id] of [[viaPrisma, 'fn-gone-a'], [viaPool, 'fn-gone-b']] as const) {
        expect((await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }), { stages, now })).outcome).toBe('applied')
        expect((await recordHeartbeat(store, id, { intervalMs: 5_000 }, { now })).outcome).toBe('recorded')
        expect((await store.getRun(id))?.stages.map((stage) => stage.status)).toEqual(['COMPLETED'])
      }
      // Once per store, naming SQLSTATE 42883's cause.
      expect(logger.messages).toHaveLength(2)
      for (const message of logger.messages) expect(message).toContain('a call found no such function')
    } finally {
      await pool.end()
      await gone.close()
    }
  })

  it('missing (migration not applied): the store sends the SQL inline, stores the same, and says so once with the fix', async () => {
    const bare = await createTestDatabase()
    try {
      await bare.prisma.$executeRawUnsafe(`DROP FUNCTION ${functions.readRunStage.name}`)
      const sent: string[] = []
      const logger = warnings()
      const store = createPrismaStore({ prisma: recording(bare.prisma, sent), logger })
      expect(await fullRun(store, 'fn-missing')).toEqual(OUTCOMES)
      expect(sent.filter((sql) => sql === statements.writeRunStageKeeping)).toHaveLength(1)
      expect(sent.filter((sql) => sql === statements.writeRunStage)).toHaveLength(2)
      expect(sent.filter((sql) => sql.includes('pipeline_status_') && !sql.includes('to_regproc'))).toEqual([])
      expect(logger.messages).toHaveLength(1)
      expect(logger.messages[0]).toContain(`lacks one of the functions ${functions.readRunStage.name}, ${functions.writeRunStage.name}, ${functions.touchRun.name}`)
      expect(logger.messages[0]).toContain(STORE_FUNCTIONS_MIGRATION)
      expect(logger.messages[0]).toContain('npx pipeline-status migrate')
      expect((await store.getRun('fn-missing'))?.stages.map((stage) => stage.status)).toEqual(['COMPLETED', 'FAILED'])
    } finally {
      await bare.close()
    }
  })
})
