/**
 * Instants are UTC instants whatever the database's `TimeZone` (DESIGN.md "Never silent").
 * PostgreSQL takes the OS zone at `initdb`, so databases in local time are common; Prisma's
 * `@prisma/adapter-pg` writes a `Date` as wall-clock text without a zone (read in the session's
 * zone) and labels a timestamptz's local rendering as UTC (prisma/orm#28629, #26786).
 *
 * On throwaway databases set to a zone east of UTC and one west of it (`ALTER DATABASE … SET
 * timezone`), both store paths (every statement through Prisma, and `{ pool }`) write runs that
 * the other path reads back unchanged, with exactly the instants the operations were given, and
 * PostgreSQL itself holds those instants (`extract(epoch …)`, `AT TIME ZONE 'UTC'`). The
 * sweeper's and the purge's cut-offs fall on the right millisecond.
 */
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { DEFAULT_STAGES } from 'pipeline-status-sdk'
import { createPostgresReplayStore, createPrismaStore, type PrismaStore, type RunSnapshot } from 'pipeline-status-sdk/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { applyStageUpdate, completeRun, createRun, recordHeartbeat } from '../../src/core/operations.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'
import { makeStageUpdate } from '../support/fixtures.js'

const T0 = Date.parse('2026-03-01T09:00:00.000Z')
const at = (ms: number) => new Date(T0 + ms)
const stages = DEFAULT_STAGES

