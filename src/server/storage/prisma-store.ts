import type { StageProgress } from '../../contract/runner-control.js'
import { isFinalStatus, RunStatus } from '../../contract/status.js'
import { INITIAL_RUN_VERSION, nextRunVersion } from '../../core/run-version.js'
import { type RunChange, RunChangeEmitter, type RunChangeListener } from '../../core/run-changes.js'
import { MISSED_HEARTBEATS_LIMIT } from '../../internal/state-machine.js'
import type { FinishedRunsDeletion, RunSnapshot, RunStageRead, RunStageWrite, RunState, RunTouch, RunWrite, StageState, VersionedRun } from '../../core/state.js'
import { type Store, type StoreTransaction, StoreUnavailableError } from '../../core/store.js'
import { toStoreError } from '../database-errors.js'
import { consoleLogger, type HandlerLogger, safeLogger } from '../logger.js'

export { isDatabaseUnreachableError } from '../database-errors.js'

// Typed structurally so that this module never imports `@prisma/client` or a generated client:
// any client generated from a schema holding our models fits, also one whose models have extra
// fields (they need a default or must be optional, as the store never sets them).

/** `PENDING` and `PROCESSING`: the statuses the `(status, updatedAt)` index narrows stale-run listings to. */
const UNFINISHED_STATUSES: RunStatus[] = RunStatus.options.filter((status) => !isFinalStatus(status))

/** The part of a Prisma model delegate (`prisma.pipelineRun`) that {@link PrismaStore} uses. */
export interface PrismaStorePipelineRunDelegate {
  /**
   * Writes a run's status fields and its version. The store itself no longer calls it (it writes
   * instants with its own SQL, see {@link PrismaStore}); kept so that the type still names the
   * model a client must have.
   */
  update(args: {
    where: { id: string }
    data: Pick<RunState, 'status' | 'error' | 'completedAt' | 'completionReceivedAt' | 'updatedAt'> & {
      version: number | { increment: number }
    }
    select: { id: true }
  }): PromiseLike<{ id: string }>
}

/** What {@link PrismaStore} needs of an interactive transaction's client. */
export interface PrismaStoreTransactionClient {
  /** Locks the run's row (`SELECT … FOR UPDATE`), reads and writes the run and its stages; values always bound parameters. */
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): PromiseLike<T>
  /** The `PipelineRun` model. */
  readonly pipelineRun: PrismaStorePipelineRunDelegate
}

/**
 * What {@link PrismaStore} needs of a `PrismaClient`: raw queries (the hot path), interactive
 * transactions and the `pipelineRun` / `stageOutput` delegates generated from the SDK's models.
 */
export interface PrismaStoreClient {
  /** One SQL statement with bound parameters; the hot path's reads and writes. */
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): PromiseLike<T>
  /** An interactive transaction: `/complete` with the app's hook, and writes that lost the race too often. */
  $transaction<R>(
    fn: (tx: PrismaStoreTransactionClient) => Promise<R>,
    options?: { maxWait?: number; timeout?: number },
  ): PromiseLike<R>
  /** The `PipelineRun` model. */
  readonly pipelineRun: PrismaStorePipelineRunDelegate
}

/**
 * The transaction client type of a `PrismaClient`, as handed to `onRunCompleted`: the app's
 * own type, with all of its models, when it can be read from the client.
 */
export type PrismaTransactionClientOf<Client extends PrismaStoreClient> =
  Parameters<Client['$transaction']>[0] extends (tx: infer Tx) => unknown ? Tx : PrismaStoreTransactionClient

/** The columns of `PipelineRun` that the store reads and writes, by Prisma field name. */
export type PipelineRunField = keyof RunState | 'version'

/** The columns of `StageOutput` that the store reads and writes, by Prisma field name. */
export type StageOutputField = keyof StageState | 'id' | 'runId'

/**
 * A `pg` pool (or anything with its `query`), for {@link PrismaStoreOptions.pool}: e.g. the
 * `pg.Pool` an app already hands to `new PrismaPg(pool)`.
 */
export interface PrismaStorePool {
  /**
   * Runs one statement with bound parameters (`$1`, `$2`, …) (`pg`'s `QueryConfig`). With
   * `name`, a named prepared statement, parsed once per connection; without, an unnamed one
   * (see {@link PrismaStoreOptions.namedStatements}).
   */
  query(config: { name?: string; text: string; values: unknown[] }): PromiseLike<{ rows: unknown[] }>
}

/**
 * Table and column names for {@link PrismaStoreOptions.names}, by Prisma model and field name.
 * Each missing entry is read from the client's data model, else taken as the Prisma name.
 */
export interface PrismaStoreNames {
  /** The `PipelineRun` model: its table (as in `@@map`) and its columns (as in `@map`). */
  PipelineRun?: { table?: string | undefined; columns?: Partial<Record<PipelineRunField, string>> | undefined } | undefined
  /** The `StageOutput` model: its table (as in `@@map`) and its columns (as in `@map`). */
  StageOutput?: { table?: string | undefined; columns?: Partial<Record<StageOutputField, string>> | undefined } | undefined
}

