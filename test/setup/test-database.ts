/**
 * A fresh database for each caller: a throwaway database on the server in `DATABASE_URL`
 * (created here, dropped by `close()`), or an in-memory PGlite when it is unset. Both get the
 * SQL in `prisma/migrations`, exactly what users deploy.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { type Database, openDatabase } from '../../examples/shared/database.js'

/** A database that belongs to one test file or test. */
export interface TestDatabase extends Database {
  /** Its connection URL; only for `kind: 'postgres'`. */
  url?: string
}

/** Options of {@link createTestDatabase}. */
export interface TestDatabaseOptions {
  /**
   * Connections in the client's pool (PostgreSQL only; PGlite has one).
   * @default 10
   */
  poolSize?: number
  /**
   * `'pglite'` uses embedded PGlite even when `DATABASE_URL` is set, for tests that must cover it.
   * @default 'auto': PostgreSQL when `DATABASE_URL` is set, else PGlite
   */
  engine?: 'auto' | 'pglite'
}

let announced = false

/** Whether the tests run on real PostgreSQL (`DATABASE_URL` set) rather than PGlite. */
export function usesPostgres(): boolean {
  return Boolean(process.env['DATABASE_URL'])
}

/**
 * Creates a database with every migration applied.
 *
 * @example
 * ```ts
 * const db = await createTestDatabase()
 * afterAll(() => db.close())
 * ```
 */
export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const serverUrl = options.engine === 'pglite' ? undefined : process.env['DATABASE_URL']
  if (options.engine === 'pglite') {
    console.info('[test-db] using embedded PGlite in memory, as this test asks')
    return openDatabase({})
  }
  if (!serverUrl) {
    announce('[test-db] using embedded PGlite in memory (set DATABASE_URL to use PostgreSQL)')
    return openDatabase({})
  }

  announce(`[test-db] using PostgreSQL at ${redact(serverUrl)}`)
  const name = `pss_test_${randomBytes(6).toString('hex')}`
  await withAdmin(serverUrl, (admin) => admin.query(`CREATE DATABASE "${name}"`))
  const url = withDatabase(serverUrl, name)
  let db: Database
  try {
    db = await openDatabase({ url, poolSize: options.poolSize })
  } catch (error) {
    await dropDatabase(serverUrl, name)
    throw error
  }
  return {
    ...db,
    url,
    close: async () => {
      try {
        await db.close()
      } finally {
        await dropDatabase(serverUrl, name)
      }
    },
  }
}

function announce(message: string): void {
  if (announced) return
  announced = true
  console.info(message)
}

/** How long a drop waits for the database's connections to close by themselves before it ends them: 2 s. */
const DROP_GRACE_MS = 2_000

async function dropDatabase(serverUrl: string, name: string): Promise<void> {
  await withAdmin(serverUrl, async (admin) => {
    // A pool's end() can resolve while its connections are still closing: ended by FORCE, such a
    // connection is told 57P01, and a pool with no 'error' listener throws it as uncaught. So wait
    // for them first, up to DROP_GRACE_MS; FORCE ends what a test that failed midway still holds.
    const deadline = Date.now() + DROP_GRACE_MS
    for (;;) {
      const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1`, [name])
      if ((rows[0]?.n ?? 0) === 0 || Date.now() > deadline) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
  })
}

async function withAdmin<T>(serverUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl)
  url.pathname = `/${database}`
  return url.toString()
}

function redact(serverUrl: string): string {
  const url = new URL(serverUrl)
  if (url.password) url.password = '***'
  return `${url.host}${url.pathname}`
}
