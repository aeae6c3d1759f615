/**
 * The runner side: `PrismaAPIClient` and `runPipeline`. Imports no Prisma, pg or server code.
 * Also re-exports the contract names a runner handles (the stage catalogue, `PayloadValidationError`,
 * the answers' types); the whole contract is `pipeline-status-sdk`.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient, runPipeline } from 'pipeline-status-sdk/client'
 *
 * // FRONTEND_WEBHOOK_URL and WEBHOOK_SECRET; undeliverable updates wait on disk.
 * const client = new PrismaAPIClient({ outbox: { dir: '.pipeline-outbox' } })
 * await client.createRun('run_1')
 * // One function per stage of the server's catalogue (five by default), in order.
 * const stage = (name: string) => async () => ({ stage: name, rows: 12 })
 * const summary = await runPipeline({
 *   runId: 'run_1',
 *   client,
 *   stages: [stage('extract'), stage('translate'), stage('analyse'), stage('report'), stage('publish')],
 * })
 * console.log(summary.status) // 'COMPLETED'
 * await client.close()
 * ```
 *
 * @module pipeline-status-sdk/client
 */
// The contract names a runner handles: the stage catalogue it runs, the error its input checks
// throw, and the shapes of what the server answers. The whole contract is `pipeline-status-sdk`.
export { DEFAULT_STAGES, defineStages } from '../contract/stages.js'
export { isPayloadValidationError, PayloadValidationError } from '../contract/parse.js'
export type { StageCatalogue, StageDefinition } from '../contract/stages.js'
export type { CompleteRun } from '../contract/complete.js'
export type { StageUpdate } from '../contract/stage-update.js'
export type { RunStatus, StageStatus } from '../contract/status.js'
export type { Problem, ProblemCode } from '../contract/problem.js'
// What the server answers, and the run and stage records inside those answers.
export type { CompleteRunResponse, CreateRunResponse, RunStatusResponse, StageUpdateResponse } from '../contract/records.js'
export type { PipelineRunRecord, StageOutputRecord, UpdateOutcome } from '../contract/records.js'
export type { RunCounts, RunListPage, RunSummary } from '../contract/run-list.js'
export { PrismaAPIClient } from './prisma-api-client.js'
export type { PrismaAPIClientOptions, SigningOptions, CloseOptions, CloseResult, CompleteRunInput } from './client-options.js'
export { isQueuedDelivery, type QueuedCompletionEvent, type QueuedDelivery, type UndeliveredUpdates } from './delivery.js'
export type { RunFinishedEvent } from './run-finished.js'
export type { ProgressReport } from './progress.js'
export type { StageOutputStream, StageOutputStreamOptions, StageOutputSummary } from './output-writer.js'
export type { StageOutputChunk, StageOutputChunkResponse } from '../contract/output-chunks.js'
export type { CreateRunOptions } from './create-run.js'
export type { CountRunsOptions, ListRunsOptions, RunFilter } from './run-list.js'
export { TRUNCATION_MARKER, UNSERIALISABLE_OUTPUT_PREFIX, outputJsonReplacer, type OutputAlteration } from './stage-output.js'
export {
  runPipeline,
  type RunPipelineOptions,
  type StageContext,
  type StageFunction,
  type StageEntry,
  type StageWithRetry,
  type StageRetryOptions,
  type PipelineProgressEvent,
  type PipelineSummary,
  type StageSummary,
  type StageConflict,
} from './run-pipeline.js'
export {
  PipelineStatusError,
  ConfigurationError,
  StatusHttpError,
  StatusNetworkError,
  StatusTimeoutError,
  OutboxLockedError,
  ClientClosedError,
  RunFinishedError,
  RunDeletedError,
  CatalogueMismatchError,
  isPipelineStatusError,
  isConfigurationError,
  isStatusHttpError,
  isStatusNetworkError,
  isStatusTimeoutError,
  isOutboxLockedError,
  isClientClosedError,
  isRunFinishedError,
  isRunDeletedError,
  isCatalogueMismatchError,
  type PipelineStatusErrorName,
} from './errors.js'
export { type Logger, consoleLogger, silentLogger } from './logger.js'
export {
  type RetryPolicy,
  type ResolvedRetryPolicy,
  DEFAULT_RETRY_POLICY,
  isRetriableStatus,
  parseRetryAfter,
} from './retry-policy.js'
export type { OutboxOptions, FlushResult, DeadLetter, OutboxRoute } from './outbox/entry.js'
