/**
 * The runner side: `PrismaAPIClient` and `runPipeline`. Imports no Prisma, pg or server code.
 * Also re-exports the contract (`pipeline-status-sdk`), so a runner needs one import.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient, runPipeline } from 'pipeline-status-sdk/client'
 *
 * // FRONTEND_WEBHOOK_URL and WEBHOOK_SECRET; undeliverable updates wait on disk.
 * const client = new PrismaAPIClient({ outbox: { dir: '.pipeline-outbox' } })
 * await client.createRun('run_1')
 * const summary = await runPipeline({ runId: 'run_1', client, stages: [async () => ({ rows: 12 })] })
 * await client.close()
 * ```
 *
 * @module pipeline-status-sdk/client
 */
export * from '../contract/index.js'
export {
  PrismaAPIClient,
  isQueuedDelivery,
  type PrismaAPIClientOptions,
  type SigningOptions,
  type QueuedDelivery,
  type CloseOptions,
  type CloseResult,
  type UndeliveredUpdates,
  type CompleteRunInput,
  type RunFinishedEvent,
  type ProgressReport,
} from './prisma-api-client.js'
export { TRUNCATION_MARKER, UNSERIALISABLE_OUTPUT_PREFIX, outputJsonReplacer, type OutputAlteration } from './stage-output.js'
export {
  runPipeline,
  type RunPipelineOptions,
  type StageContext,
  type StageFunction,
  type PipelineProgressEvent,
  type PipelineSummary,
  type StageSummary,
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
  CatalogueMismatchError,
  isPipelineStatusError,
  isConfigurationError,
  isStatusHttpError,
  isStatusNetworkError,
  isStatusTimeoutError,
  isOutboxLockedError,
  isClientClosedError,
  isRunFinishedError,
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
export type { OutboxOptions, FlushResult, DeadLetter, OutboxRoute } from './outbox.js'
