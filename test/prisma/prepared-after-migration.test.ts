/**
 * The pool path prepares its statements once per connection (named statements). A migration
 * applied while the app runs can change a table under them: a parameter's type no longer fits its
 * column (42846), or a column they return changes type (0A000 "cached plan must not change result
 * type"). The call that meets it is sent again (PostgreSQL refused it while planning, before it
 * ran), the statement gets a new name so that every connection prepares it again, and the store
 * says so once. The trial that found it: 3 of 26,000 requests answered 500 during
 * `pipeline-status migrate` with the catalogue's change to json. PostgreSQL only (a pool with one
 * connection, so that the prepared statement is the one the next call meets).
 */
import { DEFAULT_STAGES } from 'pipeline-status-sdk'
import { createPrismaStore } from 'pipeline-status-sdk/server'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { applyStageUpdate, createRun, recordHeartbeat } from '../../src/core/operations.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { recordingLogger } from '../support/loggers.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'

describe.runIf(usesPostgres())('named statements prepared before a migration changed their table (needs DATABASE_URL)', () => {
  let db: TestDatabase
  let pool: pg.Pool
  beforeAll(async () => {
    db = await createTestDatabase()
    pool = new pg.Pool({ connectionString: db.url, max: 1 })
    pool.on('error', () => undefined)
  })
  afterAll(async () => {
    await pool?.end()
    await db?.close()
  })

  it('are prepared again under a new name: no call fails, what is stored is right, and the store says so once', async () => {
    const logger = recordingLogger()
    const store = createPrismaStore({ prisma: db.prisma, pool, logger })
    const stages = DEFAULT_STAGES
    const update = (runId: string, stageNumber: number) =>
      applyStageUpdate(store, runId, makeStageUpdate({ stageNumber, stageName: `Stage ${stageNumber}`, status: 'PROCESSING' }), { stages, now: new Date() })
    // Prepared on the pool's one connection: each run's first update writes the catalogue ($9 typed json).
    await createRun(store, { id: 'before', now: new Date() })
    expect((await update('before', 1)).outcome).toBe('applied')

    // A parameter's type no longer fits: the catalogue column back to jsonb (42846 for the prepared write).
    await db.prisma.$executeRawUnsafe(`ALTER TABLE "PipelineRun" ALTER COLUMN "catalogue" SET DATA TYPE JSONB USING "catalogue"::jsonb`)
    await createRun(store, { id: 'after-type', now: new Date() })
    expect((await update('after-type', 1)).outcome).toBe('applied')
    expect((await update('after-type', 2)).outcome).toBe('applied')
    expect((await store.getRun('after-type'))?.run.catalogue).toEqual(stages.map((stage) => ({ number: stage.number, name: stage.name })))

    // A returned column changes type (0A000 for the prepared reads and the heartbeat's).
    await recordHeartbeat(store, 'before', { intervalMs: 5_000 }, { now: new Date() })
    await db.prisma.$executeRawUnsafe(`ALTER TABLE "PipelineRun" ALTER COLUMN "error" SET DATA TYPE VARCHAR(4000)`)
    expect((await update('before', 2)).outcome).toBe('applied')
    expect((await recordHeartbeat(store, 'before', { intervalMs: 10_000 }, { now: new Date() })).outcome).toBe('recorded')
    const read = await store.getRun('before')
    expect([read?.version, read?.run.heartbeatIntervalMs, read?.stages.map((stage) => [stage.stageNumber, stage.status])]).toEqual([
      2,
      10_000,
      [
        [1, 'PROCESSING'],
        [2, 'PROCESSING'],
      ],
    ])

    const warned = logger.lines.filter((line) => line.message.includes('no longer fits its table'))
    expect(warned.map((line) => line.level)).toEqual(['warn'])
    expect(warned[0]?.message).toMatch(/^pipeline-status: a prepared statement no longer fits its table \((42846|0A000): .+\): the schema changed/)
  })
})
