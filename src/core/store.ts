import type { RunChangeListener } from './run-changes.js'
import type { FinishedRunsDeletion, OutputChunkRow, RunSnapshot, RunStageRead, RunStageWrite, RunState, RunTouch, RunWrite, StageState, VersionedRun } from './state.js'
import { isErrorNamed } from '../internal/is-error-named.js'
import type { RunCountRequest, RunListItem, RunListRequest, RunWindowEntry } from './run-list.js'
import type { RunStatsRequest } from './run-stats.js'
import type { StageStats } from '../contract/run-stats.js'

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
  /**
   * Reads every stored stage of a run, ordered by stage number. Optional: without it,
   * `POST /cancel` reads the catalogue's stages one by one with {@link StoreTransaction.getStage}.
   */
  getStages?(runId: string): Promise<StageState[]>
  /** Inserts or updates one stage (unique per run and stage number). */
  saveStage(runId: string, stage: StageState): Promise<void>
  /**
   * Updates a run's status fields: one applied change, so the store also raises the run's
   * version to `nextRunVersion` of the version it had.
   */
  saveRun(run: RunState): Promise<void>
  /**
   * Inserts a streamed output chunk of a stage, with the version the transaction's `saveRun`
   * gives the run (called after it). Optional, together with `deleteOutputChunks` and
   * {@link Store.getOutputChunk}: a store without them answers the output route 501.
   */
  saveOutputChunk?(runId: string, stageNumber: number, seq: number, text: string): Promise<void>
  /** Deletes every streamed output chunk of a stage (an applied higher attempt resets it). */
  deleteOutputChunks?(runId: string, stageNumber: number): Promise<void>
}

