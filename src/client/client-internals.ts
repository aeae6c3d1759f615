/**
 * What the package's own modules (`runPipeline`) reach a client through beyond its public API,
 * like the Anthropic SDK's resources reach `_client`. Internal: not exported from the package.
 *
 * The key is a registered symbol, so a client made by the package's other module format (the
 * CommonJS and the ES module build side by side) is reached the same way: nothing is dropped.
 */
import type { CatalogueEntry, CompleteRunResponse } from '../contract/records.js'
import type { CompleteRunInput } from './client-options.js'
import type { StageCatalogue } from '../contract/stages.js'
import type { StageUpdateStatus } from '../contract/status.js'
import type { QueuedDelivery, UpdateOutcome } from './delivery.js'
import type { DeadLetter } from './outbox/entry.js'
import { ConfigurationError } from './errors.js'
import type { Logger } from './logger.js'
import type { OutputStream } from './output-writer.js'
import type { DuplicateCompletion } from './pipeline-summary.js'
import type { CompletedStage } from './restart-attempts.js'
import type { ProgressReport } from './progress.js'
import type { StageAttemptFields } from './stage-output.js'
import type { RunFinishedEvent } from './run-finished.js'
import type { RunStreamHold } from './run-end-watch.js'

/** The property of a `PrismaAPIClient` that holds its {@link ClientInternals}. */
export const CLIENT_INTERNALS: unique symbol = Symbol.for('pipeline-status-sdk.client-internals') as never

/** What `runPipeline` may call beyond the public API. Internal. */
export interface ClientInternals {
  /**
   * A stage update; `catalogue` (the run's own) names the stages instead of the client's `stages`;
   * `attempt`: the attempt fields of a PROCESSING update of a stage that retries.
   */
  stageUpdate(runId: string, stageNumber: number, status: StageUpdateStatus, output: unknown, catalogue?: StageCatalogue, attempt?: StageAttemptFields): Promise<UpdateOutcome>
  /** `reportProgress`, telling an invalid report from an undelivered one. Never rejects. */
  reportProgress(runId: string, stageNumber: number, progress: ProgressReport, catalogue?: StageCatalogue): Promise<UpdateOutcome>
  /** Starts the stage's heartbeat; returns its stop. */
  startHeartbeat(runId: string, stageNumber: number): () => void
  /** Follows the run's live stream (one per run, shared) until released; see `run-end-watch.ts`. */
  holdRunStream(runId: string): RunStreamHold
  /** Listens for the run being finished elsewhere; returns the unsubscribe. */
  onRunFinished(runId: string, listener: (event: RunFinishedEvent) => void): () => void
  runFinished(runId: string): RunFinishedEvent | undefined
  /** Listens for the run being deleted on the server while it runs (its live stream's `: closed deleted`); returns the unsubscribe. */
  onRunDeleted(runId: string, listener: () => void): () => void
  /**
   * The run's catalogue and pipeline (from `createRun`'s answer, else `GET /status`), with the
   * stages an earlier process left PROCESSING or COMPLETED. Throws what `getStatus` throws when
   * it must read the run and cannot. A finished run read is learned finished elsewhere (as
   * `getStatus` does), except one its stages completed before any `/complete` was received
   * (`completedByItsStages`, over the run's catalogue, else `stageCount` stages): that one is resumed.
   */
  serverCatalogue(runId: string, stageCount: number): Promise<RunCatalogue>
  /** The stages an earlier process left PROCESSING or COMPLETED as its updates still in the outbox say (when the run cannot be read). */
  inheritedRun(runId: string): InheritedRun
  /** A stage attempt's output stream (`streamStageOutput`), for a stage context's `write`. */
  openOutputStream(runId: string, stageNumber: number): OutputStream
  /** The client's logger, for `runPipeline`'s own warnings. */
  readonly logger: Logger
  /** The outbox's directory (resolved), for `runPipeline`'s warnings; `undefined` without an outbox. */
  readonly outboxDir: string | undefined
  /**
   * Listens for the run's updates that the outbox dead-letters after this client queued them (a
   * refusal on an update's first delivery is in that update's outcome instead; an earlier
   * process's is {@link takeEarlierDeadLetters}'); returns the unsubscribe.
   * A listener must not throw.
   */
  onQueuedDeadLetter(runId: string, listener: (letter: DeadLetter) => void): () => void
  /**
   * The run's updates that an earlier process left in the outbox and that it dead-lettered since
   * this client opened it, before `runPipeline` started or while it ran (not given to
   * {@link onQueuedDeadLetter}); taken once.
   */
  takeEarlierDeadLetters(runId: string): DeadLetter[]
  /**
   * `completeRun`, with `duplicate` when the server answered `duplicate`: the one warning of it
   * (`duplicateCompletion`, with `otherCause` saying when another party's `/complete` came
   * first), already logged at warn, and the cause of an attempt of it that got no definite
   * answer when one did (the `duplicate` may then be the answer to that attempt).
   */
  completeRun(runId: string, body: CompleteRunInput, otherCause: string): Promise<{ response: CompleteRunResponse | QueuedDelivery; duplicate?: DuplicateCompletion }>
}

/** A run's own stage catalogue as the server answered it, and its pipeline. */
export interface RunCatalogue {
  /** `undefined` from an older server that sends none. */
  catalogue: CatalogueEntry[] | undefined
  /** `'default'` from an older server. */
  pipeline: string
  /**
   * The stages an earlier process left PROCESSING, with the attempt it left running: read from
   * the run as the server holds it and from the earlier process's updates still in the outbox
   * (`stagesLeftProcessing` in restart-attempts.ts, the one rule). Empty for a run this client
   * just created with no such updates; `undefined` when not known.
   */
  processing?: ReadonlyMap<number, number> | undefined
  /**
   * The stages an earlier process completed, with their output (`stagesCompleted` in
   * restart-attempts.ts): `runPipeline` does not run them again. Read like `processing`;
   * `undefined` when not known.
   */
  completed?: ReadonlyMap<number, CompletedStage> | undefined
  /**
   * The run as an earlier process's pending FAILED/CANCELLED stage update or `/complete` in the
   * outbox, not dead-lettered by the time the run is read, ends it (`inheritedEnds` and
   * `notDeadLettered` in restart-attempts.ts): `runPipeline` runs nothing and
   * reports it finished by that process. `undefined` when none is pending.
   */
  ended?: InheritedRunEnd | undefined
}

/** A run an earlier process's pending updates end: the summary's `finishedElsewhere`, and those updates for the warning. */
export interface InheritedRunEnd {
  event: RunFinishedEvent
  /** As `InheritedEnd.updates`: `stage 2 FAILED ("boom")`, `its /complete (COMPLETED)`. */
  updates: readonly string[]
}

/** What an earlier process's updates still in the outbox say of a run, for when the server cannot be read. */
export interface InheritedRun {
  processing: ReadonlyMap<number, number>
  completed: ReadonlyMap<number, CompletedStage>
  ended: InheritedRunEnd | undefined
}

/** The internals of a client; throws {@link ConfigurationError} for an object that is not one. */
export function clientInternals(client: object): ClientInternals {
  const internals = (client as { [CLIENT_INTERNALS]?: ClientInternals })[CLIENT_INTERNALS]
  if (internals === undefined) throw new ConfigurationError('runPipeline needs a PrismaAPIClient of pipeline-status-sdk/client as its `client`')
  return internals
}
