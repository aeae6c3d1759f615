import { isFinalStatus, RunStatus } from '../contract/status.js'
import type { RunSnapshot, RunState, StageState } from '../core/state.js'
import { type Store, type StoreTransaction, StoreUnavailableError } from '../core/store.js'

// Typed structurally so that this module never imports `@prisma/client` or a generated client:
// any client generated from a schema holding our models fits, also one whose models have extra
// fields (they need a default or must be optional, as the store never sets them).

/** Selects every column the store reads, and nothing an app may have added. */
const RUN_SELECT: { [K in keyof RunState]: true } = {
  id: true,
  status: true,
  error: true,
  completedAt: true,
  completionReceivedAt: true,
  createdAt: true,
  updatedAt: true,
}

/** `PENDING` and `PROCESSING`: the statuses the `(status, updatedAt)` index narrows stale-run listings to. */
const UNFINISHED_STATUSES: RunStatus[] = RunStatus.options.filter((status) => !isFinalStatus(status))

const STAGE_SELECT: { [K in keyof StageState]: true } = {
  stageNumber: true,
  stageName: true,
  status: true,
  output: true,
  completedAt: true,
  createdAt: true,
  updatedAt: true,
}

/** The part of a Prisma model delegate (`prisma.pipelineRun`) that {@link PrismaStore} uses. */
export interface PrismaStorePipelineRunDelegate {
  /** Reads a run with its stages (`GET /status`). */
  findUnique(args: {
    where: { id: string }
    select: { [K in keyof RunState]: true } & {
      stages: { select: { [K in keyof StageState]: true }; orderBy: { stageNumber: 'asc' } }
    }
  }): PromiseLike<(RunState & { stages: StageState[] }) | null>
  /** Reads the existing run after a creation found its id taken. */
  findUniqueOrThrow(args: { where: { id: string }; select: { [K in keyof RunState]: true } }): PromiseLike<RunState>
  /** Creates a run unless its id exists (`INSERT … ON CONFLICT DO NOTHING`). */
  createMany(args: { data: RunState[]; skipDuplicates: true }): PromiseLike<{ count: number }>
  /** Lists unfinished runs not updated since a moment (the stale-run sweep). */
  findMany(args: {
    where: { status: { in: RunStatus[] }; updatedAt: { lt: Date } }
    orderBy: Array<{ updatedAt: 'asc' } | { id: 'asc' }>
    take: number
    select: { [K in keyof RunState]: true }
  }): PromiseLike<RunState[]>
  /** Writes a run's status fields. */
  update(args: {
    where: { id: string }
    data: Omit<RunState, 'id' | 'createdAt'>
    select: { id: true }
  }): PromiseLike<{ id: string }>
}

/** The part of a Prisma model delegate (`prisma.stageOutput`) that {@link PrismaStore} uses. */
export interface PrismaStoreStageOutputDelegate {
  /** Reads one stage of a run. */
  findUnique(args: {
    where: { runId_stageNumber: { runId: string; stageNumber: number } }
    select: { [K in keyof StageState]: true }
  }): PromiseLike<StageState | null>
  /** Inserts or updates one stage, keyed by `(runId, stageNumber)`. */
  upsert(args: {
    where: { runId_stageNumber: { runId: string; stageNumber: number } }
    create: StageState & { runId: string }
    update: Omit<StageState, 'stageNumber' | 'createdAt'>
    select: { stageNumber: true }
  }): PromiseLike<{ stageNumber: number }>
}

/** What {@link PrismaStore} needs of an interactive transaction's client. */
export interface PrismaStoreTransactionClient {
  /** Locks the run's row (`SELECT … FOR UPDATE`, the run id always a bound parameter). */
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): PromiseLike<T>
  /** The `PipelineRun` model. */
  readonly pipelineRun: PrismaStorePipelineRunDelegate
  /** The `StageOutput` model. */
  readonly stageOutput: PrismaStoreStageOutputDelegate
}

/**
 * What {@link PrismaStore} needs of a `PrismaClient`: interactive transactions and the
 * `pipelineRun` / `stageOutput` delegates generated from the SDK's models.
 */
export interface PrismaStoreClient {
  /** An interactive transaction; every write of the store runs in one. */
  $transaction<R>(
    fn: (tx: PrismaStoreTransactionClient) => Promise<R>,
    options?: { maxWait?: number; timeout?: number },
  ): PromiseLike<R>
  /** The `PipelineRun` model. */
  readonly pipelineRun: PrismaStorePipelineRunDelegate
  /** The `StageOutput` model. */
  readonly stageOutput: PrismaStoreStageOutputDelegate
}

/**
 * The transaction client type of a `PrismaClient`, as handed to `onRunCompleted`: the app's
 * own type, with all of its models, when it can be read from the client.
 */
export type PrismaTransactionClientOf<Client extends PrismaStoreClient> =
  Parameters<Client['$transaction']>[0] extends (tx: infer Tx) => unknown ? Tx : PrismaStoreTransactionClient

