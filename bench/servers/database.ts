/**
 * What the benchmark parents share about the database: the PostgreSQL server they need
 * (`DATABASE_URL`, else they say so and skip), and one admin connection per statement for
 * creating and dropping their throwaway databases.
 */
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
