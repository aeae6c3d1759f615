/**
 * One session on a database of its own, for tests that apply the package's migrations step by
 * step: a throwaway PostgreSQL database when `DATABASE_URL` is set (dropped on close), else an
 * embedded PGlite.
 */
import { randomBytes } from 'node:crypto'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'

/** A database session that runs scripts and queries, and is dropped when closed. */
export interface MigrationSession {
  exec(sql: string): Promise<void>
  query<Row>(sql: string): Promise<Row[]>
  close(): Promise<void>
}

export async function openMigrationSession(): Promise<MigrationSession> {
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
