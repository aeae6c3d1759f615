/**
 * The structural Prisma types of the store: what it needs of the app's `PrismaClient`, typed by
 * shape so that the store never imports `@prisma/client` or a generated client. Any client
 * generated from a schema holding the SDK's models fits, also one whose models have extra fields
 * (they need a default or must be optional, as the store never sets them).
 */
import type { RunState } from '../../core/state.js'

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