/** Options of {@link createPrismaStore} and {@link PrismaStore}. */
export interface PrismaStoreOptions<Client extends PrismaStoreClient = PrismaStoreClient> {
  /** The app's own `PrismaClient`, generated from a schema that holds the SDK's models. */
  prisma: Client
  /**
   * How long a transaction (`/complete`, the stale-run sweep, a stage update under heavy
   * contention) may wait for a connection before it gives up, in milliseconds. It then fails
   * with `StoreUnavailableError` (the handlers answer 503 with `Retry-After`).
   * @default 5_000
   */
  maxWait?: number | undefined
  /**
   * How long one transaction may run, in milliseconds, including the app's `onRunCompleted`
   * hook, which runs inside it. Waiting for another write to the same run counts towards it.
   * Past it the transaction is rolled back and fails with `StoreUnavailableError` (503).
   * @default 15_000
   */
  timeout?: number | undefined
  /**
   * How long one statement outside a transaction may take, in milliseconds, waiting for a
   * pooled connection included: the status read, run creation, the stale-run listing and each
   * statement of a stage update. Past it the call fails with `StoreUnavailableError` (503); the
   * statement itself is left to the pool, so also set the pool's `connectionTimeoutMillis` and
   * PostgreSQL's `statement_timeout` (see docs/operations.md).
   * @default 5_000
   */
  queryTimeout?: number | undefined
  /**
   * The PostgreSQL schema holding the tables, when neither the models (`@@schema`) nor the
   * connection's `search_path` say it (e.g. when the adapter was created with
   * `new PrismaPg(url, { schema })`): the store writes its hot-path SQL itself.
   * @default the models' `@@schema`, else the connection's search_path (normally `public`)
   */
  schema?: string | undefined
  /**
   * Table and column names, for a client that does not expose its data model. A `PrismaClient`
   * generated by Prisma 7 does, so models renamed with `@@map` / `@map` need nothing here.
   * @default read from the client's data model, else the Prisma names
   */
  names?: PrismaStoreNames | undefined
  /**
   * Opt-in: a `pg` pool on the same database on which the store runs its own SQL statements
   * (the stage-update hot path, status reads, run creation), skipping the Prisma client's
   * per-statement cost. Transactions (`/complete` and the app's `onRunCompleted` hook) still go
   * through Prisma. Apps on `@prisma/adapter-pg` can pass the pool they give the adapter.
   * @default none: every statement goes through the Prisma client
   */
  pool?: PrismaStorePool | undefined
  /**
   * With {@link PrismaStoreOptions.pool}: how the store sends its statements. Named prepared
   * statements are parsed and planned once per server connection; unnamed ones with every call
   * (bench/README.md measures the difference). Named statements live on one server connection,
   * so behind a transaction pooler (PgBouncer in transaction mode before 1.21 or without
   * `max_prepared_statements`, Supavisor, Neon's pooler) a statement reaches a connection that
   * never prepared it and fails (SQLSTATE `26000`, or `42P05` for one prepared there by another
   * client).
   * - `true`: always named; such failures propagate. For a direct connection only.
   * - `false`: always unnamed; works through every pooler.
   * Ignored without `pool`.
   * @default named until the database refuses a named statement with `26000` or `42P05`: that
   *   statement is sent again unnamed (it did not run), every later one is unnamed too, and
   *   `logger.warn` says so once, with the fix (`namedStatements: false`, or a direct URL)
   */
  namedStatements?: boolean | undefined
  /**
   * Receives the one warning when the pool path turns to unnamed statements (see
   * {@link PrismaStoreOptions.namedStatements}).
   * @default the `logger` of the handlers (or stale-run sweeper) the store is given to, the first
   *   one it is given to; `console.warn` until then and when it is used on its own
   */
  logger?: HandlerLogger | undefined
  /**
   * Opt-in for live streams in LISTEN mode: every write of a run also sends
   * `pg_notify(channel, '<runId>:<version>')` in the same statement (or transaction), so the
   * instances listening on `channel` (`createPgRunListener` from `pipeline-status-sdk/pg`) learn
   * of it when it commits. NOTIFY serializes commits in PostgreSQL; bench/README.md measures
   * what it costs the write path. Same-process streams are told in-process either way.
   * @default none: writes send no notification (streams on other instances poll versions)
   */
  notifyChannel?: string | undefined
}

/** PrismaStores created without a `logger`, and how each takes a lent one. */
const borrowers = new WeakMap<object, (logger: HandlerLogger) => void>()

/**
 * Lends `logger` to `store` when it is a PrismaStore created without its own `logger` (the first
 * lender wins; a store with its own logger keeps it; any other store is left alone). Called by
 * `resolveStore`, so the handlers' and the sweeper's `logger` receive the store's warnings.
 * Internal.
 */
export function lendLogger(store: unknown, logger: HandlerLogger): void {
  if (typeof store !== 'object' || store === null) return
  const borrow = borrowers.get(store)
  if (!borrow) return
  borrowers.delete(store)
  borrow(logger)
}

/** The defaults of {@link PrismaStoreOptions}, in milliseconds. */
const DEFAULT_MAX_WAIT = 5_000
const DEFAULT_TIMEOUT = 15_000
const DEFAULT_QUERY_TIMEOUT = 5_000
/** How much longer than Prisma's own transaction bounds the store waits before it gives up itself. */
const TRANSACTION_GRACE_MS = 1_000

