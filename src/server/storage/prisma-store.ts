/**
 * The {@link Store} for PostgreSQL through the app's own `PrismaClient`: the class and its
 * options. Its SQL is in `sql/` (one named function per statement), the two executors it runs
 * the SQL on in `adapters/`, the row mappers in `rows.ts`, name resolution in `table-names.ts`.
 */
import { DEFAULT_PIPELINE, type StageCatalogue } from '../../contract/stages.js'
import { INITIAL_RUN_VERSION, nextRunVersion } from '../../core/run-version.js'
import { type RunChange, RunChangeEmitter, type RunChangeListener } from '../../core/run-changes.js'
import { MISSED_HEARTBEATS_LIMIT } from '../../core/run-liveness.js'
import type { RunCountRequest, RunListItem, RunListRequest, RunWindowEntry } from '../../core/run-list.js'
import { withStreamedOutput } from '../../core/stage-output.js'
import type { FinishedRunsDeletion, OutputChunkRow, RunSnapshot, RunStageRead, RunStageWrite, RunState, RunTouch, RunWrite, StageState, VersionedRun } from '../../core/state.js'
import { type GetRunOptions, type Store, type StoreTransaction, StoreUnavailableError } from '../../core/store.js'
import type { RunStatsRequest } from '../../core/run-stats.js'
import type { StageStats } from '../../contract/run-stats.js'
import { describeDatabaseCause, toStoreError } from '../database-errors.js'
import { ServerConfigurationError } from '../configuration-error.js'
import { consoleLogger, type Logger, safeLogger } from '../../internal/logger.js'
import { schemaNameProblem } from '../../internal/quote-identifier.js'
import { createPoolExecutor, type PrismaStorePool } from './adapters/pool-executor.js'
import { createPrismaExecutor } from './adapters/prisma-executor.js'
import { bounded, errorCode, guardedBy, runningAgainOnRollback, type SqlExecutor } from './adapters/sql-executor.js'
import type { PrismaStoreClient, PrismaStoreTransactionClient, PrismaTransactionClientOf } from './prisma-client.js'
import { knownCatalogueDigests, type RunStageRow, type RunStagesRow, type StageRow, stageFromRow, stageOf, toRunState, UnknownCatalogueDigest, type VersionedRunRow } from './rows.js'
import { catalogueDigest, catalogueJson, instant, runColumnValues, runWriteValues, stageValues, UNFINISHED_STATUSES } from './sql/parameters.js'
import { CATALOGUE_PARAMETER } from './sql/columns.js'
import { INSERT_CATALOGUE_PARAMETER } from './sql/runs.js'
import { buildStatements, type StoreStatements } from './sql/statements.js'
import { CATALOGUE_DIGEST_UNKNOWN, migratedFunctionsFor, type StoreFunction, type StoreFunctions } from './sql/functions.js'
import { FunctionCalls } from './function-calls.js'
import { CatalogueTable } from './catalogue-table.js'
import { NOTIFY_BATCH_DEFAULTS, NOTIFY_BATCH_SQL, NotifyBatcher, type NotifyCounts } from './notify-batcher.js'
import { type PrismaStoreNames, resolveTableNames } from './table-names.js'
import { createRunListQueries, type RunListQueries } from './run-list-queries.js'

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
  maxWaitMs?: number | undefined
  /**
   * How long one transaction may run, in milliseconds, including the app's `onRunCompleted`
   * hook, which runs inside it. Waiting for another write to the same run counts towards it.
   * Past it the transaction is rolled back and fails with `StoreUnavailableError` (503).
   * @default 15_000
   */
  timeoutMs?: number | undefined
  /**
   * How long one statement outside a transaction may take, in milliseconds, waiting for a
   * pooled connection included: the status read, run creation, the stale-run listing and each
   * statement of a stage update. Past it the call fails with `StoreUnavailableError` (503); the
   * statement itself is left to the pool, so also set the pool's `connectionTimeoutMillis` and
   * PostgreSQL's `statement_timeout` (see docs/operations.md).
   * @default 5_000
   */
  queryTimeoutMs?: number | undefined
  /**
   * The PostgreSQL schema holding the tables, when neither the models (`@@schema`) nor the
   * connection's `search_path` say it (e.g. when the adapter was created with
   * `new PrismaPg(url, { schema })`): the store writes its hot-path SQL itself.
   * @default the models' `@@schema`, else the connection's search_path (normally `public`)
   * @throws ServerConfigurationError from `createPrismaStore` when the name is longer than 63
   *   bytes as UTF-8 (PostgreSQL would silently truncate it).
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
  logger?: Logger | undefined
  /**
   * For live streams in LISTEN mode (set, with {@link PrismaStoreOptions.notifyPool}, by
   * `createPgConnections(…).handlerOptions()` from `pipeline-status-sdk/pg` whenever a direct URL
   * is given): after each write of a run commits, the store queues
   * `'<runId>:<version>'` and sends the queue every {@link PrismaStoreOptions.notifyIntervalMs}
   * as one statement (`SELECT pg_notify(channel, x) FROM unnest(…) x`), outside the write, so
   * the instances listening on `channel` (`createPgRunListener` from `pipeline-status-sdk/pg`)
   * learn of it. Writes never wait for it and never fail because of it; a notification lost to a
   * crash, a full queue or a failed batch is caught up by the listeners' safety poll
   * (`live.safetyPollIntervalMs`). Same-process streams are told in-process, at once, either way.
   * Call {@link PrismaStore.close} on shutdown to send what is queued.
   * @default none: writes send no notification (streams on other instances poll versions)
   */
  notifyChannel?: string | undefined
  /**
   * With {@link PrismaStoreOptions.notifyChannel}: how long a committed change waits for the
   * next notification batch, in milliseconds. Changes to the same run within one interval are sent
   * once, with the highest version. Shorter means lower cross-instance latency and more statements.
   * @default 5
   */
  notifyIntervalMs?: number | undefined
  /**
   * With {@link PrismaStoreOptions.notifyChannel}: how many runs' changes may wait for a batch.
   * Past it (the database does not take the batches) further changes are dropped, counted in
   * {@link PrismaStore.notifyCounts} and logged once; listeners catch them up with their safety poll.
   * @default 10_000
   */
  notifyMaxQueue?: number | undefined
  /**
   * With {@link PrismaStoreOptions.notifyChannel}: where the notification batches are sent, a
   * connection no write waits for (`createPgConnections(…).notifyPool` from
   * `pipeline-status-sdk/pg`: one connection on the direct URL). On the writer's own pool a batch
   * queues behind the writes once they hold every connection, so under load cross-instance
   * latency grows with the queue (bench/README.md "Issue 31"). Batches are sent unnamed; each is
   * bounded by `queryTimeoutMs`; a failed one is retried with backoff and logged once.
   * @default the store's own statements' path (`pool`, else the Prisma client)
   */
  notifyPool?: PrismaStorePool | undefined
}

