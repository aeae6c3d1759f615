/**
 * The handlers' options, resolved and checked once, when the handlers are created: a wrong value
 * throws {@link ServerConfigurationError} at start-up, never per request. Everything the routes,
 * the authentication and the error mapping read comes from here. Internal.
 */
import { DEFAULT_MAX_STREAMED_OUTPUT_BYTES } from '../contract/output-chunks.js'
import type { RunStatusResponse } from '../contract/records.js'
import { DEFAULT_BASE_PATH, normalizeBasePath } from '../contract/routes.js'
import { Heartbeat } from '../contract/runner-control.js'
import { StageUpdate } from '../contract/stage-update.js'
import { DEFAULT_PIPELINE, DEFAULT_STAGES, type StageCatalogue } from '../contract/stages.js'
import type { Pipelines } from '../core/run-catalogue.js'
import type { OnRunCompleted, OnRunEnded } from '../core/hooks.js'
import type { RunSnapshot } from '../core/state.js'
import type { Store } from '../core/store.js'
import { DEFAULT_MAX_KNOWN_RUNS } from '../core/known-versions.js'
import { DEFAULT_CLOCK_SKEW_TOLERANCE_MS } from '../core/runner-instants.js'
import { describeReceived } from '../internal/received-value.js'
import { resolveReadTokenSecrets } from './auth/authenticate.js'
import { createWebhookAuthenticator, type WebhookAuthenticator } from './auth/webhook-auth.js'
import { ServerConfigurationError } from './configuration-error.js'
import {
  type AuthorizeHook,
  DEFAULT_MAX_BODY_BYTES,
  type ListScopeHook,
  DEFAULT_RETRY_AFTER_SECONDS,
  LIVE_DEFAULTS,
  type PipelineStatusHandlersOptions,
} from './handler-options.js'
import { Cors } from './http/cors.js'
import { type DashboardSettings, resolveDashboard } from './dashboard/dashboard-page.js'
import { type RunCatalogues, resolvePipelines, runCatalogues } from './pipelines.js'
import type { RunChangeSource } from './live/run-watcher.js'
import { consoleLogger, type Logger, safeLogger } from '../internal/logger.js'
import { type InstrumentationCalls, resolveInstrumentation } from './instrumentation.js'
import { positiveInteger, resolveReadReplica, resolveStore } from './storage/store-option.js'
import { createReadSource, DEFAULT_REPLICA_RETRY_AFTER_MS, type ReadSource } from './storage/read-source.js'

/** The live stream settings, every one checked. */
export interface LiveSettings {
  readonly pollIntervalMs: number
  readonly safetyPollIntervalMs: number
  readonly keepAliveMs: number
  readonly retryMs: number
  readonly maxStreams: number
  readonly maxBufferedBytes: number
  readonly maxReplayedChunks: number
  readonly listen: RunChangeSource | undefined
}

/** What one handlers instance works with. */
export interface HandlerSettings {
  readonly logger: Logger
  readonly store: Store<unknown>
  /**
   * Where status reads, stream snapshots, lists and counts go: the read replica when one is
   * configured (falling back to `store`, the primary), else `store`.
   */
  readonly reads: ReadSource
  /** The catalogue of the pipeline `default` (the `stages` option). */
  readonly stages: StageCatalogue
  /** The configured pipelines by name, `default` included; every rule about a run uses `catalogueOfRun(run, pipelines)`. */
  readonly pipelines: Pipelines
  /** The answers' views of a run's own catalogue. */
  readonly catalogues: RunCatalogues
  /** The normalized base path. */
  readonly basePath: string
  readonly maxBodyBytes: number
  /** The most UTF-8 bytes of one stage attempt's streamed output. */
  readonly maxStreamedOutputBytes: number
  /** The `Retry-After` header value of a 503. */
  readonly retryAfter: string
  readonly clock: () => Date
  readonly clockSkewToleranceMs: number
  /** The webhook secret and signature checks. */
  readonly auth: WebhookAuthenticator
  /** Accepted read-token secrets; empty when read tokens are off. */
  readonly readTokenSecrets: readonly string[]
  /** Each adapter types `native` as its framework's request; here it is opaque. */
  readonly authorize: AuthorizeHook<unknown> | undefined
  /** The app's scope of lists, counts and set streams (after `authorize` with `action: 'list'`). */
  readonly listScope: ListScopeHook<unknown> | undefined
  /** Each overload ties the hooks' transaction type to its store; here the store is opaque. */
  readonly onRunCompleted: OnRunCompleted<unknown> | undefined
  readonly onRunEnded: OnRunEnded<unknown> | undefined
  /** The body schemas; `stageNumber` is checked against the run's own catalogue once the run is read. */
  readonly stageUpdateSchema: typeof StageUpdate
  readonly heartbeatSchema: typeof Heartbeat
  /** The status document, as `GET /status` answers it and the stream's `snapshot` sends it. */
  readonly statusDocument: (snapshot: RunSnapshot) => RunStatusResponse
  /** `statusDocument(snapshot)` as JSON text, members in the same order. */
  readonly statusJson: (snapshot: RunSnapshot) => string
  readonly live: LiveSettings
  readonly cors: Cors | undefined
  /** The dashboard, when the `dashboard` option is on. */
  readonly dashboard: DashboardSettings | undefined
  /** The `instrumentation` option, every method present and none throwing. */
  readonly instrumentation: InstrumentationCalls
}

