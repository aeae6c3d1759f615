/**
 * The web-app side: the store interface, the in-memory and Prisma stores, and the
 * Web-standard (`Request` → `Response`) handlers that every framework adapter wraps. Uses Web
 * APIs only, so it also runs on edge runtimes.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
 * import { prisma } from './db.js'
 *
 * // The six routes under /api/pipeline; the secret comes from WEBHOOK_SECRET.
 * const handlers = createPipelineStatusHandlers({ prisma })
 * export default { fetch: handlers.fetch } // Bun, Deno, Cloudflare Workers
 * ```
 *
 * @module pipeline-status-sdk/server
 */
export * from '../core/index.js'
export * from './prisma-store.js'
export * from '../core/webhook-signature.js'
export * from './handlers.js'
export { HandlerConfigurationError, isHandlerConfigurationError } from './configuration-error.js'
export type { HandlerLogger } from './logger.js'
export { HttpProblemError, isHttpProblemError, problemResponse } from './problem-response.js'
export type { ProblemExtras } from './problem-response.js'
export { createMemoryReplayStore, createPostgresReplayStore } from './replay-store.js'
export {
  createRunReadToken,
  DEFAULT_READ_TOKEN_EXPIRES_IN_SECONDS,
  MIN_READ_TOKEN_SECRET_LENGTH,
  verifyRunReadToken,
} from './run-read-token.js'
export type { CreateRunReadTokenOptions, RunReadTokenVerification, VerifyRunReadTokenOptions } from './run-read-token.js'
export { createStaleRunSweeper } from './stale-run-sweeper.js'
export type { StaleRunSweeper, StaleRunSweeperOptions, StaleRunSweeperSettings } from './stale-run-sweeper.js'
export type { MemoryReplayStoreOptions, PostgresReplayStoreOptions, ReplayStore, ReplayStoreSqlClient } from './replay-store.js'
export { timingSafeEqual } from './timing-safe-equal.js'
export { resolveWebhookSecrets } from './webhook-auth.js'
export type { WebhookSigningOptions } from './webhook-auth.js'
