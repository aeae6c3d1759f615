/**
 * Heartbeats stay cheap (issue 31, DESIGN.md "Scale": "heartbeats stay heap-only updates"): a
 * heartbeat writes only `lastActivityAt` and `heartbeatIntervalMs`, no index holds either (nor
 * `updatedAt`'s place is touched: the `(status, updatedAt)` index would make it a full update),
 * and the run table keeps room on its pages (fillfactor, migration 20261206093000_run_fillfactor,
 * which Prisma's schema cannot say, so migration-drift.test.ts does not see it): so n heartbeats
 * are n heap-only (HOT) updates, which touch no index. Counted by PostgreSQL itself in
 * pg_stat_user_tables, on a throwaway database.
 */
import { createPipelineStatusHandlers, createPrismaStore } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { createTestDatabase, usesPostgres } from '../setup/test-database.js'
import { handlerRequests } from '../support/handler-requests.js'
import { quiet } from '../support/loggers.js'
import { until } from '../support/until.js'

const SECRET = 'heartbeat-hot-secret'
const { post } = handlerRequests(SECRET)
const RUNS = ['hot-1', 'hot-2', 'hot-3']
/**
 * Few enough that every row version fits on the runs' one page with no pruning: PostgreSQL prunes
 * dead versions only opportunistically, when no snapshot in the cluster's horizon still sees them,
 * and a suite running other databases' transactions beside this one can hold that back (20
 * heartbeats of 3 runs counted 54 of 60 as heap-only there: the page filled before it was pruned).
 */
const HEARTBEATS = 5
/** PostgreSQL's page, less its header, with room for one line pointer (4 bytes) and alignment per version. */
const PAGE_ROOM = 8192 - 24

interface TableStats {
  upd: number
  hot: number
}

describe.skipIf(!usesPostgres())('heartbeats on PostgreSQL (needs DATABASE_URL)', () => {
  it('are heap-only updates: n heartbeats add n to n_tup_upd and n to n_tup_hot_upd', async () => {
    const db = await createTestDatabase()
    const sql = <Row>(text: string) => db.prisma.$queryRawUnsafe<Row[]>(text)
    // Stats are flushed by each backend within a second or so of going idle; read fresh each time.
    const stats = async (): Promise<TableStats> => {
      const rows = await sql<{ upd: number; hot: number }>(
        `SELECT n_tup_upd::integer AS upd, n_tup_hot_upd::integer AS hot FROM pg_stat_user_tables WHERE relname = 'PipelineRun'`,
      )
      return rows[0] as TableStats
    }
    const handlers = createPipelineStatusHandlers({ store: createPrismaStore({ prisma: db.prisma }), secret: SECRET, logger: quiet })
    try {
      const options = await sql<{ options: string[] | null }>(`SELECT reloptions AS options FROM pg_class WHERE relname = 'PipelineRun'`)
      expect(options[0]?.options).toEqual(['fillfactor=90'])
      // No index may hold a column a heartbeat writes, or its updates stop being heap-only.
      const indexed = await sql<{ index: string; column: string }>(
        `SELECT i.indexrelid::regclass::text AS index, a.attname AS column FROM pg_index i ` +
          `JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) ` +
          `WHERE i.indrelid = '"PipelineRun"'::regclass AND a.attname IN ('lastActivityAt', 'heartbeatIntervalMs')`,
      )
      expect(indexed).toEqual([])

      for (const id of RUNS) expect((await handlers.fetch(post('/runs', { id }))).status).toBe(201)
      // The premise: the runs and all their heartbeats' versions fit on one page, unpruned.
      const [{ size }] = (await sql<{ size: number }>(`SELECT max(pg_column_size(r.*))::integer AS size FROM "PipelineRun" r`)) as [{ size: number }]
      expect((size + 16 + 4 + 8) * RUNS.length * (HEARTBEATS + 1)).toBeLessThan(PAGE_ROOM)
      const before = await stats()
      let last = before
      for (let i = 0; i < HEARTBEATS; i++) {
        for (const id of RUNS) {
          const response = await handlers.fetch(post(`/${id}/heartbeat`, { intervalMs: 10_000 }))
          expect(response.status).toBe(200)
        }
      }
      const n = HEARTBEATS * RUNS.length
      // until() reads synchronously: a loop beside it keeps `last` fresh until it holds.
      let counted = false
      const refresh = (async () => {
        while (!counted) {
          last = await stats()
          counted = last.upd - before.upd >= n
          if (!counted) await new Promise((resolve) => setTimeout(resolve, 50))
        }
      })()
      await until(`${n} updates in pg_stat_user_tables`, () => counted, 20_000).finally(() => (counted = true))
      await refresh
      expect(last.upd - before.upd).toBe(n)
      expect(last.hot - before.hot).toBe(n)
    } finally {
      await handlers.close()
      await db.close()
    }
  }, 60_000)
})
