/**
 * A write that keeps a run's catalogue in `"PipelineCatalogue"` takes its two row locks in one
 * order whether it goes through the store's function or inline (`sql/catalogue.ts`,
 * `sql/functions.ts`): the catalogue's row first, then the run's. Two stores of one database
 * where one calls the functions and the other sends its SQL inline (a pool with named
 * statements; or, during a deploy, a process started before the functions' migration) then never
 * deadlock (SQLSTATE 40P01) on a run they both write with the same new catalogue.
 *
 * Each case makes the one interleaving that deadlocked when the inline statement kept the
 * catalogue last: a third session holds the run's row, the inline write queues behind it, the
 * function's write (catalogue first) queues behind it too; then the third session lets go.
 */
import pg from 'pg'
import { createPrismaStore } from 'pipeline-status-sdk/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { applyStageUpdate, createRun } from '../../src/core/operations.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'

let db: TestDatabase
let pool: pg.Pool
beforeAll(async () => {
  if (!usesPostgres()) return
  db = await createTestDatabase()
  pool = new pg.Pool({ connectionString: db.url as string, max: 4 })
  // The database is dropped at the end: a connection still ending then is told 57P01.
  pool.on('error', () => undefined)
})
afterAll(async () => {
  await pool?.end()
  await db?.close()
})

/** The sessions of this database waiting for a lock (another session's row or uncommitted key). */
async function lockWaiters(): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
  )
  return rows[0]?.n ?? 0
}

/** A catalogue no other test keeps: its digest is not in `"PipelineCatalogue"` yet. */
function newCatalogue(label: string) {
  return [
    { number: 1, name: `${label} fetch` },
    { number: 2, name: `${label} publish` },
  ]
}

/**
 * Runs `inline` then `viaFunctions` while `hold`'s session keeps the run's row, each queued for a
 * lock before the next starts, then lets the row go; resolves with both outcomes.
 */
async function interleaved<T>(hold: (session: pg.PoolClient) => Promise<void>, inline: () => Promise<T>, viaFunctions: () => Promise<T>) {
  const holder = await pool.connect()
  try {
    await holder.query('BEGIN')
    await hold(holder)
    const first = inline()
    first.catch(() => undefined)
    // The inline write waits for the run's row.
    await expect.poll(lockWaiters, { timeout: 10_000 }).toBe(1)
    const second = viaFunctions()
    second.catch(() => undefined)
    // Then the function's write waits too: for the run's row (catalogue kept first, as before) or
    // for the inline write's catalogue row (once the inline write keeps it first too).
    await expect.poll(lockWaiters, { timeout: 10_000 }).toBe(2)
    await holder.query('ROLLBACK')
    return await Promise.allSettled([first, second])
  } finally {
    holder.release()
  }
}

describe.skipIf(!usesPostgres())('catalogue and run locks in one order, inline and through the functions (needs DATABASE_URL)', () => {
  it("two creates of one run with a new catalogue, one inline and one by the function: no deadlock, one creates it", async () => {
    const inline = createPrismaStore({ prisma: db.prisma, pool, namedStatements: true })
    const viaFunctions = createPrismaStore({ prisma: db.prisma })
    const catalogue = newCatalogue('create')
    const now = new Date('2026-12-07T21:00:00.000Z')
    const outcomes = await interleaved(
      // The run's row, inserted and not committed: both creates wait for it.
      (session) => session.query(`INSERT INTO "PipelineRun" ("id", "updatedAt") VALUES ('lock-order-create', now())`).then(() => undefined),
      () => createRun(inline, { id: 'lock-order-create', now, catalogue }),
      () => createRun(viaFunctions, { id: 'lock-order-create', now, catalogue }),
    )
    expect(outcomes.map((outcome) => (outcome.status === 'rejected' ? String(outcome.reason) : outcome.status))).toEqual(['fulfilled', 'fulfilled'])
    const created = outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value.created : undefined))
    expect(created.sort()).toEqual([false, true])
    const { rows } = await pool.query(`SELECT "catalogue"::text AS c FROM "PipelineRun" WHERE "id" = 'lock-order-create'`)
    expect(JSON.parse(rows[0].c)).toEqual(catalogue)
  })

  it('two stage updates that fill a run\'s catalogue, one inline and one by the function: no deadlock, both applied', async () => {
    const inline = createPrismaStore({ prisma: db.prisma, pool, namedStatements: true })
    const viaFunctions = createPrismaStore({ prisma: db.prisma })
    // A run without a catalogue of its own: its first applied stage update stores the pipeline's.
    await createRun(inline, { id: 'lock-order-update', now: new Date() })
    const stages = newCatalogue('update')
    const options = { stages, now: new Date() }
    const outcomes = await interleaved(
      (session) => session.query(`SELECT 1 FROM "PipelineRun" WHERE "id" = 'lock-order-update' FOR UPDATE`).then(() => undefined),
      () => applyStageUpdate(inline, 'lock-order-update', makeStageUpdate({ stageNumber: 1, stageName: 'update fetch', status: 'PROCESSING', output: '' }), options),
      () => applyStageUpdate(viaFunctions, 'lock-order-update', makeStageUpdate({ stageNumber: 2, stageName: 'update publish', status: 'PROCESSING', output: '' }), options),
    )
    expect(outcomes.map((outcome) => (outcome.status === 'rejected' ? String(outcome.reason) : outcome.status))).toEqual(['fulfilled', 'fulfilled'])
    const snapshot = await inline.getRun('lock-order-update')
    expect(snapshot?.stages.map((stage) => [stage.stageNumber, stage.status])).toEqual([
      [1, 'PROCESSING'],
      [2, 'PROCESSING'],
    ])
    expect(snapshot?.run.catalogue).toEqual(stages)
  })
})