/**
 * The {@link Store} for PostgreSQL through the app's own `PrismaClient`.
 *
 * A stage update (the hot path) is two statements and no transaction: one reads the run, its
 * version and the stage; the pure state machine decides; one statement writes the stage and the
 * run only if the run's version is still the one read (a lost race reads again). Stage rows are
 * written with `INSERT … ON CONFLICT ("runId", "stageNumber") DO UPDATE`, so concurrent first
 * updates merge. The stale-run sweep and a `/complete` without a hook write the run the same
 * conditional way; a `/complete` with the app's `onRunCompleted` hook locks the run's row
 * (`SELECT … FOR UPDATE`) in one interactive transaction, which also holds the hook.
 *
 * Table and column names come from the client's data model, so models renamed with `@@map` /
 * `@map` or living in another `@@schema` work; see {@link PrismaStoreOptions.names} otherwise.
 *
 * Instants are sent as ISO 8601 text with `Z` cast to `timestamptz` and read back as epoch
 * milliseconds, so a database whose `TimeZone` is not UTC changes nothing (docs/operations.md).
 *
 * Every call is bounded ({@link PrismaStoreOptions.queryTimeout}, `maxWait`, `timeout`). A
 * database that cannot be reached or does not answer in time surfaces as
 * `StoreUnavailableError` (503 `database_unavailable` with `Retry-After`), one without the SDK's
 * tables or columns as `StoreUnavailableError` with code `database_not_migrated`; every other
 * error propagates unchanged.
 *
 * @typeParam Client - the app's client type; `onRunCompleted` receives its transaction client.
 *
 * @example
 * ```ts
 * import { PrismaStore } from 'pipeline-status-sdk/server'
 * import { PrismaPg } from '@prisma/adapter-pg'
 * import { PrismaClient } from './generated/prisma/client.js'
 *
 * const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL }) })
 * const store = new PrismaStore(prisma, { timeout: 20_000 })
 * ```
 */
