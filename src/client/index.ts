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
export { CompleteRun, CreateRun } from '../contract/complete.js'
export { ENV_WEBHOOK_SECRET, ENV_WEBHOOK_URL, HEADERS, PROBLEM_CONTENT_TYPE } from '../contract/headers.js'
export {
  LIVE_EVENTS,
  mergeRunUpdate,
  RunEndEvent,
  runEventsPath,
  RunSnapshotEvent,
  RunUpdateEvent,
} from '../contract/live-status.js'
export {
  isPayloadValidationError,
  parseCompleteRun,
  parseCreateRun,
  parseRunId,
  parseStageUpdate,
  PayloadValidationError,
  safeParseCompleteRun,
  safeParseCreateRun,
  safeParseStageUpdate,
  toFieldErrors,
} from '../contract/parse.js'
export { createProblem, FieldError, Problem, PROBLEM_CODES, PROBLEM_TITLES, ProblemCode, problemType } from '../contract/problem.js'
export {
  CompleteRunResponse,
  CreateRunResponse,
  PipelineRunRecord,
  RunStatusResponse,
  StageOutputRecord,
  StageUpdateResponse,
  UpdateOutcome,
} from '../contract/records.js'
export {
  allowedMethods,
  DEFAULT_BASE_PATH,
  matchRoute,
  MAX_REQUEST_TARGET_LENGTH,
  normalizeBasePath,
  ROUTE_METHODS,
  routePath,
} from '../contract/routes.js'
export type { RouteMatch, RouteName } from '../contract/routes.js'
export { isRunId, RunId } from '../contract/run-id.js'
export { StageUpdate, stageUpdateSchemaFor } from '../contract/stage-update.js'
export { assertStageCatalogue, DEFAULT_STAGES, defineStages, lastStageNumber, StageDefinition } from '../contract/stages.js'
export type { StageCatalogue } from '../contract/stages.js'
export { FinalStatus, isFinalStatus, RunStatus, StageStatus, StageUpdateStatus } from '../contract/status.js'
export { isTimestamp, Timestamp, TIMESTAMP_FORMAT, timestampToDate } from '../contract/timestamp.js'
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
} from './prisma-api-client.js'
export { TRUNCATION_MARKER, type OutputAlteration } from './stage-output.js'
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
export type { OutboxOptions, FlushResult, DeadLetter, OutboxRoute } from './outbox.js'