/** Options of {@link createPrismaStore} and {@link PrismaStore}. */
export interface PrismaStoreOptions<Client extends PrismaStoreClient = PrismaStoreClient> {
  /** The app's own `PrismaClient`, generated from a schema that holds the SDK's models. */
  prisma: Client
  /**
   * How long a write may wait for a connection before it gives up, in milliseconds. A write that
   * cannot start in time fails with `StoreUnavailableError` (the handlers answer 503).
   * @default 5000
   */
  maxWait?: number | undefined
  /**
   * How long one write transaction may run, in milliseconds, including the app's
   * `onRunCompleted` hook, which runs inside it. Waiting for another write to the same run
   * counts towards it.
   * @default 15000
   */
  timeout?: number | undefined
  /**
   * The PostgreSQL schema holding the tables, when it is not the connection's `search_path`
   * (e.g. when the adapter was created with `new PrismaPg(url, { schema })`). Prisma itself has
   * no row lock, so the store locks runs with one SQL statement that needs the table's schema.
   * @default the connection's search_path (normally `public`)
   */
  schema?: string | undefined
}

/** @default values of {@link PrismaStoreOptions}, in milliseconds. */
const DEFAULT_MAX_WAIT = 5_000
const DEFAULT_TIMEOUT = 15_000

/**
 * The {@link Store} for PostgreSQL through the app's own `PrismaClient`. Every write is one
 * interactive transaction that first locks the run's row (`SELECT … FOR UPDATE`), so concurrent
 * updates of one run take turns while different runs proceed in parallel, and a run can never
 * be finished twice. Stage rows are written with an upsert on `(runId, stageNumber)`, so
 * repeated or concurrent first updates merge instead of failing with a unique violation.
 *
 * A database that cannot be reached surfaces as `StoreUnavailableError` (the handlers answer
 * 503 with `Retry-After`); every other error propagates unchanged.
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
  readonly #maxWait: number
  readonly #timeout: number
  readonly #lockRunSql: string

  constructor(prisma: Client, options: Omit<PrismaStoreOptions<Client>, 'prisma'> = {}) {
    this.#prisma = prisma
    this.#maxWait = options.maxWait ?? DEFAULT_MAX_WAIT
    this.#timeout = options.timeout ?? DEFAULT_TIMEOUT
    const table = options.schema ? `${quoteIdentifier(options.schema)}."PipelineRun"` : '"PipelineRun"'
    // Built once from quoted identifiers; the run id is always a bound parameter.
    this.#lockRunSql =
      'SELECT "id", "status"::text AS "status", "error", "completedAt", "completionReceivedAt", "createdAt", "updatedAt" ' +
      `FROM ${table} WHERE "id" = $1 FOR UPDATE`
  }

  async transaction<T>(fn: (tx: StoreTransaction<PrismaTransactionClientOf<Client>>) => Promise<T>): Promise<T> {
    let started = false
    try {
      return await this.#prisma.$transaction(
        async (client) => {
          started = true
          return fn({
            client: client as PrismaTransactionClientOf<Client>,
            lockRun: async (runId) => {
              const rows = await client.$queryRawUnsafe<RunState[]>(this.#lockRunSql, runId)
              const row = rows[0]
              return row ? toRunState(row) : null
            },
            getStage: async (runId, stageNumber) => {
              const row = await client.stageOutput.findUnique({
                where: { runId_stageNumber: { runId, stageNumber } },
                select: STAGE_SELECT,
              })
              return row ? toStageState(row) : undefined
            },
            saveStage: async (runId, stage) => {
              // Prisma turns this into one INSERT … ON CONFLICT DO UPDATE, which cannot raise P2002
              // even without the run lock.
              await client.stageOutput.upsert({
                where: { runId_stageNumber: { runId, stageNumber: stage.stageNumber } },
                create: { runId, ...stage },
                update: {
                  stageName: stage.stageName,
                  status: stage.status,
                  output: stage.output,
                  completedAt: stage.completedAt,
                  updatedAt: stage.updatedAt,
                },
                select: { stageNumber: true },
              })
            },
            saveRun: async (run) => {
              await client.pipelineRun.update({
                where: { id: run.id },
                data: {
                  status: run.status,
                  error: run.error,
                  completedAt: run.completedAt,
                  completionReceivedAt: run.completionReceivedAt,
                  updatedAt: run.updatedAt,
                },
                select: { id: true },
              })
            },
          })
        },
        { maxWait: this.#maxWait, timeout: this.#timeout },
      )
    } catch (error) {
      // P2028 before the callback ran: no connection freed up within maxWait.
      if (!started && errorCode(error) === 'P2028') throw unavailable(error)
      throw toStoreError(error)
    }
  }

  async insertRun(run: RunState): Promise<{ created: boolean; run: RunState }> {
    try {
      // INSERT … ON CONFLICT DO NOTHING: a concurrent create of the same id waits for the other
      // to commit and then inserts nothing, so neither caller sees a unique violation.
      const { count } = await this.#prisma.pipelineRun.createMany({ data: [run], skipDuplicates: true })
      if (count === 1) return { created: true, run }
      const existing = await this.#prisma.pipelineRun.findUniqueOrThrow({ where: { id: run.id }, select: RUN_SELECT })
      return { created: false, run: toRunState(existing) }
    } catch (error) {
      throw toStoreError(error)
    }
  }

  async listStaleRuns(updatedBefore: Date, limit: number): Promise<RunState[]> {
    try {
      // Served by the (status, updatedAt) index of PipelineRun.
      const rows = await this.#prisma.pipelineRun.findMany({
        where: { status: { in: UNFINISHED_STATUSES }, updatedAt: { lt: updatedBefore } },
        orderBy: [{ updatedAt: 'asc' }, { id: 'asc' }],
        take: limit,
        select: RUN_SELECT,
      })
      return rows.map(toRunState)
    } catch (error) {
      throw toStoreError(error)
    }
  }

  async getRun(runId: string): Promise<RunSnapshot | null> {
    try {
      const row = await this.#prisma.pipelineRun.findUnique({
        where: { id: runId },
        select: { ...RUN_SELECT, stages: { select: STAGE_SELECT, orderBy: { stageNumber: 'asc' } } },
      })
      if (!row) return null
      const { stages, ...run } = row
      return { run: toRunState(run), stages: stages.map(toStageState) }
    } catch (error) {
      throw toStoreError(error)
    }
  }
}

/**
 * Creates a {@link PrismaStore} on the app's own `PrismaClient`.
 *
 * @example
 * ```ts
 * import { createPrismaStore } from 'pipeline-status-sdk/server'
 * import { prisma } from './db.js'
 *
 * const store = createPrismaStore({ prisma, maxWait: 2_000 })
 * ```
 */