export class PrismaStore<Client extends PrismaStoreClient = PrismaStoreClient>
  implements Store<PrismaTransactionClientOf<Client>>
{
  readonly #prisma: Client
  readonly #pool: PrismaStorePool | undefined
  /** Whether pool statements are named now; see PrismaStoreOptions.namedStatements. */
  #namedStatements: boolean
  /** Whether named statements turn to unnamed ones when a pooler refuses them (the default). */
  readonly #unnamedOnRefusal: boolean
  #logger: HandlerLogger
  readonly #maxWait: number
  readonly #timeout: number
  readonly #queryTimeout: number
  readonly #sql: StoreSql
  readonly #notifyChannel: string | undefined
  readonly #changes = new RunChangeEmitter()

  constructor(prisma: Client, options: Omit<PrismaStoreOptions<Client>, 'prisma'> = {}) {
    this.#prisma = prisma
    this.#pool = options.pool
    this.#namedStatements = options.namedStatements ?? true
    this.#unnamedOnRefusal = options.namedStatements === undefined
    this.#logger = safeLogger(options.logger ?? consoleLogger)
    // Without its own logger the store warns through the handlers' (or the sweeper's) one.
    if (options.logger === undefined) {
      borrowers.set(this, (logger) => {
        this.#logger = safeLogger(logger)
      })
    }
    this.#maxWait = options.maxWait ?? DEFAULT_MAX_WAIT
    this.#timeout = options.timeout ?? DEFAULT_TIMEOUT
    this.#queryTimeout = options.queryTimeout ?? DEFAULT_QUERY_TIMEOUT
    this.#notifyChannel = options.notifyChannel
    this.#sql = buildSql(resolveNames(prisma, options), options.notifyChannel !== undefined)
  }

  onRunChange(listener: RunChangeListener): () => void {
    return this.#changes.subscribe(listener)
  }

  async getRunVersions(runIds: readonly string[]): Promise<Map<string, number>> {
    const versions = new Map<string, number>()
    if (runIds.length === 0) return versions
    const rows = await this.#query<{ id: string; version: number | string }>(this.#sql.readVersions, [[...runIds]])
    for (const row of rows) versions.set(row.id, Number(row.version))
    return versions
  }

  async transaction<T>(fn: (tx: StoreTransaction<PrismaTransactionClientOf<Client>>) => Promise<T>): Promise<T> {
    let started = false
    // Told to same-process streams only once the transaction has committed.
    const changes: RunChange[] = []
    const work = this.#prisma.$transaction(
      async (client) => {
        started = true
        // The version each locked run had, so that saveRun stores the next one.
        const versions = new Map<string, number>()
        return fn({
          client: client as PrismaTransactionClientOf<Client>,
          lockRun: async (runId) => {
            const rows = await client.$queryRawUnsafe<VersionedRunRow[]>(this.#sql.lockRun, runId)
            const row = rows[0]
            if (!row) return null
            versions.set(runId, Number(row.version))
            return toRunState(row)
          },
          getStage: async (runId, stageNumber) => {
            const rows = await client.$queryRawUnsafe<StageRow[]>(this.#sql.readStage, runId, stageNumber)
            return rows[0] ? stageFromRow(rows[0]) : undefined
          },
          getStages: async (runId) => {
            const rows = await client.$queryRawUnsafe<StageRow[]>(this.#sql.readStages, runId)
            return rows.map(stageFromRow)
          },
          saveStage: async (runId, stage) => {
            // One INSERT … ON CONFLICT DO UPDATE, which cannot raise P2002 even without the run lock.
            await client.$queryRawUnsafe(this.#sql.saveStage, runId, ...stageValues(stage))
          },
          saveRun: async (run) => {
            const locked = versions.get(run.id)
            // The store's own SQL, not the model API: Prisma's adapter writes a `Date` as wall-clock
            // text without a zone, which a session TimeZone other than UTC shifts (docs/operations.md).
            // Saved under the lock: the next version of the one read. Without a lock, the same rule in SQL.
            const rows = await client.$queryRawUnsafe<Array<{ version: number | string }>>(
              this.#sql.saveRun,
              run.id,
              run.status,
              run.error,
              instant(run.completedAt),
              instant(run.completionReceivedAt),
              instant(run.updatedAt),
              locked === undefined ? null : nextRunVersion(locked),
            )
            const saved = rows[0]
            if (!saved) throw new Error(`Run ${run.id} was not found to save`)
            const version = Number(saved.version)
            versions.set(run.id, version)
            changes.push({ runId: run.id, version })
            if (this.#notifyChannel !== undefined) {
              // Delivered by PostgreSQL at commit, and dropped with a rollback.
              await client.$queryRawUnsafe(this.#sql.notify, this.#notifyChannel, `${run.id}:${version}`)
            }
          },
        })
      },
      { maxWait: this.#maxWait, timeout: this.#timeout },
    )
    try {
      // Prisma's own bounds normally end it first; this also bounds a driver that never answers.
      const result = await bounded(work, this.#maxWait + this.#timeout + TRANSACTION_GRACE_MS)
      for (const change of changes) this.#changes.emit(change)
      return result
    } catch (error) {
      // P2028: no connection freed up within maxWait, or the transaction ran out of its timeout.
      if (errorCode(error) === 'P2028') {
        throw new StoreUnavailableError(
          started ? `The transaction did not finish within ${this.#timeout} ms` : `No connection within ${this.#maxWait} ms`,
          { cause: error },
        )
      }
      throw toStoreError(error)
    }
  }

  async readRunStage(runId: string, stageNumber: number): Promise<RunStageRead | null> {
    const rows = await this.#query<RunStageRow>(this.#sql.readRunStage, [runId, stageNumber])
    const row = rows[0]
    if (!row) return null
    return { run: toRunState(row), version: Number(row.version), stage: stageOf(row, stageNumber) }
  }

  async writeRunStage(write: RunStageWrite): Promise<boolean> {
    const { run, stage } = write
    const rows = await this.#query<unknown>(this.#sql.writeRunStage, [
      ...runWriteParameters(write),
      ...stageValues(stage),
      ...this.#notifyValues(),
    ])
    if (rows.length === 0) return false
    this.#changes.emit({ runId: run.id, version: write.version })
    return true
  }

  #notifyValues(): string[] {
    return this.#notifyChannel === undefined ? [] : [this.#notifyChannel]
  }

  async readRun(runId: string): Promise<VersionedRun | null> {
    const rows = await this.#query<VersionedRunRow>(this.#sql.readRun, [runId])
    const row = rows[0]
    return row ? { run: toRunState(row), version: Number(row.version) } : null
  }

  async writeRun(write: RunWrite): Promise<boolean> {
    const { run } = write
    const guarded = write.expectedLastActivityAt !== undefined
    const rows = await this.#query<unknown>(guarded ? this.#sql.writeRunIfSilent : this.#sql.writeRun, [
      ...runWriteParameters(write),
      ...(guarded ? [instant(write.expectedLastActivityAt)] : []),
      ...this.#notifyValues(),
    ])
    if (rows.length === 0) return false
    this.#changes.emit({ runId: run.id, version: write.version })
    return true
  }

  async touchRun(touch: RunTouch): Promise<RunStageRead | null> {
    const rows = await this.#query<RunStageRow>(this.#sql.touchRun, [
      touch.runId,
      instant(touch.at),
      touch.heartbeatIntervalMs ?? null,
      touch.stageNumber ?? null,
      UNFINISHED_STATUSES,
    ])
    const row = rows[0]
    // No row touched: the run is unknown or finished (finished runs never change). A new statement
    // reads it as stored, so a run that finished while the touch waited for its lock reads finished.
    if (!row) return this.readRunStage(touch.runId, touch.stageNumber ?? 0)
    return { run: toRunState(row), version: Number(row.version), stage: stageOf(row, touch.stageNumber ?? 0) }
  }

  async deleteFinishedRuns(deletion: FinishedRunsDeletion): Promise<number> {
    const rows = await this.#query<{ deleted: number | string }>(this.#sql.deleteFinishedRuns, [
      deletion.status,
      instant(deletion.updatedBefore),
      deletion.limit,
    ])
    return Number(rows[0]?.deleted ?? 0)
  }

  async insertRun(run: RunState): Promise<{ created: boolean; run: RunState }> {
    // INSERT … ON CONFLICT DO NOTHING: a concurrent create of the same id waits for the other
    // to commit and then inserts nothing, so neither caller sees a unique violation.
    const inserted = await this.#query<unknown>(this.#sql.insertRun, [
      run.id,
      run.status,
      run.error,
      instant(run.completedAt),
      instant(run.completionReceivedAt),
      instant(run.createdAt),
      instant(run.updatedAt),
      INITIAL_RUN_VERSION,
    ])
    if (inserted.length > 0) return { created: true, run }
    const existing = await this.#query<VersionedRunRow>(this.#sql.readRun, [run.id])
    const row = existing[0]
    if (!row) throw new Error(`Run ${run.id} was neither inserted nor found`)
    return { created: false, run: toRunState(row) }
  }

  async listStaleRuns(updatedBefore: Date, limit: number, now?: Date): Promise<RunState[]> {
    // The (status, updatedAt) index narrows it to unfinished runs.
    const rows = await this.#query<VersionedRunRow>(this.#sql.listStaleRuns, [
      UNFINISHED_STATUSES,
      instant(updatedBefore),
      limit,
      instant(now),
      MISSED_HEARTBEATS_LIMIT,
    ])
    return rows.map(toRunState)
  }

  async getRun(runId: string): Promise<RunSnapshot | null> {
    // One statement: the run joined with its stages, one row per stage (or one without).
    const rows = await this.#query<RunStagesRow>(this.#sql.readRunStages, [runId])
    const first = rows[0]
    if (!first) return null
    const stages: StageState[] = []
    for (const row of rows) {
      if (row.s_stageNumber === null) continue
      const stage = stageOf(row, Number(row.s_stageNumber))
      if (stage) stages.push(stage)
    }
    return { run: toRunState(first), stages, version: Number(first.version) }
  }

  /** One statement on the pool when there is one, else through Prisma; bounded either way. */
  async #query<Row>(sql: string, values: unknown[]): Promise<Row[]> {
    const pool = this.#pool
    if (!pool) return this.#bounded(this.#prisma.$queryRawUnsafe<Row[]>(sql, ...values))
    if (!this.#namedStatements) return this.#bounded(poolRows<Row>(pool.query({ text: sql, values })))
    try {
      return await this.#bounded(poolRows<Row>(pool.query({ name: statementName(sql), text: sql, values })))
    } catch (error) {
      if (!this.#unnamedOnRefusal || !REFUSED_NAMED_STATEMENT.has(String(errorCode(error)))) throw error
      // Refused at Parse or Bind, before anything ran: sending it again unnamed is safe.
      if (this.#namedStatements) {
        this.#namedStatements = false
        this.#logger.warn(
          `pipeline-status: the database refused a named prepared statement (${String(errorCode(error))}: ${(error as Error).message}), ` +
            'as a transaction pooler (PgBouncer in transaction mode, Supavisor, Neon) does; the store now sends unnamed statements, ' +
            'which cost a parse per call. Pass namedStatements: false to PrismaStore to start that way, or give it a pool on a direct URL',
          { code: errorCode(error) },
        )
      }
      return this.#bounded(poolRows<Row>(pool.query({ text: sql, values })))
    }
  }

  async #bounded<T>(pending: PromiseLike<T>): Promise<T> {
    try {
      return await bounded(pending, this.#queryTimeout)
    } catch (error) {
      throw toStoreError(error)
    }
  }
}

