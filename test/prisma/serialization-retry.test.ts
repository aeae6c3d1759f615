/**
 * PostgreSQL rolls a statement back with SQLSTATE class 40 (40001 serialization_failure, 40P01
 * deadlock_detected) when it cannot be serialized with a concurrent one, and asks the
 * application to run it again. A store's statement outside a transaction is run again at once (a
 * few times), so a database whose default isolation is SERIALIZABLE or REPEATABLE READ
 * (`default_transaction_isolation`) answers a stage update, not a 500.
 *
 * The case: with SERIALIZABLE the default, a session updates the run's row and holds it; the
 * store's write waits for it and, once that session commits, is refused with 40001 ("could not
 * serialize access due to concurrent update").
 */
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { createPrismaStore } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { applyStageUpdate, createRun } from '../../src/core/operations.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { recordingLogger } from '../support/loggers.js'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { createTestDatabase, usesPostgres } from '../setup/test-database.js'

describe.skipIf(!usesPostgres())('statements rolled back for serialization, run again (needs DATABASE_URL)', () => {
  // On the app's pg pool (its driver's error carries the SQLSTATE) and on the Prisma client alone
  // (the driver adapter's error inside Prisma's carries it as originalCode).
  it.each(['pool', 'prisma'] as const)('a stage update on a SERIALIZABLE database, refused 40001 once by a concurrent update of its run, is applied; said once (%s)', async (path) => {
    const db = await createTestDatabase()
    const url = db.url as string
    const name = new URL(url).pathname.slice(1)
    const admin = new pg.Client({ connectionString: url })
    await admin.connect()
    await admin.query(`ALTER DATABASE "${name}" SET default_transaction_isolation = 'serializable'`)
    // Connections made from here on are SERIALIZABLE by default.
    const pool = new pg.Pool({ connectionString: url, max: 3 })
    // The database is dropped at the end: a connection still ending then is told 57P01.
    pool.on('error', () => undefined)
    const logger = recordingLogger()
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url }) })
    const store = path === 'pool' ? createPrismaStore({ prisma: db.prisma, pool, logger }) : createPrismaStore({ prisma, logger })
    const holder = await pool.connect()
    try {
      expect((await holder.query('SHOW default_transaction_isolation')).rows[0]).toEqual({ default_transaction_isolation: 'serializable' })
      const now = new Date()
      await createRun(store, { id: 'serialized', now })
      for (const round of [1, 2]) {
        await holder.query('BEGIN')
        await holder.query(`UPDATE "PipelineRun" SET "status" = "status" WHERE "id" = 'serialized'`)
        const update = applyStageUpdate(store, 'serialized', makeStageUpdate({ stageNumber: round, status: 'PROCESSING', output: '' }), { now: new Date() })
        update.catch(() => undefined)
        // The store's write waits for the held row.
        await expect
          .poll(async () => (await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0].n, { timeout: 10_000 })
          .toBe(1)
        await holder.query('COMMIT')
        expect((await update).outcome).toBe('applied')
      }
      const snapshot = await store.getRun('serialized')
      expect(snapshot?.stages.map((stage) => [stage.stageNumber, stage.status])).toEqual([
        [1, 'PROCESSING'],
        [2, 'PROCESSING'],
      ])
      // Said once, at warn, with the SQLSTATE and what to check if it recurs.
      const said = logger.lines.filter((line) => line.message.includes('40001'))
      expect(said).toHaveLength(1)
      expect(said[0]).toMatchObject({ level: 'warn', details: { sqlState: '40001' } })
      // As docs/operations.md quotes it.
      // (Through Prisma the driver adapter names its error kind first: `TransactionWriteConflict 40001: …`.)
      expect(said[0]?.message).toMatch(
        /^pipeline-status: PostgreSQL rolled a statement back \((TransactionWriteConflict )?40001: could not serialize access due to concurrent update\) and the store ran it again/,
      )
      expect(said[0]?.message).toContain('default_transaction_isolation')
    } finally {
      holder.release()
      await prisma.$disconnect()
      await pool.end()
      await admin.end()
      await db.close()
    }
  })
})