/** Options of {@link Store.getRun}. */
export interface GetRunOptions {
  /**
   * `false`: leave out the streamed text of stages that show it (they come marked
   * `streamedOutput` with `output: null`, and the snapshot with `streamedText: false`), for a
   * reader that gets the text as chunks (the live streams), so a read costs nothing per byte of
   * streamed output. A store may ignore it and include the text.
   * @default true
   */
  streamedText?: boolean | undefined
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
 *
 * @experimental Part of the custom-store API, which may change in a minor release until the
 *   `Store` interface settles.
 */
export interface Store<Tx = unknown> {
  /** Runs `fn` in one atomic transaction; a throw rolls every write back. */
  transaction<T>(fn: (tx: StoreTransaction<Tx>) => Promise<T>): Promise<T>
  /** Inserts a run unless one with its id exists; returns the stored run either way. */
  insertRun(run: RunState): Promise<{ created: boolean; run: RunState }>
  /** Reads a run with its stored stages ordered by stage number; `null` if unknown. */
  getRun(runId: string, options?: GetRunOptions): Promise<RunSnapshot | null>
  /**
   * Reads several runs at once, each as {@link Store.getRun} reads it, keyed by run id; an
   * unknown id has no entry. Optional: the live streams read the runs that one batch of
   * notifications announced in one call when the store has it (one statement in `PrismaStore`),
   * else one `getRun` each. Callers pass at most a few hundred ids.
   */
  getRuns?(runIds: readonly string[], options?: GetRunOptions): Promise<Map<string, RunSnapshot>>
  /**
   * Lists unfinished runs (`PENDING` or `PROCESSING`) that may have stopped reporting, oldest
   * first, at most `limit` of them: those whose last activity (the later of `updatedAt` and
   * `lastActivityAt`) is before `updatedBefore`, and, when `now` is given, those that announced a
   * heartbeat interval and were silent for more than `MISSED_HEARTBEATS_LIMIT` of them (judged by
   * that instead of `updatedBefore`). The sweep decides again on each with `decideStaleRun`. Only a listing, outside any transaction: the
   * stale-run sweep then locks and re-checks each run before failing it. Optional; without it,
   * the stale-run sweeper cannot work on the store. `MemoryStore` and
   * `PrismaStore` implement it.
   */
  listStaleRuns?(updatedBefore: Date, limit: number, now?: Date): Promise<RunState[]>
  /**
   * A heartbeat: stores `at` as the run's `lastActivityAt` (and the announced interval) without
   * a new version, only on an unfinished run (see `decideHeartbeat`; a finished run is left as it
   * is, checked atomically with the write), and returns the run, its version and the stage `touch.stageNumber` (when
   * given) as stored; `null` for an unknown run. Optional: without it heartbeats record nothing
   * and the sweep judges runs by their updates alone. `MemoryStore` and `PrismaStore` implement it.
   */
  touchRun?(touch: RunTouch): Promise<RunStageRead | null>
  /**
   * The retention sweep: deletes up to `limit` runs in `status` last changed before
   * `updatedBefore`, with their stages, and returns how many runs it deleted. Safe when several
   * instances call it at once (each run is deleted once; `PrismaStore` skips rows another
   * instance holds). Optional; `MemoryStore` and `PrismaStore` implement it.
   */
  deleteFinishedRuns?(deletion: FinishedRunsDeletion): Promise<number>
  /**
   * The stage-update hot path, part 1: reads a run, its version and one of its stages in one
   * consistent read, without a lock; `null` for an unknown run. Optional, together with
   * {@link Store.writeRunStage}; without them stage updates run in {@link Store.transaction}.
   */
  readRunStage?(runId: string, stageNumber: number): Promise<RunStageRead | null>
  /**
   * The stage-update hot path, part 2: writes the stage and the run atomically, only if the
   * run's version is still `write.expectedVersion`, and stores `write.version`. Returns whether
   * it wrote; `false` (another write came first) changes nothing.
   */
  writeRunStage?(write: RunStageWrite): Promise<boolean>
  /**
   * Reads a run and its version, without a lock; `null` for an unknown run. Optional, together
   * with {@link Store.writeRun}: with them, completions without an `onRunCompleted` hook and the
   * stale-run sweep need no transaction.
   */
  readRun?(runId: string): Promise<VersionedRun | null>
  /**
   * Writes a run only if its version is still `write.expectedVersion`, storing `write.version`.
   * Returns whether it wrote; `false` (another write came first) changes nothing.
   */
  writeRun?(write: RunWrite): Promise<boolean>
  /**
   * The versions of the given runs, in one query (unknown runs are absent from the map). The
   * live streams' run watcher calls it once per tick for every run the process streams, which is
   * how changes made by other instances reach this one. Optional: without it, streams learn only
   * of changes made through this store in this process (and of LISTEN notifications).
   */
  getRunVersions?(runIds: readonly string[]): Promise<Map<string, number>>
  /**
   * Calls `listener` after every successful write of a run or one of its stages (a run's
   * creation included, with its first version, so set streams learn of new runs), with the run's
   * new version (in-process only: a change reaches this process's own live streams at once).
   * Returns a function that removes the listener. Optional: `MemoryStore` and `PrismaStore`
   * implement it.
   */
  onRunChange?(listener: RunChangeListener): () => void
  /**
   * The stored text of streamed output chunk `seq` of a stage's current attempt, `undefined` when
   * there is none: how a repeated chunk is told `duplicate` from `conflict`. Optional, like the
   * other streamed-output methods: a store with it also stores chunks with its stage writes
   * ({@link RunStageWrite.chunk}, {@link RunStageWrite.dropOutputChunks}), assembles each
   * stage's streamed text in {@link Store.getRun} (`withStreamedOutput`) and deletes chunks
   * with their run. `MemoryStore` and `PrismaStore` implement them; without them the output
   * route answers 501 `not_implemented`.
   */
  getOutputChunk?(runId: string, stageNumber: number, seq: number): Promise<string | undefined>
  /**
   * The streamed text of a stage's current attempt up to chunk `lastSeq`: its chunks' text in
   * `seq` order, `''` when it has none. How a stage update's answer shows a stage that shows its
   * streamed text (`showsStreamedOutput`) as `GET /status` does, read only for such a stage.
   * Optional: without it that read is {@link Store.getRun}. `MemoryStore` and `PrismaStore`
   * implement it.
   */
  getStreamedOutput?(runId: string, stageNumber: number, lastSeq: number): Promise<string>
  /**
   * The stored chunks of a run whose version is greater than `version`, ordered by version
   * (each applied chunk has its own): what a live stream sends as `output` events after that
   * version, and what a reconnect with `Last-Event-ID` resumes from. With `limit` (a whole number
   * from 1), only the first `limit` of them: the live streams ask for one more than they replay
   * (`live.maxReplayedChunks`) to learn that there are more. A store that ignores `limit` and
   * returns them all is still correct, only costlier.
   */
  getOutputChunksSince?(runId: string, version: number, limit?: number): Promise<OutputChunkRow[]>
  /**
   * Lists runs for `GET {base}/runs`: those matching `request.filter` (the caller's scope is
   * already ANDed in; see `applyScope`), newest first (`createdAt` desc, then id desc in
   * code-unit order, `COLLATE "C"`), after `request.after` when given, at most `request.limit`,
   * each with its version and what its stored stages add up to (`toRunListItem`). A filter with
   * an empty `statuses` matches nothing. Optional: without it the route answers 501
   * `not_implemented`. `MemoryStore` and `PrismaStore` implement it.
   */
  listRuns?(request: RunListRequest): Promise<RunListItem[]>
  /**
   * The window of a set stream (`GET {base}/events?<filters>`): the ids and versions of the runs
   * {@link Store.listRuns} would list for `request` (same filter, order and limit), without their
   * stages, so the live streams can run it every poll tick for each distinct filter. Optional:
   * without it the window is read with `listRuns`; a store with neither answers set streams by
   * filters with 501 `not_implemented`. `MemoryStore` and `PrismaStore` implement it.
   */
  listRunWindow?(request: RunListRequest): Promise<RunWindowEntry[]>
  /**
   * Counts the runs matching `request.filter` per status or per pipeline, for
   * `GET {base}/runs/counts`; keys without a run are absent. Optional, like {@link Store.listRuns}.
   */
  countRuns?(request: RunCountRequest): Promise<Record<string, number>>
  /**
   * Stage statistics for `GET {base}/runs/stats`: per pipeline and stage number, over the stages of
   * runs matching `request.filter` whose `completedAt` is at or after `request.since`, the rules of
   * `computeStageStats` (COMPLETED stages with both times counted, their `percentile_cont` 0.5 and
   * 0.95 durations rounded to integer milliseconds, FAILED ones counted apart, the name from the
   * newest run), ordered by pipeline (code-unit order) then stage number. Optional, like
   * {@link Store.listRuns}.
   */
  runStats?(request: RunStatsRequest): Promise<StageStats[]>
}

/**
 * Why a store is unavailable, as the problem `code` of the handlers' answer:
 * `database_unavailable` (503: unreachable, or no answer in time), `database_not_migrated`
 * (503: the database, a table or a column is missing: migrations were not deployed) or
 * `configuration_error` (500: the database refuses the connection's configuration, such as no
 * user name when `DATABASE_URL` is unset, or a wrong password; the message names the fix).
 */
export type StoreUnavailableCode = 'database_unavailable' | 'database_not_migrated' | 'configuration_error'

/** Options of {@link StoreUnavailableError}. */
export interface StoreUnavailableErrorOptions {
  /** The underlying error. */
  cause?: unknown
  /**
   * Why the store is unavailable.
   * @default 'database_unavailable'
   */
  code?: StoreUnavailableCode | undefined
}

/**
 * Thrown by a store when its database cannot be used right now; the handlers answer 503 with
 * `Retry-After` and `code` as the problem's code. `PrismaStore` throws it for connection errors,
 * calls that take longer than their bound, and a database without the SDK's tables or columns
 * (`database_not_migrated`, whose message names what is missing and is sent as the problem's
 * `detail`); a store of your own should too.
 *
 * @example
 * ```ts
 * import { StoreUnavailableError } from 'pipeline-status-sdk/server'
 * // In a Store of your own: the database is down, so the handlers answer 503 with Retry-After.
 * async function readRun(load: () => Promise<unknown>) {
 *   try {
 *     return await load()
 *   } catch (error) {
 *     throw new StoreUnavailableError('Redis is unreachable', { cause: error })
 *   }
 * }
 * ```
 */
export class StoreUnavailableError extends Error {
  /** Always `'StoreUnavailableError'`; check it with {@link isStoreUnavailableError}. */
  override readonly name = 'StoreUnavailableError' as const
  /** Why the store is unavailable. */
  readonly code: StoreUnavailableCode
  constructor(message = 'The database is unreachable', options: StoreUnavailableErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = options.code ?? 'database_unavailable'
  }
}

/** Whether a value is a {@link StoreUnavailableError}, also across realms and dual builds. */
export function isStoreUnavailableError(error: unknown): error is StoreUnavailableError {
  return isErrorNamed(error, 'StoreUnavailableError')
}