/** The run's parameters of a conditional write, in the order of both statements that take them. */
function runWriteParameters(write: RunWrite): unknown[] {
  const { run } = write
  return [
    run.id,
    write.expectedVersion,
    run.status,
    run.error,
    instant(run.completedAt),
    instant(run.completionReceivedAt),
    instant(run.updatedAt),
    write.version,
  ]
}

/**
 * Creates a {@link PrismaStore} on the app's own `PrismaClient`.
 *
 * @example
 * ```ts
 * import { createPrismaStore } from 'pipeline-status-sdk/server'
 * import { prisma } from './prisma.js' // your app's PrismaClient
 *
 * const store = createPrismaStore({ prisma, maxWait: 2_000 })
 * ```
 */
export function createPrismaStore<Client extends PrismaStoreClient>(options: PrismaStoreOptions<Client>): PrismaStore<Client> {
  const { prisma, ...rest } = options
  return new PrismaStore(prisma, rest)
}

/**
 * Settles like `pending`, or rejects with `StoreUnavailableError` after `ms` milliseconds. The
 * abandoned call keeps running until the driver gives up; its late failure is ignored.
 */
function bounded<T>(pending: PromiseLike<T>, ms: number): Promise<T> {
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

/**
 * SQLSTATEs of a named statement a server connection does not have (`26000`
 * invalid_sql_statement_name) or already has from another client (`42P05`
 * duplicate_prepared_statement): what a transaction pooler's named statements fail with.
 */
const REFUSED_NAMED_STATEMENT = new Set(['26000', '42P05'])

function poolRows<Row>(pending: PromiseLike<{ rows: unknown[] }>): Promise<Row[]> {
  return Promise.resolve(pending).then((result) => result.rows as Row[])
}

const statementNames = new Map<string, string>()

/**
 * A prepared statement's name derived from its text (FNV-1a), so that stores with different
 * table names sharing one pool never reuse a name for another statement.
 */
function statementName(sql: string): string {
  let name = statementNames.get(sql)
  if (name === undefined) {
    let hash = 0x811c9dc5
    for (let i = 0; i < sql.length; i++) hash = Math.imul(hash ^ sql.charCodeAt(i), 0x01000193) >>> 0
    name = `pss_${hash.toString(36)}_${sql.length.toString(36)}`
    statementNames.set(sql, name)
  }
  return name
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** Quoted table and column names of both models. */
interface ResolvedNames {
  runTable: string
  stageTable: string
  run: Record<PipelineRunField, string>
  stage: Record<StageOutputField, string>
}

const RUN_FIELDS: readonly PipelineRunField[] = [
  'id',
  'status',
  'error',
  'completedAt',
  'completionReceivedAt',
  'createdAt',
  'updatedAt',
  'version',
  'lastActivityAt',
  'heartbeatIntervalMs',
]
const STAGE_FIELDS: readonly StageOutputField[] = [
  'id',
  'runId',
  'stageNumber',
  'stageName',
  'status',
  'output',
  'completedAt',
  'progress',
  'createdAt',
  'updatedAt',
]

/** The part of a Prisma 7 client's runtime data model that holds `@@map`, `@map` and `@@schema`. */
interface RuntimeModel {
  dbName?: string | null
  schema?: string | null
  fields?: Array<{ name: string; dbName?: string | null }>
}

function resolveNames(prisma: object, options: { schema?: string | undefined; names?: PrismaStoreNames | undefined }): ResolvedNames {
  // Not part of Prisma's typed API, so read defensively: a client without it gets the Prisma names.
  const models = (prisma as { _runtimeDataModel?: { models?: Record<string, RuntimeModel | undefined> } })._runtimeDataModel?.models
  const table = (model: 'PipelineRun' | 'StageOutput'): string => {
    const runtime = models?.[model]
    const name = options.names?.[model]?.table ?? runtime?.dbName ?? model
    const schema = runtime?.schema ?? options.schema
    return schema ? `${quoteIdentifier(schema)}.${quoteIdentifier(name)}` : quoteIdentifier(name)
  }
  const columns = <F extends string>(model: 'PipelineRun' | 'StageOutput', fields: readonly F[], explicit: Partial<Record<F, string>> | undefined) => {
    const runtimeFields = models?.[model]?.fields ?? []
    const result = {} as Record<F, string>
    for (const field of fields) {
      const mapped = explicit?.[field] ?? runtimeFields.find((candidate) => candidate.name === field)?.dbName ?? field
      result[field] = quoteIdentifier(mapped)
    }
    return result
  }
  return {
    runTable: table('PipelineRun'),
    stageTable: table('StageOutput'),
    run: columns('PipelineRun', RUN_FIELDS, options.names?.PipelineRun?.columns),
    stage: columns('StageOutput', STAGE_FIELDS, options.names?.StageOutput?.columns),
  }
}

/** The store's own SQL, built once from quoted names; every value is a bound parameter. */
interface StoreSql {
  lockRun: string
  saveRun: string
  readStage: string
  readStages: string
  saveStage: string
  touchRun: string
  listStaleRuns: string
  deleteFinishedRuns: string
  writeRunIfSilent: string
  writeRun: string
  readRun: string
  readRunStage: string
  readRunStages: string
  writeRunStage: string
  insertRun: string
  readVersions: string
  notify: string
}

function buildSql({ runTable, stageTable, run: r, stage: s }: ResolvedNames, notify: boolean): StoreSql {
  // With a notify channel (the last parameter), the written run's `id:version` goes to pg_notify
  // in the same statement. An unreferenced SELECT in WITH would never run, hence the EXISTS.
  const notified = (channel: string) =>
    notify ? `, notified AS (SELECT pg_notify(${channel}, run.id || ':' || run.version) FROM run)` : ''
  const whenNotified = notify ? ' WHERE EXISTS (SELECT 1 FROM notified)' : ''
  // Instants are read as epoch milliseconds (exact for timestamptz(3)) and written as ISO text with
  // `Z` cast to timestamptz, so that neither a driver's handling of `Date` nor the session's
  // TimeZone can shift them: Prisma's adapter writes a `Date` as wall-clock text without a zone
  // and reads a timestamptz's local rendering as if it were UTC (docs/operations.md).
  const ms = (column: string) => `(extract(epoch FROM ${column}) * 1000)::float8`
  const runColumns = (alias: string) =>
    `${alias}.${r.id} AS "id", ${alias}.${r.status}::text AS "status", ${alias}.${r.error} AS "error", ` +
    `${ms(`${alias}.${r.completedAt}`)} AS "completedAt", ${ms(`${alias}.${r.completionReceivedAt}`)} AS "completionReceivedAt", ` +
    `${ms(`${alias}.${r.createdAt}`)} AS "createdAt", ${ms(`${alias}.${r.updatedAt}`)} AS "updatedAt", ${alias}.${r.version} AS "version", ` +
    `${ms(`${alias}.${r.lastActivityAt}`)} AS "lastActivityAt", ${alias}.${r.heartbeatIntervalMs} AS "heartbeatIntervalMs"`
  // Progress as text, parsed by the store: drivers differ in how they return jsonb.
  const stageColumns =
    `s.${s.stageName} AS "s_stageName", s.${s.status}::text AS "s_status", s.${s.output} AS "s_output", ` +
    `${ms(`s.${s.completedAt}`)} AS "s_completedAt", s.${s.progress}::text AS "s_progress", ${ms(`s.${s.createdAt}`)} AS "s_createdAt", ` +
    `${ms(`s.${s.updatedAt}`)} AS "s_updatedAt"`
  const runUpdate =
    `${r.status} = $3, ${r.error} = $4, ${r.completedAt} = $5::timestamptz, ` +
    `${r.completionReceivedAt} = $6::timestamptz, ${r.updatedAt} = $7::timestamptz, ${r.version} = $8`
  // The stage values of stageValues(), from parameter p(0): id, stageNumber, stageName, status, output, completedAt, progress, createdAt, updatedAt.
  const stageInsert = (p: (i: number) => string, runId: string) =>
    `INSERT INTO ${stageTable} (${s.id}, ${s.runId}, ${s.stageNumber}, ${s.stageName}, ${s.status}, ${s.output}, ` +
    `${s.completedAt}, ${s.progress}, ${s.createdAt}, ${s.updatedAt}) ` +
    `SELECT ${p(0)}, ${runId}, ${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}::timestamptz, ${p(6)}::text::jsonb, ${p(7)}::timestamptz, ${p(8)}::timestamptz`
  const stageConflict =
    `ON CONFLICT (${s.runId}, ${s.stageNumber}) DO UPDATE SET ${s.stageName} = EXCLUDED.${s.stageName}, ` +
    `${s.status} = EXCLUDED.${s.status}, ${s.output} = EXCLUDED.${s.output}, ` +
    `${s.completedAt} = EXCLUDED.${s.completedAt}, ${s.progress} = EXCLUDED.${s.progress}, ${s.updatedAt} = EXCLUDED.${s.updatedAt}`
  const lastSeen = `GREATEST(r.${r.updatedAt}, COALESCE(r.${r.lastActivityAt}, r.${r.updatedAt}))`
  return {
    lockRun: `SELECT ${runColumns('r')} FROM ${runTable} r WHERE r.${r.id} = $1 FOR UPDATE`,
    // A transaction's run write: the version is $7 (the next of the one locked), else one more than stored.
    saveRun:
      `UPDATE ${runTable} SET ${r.status} = $2, ${r.error} = $3, ${r.completedAt} = $4::timestamptz, ` +
      `${r.completionReceivedAt} = $5::timestamptz, ${r.updatedAt} = $6::timestamptz, ` +
      `${r.version} = COALESCE($7::integer, ${r.version} + 1) WHERE ${r.id} = $1 RETURNING ${r.version} AS "version"`,
    readStage:
      `SELECT s.${s.stageNumber} AS "s_stageNumber", ${stageColumns} FROM ${stageTable} s ` +
      `WHERE s.${s.runId} = $1 AND s.${s.stageNumber} = $2`,
    readStages:
      `SELECT s.${s.stageNumber} AS "s_stageNumber", ${stageColumns} FROM ${stageTable} s ` +
      `WHERE s.${s.runId} = $1 ORDER BY s.${s.stageNumber}`,
    saveStage: `${stageInsert((i) => `$${i + 2}`, '$1')} ${stageConflict}`,
    // The heartbeat: only lastActivityAt (and the interval), never the version, so no new ETag or event.
    // Only an unfinished run, checked in the same statement: a heartbeat that waited for the lock of
    // a run being finished re-checks the committed status and writes nothing after it.
    touchRun:
      `WITH r AS (UPDATE ${runTable} SET ${r.lastActivityAt} = $2::timestamptz, ` +
      `${r.heartbeatIntervalMs} = COALESCE($3::integer, ${r.heartbeatIntervalMs}) ` +
      `WHERE ${r.id} = $1 AND ${r.status}::text = ANY($5::text[]) RETURNING *) ` +
      `SELECT ${runColumns('r')}, ${stageColumns} FROM r ` +
      `LEFT JOIN ${stageTable} s ON s.${s.runId} = r.${r.id} AND s.${s.stageNumber} = $4::integer`,
    listStaleRuns:
      `SELECT ${runColumns('r')} FROM ${runTable} r WHERE r.${r.status}::text = ANY($1::text[]) AND ` +
      `CASE WHEN r.${r.heartbeatIntervalMs} IS NULL OR $4::timestamptz IS NULL THEN ${lastSeen} < $2::timestamptz ` +
      `ELSE ${lastSeen} < $4::timestamptz - make_interval(secs => $5::integer * r.${r.heartbeatIntervalMs} / 1000.0) END ` +
      `ORDER BY r.${r.updatedAt}, r.${r.id} LIMIT $3`,
    // Bounded and safe with several instances: rows another sweep holds are skipped, not waited for.
    deleteFinishedRuns:
      `WITH doomed AS (SELECT r.${r.id} AS id FROM ${runTable} r WHERE r.${r.status}::text = $1 AND r.${r.updatedAt} < $2::timestamptz ` +
      `ORDER BY r.${r.updatedAt} LIMIT $3 FOR UPDATE SKIP LOCKED), ` +
      `gone_stages AS (DELETE FROM ${stageTable} s USING doomed WHERE s.${s.runId} = doomed.id), ` +
      `gone AS (DELETE FROM ${runTable} r USING doomed WHERE r.${r.id} = doomed.id RETURNING 1) ` +
      `SELECT count(*)::integer AS "deleted" FROM gone`,
    // The sweeper's write: only if no heartbeat came since it read the run (a heartbeat changes no version).
    writeRunIfSilent:
      `WITH run AS (UPDATE ${runTable} SET ${runUpdate} WHERE ${r.id} = $1 AND ${r.version} = $2 ` +
      `AND ${r.lastActivityAt} IS NOT DISTINCT FROM $9::timestamptz RETURNING ${r.id} AS id, ${r.version} AS version)${notified('$10')} ` +
      `SELECT 1 AS "written" FROM run${whenNotified}`,
    readRun: `SELECT ${runColumns('r')} FROM ${runTable} r WHERE r.${r.id} = $1`,
    readRunStage:
      `SELECT ${runColumns('r')}, ${stageColumns} FROM ${runTable} r ` +
      `LEFT JOIN ${stageTable} s ON s.${s.runId} = r.${r.id} AND s.${s.stageNumber} = $2 WHERE r.${r.id} = $1`,
    readRunStages:
      `SELECT ${runColumns('r')}, s.${s.stageNumber} AS "s_stageNumber", ${stageColumns} FROM ${runTable} r ` +
      `LEFT JOIN ${stageTable} s ON s.${s.runId} = r.${r.id} WHERE r.${r.id} = $1 ORDER BY s.${s.stageNumber}`,
    writeRun:
      `WITH run AS (UPDATE ${runTable} SET ${runUpdate} ` +
      `WHERE ${r.id} = $1 AND ${r.version} = $2 RETURNING ${r.id} AS id, ${r.version} AS version)${notified('$9')} ` +
      `SELECT 1 AS "written" FROM run${whenNotified}`,
    // One statement, one implicit transaction: the run row's update holds its lock while the stage
    // is written, and writes nothing at all when another write changed the version first.
    writeRunStage:
      `WITH run AS (UPDATE ${runTable} SET ${runUpdate} ` +
      `WHERE ${r.id} = $1 AND ${r.version} = $2 RETURNING ${r.id} AS id, ${r.version} AS version)${notified('$18')} ` +
      `${stageInsert((i) => `$${i + 9}`, 'run.id')} FROM run${whenNotified} ${stageConflict} RETURNING 1 AS "written"`,
    insertRun:
      `INSERT INTO ${runTable} (${r.id}, ${r.status}, ${r.error}, ${r.completedAt}, ${r.completionReceivedAt}, ` +
      `${r.createdAt}, ${r.updatedAt}, ${r.version}) VALUES ($1, $2, $3, $4::timestamptz, $5::timestamptz, $6::timestamptz, $7::timestamptz, $8) ` +
      `ON CONFLICT (${r.id}) DO NOTHING RETURNING 1 AS "created"`,
    readVersions: `SELECT r.${r.id} AS "id", r.${r.version} AS "version" FROM ${runTable} r WHERE r.${r.id} = ANY($1::text[])`,
    notify: `SELECT 1 AS "notified" FROM (SELECT pg_notify($1, $2)) n`,
  }
}

/** A run row with its version, as the store's SQL returns it (instants as epoch milliseconds). */
/** An instant as the store's SQL returns it: epoch milliseconds (a float8, so a number; a string from a driver that returns text). */
type Instant = number | string

type VersionedRunRow = RunRow & { version: number | string }

interface RunRow {
  id: string
  status: RunStatus
  error: string | null
  completedAt: Instant | null
  completionReceivedAt: Instant | null
  createdAt: Instant
  updatedAt: Instant
  lastActivityAt: Instant | null
  heartbeatIntervalMs: number | string | null
}

type StageColumns = {
  s_stageName: string | null
  s_status: StageState['status'] | null
  s_output: string | null
  s_completedAt: Instant | null
  s_progress: string | null
  s_createdAt: Instant | null
  s_updatedAt: Instant | null
}

type RunStageRow = VersionedRunRow & StageColumns
type RunStagesRow = VersionedRunRow & StageColumns & { s_stageNumber: number | null }
type StageRow = StageColumns & { s_stageNumber: number | string }

/** The stage values in the order the stage SQL binds them; `id` is what Prisma's @default(uuid()) would fill in. */
function stageValues(stage: StageState): unknown[] {
  return [
    crypto.randomUUID(),
    stage.stageNumber,
    stage.stageName,
    stage.status,
    stage.output,
    instant(stage.completedAt),
    stage.progress ? JSON.stringify(stage.progress) : null,
    instant(stage.createdAt),
    instant(stage.updatedAt),
  ]
}

/** The stage in a joined row, or `undefined` when the join found none. */
function stageOf(row: StageColumns, stageNumber: number): StageState | undefined {
  if (row.s_status === null) return undefined
  return {
    stageNumber,
    stageName: row.s_stageName as string,
    status: row.s_status,
    output: row.s_output,
    completedAt: toDate(row.s_completedAt),
    progress: row.s_progress === null ? null : (JSON.parse(row.s_progress) as StageProgress),
    createdAt: toDate(row.s_createdAt as Instant),
    updatedAt: toDate(row.s_updatedAt as Instant),
  }
}

function stageFromRow(row: StageRow): StageState {
  return stageOf(row, Number(row.s_stageNumber)) as StageState
}

function toRunState(row: RunRow): RunState {
  return {
    id: row.id,
    status: row.status,
    error: row.error,
    completedAt: toDate(row.completedAt),
    completionReceivedAt: toDate(row.completionReceivedAt),
    createdAt: toDate(row.createdAt),
    updatedAt: toDate(row.updatedAt),
    lastActivityAt: toDate(row.lastActivityAt),
    heartbeatIntervalMs: row.heartbeatIntervalMs === null ? null : Number(row.heartbeatIntervalMs),
  }
}

/** An instant read as epoch milliseconds (see `ms` in buildSql). */
function toDate(value: Instant): Date
function toDate(value: Instant | null): Date | null
function toDate(value: Instant | null): Date | null {
  if (value === null) return null
  return new Date(Number(value))
}

/**
 * An instant as a bound parameter: ISO 8601 text with `Z`, cast to `timestamptz` by the SQL, so
 * the same instant is stored whatever the session's TimeZone and however a driver sends a `Date`.
 */
function instant(value: Date | null | undefined): string | null {
  return value == null ? null : value.toISOString()
}