export function createPrismaStore<Client extends PrismaStoreClient>(options: PrismaStoreOptions<Client>): PrismaStore<Client> {
  const { prisma, ...rest } = options
  return new PrismaStore(prisma, rest)
}

/**
 * Whether an error means the database could not be reached (as opposed to a query that
 * failed): Prisma's connection error codes, a driver adapter's connection error kinds,
 * PostgreSQL's connection and shutdown states, and Node's socket errors, anywhere in the
 * error's `cause` chain.
 *
 * @example
 * ```ts
 * import { isDatabaseUnreachableError } from 'pipeline-status-sdk/server'
 * isDatabaseUnreachableError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })) // true
 * ```
 */
export function isDatabaseUnreachableError(error: unknown): boolean {
  return isUnreachable(error, 0)
}

// P1001 can't reach server, P1002 server timed out, P1008 operation timed out, P1017 server
// closed the connection, P2024 timed out waiting for a pooled connection, P2037 too many connections.
const PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2037'])
const ADAPTER_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections'])
const NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
])
// Class 08 connection exceptions; 57P01..57P03 the server shutting down or starting; 53300 too many connections.
const SQLSTATE_UNREACHABLE = /^(08[0-9A-Z]{3}|57P0[123]|53300)$/

function isUnreachable(error: unknown, depth: number): boolean {
  if (depth > 5 || typeof error !== 'object' || error === null) return false
  const { code, errorCode, kind, originalCode, cause, meta } = error as Record<string, unknown>
  for (const value of [code, errorCode, originalCode]) {
    if (typeof value !== 'string') continue
    if (PRISMA_CODES.has(value) || NODE_CODES.has(value) || SQLSTATE_UNREACHABLE.test(value)) return true
  }
  if (typeof kind === 'string' && ADAPTER_KINDS.has(kind)) return true
  const adapterError = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>)['driverAdapterError'] : undefined
  return isUnreachable(cause, depth + 1) || isUnreachable(adapterError, depth + 1)
}

function toStoreError(error: unknown): unknown {
  return isDatabaseUnreachableError(error) ? unavailable(error) : error
}

function unavailable(cause: unknown): StoreUnavailableError {
  return new StoreUnavailableError(undefined, { cause })
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

function toRunState(row: RunState): RunState {
  return {
    id: row.id,
    status: row.status,
    error: row.error,
    completedAt: toDate(row.completedAt),
    completionReceivedAt: toDate(row.completionReceivedAt),
    createdAt: toDate(row.createdAt),
    updatedAt: toDate(row.updatedAt),
  }
}

function toStageState(row: StageState): StageState {
  return {
    stageNumber: row.stageNumber,
    stageName: row.stageName,
    status: row.status,
    output: row.output,
    completedAt: toDate(row.completedAt),
    createdAt: toDate(row.createdAt),
    updatedAt: toDate(row.updatedAt),
  }
}

// Raw queries return dates as `Date` with the bundled adapters; a string from another adapter is parsed.
function toDate(value: Date | string): Date
function toDate(value: Date | string | null): Date | null
function toDate(value: Date | string | null): Date | null {
  if (value === null || value instanceof Date) return value
  return new Date(value)
}
