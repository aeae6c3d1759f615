import 'server-only'
import { PrismaPg } from '@prisma/adapter-pg'
import { PrismaClient } from '@/generated/prisma/client'

// `next dev` re-evaluates modules on every edit, so the client is kept on `globalThis` there;
// otherwise each reload would open another connection pool.
const globalForPrisma = globalThis as typeof globalThis & { pipelineStatusPrisma?: PrismaClient }

function createPrismaClient(): PrismaClient {
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
  const adapter = new PrismaPg({ connectionString: process.env['DATABASE_URL'], max: poolSize })
  return new PrismaClient({ adapter })
}

/**
 * The app's one PrismaClient, on DATABASE_URL. DATABASE_POOL_SIZE caps its pool (10): the
 * embedded demo database (PGlite served over a socket) runs every statement on one session, so
 * its start script sets 1, since two pooled connections would interleave their transactions.
 */
export const prisma: PrismaClient = globalForPrisma.pipelineStatusPrisma ?? createPrismaClient()
if (process.env.NODE_ENV !== 'production') globalForPrisma.pipelineStatusPrisma = prisma
