/**
 * What the benchmark parents share about the database: the PostgreSQL server they need
 * (`DATABASE_URL`, else they say so and skip), and one admin connection per statement for
 * creating and dropping their throwaway databases.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'

/** `DATABASE_URL`; without it, prints that `what` is skipped and how to run it (`command`), and exits 0. */
export function requireDatabaseUrl(what: string, command = 'npm run bench'): string {
  const url = process.env['DATABASE_URL']
  if (url) return url
  console.log(`${what}: DATABASE_URL is not set, so it is skipped.`)
  console.log(`  Run it with: DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres ${command}`)
  process.exit(0)
}

/** Runs `fn` on a connection of its own to `serverUrl`, closed afterwards. */
export async function withAdmin<T>(serverUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** A throwaway database of a benchmark: its name, its URL, and how to drop it. */
export interface ThrowawayDatabase {
  name: string
  url: string
  /** `DROP DATABASE … WITH (FORCE)`; a failure (the server gone meanwhile) is ignored. */
  drop(): Promise<void>
}

/** Creates an empty database named `<prefix>_<10 hex digits>` on `serverUrl`, for one benchmark run. */
export async function createThrowawayDatabase(serverUrl: string, prefix: string): Promise<ThrowawayDatabase> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`
  await withAdmin(serverUrl, (client) => client.query(`CREATE DATABASE "${name}"`))
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return {
    name,
    url: url.toString(),
    drop: () => withAdmin(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(
      () => undefined,
      () => undefined,
    ),
  }
}
