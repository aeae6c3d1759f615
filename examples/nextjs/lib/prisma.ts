import 'server-only'
import { PrismaPg } from '@prisma/adapter-pg'
import { createPgConnections, type PgConnections } from 'pipeline-status-sdk/pg'
import { PrismaClient } from '@/generated/prisma/client'

// One set of connections and one PrismaClient per process, kept on `globalThis`: `next dev`
// re-evaluates modules on every edit, and each evaluation would otherwise open more pools.
const globalForDb = globalThis as typeof globalThis & { pipelineStatusDb?: PgConnections; pipelineStatusPrisma?: PrismaClient }

/**
 * The app's connections (`createPgConnections` from `pipeline-status-sdk/pg`), made on the first
 * call, never at import: `next build` imports every route and page module without DATABASE_URL,
 * and `createPgConnections` throws a `ServerConfigurationError` naming DATABASE_URL when it is
 * empty. The first request does call it, so a server started without DATABASE_URL says so there.
 *
 * - DATABASE_URL: the URL requests use (`db.pool`, under the PrismaClient and the store's own
 *   statements); a transaction pooler's is fine.
 * - DIRECT_DATABASE_URL (optional): a direct session URL (the database's own host and port, or a
 *   pooler in session mode). With it the live streams use LISTEN (a change written by another
 *   server instance reaches a page in a few milliseconds); without it they poll run versions.
 *   One line at the first request says which, and why (docs/live-status.md).
 * - DATABASE_POOL_SIZE caps the request pool (10): the embedded demo database (PGlite served over
 *   a socket) runs every statement on one session, so its start script sets 1, since two pooled
 *   connections would interleave their transactions.
 *
 * Nothing connects until used; nothing here is closed per request.
 */
export function getDb(): PgConnections {
  globalForDb.pipelineStatusDb ??= createPgConnections({
    connectionString: process.env['DATABASE_URL'] ?? '',
    directConnectionString: process.env['DIRECT_DATABASE_URL'],
    pool: { max: Number(process.env['DATABASE_POOL_SIZE'] ?? 10) },
  })
  return globalForDb.pipelineStatusDb
}

/** The app's one PrismaClient, on {@link getDb}'s request pool (`new PrismaPg(db.pool)`); made on the first call. */
export function getPrisma(): PrismaClient {
  globalForDb.pipelineStatusPrisma ??= new PrismaClient({ adapter: new PrismaPg(getDb().pool) })
  return globalForDb.pipelineStatusPrisma
}
