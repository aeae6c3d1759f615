/**
 * The database behind the Next.js example, as a URL that `next start` can connect to:
 * PostgreSQL when a URL is given (the package's migrations are applied first), otherwise an
 * embedded PGlite served over a local socket, so the demo and its test need nothing installed.
 */
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { openDatabase } from '../../shared/database.js'

/** Options of {@link serveDatabase}. */
export interface ServeDatabaseOptions {
  /** A PostgreSQL URL. Without it, PGlite is served. */
  url?: string | undefined
  /** PGlite's data folder, kept between runs. Without it, PGlite runs in memory. Ignored with `url`. */
  dataDir?: string | undefined
}

/** A database the app can reach by URL. */
export interface ServedDatabase {
  kind: 'postgres' | 'pglite'
  /** What the app gets as DATABASE_URL. */
  url: string
  /**
   * The largest connection pool the app may open (DATABASE_POOL_SIZE). PGlite has a single
   * session that every socket connection shares, so two pooled connections there would
   * interleave their transactions: one connection keeps them apart.
   */
  poolSize: number
  /** Stops serving and closes the database. */
  close(): Promise<void>
}

/** Allowed socket connections to PGlite: the app's one, plus room for a `psql` to look in. */
const PGLITE_MAX_CONNECTIONS = 4

/**
 * Opens the database (applying pending migrations) and makes it reachable by URL.
 *
 * @example
 * ```ts
 * const db = await serveDatabase({ url: process.env.DATABASE_URL, dataDir: '.data/nextjs-example' })
 * // start the app with DATABASE_URL=db.url DATABASE_POOL_SIZE=db.poolSize, then:
 * await db.close()
 * ```
 */
export async function serveDatabase(options: ServeDatabaseOptions = {}): Promise<ServedDatabase> {
  if (options.url) {
    const db = await openDatabase({ url: options.url, poolSize: 1 })
    await db.close()
    return { kind: 'postgres', url: options.url, poolSize: 10, close: async () => {} }
  }

  const db = await openDatabase({ dataDir: options.dataDir })
  if (!db.pglite) throw new Error('Expected an embedded PGlite database')
  // The default of one connection makes a second client wait forever, e.g. a new pool
  // connection after the first was dropped.
  const server = new PGLiteSocketServer({ db: db.pglite, host: '127.0.0.1', port: 0, maxConnections: PGLITE_MAX_CONNECTIONS })
  try {
    await server.start()
  } catch (error) {
    await db.close()
    throw error
  }
  return {
    kind: 'pglite',
    // PGlite ignores user and password; sslmode=disable skips the TLS request it would refuse.
    url: `postgresql://postgres:postgres@${server.getServerConn()}/postgres?sslmode=disable`,
    poolSize: 1,
    close: async () => {
      try {
        await server.stop()
      } finally {
        await db.close()
      }
    },
  }
}
