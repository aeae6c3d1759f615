/**
 * What the store runs its statements on: one statement with bound parameters in, its rows out.
 * Two adapters implement it, chosen once when the store is created: `pool-executor.ts` (the
 * app's `pg` pool) and `prisma-executor.ts` (the Prisma client's raw queries, also inside a
 * transaction).
 */
import { StoreUnavailableError } from '../../../core/store.js'
import { backoffDelay, type BackoffOptions } from '../../../internal/backoff.js'
import { hasSqlState, toStoreError } from '../../database-errors.js'

/** Runs one statement of the store's SQL with bound parameters (`$1`, `$2`, …) and returns its rows. */
export interface SqlExecutor {
  query<Row>(sql: string, values: unknown[]): Promise<Row[]>
  /**
   * Whether statements reach the database as named prepared statements now (parsed and planned
   * once per connection); `undefined` = no, each is parsed and planned on every call.
   */
  readonly prepares?: boolean | undefined
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

/**
 * The SQLSTATEs of class 40 after which PostgreSQL asks the application to run the statement
 * again: 40001 serialization_failure (a `REPEATABLE READ` or `SERIALIZABLE` statement found a row
 * changed by a concurrent transaction) and 40P01 deadlock_detected. Nothing of the refused
 * statement was kept (PostgreSQL's manual, "Serialization Failure Handling").
 */
export const RUN_AGAIN_SQLSTATES: readonly string[] = ['40001', '40P01']

/**
 * How many times in all a statement refused with one of {@link RUN_AGAIN_SQLSTATES} is run: 10.
 * Measured on a `SERIALIZABLE` database with four writers of one run (two stage-update loops, two
 * heartbeat loops, 100 requests each; bench/README.md "Statements PostgreSQL rolls back"): 3
 * immediate runs left 25–31 of 200 heartbeats a 500, 10 runs with {@link RUN_AGAIN_BACKOFF}'s
 * pauses none.
 */
export const RUN_AGAIN_ATTEMPTS = 10

/**
 * The pause before each rerun: full jitter below 5 ms, doubling to at most 250 ms (the one backoff
 * formula, `internal/backoff.ts`), so concurrent writers of one run stop meeting each other; the
 * ceilings of all nine pauses add up to 1,065 ms.
 */
export const RUN_AGAIN_BACKOFF: BackoffOptions = { baseMs: 5, maxMs: 250, jitter: 'full' }

/** The class-40 SQLSTATE of `error` ({@link RUN_AGAIN_SQLSTATES}), if it has one. */
export function runAgainState(error: unknown): string | undefined {
  return RUN_AGAIN_SQLSTATES.find((state) => hasSqlState(error, state))
}

/**
 * `executor`, with each statement refused with a class-40 SQLSTATE ({@link runAgainState}) run
 * again after a short jittered pause ({@link RUN_AGAIN_BACKOFF}), up to {@link RUN_AGAIN_ATTEMPTS}
 * times in all; `ranAgain` hears each rerun, with the state and the error. For statements outside
 * a transaction only: each one is its own transaction, so running it again is what PostgreSQL
 * asks. Past the attempts the error propagates.
 */
export function runningAgainOnRollback(executor: SqlExecutor, ranAgain: (state: string, error: unknown) => void): SqlExecutor {
  return {
    get prepares() {
      return executor.prepares
    },
    async query<Row>(sql: string, values: unknown[]): Promise<Row[]> {
      for (let attempt = 1; ; attempt += 1) {
        try {
          return await executor.query<Row>(sql, values)
        } catch (error) {
          const state = runAgainState(error)
          if (state === undefined || attempt >= RUN_AGAIN_ATTEMPTS) throw error
          ranAgain(state, error)
          await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, RUN_AGAIN_BACKOFF)))
        }
      }
    },
  }
}