for (const zone of ['Asia/Tokyo', 'America/Los_Angeles'] as const) {
  describe.skipIf(!usesPostgres())(`a database whose TimeZone is ${zone} (needs DATABASE_URL)`, () => {
    let db: TestDatabase
    let prisma: PrismaClient
    let pool: pg.Pool
    let sql: pg.Client
    let viaPrisma: PrismaStore<PrismaClient>
    let viaPool: PrismaStore<PrismaClient>

    beforeAll(async () => {
      db = await createTestDatabase()
      const name = new URL(db.url as string).pathname.slice(1)
      const admin = new pg.Client({ connectionString: db.url })
      await admin.connect()
      await admin.query(`ALTER DATABASE "${name}" SET timezone = '${zone}'`)
      await admin.end()
      // Connections opened after the ALTER take the zone.
      pool = new pg.Pool({ connectionString: db.url, max: 4 })
      prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: db.url as string, max: 4 }) })
      sql = new pg.Client({ connectionString: db.url })
      await sql.connect()
      viaPrisma = createPrismaStore({ prisma })
      viaPool = createPrismaStore({ prisma, pool })
    }, 60_000)
    afterAll(async () => {
      await sql?.end()
      await pool?.end()
      await prisma?.$disconnect()
      await db?.close()
    })

    it('every session of the test really is in that zone', async () => {
      expect((await sql.query<{ TimeZone: string }>('SHOW timezone')).rows[0]?.TimeZone).toBe(zone)
      expect((await pool.query<{ TimeZone: string }>('SHOW timezone')).rows[0]?.TimeZone).toBe(zone)
      expect(await prisma.$queryRawUnsafe<Array<{ zone: string }>>(`SELECT current_setting('TimeZone') AS zone`)).toEqual([{ zone }])
    })

    /** A run's life with an instant at every step: created, stage updates, a heartbeat, /complete with a hook (a transaction). */
    async function live(store: PrismaStore<PrismaClient>, runId: string): Promise<RunSnapshot> {
      await createRun(store, { id: runId, now: at(0) })
      await applyStageUpdate(store, runId, makeStageUpdate({ stageNumber: 1 }), { stages, now: at(1_000) })
      await recordHeartbeat(store, runId, { stageNumber: 1, intervalMs: 5_000 }, { now: at(2_000) })
      await applyStageUpdate(store, runId, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', completedAt: at(3_123).toISOString() }), { stages, now: at(4_000) })
      await completeRun(store, runId, { status: 'FAILED', error: 'stopped', completedAt: at(5_456).toISOString() }, { now: at(6_000), onRunCompleted: () => {} })
      const snapshot = await store.getRun(runId)
      if (!snapshot) throw new Error(`run ${runId} not found`)
      return snapshot
    }

    /** The instants PostgreSQL holds, as epoch milliseconds and as UTC text, without a driver's `Date` in between. */
    async function storedInstants(runId: string) {
      const { rows } = await sql.query(
        `SELECT (extract(epoch FROM r."createdAt") * 1000)::bigint::text AS "created",
                to_char(r."updatedAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "updated",
                to_char(r."completedAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "completed",
                to_char(r."completionReceivedAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "received",
                to_char(r."lastActivityAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "lastActivity",
                to_char(s."createdAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "stageCreated",
                to_char(s."updatedAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "stageUpdated",
                to_char(s."completedAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "stageCompleted"
         FROM "PipelineRun" r JOIN "StageOutput" s ON s."runId" = r.id AND s."stageNumber" = 1 WHERE r.id = $1`,
        [runId],
      )
      return rows[0]
    }

    const EXPECTED_RUN = {
      createdAt: at(0),
      updatedAt: at(6_000),
      completedAt: at(5_456),
      completionReceivedAt: at(6_000),
      lastActivityAt: at(2_000),
    }
    const EXPECTED_SQL = {
      created: String(T0),
      updated: at(6_000).toISOString(),
      completed: at(5_456).toISOString(),
      received: at(6_000).toISOString(),
      lastActivity: at(2_000).toISOString(),
      stageCreated: at(1_000).toISOString(),
      stageUpdated: at(4_000).toISOString(),
      stageCompleted: at(3_123).toISOString(),
    }

    it('what one path writes, the other reads back unchanged, as the instants given, and PostgreSQL holds them', async () => {
      for (const [writer, reader, runId] of [
        [viaPrisma, viaPool, 'tz-written-by-prisma'],
        [viaPool, viaPrisma, 'tz-written-by-pool'],
      ] as const) {
        const written = await live(writer, runId)
        expect(written.run).toMatchObject({ status: 'FAILED', ...EXPECTED_RUN })
        expect(written.stages[0]).toMatchObject({ status: 'COMPLETED', createdAt: at(1_000), updatedAt: at(4_000), completedAt: at(3_123) })
        expect(await reader.getRun(runId)).toEqual(written)
        expect(await storedInstants(runId)).toEqual(EXPECTED_SQL)
      }
    })

    it("the sweeper's cut-off: a run heartbeated a second ago is not stale; one silent for 3 intervals is, to the millisecond", async () => {
      await createRun(viaPool, { id: 'tz-beat', now: at(0) })
      await applyStageUpdate(viaPrisma, 'tz-beat', makeStageUpdate(), { stages, now: at(0) })
      await recordHeartbeat(viaPrisma, 'tz-beat', { stageNumber: 1, intervalMs: 5_000 }, { now: at(60_000) })
      for (const store of [viaPrisma, viaPool]) {
        const stale = async (now: number) => (await store.listStaleRuns(at(now - 15 * 60_000), 100, at(now))).map((run) => run.id)
        expect(await stale(61_000)).not.toContain('tz-beat')
        // Three missed intervals of 5 s: stale only after 15 s of silence.
        expect(await stale(75_000)).not.toContain('tz-beat')
        expect(await stale(75_001)).toContain('tz-beat')
        // The updatedAt cut-off of runs without a heartbeat interval, to the millisecond too.
        expect((await store.listStaleRuns(at(0), 100)).map((run) => run.id)).not.toContain('tz-quiet')
      }
      await createRun(viaPrisma, { id: 'tz-quiet', now: at(10_000) })
      for (const store of [viaPrisma, viaPool]) {
        expect((await store.listStaleRuns(at(10_000), 100)).map((run) => run.id)).not.toContain('tz-quiet')
        expect((await store.listStaleRuns(at(10_001), 100)).map((run) => run.id)).toContain('tz-quiet')
      }
    })

    it("the purge's cut-off falls on the run's last change, to the millisecond, on both paths", async () => {
      // Written by one path, purged by the other.
      for (const [writer, store, runId] of [
        [viaPool, viaPrisma, 'tz-purge-prisma'],
        [viaPrisma, viaPool, 'tz-purge-pool'],
      ] as const) {
        await createRun(writer, { id: runId, now: at(0) })
        await completeRun(writer, runId, { status: 'CANCELLED' }, { now: at(30_000) })
        expect(await store.deleteFinishedRuns({ status: 'CANCELLED', updatedBefore: at(30_000), limit: 10 })).toBe(0)
        expect(await store.deleteFinishedRuns({ status: 'CANCELLED', updatedBefore: at(30_001), limit: 10 })).toBe(1)
        expect(await store.getRun(runId)).toBeNull()
      }
    })

    it('the signed-request replay store keeps a message id until its expiry instant, to the millisecond (Postgres replay store)', async () => {
      let now = T0
      const replays = createPostgresReplayStore(prisma, { now: () => now })
      expect(await replays.claim('msg-tz', 'fingerprint-a', T0 + 60_000)).toBe(true)
      const { rows } = await sql.query<{ expires: string }>(`SELECT (extract(epoch FROM "expiresAt") * 1000)::bigint::text AS expires FROM "WebhookMessage" WHERE id = 'msg-tz'`)
      expect(rows).toEqual([{ expires: String(T0 + 60_000) }])
      // Another body with the same id is refused until the expiry, and accepted from it on.
      now = T0 + 59_999
      expect(await replays.claim('msg-tz', 'fingerprint-b', T0 + 120_000)).toBe(false)
      now = T0 + 60_000
      expect(await replays.claim('msg-tz', 'fingerprint-b', T0 + 120_000)).toBe(true)
    })

    it("the app's own Prisma model queries on these tables are off by the zone's offset (why docs/operations.md recommends UTC)", async () => {
      // What @prisma/adapter-pg 7 does with a Date on such a database: documented, not relied on.
      await createRun(viaPool, { id: 'tz-app-read', now: at(0) })
      const row = await prisma.pipelineRun.findUniqueOrThrow({ where: { id: 'tz-app-read' }, select: { createdAt: true } })
      const { rows } = await sql.query<{ offset: string }>(`SELECT extract(timezone FROM $1::timestamptz)::integer * 1000 AS "offset"`, [at(0).toISOString()])
      const offsetMs = Number(rows[0]?.offset)
      expect(offsetMs).not.toBe(0)
      expect(row.createdAt.getTime() - T0).toBe(offsetMs)
      // And a Date the app writes through the model API lands shifted the other way in PostgreSQL.
      await prisma.pipelineRun.update({ where: { id: 'tz-app-read' }, data: { updatedAt: at(0) } })
      expect((await viaPool.readRun('tz-app-read'))?.run.updatedAt.getTime()).toBe(T0 - offsetMs)
    })
  })
}
