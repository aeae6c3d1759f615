/**
 * The contract's modules in one import, for the mock and the tests inside this package (the
 * public names are the root entry's, `src/index.ts`). Every name is listed, no `export *`, so that
 * what this folder offers is a decision, as in the entry points.
 */
export { FinalStatus, isFinalStatus, RunStatus, StageStatus, StageUpdateStatus } from './status.js'
export { assertStageCatalogue, DEFAULT_STAGES, defineStages, lastStageNumber, StageDefinition, stageNumberIn } from './stages.js'
export type { StageCatalogue } from './stages.js'
export {
  allowedMethods,
  DEFAULT_BASE_PATH,
  matchRoute,
  MAX_REQUEST_TARGET_LENGTH,
  normalizeBasePath,
  ROUTE_METHODS,
  routePath,
} from './routes.js'
export type { RouteMatch, RouteName } from './routes.js'
export { ENV_WEBHOOK_SECRET, ENV_WEBHOOK_URL, HEADERS, PROBLEM_CONTENT_TYPE } from './headers.js'
export { isTimestamp, Timestamp, TIMESTAMP_FORMAT, timestampToDate } from './timestamp.js'
export { isRunId, RunId } from './run-id.js'
export { StageUpdate, stageUpdateSchemaFor } from './stage-update.js'
export { CompleteRun, CreateRun } from './complete.js'
export {
  CancelRunResponse,
  CatalogueEntry,
  CatalogueField,
  catalogueOf,
  CompleteRunResponse,
  CreateRunResponse,
  HeartbeatResponse,
  PipelineRunRecord,
  RunStatusResponse,
  StageOutputRecord,
  StageUpdateResponse,
  UpdateOutcome,
} from './records.js'
export { createProblem, FieldError, Problem, PROBLEM_CODES, PROBLEM_TITLES, ProblemCode, problemType } from './problem.js'
export {
  describeFieldErrors,
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
} from './parse.js'
export { LIVE_EVENTS, mergeRunUpdate, RunEndEvent, runEventsPath, RunSnapshotEvent, RunUpdateEvent, RunUpdateStage } from './live-status.js'
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
} from './runner-control.js'
