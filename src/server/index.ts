/**
 * The web-app side: the store interface, the in-memory and Prisma stores, and the
 * Web-standard (`Request` → `Response`) handlers that every framework adapter wraps. Uses Web
 * APIs only, so it also runs on edge runtimes.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
 * import { prisma } from './prisma.js' // your app's PrismaClient
 *
 * // The contract's routes under /api/pipeline; the secret comes from WEBHOOK_SECRET.
 * const handlers = createPipelineStatusHandlers({ prisma })
 * export default { fetch: handlers.fetch } // Bun, Deno, Cloudflare Workers
 * ```
 *
 * @module pipeline-status-sdk/server
 */
// Handlers
export { createPipelineStatusHandlers } from './handlers.js'
export { DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_REPLAYED_OUTPUT_CHUNKS, DEFAULT_RETRY_AFTER_SECONDS } from './handler-options.js'
export type { PipelineStatusHandlers, RunRouteHandler } from './handlers.js'
export type {
  AuthorizeAction,
  AuthorizeGrant,
  AuthorizeHook,
  AuthorizeInput,
  AuthorizeResult,
  DashboardOptions,
  ListScopeHook,
  ListScopeInput,
  LiveStatusOptions,
  PipelineStatusHandlersOptions,
  PipelineStatusHandlersSettings,
  PrismaHandlersOptions,
  ReadReplicaOptions,
  ReadReplicaSettings,
  RunAuthorizeAction,
  StoreHandlersOptions,
} from './handler-options.js'
export type { RunScope } from '../contract/run-list.js'
export type { OnRunCompleted, OnRunEnded, RunEndedInput } from '../core/hooks.js'
export type { CorsOptions } from './http/cors.js'
// What people see: the dashboard mounted elsewhere than `{basePath}/dashboard`.
export { createDashboardHandler } from './dashboard/dashboard-page.js'
export type { DashboardHandler, DashboardHandlerOptions } from './dashboard/dashboard-page.js'
export type { Logger } from '../internal/logger.js'

// Runs as a collection: creating and labelling runs in the app's own code, with the routes' rules
export { createRun, updateRunMetadata, updateRunTags } from './run-api.js'
export type { CreatedRun, CreateRunOptions } from './run-api.js'

// Stores
export { MemoryStore } from '../core/memory-store.js'
export { createPrismaStore } from './storage/prisma-store.js'
export type { PrismaStore, PrismaStoreOptions } from './storage/prisma-store.js'
export type {
  PrismaStoreClient,
  PrismaStorePipelineRunDelegate,
  PrismaStoreTransactionClient,
  PrismaTransactionClientOf,
} from './storage/prisma-client.js'
export type { PipelineCatalogueField, PipelineRunField, PrismaStoreNames, StageOutputChunkField, StageOutputField } from './storage/table-names.js'
export type { PrismaStorePool } from './storage/adapters/pool-executor.js'
export type { NotifyCounts } from './storage/notify-batcher.js'
export { createMemoryReplayStore, createPostgresReplayStore } from './storage/replay-store.js'
export type { MemoryReplayStoreOptions, PostgresReplayStoreOptions, ReplayStore, ReplayStoreSqlClient } from './storage/replay-store.js'

// Writing a store of your own (experimental until the Store interface settles)
export { nextRunVersion } from '../core/run-version.js'
export type { GetRunOptions, Store, StoreTransaction } from '../core/store.js'
export type {
  FinishedRunsDeletion,
  OutputChunkRow,
  OutputChunkWrite,
  RunSnapshot,
  RunStageRead,
  RunStageWrite,
  RunState,
  RunTouch,
  RunWrite,
  StageState,
  VersionedRun,
} from '../core/state.js'
export type { RunChange, RunChangeListener } from '../core/run-changes.js'
export { toRunListItem } from '../core/run-list.js'
export type { RunCountRequest, RunListItem, RunListRequest, RunWindowEntry } from '../core/run-list.js'
export type { RunStatsRequest } from '../core/run-stats.js'
export type { RunListPosition } from '../contract/run-list-query.js'

// Live status streams: a source of change notifications from other instances (`pipeline-status-sdk/pg` has one)
export type { RunChangeSink, RunChangeSource } from './live/run-watcher.js'
export type { LiveStreamStats } from './live/event-stream.js'

// Read replicas (docs/read-replicas.md)
export type { ReadKind, ReadStats, ReplicaFallbackReason, ServedRead } from './storage/read-source.js'

// Stale runs
export { createStaleRunSweeper } from './stale-run-sweeper.js'
export type { StaleRunSweeper, StaleRunSweeperOptions, StaleRunSweeperSettings } from './stale-run-sweeper.js'
export type { RetentionPolicy } from '../core/hooks.js'

// Errors
export { ServerConfigurationError, isServerConfigurationError } from './configuration-error.js'
export { HttpProblemError, isHttpProblemError, problemResponse } from './http/problem-response.js'
export type { ProblemExtras } from './http/problem-response.js'
export { isStoreUnavailableError, StoreUnavailableError } from '../core/store.js'
export type { StoreUnavailableCode, StoreUnavailableErrorOptions } from '../core/store.js'

// Signing (Standard Webhooks)
export {
  createWebhookSignatureHeaders,
  DEFAULT_WEBHOOK_TOLERANCE_SECONDS,
  signWebhook,
  verifyWebhookSignature,
  WEBHOOK_SECRET_PREFIX,
  webhookMessageId,
  webhookRoute,
} from '../signing/webhook-signature.js'
export type {
  SignWebhookOptions,
  VerifyWebhookSignatureOptions,
  WebhookMessageIdParts,
  WebhookSignatureHeaders,
  WebhookSignatureHeadersOptions,
  WebhookVerification,
  WebhookVerificationFailure,
} from '../signing/webhook-signature.js'
export { resolveWebhookSecrets } from './auth/webhook-auth.js'
export type { WebhookSigningOptions } from './auth/webhook-auth.js'

// Run read tokens
export {
  createRunReadToken,
  DEFAULT_READ_TOKEN_EXPIRES_IN_SECONDS,
  MIN_READ_TOKEN_SECRET_LENGTH,
  verifyRunReadToken,
} from './auth/run-read-token.js'
export type { CreateRunReadTokenOptions, RunReadTokenVerification, VerifyRunReadTokenOptions } from './auth/run-read-token.js'

// Observability (`pipeline-status-sdk/otel` implements it)
export type { EndedStage, PipelineStatusInstrumentation, StageUpdateOutcomeName } from './instrumentation.js'