/** PrismaStores created without a `logger`, and how each takes a lent one. */
const borrowers = new WeakMap<object, (logger: Logger) => void>()

/**
 * Lends `logger` to `store` when it is a PrismaStore created without its own `logger` (the first
 * lender wins; a store with its own logger keeps it; any other store is left alone). Called by
 * `resolveStore`, so the handlers' and the sweeper's `logger` receive the store's warnings.
 * Internal.
 */
export function lendLogger(store: unknown, logger: Logger): void {
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
/** How many catalogues a store remembers as kept in `"PipelineCatalogue"` (an app has a few pipelines; past this it forgets them all and sends each whole once more). */
const MAX_KEPT_CATALOGUES = 64

/** A write that may fill a run's catalogue, as its function and as its statements sent inline (`PrismaStore.#fillingCatalogue`). */
interface CatalogueWriting {
  /** Its function. */
  readonly pick: (functions: StoreFunctions) => StoreFunction
  /** Its statements sent inline: without the catalogue table, keeping the text there, taking it by its digest. */
  readonly inline: { readonly plain: string; readonly keeping: string; readonly byDigest: string }
  /** The index of the catalogue's text among the statement's values. */
  readonly catalogueAt: number
  /** The column of its function's answer (and of the statement by digest). */
  readonly answer: 'written' | 'created'
}

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
 * Sent unnamed (through the Prisma client, or a pool with `namedStatements: false`), those two
 * statements and the heartbeat's are calls of PL/pgSQL functions from the package's migrations
 * (`20261207090000_store_functions`, the current ones from `20261207100000_catalogue_json`), so PostgreSQL plans them once per connection; without them
 * (the migration not applied, tables renamed) the statements go inline and the store says so once,
 * `warn` (docs/operations.md, "Connections, transactions and bounds"). Either way a run's
 * catalogue is sent whole once per store and then by its digest (`"PipelineCatalogue"`, by the
 * same SQL: `sql/catalogue.ts`); statements sent inline where that table is not found send it
 * whole, and the store says so once.
 *
 * Table and column names come from the client's data model, so models renamed with `@@map` /
 * `@map` or living in another `@@schema` work; see {@link PrismaStoreOptions.names} otherwise.
 *
 * Instants are sent as ISO 8601 text with `Z` cast to `timestamptz` and read back as epoch
 * milliseconds, so a database whose `TimeZone` is not UTC changes nothing (docs/operations.md).
 *
 * Every call is bounded ({@link PrismaStoreOptions.queryTimeoutMs}, `maxWaitMs`, `timeoutMs`). A
 * database that cannot be reached or does not answer in time surfaces as
 * `StoreUnavailableError` (503 `database_unavailable` with `Retry-After`), one without the SDK's
 * tables or columns as `StoreUnavailableError` with code `database_not_migrated`; every other
 * error propagates unchanged.
 *
 * @typeParam Client - the app's client type; `onRunCompleted` receives its transaction client.
 *
 * @example
 * ```ts
 * import { createPrismaStore } from 'pipeline-status-sdk/server'
 * import { PrismaPg } from '@prisma/adapter-pg'
 * import { PrismaClient } from './generated/prisma/client.js'
 *
 * const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL }) })
 * const store = createPrismaStore({ prisma, timeoutMs: 20_000 })
 * ```
 */
export class PrismaStore<Client extends PrismaStoreClient = PrismaStoreClient>
  implements Store<PrismaTransactionClientOf<Client>>
{
  readonly #prisma: Client
  /** The pool or the Prisma client, chosen once here; see PrismaStoreOptions.pool. */
  readonly #sql: SqlExecutor
  #logger: Logger
  readonly #maxWait: number
  readonly #timeout: number
  readonly #statements: StoreStatements
  /** Whether the hot path calls the database's functions (`sql/functions.ts`) or sends its statements inline. */
  readonly #functions: FunctionCalls
  /** Whether the statements sent inline find the table of catalogues by digest (`catalogue-table.ts`). */
  readonly #catalogueTable: CatalogueTable
  /** The stage update's write and the run's insert: each may fill a run's catalogue, by its digest once kept. */
  readonly #stageWrite: CatalogueWriting
  readonly #runInsert: CatalogueWriting
  /**
   * The digests of the catalogues this store has kept in `"PipelineCatalogue"` (by a function or a
   * statement sent inline: the same table), at most `MAX_KEPT_CATALOGUES`.
   */
  readonly #keptCatalogues = new Set<string>()
  /** Whether this store has said once that a kept catalogue was gone from `"PipelineCatalogue"`. */
  #saidCatalogueGone = false
  /** The class-40 SQLSTATEs this store has said once it ran a statement again after (`#ranAgain`). */
  readonly #saidRanAgain = new Set<string>()
  readonly #lists: RunListQueries
  /** Sends the committed changes' notifications in batches, with a notify channel. */
  readonly #notifier: NotifyBatcher | undefined
  readonly #changes = new RunChangeEmitter()
  readonly #options: Omit<PrismaStoreOptions<Client>, 'prisma'>

  /** Internal: create one with {@link createPrismaStore}. @internal */
  constructor(prisma: Client, options: Omit<PrismaStoreOptions<Client>, 'prisma'> = {}) {
    this.#prisma = prisma
    this.#options = options
    this.#logger = safeLogger(options.logger ?? consoleLogger)
    // Without its own logger the store warns through the handlers' (or the sweeper's) one.
    if (options.logger === undefined) {
      borrowers.set(this, (logger) => {
        this.#logger = safeLogger(logger)
      })
    }
    this.#maxWait = options.maxWaitMs ?? DEFAULT_MAX_WAIT
    this.#timeout = options.timeoutMs ?? DEFAULT_TIMEOUT
    const guard = guardedBy(options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT)
    this.#sql = runningAgainOnRollback(
      options.pool
        ? createPoolExecutor(options.pool, {
            namedStatements: options.namedStatements,
            guard,
            warn: (message, fields) => this.#logger.warn(message, fields),
          })
        : createPrismaExecutor(prisma, guard),
      (state, error) => this.#ranAgain(state, error),
    )
    const schemaProblem = options.schema === undefined ? undefined : schemaNameProblem(options.schema)
    if (schemaProblem !== undefined) throw new ServerConfigurationError(`createPrismaStore: ${schemaProblem}`)
    const names = resolveTableNames(prisma, options)
    this.#statements = buildStatements(names)
    this.#functions = new FunctionCalls(this.#sql, migratedFunctionsFor(names, this.#statements), () => this.#logger)
    this.#catalogueTable = new CatalogueTable(this.#sql, names, () => this.#logger)
    const statements = this.#statements
    this.#stageWrite = {
      pick: (functions) => functions.writeRunStage,
      inline: { plain: statements.writeRunStage, keeping: statements.writeRunStageKeeping, byDigest: statements.writeRunStageByDigest },
      catalogueAt: CATALOGUE_PARAMETER - 1,
      answer: 'written',
    }
    this.#runInsert = {
      pick: (functions) => functions.insertRun,
      inline: { plain: statements.insertRun, keeping: statements.insertRunKeeping, byDigest: statements.insertRunByDigest },
      catalogueAt: INSERT_CATALOGUE_PARAMETER - 1,
      answer: 'created',
    }
    this.#lists = createRunListQueries(this.#sql, names)
    if (options.notifyChannel !== undefined) {
      const notifySql = options.notifyPool
        ? createPoolExecutor(options.notifyPool, { namedStatements: false, guard, warn: (message, fields) => this.#logger.warn(message, fields) })
        : this.#sql
      const notifier = new NotifyBatcher({
        channel: options.notifyChannel,
        intervalMs: positive('notifyIntervalMs', options.notifyIntervalMs, NOTIFY_BATCH_DEFAULTS.intervalMs),
        maxQueue: positive('notifyMaxQueue', options.notifyMaxQueue, NOTIFY_BATCH_DEFAULTS.maxQueue),
        send: async (channel, payloads) => void (await notifySql.query(NOTIFY_BATCH_SQL, [channel, payloads])),
        connection: options.notifyPool ? 'notifyPool' : undefined,
        logger: () => this.#logger,
      })
      this.#notifier = notifier
      // Every change the store emits has committed: the batch goes out after it, outside the write.
      this.#changes.subscribe((change) => notifier.add(change))
    }
  }

  /**
   * With `notifyChannel`: what the notification batches did since the store was created (sent,
   * batches, failed batches, changes dropped from a full queue). Without: `undefined`.
   */
  get notifyCounts(): Readonly<NotifyCounts> | undefined {
    return this.#notifier ? { ...this.#notifier.counts } : undefined
  }

  /**
   * Sends the queued LISTEN notifications now and stops batching (later changes are still told
   * to same-process streams, but not notified); for shutdown, after the handlers closed. Waits at
   * most `deadlineMs` milliseconds; what is not sent by then is caught up by the other
   * instances' safety poll. Does not disconnect the app's `PrismaClient` or pool. Without
   * `notifyChannel` it does nothing.
   * @param deadlineMs - the longest wait, in milliseconds (default 2_000)
   */
  async close(deadlineMs = 2_000): Promise<void> {
    await this.#notifier?.close(deadlineMs)
  }

  /**
   * A store on the same tables and names whose statements run on `pool`, a read replica's (the
   * handlers' `readReplica: { pool }`): it sends no notifications and bounds each statement by
   * `queryTimeoutMs`. Only its reads are used. Internal. @internal
   */
  onReplica(pool: PrismaStorePool, queryTimeoutMs: number): PrismaStore<Client> {
    const { notifyChannel: _channel, notifyPool: _notifyPool, ...options } = this.#options
    return new PrismaStore(this.#prisma, { ...options, pool, queryTimeoutMs, logger: this.#logger })
  }

  onRunChange(listener: RunChangeListener): () => void {
    return this.#changes.subscribe(listener)
  }

  async getRunVersions(runIds: readonly string[]): Promise<Map<string, number>> {
    const versions = new Map<string, number>()
    if (runIds.length === 0) return versions
    const rows = await this.#sql.query<{ id: string; version: number | string }>(this.#statements.readVersions, [[...runIds]])
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
        return fn(this.#transactionOn(client, changes))
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

  /**
   * A statement refused with a class-40 SQLSTATE (40001, 40P01) is run again
   * (`runningAgainOnRollback`): said once per state and store, at warn, with the cause and what to check.
   */
  #ranAgain(state: string, error: unknown): void {
    if (this.#saidRanAgain.has(state)) return
    this.#saidRanAgain.add(state)
    this.#logger.warn(
      `pipeline-status: PostgreSQL rolled a statement back (${describeDatabaseCause(error)}) and the store ran it again, as PostgreSQL asks ` +
        `(said once per store for SQLSTATE ${state}). If it recurs, writes of one run conflict: the store needs no more than READ COMMITTED, ` +
        "so check the database's and the role's default_transaction_isolation, and the PostgreSQL log's deadlock reports",
      { sqlState: state },
    )
  }

  /** The store's side of one interactive transaction on `client`; saved runs are pushed to `changes`. */
  #transactionOn(client: PrismaStoreTransactionClient, changes: RunChange[]): StoreTransaction<PrismaTransactionClientOf<Client>> {
    const sql = createPrismaExecutor(client)
    const statements = this.#statements
    // The version each locked run had, so that saveRun stores the next one.
    const versions = new Map<string, number>()
    return {
      client: client as PrismaTransactionClientOf<Client>,
      lockRun: async (runId) => {
        const rows = await sql.query<VersionedRunRow>(statements.lockRun, [runId])
        const row = rows[0]
        if (!row) return null
        versions.set(runId, Number(row.version))
        return toRunState(row)
      },
      getStage: async (runId, stageNumber) => {
        const rows = await sql.query<StageRow>(statements.readStage, [runId, stageNumber])
        return rows[0] ? stageFromRow(rows[0]) : undefined
      },
      getStages: async (runId) => {
        const rows = await sql.query<StageRow>(statements.readStages, [runId])
        return rows.map(stageFromRow)
      },
      saveOutputChunk: async (runId, stageNumber, seq, text) => {
        await sql.query(statements.saveOutputChunk, [runId, stageNumber, seq, text])
      },
      deleteOutputChunks: async (runId, stageNumber) => {
        await sql.query(statements.deleteOutputChunks, [runId, stageNumber])
      },
      saveStage: async (runId, stage) => {
        // One INSERT … ON CONFLICT DO UPDATE, which cannot raise P2002 even without the run lock.
        await sql.query(statements.saveStage, [runId, ...stageValues(stage)])
      },
      saveRun: async (run) => {
        const locked = versions.get(run.id)
        // The store's own SQL, not the model API: Prisma's adapter writes a `Date` as wall-clock
        // text without a zone, which a session TimeZone other than UTC shifts (docs/operations.md).
        // Saved under the lock: the next version of the one read. Without a lock, the same rule in SQL.
        const rows = await sql.query<{ version: number | string }>(statements.saveRun, [
          run.id,
          run.status,
          run.error,
          instant(run.completedAt),
          instant(run.completionReceivedAt),
          instant(run.updatedAt),
          locked === undefined ? null : nextRunVersion(locked),
          // Under the lock the run as decided is the run as stored: its columns are written as they are.
          ...runColumnValues({ catalogue: run.catalogue ?? undefined, tags: run.tags, metadata: run.metadata }),
          instant(run.startedAt),
        ])
        const saved = rows[0]
        if (!saved) throw new Error(`Run ${run.id} was not found to save`)
        const version = Number(saved.version)
        versions.set(run.id, version)
        // Emitted (and so notified) once the transaction has committed.
        changes.push({ runId: run.id, version })
      },
    }
  }

  readRunStage(runId: string, stageNumber: number): Promise<RunStageRead | null> {
    return withKnownCatalogues(async (knownDigests) => {
      const row = await this.#runStageRow((functions) => functions.readRunStage, this.#statements.readRunStage, [runId, stageNumber, knownDigests])
      return row ? runStageRead(row, stageNumber) : null
    })
  }

  /**
   * The one row of a hot-path statement that reads a run with one stage (`readRunStage`,
   * `touchRun`): from its function when the store calls them (the row as JSON text), else from
   * the statement sent inline; `undefined` when there is none.
   */
  async #runStageRow(pick: (functions: StoreFunctions) => StoreFunction, statement: string, values: unknown[]): Promise<RunStageRow | undefined> {
    const called = await this.#functions.call<{ row: string | null }>(pick, values)
    return called ? parseRow<RunStageRow>(called[0]?.row) : (await this.#sql.query<RunStageRow>(statement, values))[0]
  }

  async writeRunStage(write: RunStageWrite): Promise<boolean> {
    const { chunk } = write
    const values = [...runWriteValues(write), ...stageValues(write.stage), ...(chunk ? [chunk.seq, chunk.text] : [])]
    const written =
      chunk || write.dropOutputChunks
        ? (await this.#sql.query<unknown>(chunk ? this.#statements.writeRunStageChunk : this.#statements.writeRunStageDropChunks, values)).length > 0
        : await this.#fillingCatalogue(this.#stageWrite, values, write.catalogue)
    if (!written) return false
    this.#changes.emit({ runId: write.run.id, version: write.version })
    return true
  }

  /**
   * A write that may fill a run's catalogue (the stage update's write, the run's insert), by one
   * rule whether it calls the database's function or sends its statement inline: with a
   * catalogue, its digest goes too, and its text only until it is kept in `"PipelineCatalogue"`
   * once for this store; after that the digest alone, and the database copies the text from
   * there (`WRITE_CATALOGUE_DIGEST`, `sql/catalogue.ts`). A digest the table no longer holds (a
   * row deleted by hand) is answered with nothing written and sent again whole, which keeps it
   * again. Statements sent inline without the table (`catalogue-table.ts`) send the text.
   * Whether the write wrote (the run's version was still the one read; the run was inserted).
   *
   * @param values The statement's values, the catalogue's text at `writing.catalogueAt`.
   */
  async #fillingCatalogue(writing: CatalogueWriting, values: unknown[], catalogue: StageCatalogue | null | undefined): Promise<boolean> {
    const digest = catalogue ? await catalogueDigest(catalogue) : null
    let kept = digest !== null && this.#keptCatalogues.has(digest)
    let sent = await this.#sendFillingCatalogue(writing, values, digest, !kept)
    if (kept && digest !== null && sent.answer === CATALOGUE_DIGEST_UNKNOWN) {
      this.#keptCatalogues.delete(digest)
      kept = false
      if (!this.#saidCatalogueGone) {
        this.#saidCatalogueGone = true
        this.#logger.warn(
          `pipeline-status: ${this.#catalogueTable.name} no longer holds catalogue ${digest}, which this store kept there (a row deleted?): ` +
            'it was sent whole and kept again, and nothing is lost (each run holds its own copy). The package writes that table; ' +
            'leave its rows, or expect this once per process after deleting them (said once per store)',
        )
      }
      sent = await this.#sendFillingCatalogue(writing, values, digest, true)
    }
    if (sent.kept && digest !== null && !kept) {
      if (this.#keptCatalogues.size >= MAX_KEPT_CATALOGUES) this.#keptCatalogues.clear()
      this.#keptCatalogues.add(digest)
    }
    return sent.answer === 1
  }

  /**
   * One attempt of {@link PrismaStore.#fillingCatalogue}: the catalogue's text (`whole`) or its
   * digest alone, through the function when the store calls them, else inline. Its answer as the
   * function's (1 written, `null` not, `CATALOGUE_DIGEST_UNKNOWN`), and whether the catalogue is
   * kept in the table now (`false` when the statement went without it: the text was sent).
   */
  async #sendFillingCatalogue(
    writing: CatalogueWriting,
    values: unknown[],
    digest: string | null,
    whole: boolean,
  ): Promise<{ answer: number | null; kept: boolean }> {
    const sent = whole ? values : values.with(writing.catalogueAt, null)
    const called = await this.#functions.call<Record<string, number | null>>(writing.pick, [...sent, digest])
    if (called) return { answer: called[0]?.[writing.answer] ?? null, kept: true }
    const { inline } = writing
    if (digest !== null && (await this.#catalogueTable.usable())) {
      try {
        const rows = await this.#sql.query<Record<string, number | null>>(whole ? inline.keeping : inline.byDigest, [...sent, digest])
        // Kept with the text: written or not, as the plain statement; by digest: one row, as the function answers.
        return { answer: whole ? (rows.length > 0 ? 1 : null) : (rows[0]?.[writing.answer] ?? null), kept: true }
      } catch (error) {
        // The table gone since it was found: said once, and sent without it below. Another table's
        // column missing (its migration not applied): thrown as it is.
        if (!(await this.#catalogueTable.lost(error))) throw error
      }
    }
    // Without the table the text goes whole, even for a digest kept before.
    return { answer: (await this.#sql.query<unknown>(inline.plain, values)).length > 0 ? 1 : null, kept: false }
  }

  async readRun(runId: string): Promise<VersionedRun | null> {
    const rows = await this.#sql.query<VersionedRunRow>(this.#statements.readRun, [runId])
    const row = rows[0]
    return row ? { run: toRunState(row), version: Number(row.version) } : null
  }

  async writeRun(write: RunWrite): Promise<boolean> {
    const guarded = write.expectedLastActivityAt !== undefined
    const rows = await this.#sql.query<unknown>(guarded ? this.#statements.writeRunIfSilent : this.#statements.writeRun, [
      ...runWriteValues(write),
      ...(guarded ? [instant(write.expectedLastActivityAt)] : []),
    ])
    if (rows.length === 0) return false
    this.#changes.emit({ runId: write.run.id, version: write.version })
    return true
  }

  async touchRun(touch: RunTouch): Promise<RunStageRead | null> {
    // Sent again whole when a catalogue it left out was forgotten meanwhile: a touch writes the
    // same instant again, so twice is once.
    const touched = await withKnownCatalogues(async (knownDigests) => {
      const values = [touch.runId, instant(touch.at), touch.heartbeatIntervalMs ?? null, touch.stageNumber ?? null, UNFINISHED_STATUSES, knownDigests]
      const row = await this.#runStageRow((functions) => functions.touchRun, this.#statements.touchRun, values)
      return row ? runStageRead(row, touch.stageNumber ?? 0) : null
    })
    // No row touched: the run is unknown or finished (finished runs never change). A new statement
    // reads it as stored, so a run that finished while the touch waited for its lock reads finished.
    return touched ?? this.readRunStage(touch.runId, touch.stageNumber ?? 0)
  }

  async deleteFinishedRuns(deletion: FinishedRunsDeletion): Promise<number> {
    const rows = await this.#sql.query<{ deleted: number | string }>(this.#statements.deleteFinishedRuns, [
      deletion.status,
      instant(deletion.updatedBefore),
      deletion.limit,
    ])
    return Number(rows[0]?.deleted ?? 0)
  }

  async insertRun(run: RunState): Promise<{ created: boolean; run: RunState }> {
    // INSERT … ON CONFLICT DO NOTHING: a concurrent create of the same id waits for the other
    // to commit and then inserts nothing, so neither caller sees a unique violation.
    const values = [
      run.id,
      run.status,
      run.error,
      instant(run.completedAt),
      instant(run.completionReceivedAt),
      instant(run.createdAt),
      instant(run.updatedAt),
      INITIAL_RUN_VERSION,
      run.pipeline ?? DEFAULT_PIPELINE,
      run.catalogue ? catalogueJson(run.catalogue) : null,
      [...(run.tags ?? [])],
      JSON.stringify(run.metadata ?? {}),
    ]
    // The catalogue by its digest once kept, through the function or inline.
    if (await this.#fillingCatalogue(this.#runInsert, values, run.catalogue)) {
      // A new run may join set streams' windows (here at once; elsewhere by its notification).
      this.#changes.emit({ runId: run.id, version: INITIAL_RUN_VERSION })
      return { created: true, run }
    }
    const existing = await this.#sql.query<VersionedRunRow>(this.#statements.readRun, [run.id])
    const row = existing[0]
    if (!row) throw new Error(`Run ${run.id} was neither inserted nor found`)
    return { created: false, run: toRunState(row) }
  }

  async listStaleRuns(updatedBefore: Date, limit: number, now?: Date): Promise<RunState[]> {
    // The (status, updatedAt) index narrows it to unfinished runs.
    const rows = await this.#sql.query<VersionedRunRow>(this.#statements.listStaleRuns, [
      UNFINISHED_STATUSES,
      instant(updatedBefore),
      limit,
      instant(now),
      MISSED_HEARTBEATS_LIMIT,
    ])
    return rows.map(toRunState)
  }

  async getOutputChunk(runId: string, stageNumber: number, seq: number): Promise<string | undefined> {
    const rows = await this.#sql.query<{ text: string }>(this.#statements.readOutputChunk, [runId, stageNumber, seq])
    return rows[0]?.text
  }

  async getStreamedOutput(runId: string, stageNumber: number, lastSeq: number): Promise<string> {
    const rows = await this.#sql.query<{ text: string | null }>(this.#statements.readStreamedOutput, [runId, stageNumber, lastSeq])
    return rows[0]?.text ?? ''
  }

  async getOutputChunksSince(runId: string, version: number, limit?: number): Promise<OutputChunkRow[]> {
    const rows = await this.#sql.query<{ stageNumber: number | string; seq: number | string; version: number | string; text: string }>(
      this.#statements.readOutputChunksSince,
      [runId, version, limit ?? null],
    )
    return rows.map((row) => ({ stageNumber: Number(row.stageNumber), seq: Number(row.seq), version: Number(row.version), text: row.text }))
  }

  listRuns(request: RunListRequest): Promise<RunListItem[]> {
    return this.#lists.listRuns(request)
  }

  listRunWindow(request: RunListRequest): Promise<RunWindowEntry[]> {
    return this.#lists.listRunWindow(request)
  }

  countRuns(request: RunCountRequest): Promise<Record<string, number>> {
    return this.#lists.countRuns(request)
  }

  runStats(request: RunStatsRequest): Promise<StageStats[]> {
    return this.#lists.runStats(request)
  }

  async getRun(runId: string, options: GetRunOptions = {}): Promise<RunSnapshot | null> {
    const withText = options.streamedText !== false
    // One statement: the run joined with its stages, one row per stage (or one without), with
    // each stage's streamed text unless the caller gets it as chunks.
    return withKnownCatalogues(async (knownDigests) => {
      const rows = await this.#sql.query<RunStagesRow>(withText ? this.#statements.readRunStages : this.#statements.readRunStagesWithoutText, [runId, knownDigests])
      return rows.length === 0 ? null : snapshotOfRows(rows, 0, rows.length, withText)
    })
  }

  async getRuns(runIds: readonly string[], options: GetRunOptions = {}): Promise<Map<string, RunSnapshot>> {
    if (runIds.length === 0) return new Map<string, RunSnapshot>()
    const withText = options.streamedText !== false
    return withKnownCatalogues(async (knownDigests) => {
      const snapshots = new Map<string, RunSnapshot>()
      // One statement for all of them, ordered by run id, then stage number.
      const rows = await this.#sql.query<RunStagesRow>(withText ? this.#statements.readRunsStages : this.#statements.readRunsStagesWithoutText, [[...runIds], knownDigests])
      for (let start = 0; start < rows.length; ) {
        const id = (rows[start] as RunStagesRow).id
        let end = start + 1
        while (end < rows.length && (rows[end] as RunStagesRow).id === id) end++
        snapshots.set(id, snapshotOfRows(rows, start, end, withText))
        start = end
      }
      return snapshots
    })
  }
}

