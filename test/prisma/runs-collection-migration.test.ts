/**
 * The runs-collection migration is additive: rows written before it (here by the migrations
 * before it, with only their own columns) read afterwards as pipeline `default`, no catalogue (=
 * the default pipeline's current one), no tags, metadata `{}` and no start. On PostgreSQL when
 * `DATABASE_URL` is set (a throwaway database), else on embedded PGlite.
 */
import { randomBytes } from 'node:crypto'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { listMigrations } from '../../examples/shared/database.js'

const MIGRATION = '20261206090000_runs_collection'

/** A database session that runs scripts and queries, and is dropped when closed. */
interface Session {
  exec(sql: string): Promise<void>
  query<Row>(sql: string): Promise<Row[]>
  close(): Promise<void>
}

async function openSession(): Promise<Session> {
  const serverUrl = process.env['DATABASE_URL']
  if (!serverUrl) {
    const db = new PGlite()
    return {
      exec: async (sql) => void (await db.exec(sql)),
      query: async <Row>(sql: string) => (await db.query<Row>(sql)).rows,
      close: () => db.close(),
    }
  }
  const name = `pss_test_${randomBytes(6).toString('hex')}`
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: serverUrl })
    await client.connect()
    try {
      await client.query(sql)
    } finally {
      await client.end()
    }
  }
  await admin(`CREATE DATABASE "${name}"`)
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  const client = new pg.Client({ connectionString: url.toString() })
  await client.connect()
  return {
    exec: async (sql) => void (await client.query(sql)),
    query: async <Row>(sql: string) => (await client.query(sql)).rows as Row[],
    close: async () => {
      await client.end()
      await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    },
  }
}

describe('the runs-collection migration', () => {
  it('leaves existing rows as pipeline default with no catalogue, no tags and {} metadata', async () => {
    const session = await openSession()
    try {
      const migrations = listMigrations()
      const at = migrations.findIndex((migration) => migration.name === MIGRATION)
      expect(at).toBeGreaterThan(0)
      for (const migration of migrations.slice(0, at)) await session.exec(migration.sql)
      // A row as the schema before it had them, finished and not.
      await session.exec(
        `INSERT INTO "PipelineRun" ("id", "status", "updatedAt") VALUES ('old-pending', 'PENDING', now()), ('old-done', 'COMPLETED', now())`,
      )
      for (const migration of migrations.slice(at)) await session.exec(migration.sql)
      const rows = await session.query<Record<string, unknown>>(
        `SELECT "id", "pipeline", "catalogue", "tags"::text AS "tags", "metadata"::text AS "metadata", "startedAt" FROM "PipelineRun" ORDER BY "id"`,
      )
      expect(rows).toEqual([
        { id: 'old-done', pipeline: 'default', catalogue: null, tags: '{}', metadata: '{}', startedAt: null },
        { id: 'old-pending', pipeline: 'default', catalogue: null, tags: '{}', metadata: '{}', startedAt: null },
      ])
      // A row written later without the new columns (an app's own INSERT) gets the same.
      await session.exec(`INSERT INTO "PipelineRun" ("id", "updatedAt") VALUES ('new-bare', now())`)
      const [bare] = await session.query<Record<string, unknown>>(`SELECT "pipeline", "tags"::text AS "tags", "metadata"::text AS "metadata" FROM "PipelineRun" WHERE "id" = 'new-bare'`)
      expect(bare).toEqual({ pipeline: 'default', tags: '{}', metadata: '{}' })
    } finally {
      await session.close()
    }
  })
})