/** Resolves and checks the options; throws {@link ServerConfigurationError} for one that cannot work. */
export function resolveSettings(options: PipelineStatusHandlersOptions<unknown>): HandlerSettings {
  const logger = safeLogger(options.logger ?? consoleLogger)
  const store = resolveStore(options, logger)
  const pipelines = resolvePipelines(options)
  const stages = pipelines.get(DEFAULT_PIPELINE) ?? DEFAULT_STAGES
  const catalogues = runCatalogues(pipelines)
  const basePath = normalizeBasePath(options.basePath ?? DEFAULT_BASE_PATH)
  const maxBodyBytes = positiveInteger('maxBodyBytes', options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES)
  const maxStreamedOutputBytes = positiveInteger('maxStreamedOutputBytes', options.maxStreamedOutputBytes ?? DEFAULT_MAX_STREAMED_OUTPUT_BYTES)
  const retryAfter = String(positiveInteger('retryAfterSeconds', options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS))
  const clock = options.clock ?? (() => new Date())
  const clockSkewToleranceMs = resolveClockSkewTolerance(options.clockSkewToleranceMs)
  const auth = createWebhookAuthenticator({ secret: options.secret, signing: options.signing, clock })
  const readTokenSecrets = resolveReadTokenSecrets(options)
  const live = options.live ?? {}
  const maxStreams = positiveInteger('live.maxStreams', live.maxStreams ?? LIVE_DEFAULTS.maxStreams)
  const maxBufferedBytes = positiveInteger('live.maxBufferedBytes', live.maxBufferedBytes ?? LIVE_DEFAULTS.maxBufferedBytes)
  const cors = options.cors ? new Cors(options.cors) : undefined
  const instrumentation = resolveInstrumentation(options.instrumentation, logger)
  const readReplica = options.readReplica
  const reads = createReadSource({
    primary: store,
    replica: resolveReadReplica(readReplica, store, logger),
    maxKnownRuns: readReplica && positiveInteger('readReplica.maxKnownRuns', readReplica.maxKnownRuns ?? DEFAULT_MAX_KNOWN_RUNS),
    retryAfterMs: readReplica ? positiveInteger('readReplica.retryAfterMs', readReplica.retryAfterMs ?? DEFAULT_REPLICA_RETRY_AFTER_MS) : DEFAULT_REPLICA_RETRY_AFTER_MS,
    logger,
    served: instrumentation.readServed,
  })
  return {
    logger,
    store,
    reads,
    stages,
    pipelines,
    catalogues,
    basePath,
    maxBodyBytes,
    maxStreamedOutputBytes,
    retryAfter,
    clock,
    clockSkewToleranceMs,
    auth,
    readTokenSecrets,
    authorize: options.authorize as AuthorizeHook<unknown> | undefined,
    listScope: options.listScope as ListScopeHook<unknown> | undefined,
    onRunCompleted: options.onRunCompleted as OnRunCompleted<unknown> | undefined,
    onRunEnded: options.onRunEnded as OnRunEnded<unknown> | undefined,
    stageUpdateSchema: StageUpdate,
    heartbeatSchema: Heartbeat,
    statusDocument: catalogues.statusDocument,
    statusJson: catalogues.statusJson,
    live: {
      pollIntervalMs: positiveInteger('live.pollIntervalMs', live.pollIntervalMs ?? LIVE_DEFAULTS.pollIntervalMs),
      safetyPollIntervalMs: positiveInteger('live.safetyPollIntervalMs', live.safetyPollIntervalMs ?? LIVE_DEFAULTS.safetyPollIntervalMs),
      keepAliveMs: positiveInteger('live.keepAliveMs', live.keepAliveMs ?? LIVE_DEFAULTS.keepAliveMs),
      retryMs: positiveInteger('live.retryMs', live.retryMs ?? LIVE_DEFAULTS.retryMs),
      maxStreams,
      maxBufferedBytes,
      maxReplayedChunks: positiveInteger('live.maxReplayedChunks', live.maxReplayedChunks ?? LIVE_DEFAULTS.maxReplayedChunks),
      listen: live.listen,
    },
    cors,
    dashboard: resolveDashboard(options.dashboard),
    instrumentation,
  }
}

function resolveClockSkewTolerance(value: number | undefined): number {
  if (value === undefined) return DEFAULT_CLOCK_SKEW_TOLERANCE_MS
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ServerConfigurationError(`clockSkewToleranceMs must be a whole number of milliseconds, 0 or more, got ${describeReceived(value)}`)
  }
  return value
}
