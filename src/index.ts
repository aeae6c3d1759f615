/**
 * The contract shared by runners and web apps: zod schemas and types of every payload,
 * the status enums, the default stage catalogue, route paths, header names and error codes.
 * It has no dependency on Prisma, ky or msw, and no Node built-ins: it also runs in browsers and
 * on edge runtimes. It holds the live status subscribers too: {@link subscribeToRun} for a run,
 * {@link subscribeToRuns} for a set of runs on one connection.
 *
 * @example
 * ```ts
 * import { parseStageUpdate, DEFAULT_STAGES } from 'pipeline-status-sdk'
 * const body = '{"stageNumber":2,"stageName":"Translation","status":"PROCESSING"}' // a request's text
 * const update = parseStageUpdate(JSON.parse(body), DEFAULT_STAGES)
 * ```
 *
 * @module pipeline-status-sdk
 */
export { CompleteRun, CreateRun } from './contract/complete.js'
export { ENV_WEBHOOK_SECRET, ENV_WEBHOOK_URL, HEADERS, PROBLEM_CONTENT_TYPE } from './contract/headers.js'
export {
  applyOutputChunk,
  LIVE_EVENTS,
  MAX_SET_STREAM_RUNS,
  mergeRunUpdate,
  RunEndEvent,
  runEventsPath,
  RunLeaveEvent,
  RunSnapshotEvent,
  RunUpdateEvent,
  RunUpdateStage,
  SET_STREAM_VIEWS,
  SetStreamReadyEvent,
  type SetStreamView,
  StageOutputEvent,
} from './contract/live-status.js'
export {
  DEFAULT_MAX_STREAMED_OUTPUT_BYTES,
  MAX_OUTPUT_CHUNK_BYTES,
  MAX_OUTPUT_SEQ,
  parseStageOutputChunk,
  StageOutputChunk,
  StageOutputChunkResponse,
} from './contract/output-chunks.js'
export { DEFAULT_STATS_DAYS, MAX_STATS_DAYS, RunStatsResponse, StageStats } from './contract/run-stats.js'
export {
  isPayloadValidationError,
  parseCancelRun,
  parseCompleteRun,
  parseCreateRun,
  parseHeartbeat,
  parseRunId,
  parseStageUpdate,
  PayloadValidationError,
  safeParseCancelRun,
  safeParseCompleteRun,
  safeParseCreateRun,
  safeParseHeartbeat,
  safeParseStageUpdate,
  toFieldErrors,
} from './contract/parse.js'
export { createProblem, FieldError, Problem, PROBLEM_CODES, PROBLEM_TITLES, ProblemCode, problemType } from './contract/problem.js'
export {
  CancelRunResponse,
  CatalogueEntry,
  CompleteRunResponse,
  CreateRunResponse,
  HeartbeatResponse,
  PipelineRunRecord,
  RunStatusResponse,
  StageOutputRecord,
  StageUpdateResponse,
  UpdateOutcome,
} from './contract/records.js'
export {
  allowedMethods,
  DEFAULT_BASE_PATH,
  matchRoute,
  MAX_REQUEST_TARGET_LENGTH,
  normalizeBasePath,
  ROUTE_METHODS,
  routePath,
} from './contract/routes.js'
export type { RouteMatch, RouteName } from './contract/routes.js'
export { isRunId, RunId } from './contract/run-id.js'
export {
  DEFAULT_LIST_LIMIT,
  MAX_LIST_LIMIT,
  MAX_METADATA_BYTES,
  MAX_SUMMARY_ERROR_LENGTH,
  MAX_TAG_LENGTH,
  MAX_TAGS,
  RunCounts,
  RunListPage,
  RunSummary,
} from './contract/run-list.js'
export type { RunListFilter, RunScope } from './contract/run-list.js'
export { RUN_COUNTS_GROUP_BY } from './contract/run-list-query.js'
export type { RunCountsGroupBy } from './contract/run-list-query.js'
export {
  CancelRun,
  Heartbeat,
  HeartbeatOutcome,
  heartbeatSchemaFor,
  MAX_CANCEL_REASON_LENGTH,
  MAX_HEARTBEAT_INTERVAL_MS,
  MAX_PROGRESS_MESSAGE_LENGTH,
  MIN_HEARTBEAT_INTERVAL_MS,
  RunEndReason,
  StageProgress,
} from './contract/runner-control.js'
export { StageUpdate, stageUpdateSchemaFor } from './contract/stage-update.js'
export { assertStageCatalogue, DEFAULT_STAGES, defineStages, lastStageNumber, StageDefinition } from './contract/stages.js'
export type { StageCatalogue } from './contract/stages.js'
export { FinalStatus, isFinalStatus, RunStatus, StageStatus, StageUpdateStatus } from './contract/status.js'
export { isTimestamp, Timestamp, TIMESTAMP_FORMAT, timestampToDate } from './contract/timestamp.js'
export { DEFAULT_SERVER_KEEP_ALIVE_MS, SILENT_KEEP_ALIVES } from './internal/attempt-deadline.js'
export {
  DEFAULT_MAX_RECONNECT_DELAY_MS,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_RECONNECT_DELAY_MS,
  subscribeToRun,
} from './live/subscribe-to-run.js'
export {
  isRunPollTimeoutError,
  isRunStreamClosedError,
  isRunStreamSilentError,
  isRunSubscriptionError,
  RunPollTimeoutError,
  RunStreamClosedError,
  RunStreamSilentError,
  RunSubscriptionError,
} from './live/subscription-errors.js'
export type { StreamClosedCause, StreamClosedComment } from './contract/live-status.js'
export type {
  RunConnectionState,
  RunSubscription,
  RunTransport,
  SubscribeToRunOptions,
} from './live/subscribe-to-run.js'
export { subscribeToRuns } from './live/subscribe-to-runs.js'
export type { RunsConnectionState, RunSetItem, RunsSubscription, SubscribeToRunsOptions } from './live/subscribe-to-runs.js'
export { runListQuery } from './contract/run-filter.js'
export type { RunFilter, RunListFilters } from './contract/run-filter.js'
// Runs as a collection: a run's pipeline, tags and metadata (one place for their rules).
export { metadataBytes, PipelineName, RunMetadata, RunMetadataPatch, RunTagsChange, Tag, Tags } from './contract/run-labels.js'
export { RunLabelsResponse } from './contract/records.js'
export { DEFAULT_PIPELINE } from './contract/stages.js'
export { createOpenApiDocument, OPENAPI_VERSION } from './contract/openapi.js'
export type { OpenApiDocument, OpenApiDocumentOptions } from './contract/openapi.js'
