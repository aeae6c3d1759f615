/**
 * The runner side: `PrismaAPIClient` and `runPipeline`. Imports no Prisma, pg or server code.
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
  type CompleteRunInput,
} from './prisma-api-client.js'
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
  isPipelineStatusError,
  isConfigurationError,
  isStatusHttpError,
  isStatusNetworkError,
  isStatusTimeoutError,
  isOutboxLockedError,
  isClientClosedError,
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
export type { OutboxOptions, FlushResult } from './outbox.js'
