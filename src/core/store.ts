import type { RunSnapshot, RunState, StageState } from './state.js'

/**
 * What a store offers inside one transaction. The operations in `operations.ts` call these in
 * a fixed order (lock the run, read the stage, decide, write), so a store only has to make the
 * transaction atomic and the lock exclusive per run.
 *
 * @typeParam Tx - the store's own transaction handle, handed to the app's hooks
 *   (a Prisma transaction client for `PrismaStore`).
 */
export interface StoreTransaction<Tx = unknown> {
  /** The store's transaction handle, passed to `onRunCompleted`. */
  readonly client: Tx
  /** Reads a run and holds an exclusive lock on it until the transaction ends; `null` if unknown. */
  lockRun(runId: string): Promise<RunState | null>
  /** Reads one stored stage of a run, or `undefined` when it has no row. */
  getStage(runId: string, stageNumber: number): Promise<StageState | undefined>
  /** Inserts or updates one stage (unique per run and stage number). */
  saveStage(runId: string, stage: StageState): Promise<void>
  /** Updates a run's status fields. */
  saveRun(run: RunState): Promise<void>
}

/**
 * Persistence behind the handlers. `MemoryStore` (for the mock and tests) and `PrismaStore`
 * (for PostgreSQL) implement it; the rules themselves live in the state machine, not here.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers, MemoryStore, type Store } from 'pipeline-status-sdk/server'
 * const store: Store<MemoryStore> = new MemoryStore()
 * const handlers = createPipelineStatusHandlers({ store, secret: 'dev-secret' })
 * ```
 */
export interface Store<Tx = unknown> {
  /** Runs `fn` in one atomic transaction; a throw rolls every write back. */
  transaction<T>(fn: (tx: StoreTransaction<Tx>) => Promise<T>): Promise<T>
  /** Inserts a run unless one with its id exists; returns the stored run either way. */
  insertRun(run: RunState): Promise<{ created: boolean; run: RunState }>
  /** Reads a run with its stored stages ordered by stage number; `null` if unknown. */
  getRun(runId: string): Promise<RunSnapshot | null>
  /**
   * Lists unfinished runs (`PENDING` or `PROCESSING`) whose `updatedAt` is before `updatedBefore`,
   * oldest first, at most `limit` of them. Only a listing, outside any transaction: the
   * stale-run sweep then locks and re-checks each run before failing it. Optional; without it,
   * `failStaleRuns` and the stale-run sweeper cannot work on the store. `MemoryStore` and
   * `PrismaStore` implement it.
   */
  listStaleRuns?(updatedBefore: Date, limit: number): Promise<RunState[]>
}

/**
 * Thrown by a store when its database cannot be reached; the handlers answer 503 with
 * `Retry-After`. `PrismaStore` throws it for connection errors; a store of your own should too.
 *
 * @example
 * ```ts
 * import { StoreUnavailableError } from 'pipeline-status-sdk/server'
 * throw new StoreUnavailableError('Redis is unreachable', { cause: error })
 * ```
 */
export class StoreUnavailableError extends Error {
  /** Always `'StoreUnavailableError'`; check it with {@link isStoreUnavailableError}. */
  override readonly name = 'StoreUnavailableError' as const
  constructor(message = 'The database is unreachable', options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** Whether a value is a {@link StoreUnavailableError}, also across realms and dual builds. */
export function isStoreUnavailableError(error: unknown): error is StoreUnavailableError {
  return error instanceof Error && error.name === 'StoreUnavailableError'
}
