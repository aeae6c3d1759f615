/**
 * What the store runs its statements on: one statement with bound parameters in, its rows out.
 * Two adapters implement it, chosen once when the store is created: `pool-executor.ts` (the
 * app's `pg` pool) and `prisma-executor.ts` (the Prisma client's raw queries, also inside a
 * transaction).
 */
import { StoreUnavailableError } from '../../../core/store.js'
import { toStoreError } from '../../database-errors.js'

/** Runs one statement of the store's SQL with bound parameters (`$1`, `$2`, …) and returns its rows. */
export interface SqlExecutor {
  query<Row>(sql: string, values: unknown[]): Promise<Row[]>
  /**
   * Whether statements reach the database as named prepared statements now (parsed and planned
   * once per connection); `undefined` = no, each is parsed and planned on every call.
   */
  readonly prepares?: boolean
}

/** Bounds and classifies one database call (see {@link guardedBy}). */
export type CallGuard = <T>(pending: PromiseLike<T>) => Promise<T>

/**
 * A guard that settles like the call, or rejects with `StoreUnavailableError` after `ms`
 * milliseconds, and classifies a database error with `toStoreError` (unreachable and not
 * migrated become `StoreUnavailableError`; others propagate unchanged).
 */
export function guardedBy(ms: number): CallGuard {
  return async (pending) => {
    try {
      return await bounded(pending, ms)
    } catch (error) {
      throw toStoreError(error)
    }
  }
}

/**
 * Settles like `pending`, or rejects with `StoreUnavailableError` after `ms` milliseconds. The
 * abandoned call keeps running until the driver gives up; its late failure is ignored.
 */
export function bounded<T>(pending: PromiseLike<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new StoreUnavailableError(`The database did not answer within ${ms} ms`)),
      ms,
    )
    Promise.resolve(pending).then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })
}

/** An error's `code` (a SQLSTATE, a Prisma code), if it has one. */
export function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
}