/**
 * `read(knownCatalogueDigests())`: a read that leaves out the catalogues this process knows
 * (`runColumns`); once more with none known when one it left out was forgotten meanwhile
 * (`UnknownCatalogueDigest`: rare, past 32 known catalogues).
 */
async function withKnownCatalogues<T>(read: (knownDigests: readonly string[]) => Promise<T>): Promise<T> {
  try {
    return await read(knownCatalogueDigests())
  } catch (error) {
    if (error instanceof UnknownCatalogueDigest) return read([])
    throw error
  }
}

/** A run-with-one-stage row as what the store's reads of one stage answer. */
function runStageRead(row: RunStageRow, stageNumber: number): RunStageRead {
  return { run: toRunState(row), version: Number(row.version), stage: stageOf(row, stageNumber) }
}

/** A row a function returned as JSON text (`row_to_json`: the statement's columns under their aliases), or `undefined` for `NULL`. */
function parseRow<Row>(json: string | null | undefined): Row | undefined {
  return json == null ? undefined : (JSON.parse(json) as Row)
}

/** The snapshot of one run from its rows `rows[start..end)` of a run-with-stages read (the first carries the run's large columns). */
function snapshotOfRows(rows: readonly RunStagesRow[], start: number, end: number, withText: boolean): RunSnapshot {
  const first = rows[start] as RunStagesRow
  const stages: StageState[] = []
  for (let i = start; i < end; i++) {
    const row = rows[i] as RunStagesRow
    if (row.s_stageNumber === null) continue
    const stage = stageOf(row, Number(row.s_stageNumber))
    if (stage) stages.push(withStreamedOutput(stage, withText ? () => row.s_streamed ?? '' : undefined))
  }
  const snapshot: RunSnapshot = { run: toRunState(first), stages, version: Number(first.version) }
  if (!withText) snapshot.streamedText = false
  return snapshot
}

/** `value` when it is a positive integer, `fallback` when undefined; else a configuration error naming `name`. */
function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value <= 0) throw new ServerConfigurationError(`createPrismaStore: ${name} must be a positive integer, got ${value}`)
  return value
}

/**
 * Creates a {@link PrismaStore} on the app's own `PrismaClient`.
 *
 * @example
 * ```ts
 * import { createPrismaStore } from 'pipeline-status-sdk/server'
 * import { prisma } from './prisma.js' // your app's PrismaClient
 *
 * const store = createPrismaStore({ prisma, maxWaitMs: 2_000 })
 * ```
 */
export function createPrismaStore<Client extends PrismaStoreClient>(options: PrismaStoreOptions<Client>): PrismaStore<Client> {
  const { prisma, ...rest } = options
  return new PrismaStore(prisma, rest)
}
