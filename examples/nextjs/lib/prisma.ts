import 'server-only'
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { PrismaClient } from '@/generated/prisma/client'

// `next dev` re-evaluates modules on every edit, so the pool and the client are kept on
// `globalThis` there; otherwise each reload would open another connection pool.
const globalForPrisma = globalThis as typeof globalThis & { pipelineStatusPool?: pg.Pool; pipelineStatusPrisma?: PrismaClient }

function createPool(): pg.Pool {
  const poolSize = Number(process.env['DATABASE_POOL_SIZE'] ?? 10)
  if (!process.env['DATABASE_URL'] && process.env['NEXT_PHASE'] !== 'phase-production-build') {
    // Without it `pg` falls back to localhost:5432 as the OS user: every request would then fail
    // with a cause far from the fix. One line that names it (the handlers add their own).
    console.error(
      '[nextjs-example] DATABASE_URL is not set: set it to postgresql://USER:PASSWORD@HOST:5432/DATABASE, ' +
        'or start the example with `npm run example:nextjs`, which starts a database and sets it',
    )
  }
  // The pool connects on first use, so `next build` (which loads this module) needs no database.
  return new pg.Pool({ connectionString: process.env['DATABASE_URL'], max: poolSize })
}

/**
 * The app's one `pg` pool, on DATABASE_URL: under the PrismaClient's adapter and under the
 * store's own statements (lib/pipeline-routes.ts, `createPrismaStore({ prisma, pool })`).
 * DATABASE_POOL_SIZE caps it (10): the embedded demo database (PGlite served over a socket) runs
 * every statement on one session, so its start script sets 1, since two pooled connections would
 * interleave their transactions.
 */
export const pool: pg.Pool = globalForPrisma.pipelineStatusPool ?? createPool()
/** The app's one PrismaClient, on {@link pool}. */
export const prisma: PrismaClient = globalForPrisma.pipelineStatusPrisma ?? new PrismaClient({ adapter: new PrismaPg(pool) })
if (process.env.NODE_ENV !== 'production') Object.assign(globalForPrisma, { pipelineStatusPool: pool, pipelineStatusPrisma: prisma })
