/** The store's statements through the Prisma client's raw queries (`$queryRawUnsafe`). */
import type { CallGuard, SqlExecutor } from './sql-executor.js'

/** The raw-query part of a `PrismaClient` or of its transaction client. */
export interface RawQueryClient {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): PromiseLike<T>
}

/**
 * An executor on `client`: each call through `guard` (the store's bound and error
 * classification), or unguarded inside a transaction, which the transaction bounds as a whole.
 */
export function createPrismaExecutor(client: RawQueryClient, guard?: CallGuard): SqlExecutor {
  if (!guard) return { query: <Row>(sql: string, values: unknown[]) => Promise.resolve(client.$queryRawUnsafe<Row[]>(sql, ...values)) }
  return { query: <Row>(sql: string, values: unknown[]) => guard(client.$queryRawUnsafe<Row[]>(sql, ...values)) }
}
