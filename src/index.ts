/**
 * The contract shared by runners and web apps: zod schemas and types of every payload,
 * the status enums, the default stage catalogue, route paths, header names and error codes.
 * It has no dependency on Prisma, ky or msw, and no Node built-ins: it also runs in browsers and
 * on edge runtimes. It holds the live status subscriber, {@link subscribeToRun}, too.
 *
 * @example
 * ```ts
 * import { parseStageUpdate, DEFAULT_STAGES } from 'pipeline-status-sdk'
 * const update = parseStageUpdate(JSON.parse(body), DEFAULT_STAGES)
 * ```
 *
 * @module pipeline-status-sdk
 */
export * from './contract/index.js'
export {
  DEFAULT_MAX_RECONNECT_DELAY_MS,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_RECONNECT_DELAY_MS,
  isRunSubscriptionError,
  RunSubscriptionError,
  subscribeToRun,
} from './live/subscribe-to-run.js'
export type {
  RunConnectionState,
  RunSubscription,
  RunTransport,
  SubscribeToRunOptions,
} from './live/subscribe-to-run.js'
export { createOpenApiDocument, OPENAPI_VERSION } from './contract/openapi.js'
export type { OpenApiDocument, OpenApiDocumentOptions } from './contract/openapi.js'
