import { Problem } from '../contract/problem.js'
import { isErrorNamed } from '../internal/is-error-named.js'
import { networkCauseWithAddress } from './network-cause.js'

/** The `name` of every error the client throws; switch on it to tell them apart. */
export type PipelineStatusErrorName =
  | 'PipelineStatusError'
  | 'ConfigurationError'
  | 'StatusHttpError'
  | 'StatusNetworkError'
  | 'StatusTimeoutError'
  | 'OutboxLockedError'
  | 'ClientClosedError'
  | 'RunFinishedError'
  | 'RunDeletedError'
  | 'CatalogueMismatchError'

const NAMES: ReadonlySet<string> = new Set<PipelineStatusErrorName>([
  'PipelineStatusError',
  'ConfigurationError',
  'StatusHttpError',
  'StatusNetworkError',
  'StatusTimeoutError',
  'OutboxLockedError',
  'ClientClosedError',
  'RunFinishedError',
  'RunDeletedError',
  'CatalogueMismatchError',
])

/**
 * Base class of every error `PrismaAPIClient` throws. Transport errors (`StatusHttpError`,
 * `StatusNetworkError`) carry ky's error as `cause`; a `StatusTimeoutError` is the client's own
 * per-attempt deadline, with the platform's `TimeoutError` (a `DOMException`) as `cause`.
 *
 * @example
 * ```ts
 * import { isPipelineStatusError, PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient({ throwOnError: true })
 * try { await client.getStatus('run_1') } catch (error) { if (isPipelineStatusError(error)) console.error(error.name) }
 * ```
 */
export class PipelineStatusError extends Error {
  /** Which error this is; check it with the `isX` guards, which also work across realms. */
  override readonly name: PipelineStatusErrorName = 'PipelineStatusError'
}

/**
 * The client was configured wrongly: no base URL, no secret, an invalid URL or option.
 * Thrown by the constructor, so a misconfigured runner fails at start, not with a 401 per call.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient, isConfigurationError } from 'pipeline-status-sdk/client'
 * try {
 *   new PrismaAPIClient({ baseUrl: 'app.example.com' }) // not an absolute URL
 * } catch (error) {
 *   if (isConfigurationError(error)) console.error(error.message)
 * }
 * ```
 */
export class ConfigurationError extends PipelineStatusError {
  /** Always `'ConfigurationError'`. */
  override readonly name = 'ConfigurationError' as const
}

/**
 * The server answered with a non-2xx status (after the retries, for 408, 429 and 5xx).
 * `problem` is the parsed `application/problem+json` body when the server sent one.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient, StatusHttpError } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient({ throwOnError: true })
 * try {
 *   await client.markStageFailed('run_1', 3, 'model timed out')
 * } catch (error) {
 *   if (error instanceof StatusHttpError && error.problem?.code === 'run_finished') console.warn(error.problem.detail)
 * }
 * ```
 */
export class StatusHttpError extends PipelineStatusError {
  /** Always `'StatusHttpError'`. */
  override readonly name = 'StatusHttpError' as const
  /** The HTTP status of the last attempt. */
  readonly status: number
  /** The error body as a contract `Problem`, or `undefined` when it is not one. */
  readonly problem: Problem | undefined
  /** The error body as received: parsed JSON, text, or `undefined`. */
  readonly body: unknown
  /** The failed request: method, URL and `Idempotency-Key` (never the secret). */
  readonly request: Request
  /** The response of the last attempt (its body is already consumed; use `body`). */
  readonly response: Response
  /** How many attempts were made, the first one included. */
  readonly attempts: number

  constructor(init: {
    request: Request
    response: Response
    body: unknown
    attempts: number
    cause?: unknown
  }) {
    const parsed = Problem.safeParse(init.body)
    const problem = parsed.success ? parsed.data : undefined
    const what = problem ? `${problem.code}${problem.detail ? `: ${problem.detail}` : ''}` : init.response.statusText
    super(
      `${init.request.method} ${init.request.url} failed with ${init.response.status}${what ? ` (${what})` : ''} after ${init.attempts} attempt(s)`,
      { cause: init.cause },
    )
    this.status = init.response.status
    this.problem = problem
    this.body = init.body
    this.request = init.request
    this.response = init.response
    this.attempts = init.attempts
  }
}

/**
 * No response arrived: connection refused or reset, DNS failure, and the like (after the retries).
 * The message names the cause and where, e.g. `GET <url> failed: network error (ECONNREFUSED
 * 127.0.0.1:5199) after 6 attempt(s)`; `cause` is ky's error.
 */
export class StatusNetworkError extends PipelineStatusError {
  /** Always `'StatusNetworkError'`. */
  override readonly name = 'StatusNetworkError' as const
  /** The failed request: method, URL and `Idempotency-Key` (never the secret). */
  readonly request: Request
  /** How many attempts were made, the first one included. */
  readonly attempts: number

  constructor(init: { request: Request; attempts: number; cause?: unknown }) {
    const why = networkCauseWithAddress(init.cause)
    super(`${init.request.method} ${init.request.url} failed: network error${why ? ` (${why})` : ''} after ${init.attempts} attempt(s)`, {
      cause: init.cause,
    })
    this.request = init.request
    this.attempts = init.attempts
  }
}

/**
 * Every attempt took longer than the `timeoutMs` option (per attempt, in milliseconds, from sending
 * to the answer's last byte: a stalled or trickled body counts).
 */
export class StatusTimeoutError extends PipelineStatusError {
  /** Always `'StatusTimeoutError'`. */
  override readonly name = 'StatusTimeoutError' as const
  /** The failed request: method, URL and `Idempotency-Key` (never the secret). */
  readonly request: Request
  /** The per-attempt timeout that expired, in milliseconds. */
  readonly timeoutMs: number
  /** How many attempts were made, the first one included. */
  readonly attempts: number

  constructor(init: { request: Request; timeoutMs: number; attempts: number; cause?: unknown }) {
    super(
      `${init.request.method} ${init.request.url} timed out after ${init.timeoutMs} ms per attempt, ${init.attempts} attempt(s)`,
      { cause: init.cause },
    )
    this.request = init.request
    this.timeoutMs = init.timeoutMs
    this.attempts = init.attempts
  }
}

/** Another live process (or another client in this process) holds the outbox directory. */
export class OutboxLockedError extends PipelineStatusError {
  /** Always `'OutboxLockedError'`. */
  override readonly name = 'OutboxLockedError' as const
  /** The outbox directory. */
  readonly dir: string
  /** The process id written in the lock file. */
  readonly pid: number | undefined

  constructor(dir: string, pid: number | undefined) {
    super(
      `The outbox ${dir} is in use by process ${pid ?? '?'}; give each runner process its own outbox dir ` +
        `(delete ${dir}/outbox.lock only if no process uses it)`,
    )
    this.dir = dir
    this.pid = pid
  }
}

/** A method was called after `close()`. */
export class ClientClosedError extends PipelineStatusError {
  /** Always `'ClientClosedError'`. */
  override readonly name = 'ClientClosedError' as const
  constructor() {
    super('The PrismaAPIClient is closed')
  }
}

/**
 * The run was finished by someone else (cancelled by the web app, failed by the stale-run
 * sweeper, completed by `/complete`) and the server refused an update of it (409
 * `run_finished`) or stored nothing (`stale`). Thrown by the `mark*` methods and
 * `sendStageUpdate` only with `throwOnError: true`; by default they resolve `false` and the
 * client's `onRunFinished` callback tells the runner.
 *
 * @example
 * ```ts
 * import { isRunFinishedError, PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient({ throwOnError: true })
 * try {
 *   await client.markStageComplete('run_1', 2, { pages: 12 })
 * } catch (error) {
 *   if (isRunFinishedError(error)) console.warn(`run ${error.runId} is ${error.status}: ${error.reason ?? 'no reason'}`)
 * }
 * ```
 */
export class RunFinishedError extends PipelineStatusError {
  /** Always `'RunFinishedError'`. */
  override readonly name = 'RunFinishedError' as const
  /** The run. */
  readonly runId: string
  /** How the run ended as stored: `COMPLETED`, `FAILED` or `CANCELLED`. */
  readonly status: 'COMPLETED' | 'FAILED' | 'CANCELLED'
  /** The run's stored `error` (the cancel reason, "no heartbeat for 45 s", ...); `null` when none. */
  readonly reason: string | null

  constructor(runId: string, status: 'COMPLETED' | 'FAILED' | 'CANCELLED', reason: string | null, options?: ErrorOptions) {
    super(`Run ${runId} is already ${status}${reason ? ` (${reason})` : ''}; the update was not stored`, options)
    this.runId = runId
    this.status = status
    this.reason = reason
  }
}

/**
 * The run was deleted on the server while `runPipeline` ran it (the app deleted it, or someone by
 * hand): the run's live stream ended with `: closed deleted <runId>`. It is the reason of the
 * running stage's `signal` (`isRunDeletedError(signal.reason)`): the stage is aborted, no further
 * stage starts and nothing more is sent for the run, whose every update would be answered `404
 * run_not_found`; the summary says `deleted: true`.
 */
export class RunDeletedError extends PipelineStatusError {
  /** Always `'RunDeletedError'`. */
  override readonly name = 'RunDeletedError' as const
  /** The run. */
  readonly runId: string

  constructor(runId: string, options?: ErrorOptions) {
    super(`Run ${runId} was deleted on the server while it ran (its live stream ended with ': closed deleted'); nothing more is sent for it`, options)
    this.runId = runId
  }
}

/**
 * `runPipeline` refused to start: its number of stage functions differs from the run's own stage
 * catalogue (a 5-stage runner against a 3-stage run would report COMPLETED after stage 3; one
 * with fewer stages would never complete the run by itself), or, with `runPipeline({ pipeline })`,
 * the run exists in another pipeline. A run keeps the catalogue snapshotted when it was created
 * (docs/design.md, "Runs as a collection"): a run created before its pipeline changed keeps the
 * old stages, so the message says to create a new run for the new ones.
 */
export class CatalogueMismatchError extends PipelineStatusError {
  /** Always `'CatalogueMismatchError'`. */
  override readonly name = 'CatalogueMismatchError' as const
  /** How many stages the runner has. */
  readonly runnerStages: number
  /** How many stages the run's own catalogue has; `undefined` when the run is in another pipeline. */
  readonly serverStages: number | undefined
  /** The run's pipeline, when the server said it. */
  readonly pipeline: string | undefined
  /** The pipeline `runPipeline` was asked to run, when it differs from the run's. */
  readonly expectedPipeline: string | undefined

  /**
   * `context.created`: the run was created by this `runPipeline` call, so its catalogue is the
   * handlers' configuration as it is now (the fix is to configure the same stages on both sides);
   * otherwise the run may predate a change of its pipeline (the fix may be a new run).
   */
  constructor(
    runId: string,
    runnerStages: number,
    serverStages: number | undefined,
    context: { pipeline?: string | undefined; expectedPipeline?: string | undefined; created?: boolean | undefined } = {},
  ) {
    const { pipeline, expectedPipeline, created = false } = context
    const configured = pipeline === undefined ? "the handlers' catalogue" : `the handlers' pipelines['${pipeline}']`
    const own = `the run's own catalogue${pipeline === undefined ? '' : ` (pipeline '${pipeline}')`} has ${serverStages}`
    super(
      expectedPipeline !== undefined
        ? `Run ${runId} is in the pipeline '${pipeline}', not '${expectedPipeline}'; give runPipeline a new run id, or the run's own pipeline`
        : created
          ? `Run ${runId}: the runner has ${runnerStages} stage(s) but ${own}, as ${configured} has now; ` +
            `configure the same stages on both sides (the runner's stage functions and ${configured})`
          : `Run ${runId}: the runner has ${runnerStages} stage(s) but ${own}, snapshotted when the run was created ` +
            `(the run keeps it even if ${configured} changed since); to run other stages, create a new run, ` +
            `which takes ${configured} as it is now; to run this one, give runPipeline ${serverStages} stage function(s)`,
    )
    this.runnerStages = runnerStages
    this.serverStages = serverStages
    this.pipeline = pipeline
    this.expectedPipeline = expectedPipeline
  }
}

const hasName = (error: unknown, name: PipelineStatusErrorName): boolean => isErrorNamed(error, name)

/** Whether a value is any error of this client, also across realms and dual builds. */
export function isPipelineStatusError(error: unknown): error is PipelineStatusError {
  return error instanceof Error && NAMES.has(error.name)
}

/** Whether a value is a {@link ConfigurationError}, also across realms and dual builds. */
export function isConfigurationError(error: unknown): error is ConfigurationError {
  return hasName(error, 'ConfigurationError')
}

/**
 * Whether a value is a {@link StatusHttpError}, also across realms and dual builds.
 *
 * @example
 * ```ts
 * import { isStatusHttpError, PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient({ throwOnError: true })
 * try {
 *   await client.getStatus('run_1')
 * } catch (error) {
 *   if (isStatusHttpError(error) && error.problem?.code === 'run_not_found') console.warn('no such run')
 * }
 * ```
 */
export function isStatusHttpError(error: unknown): error is StatusHttpError {
  return hasName(error, 'StatusHttpError')
}

/** Whether a value is a {@link StatusNetworkError}, also across realms and dual builds. */
export function isStatusNetworkError(error: unknown): error is StatusNetworkError {
  return hasName(error, 'StatusNetworkError')
}

/** Whether a value is a {@link StatusTimeoutError}, also across realms and dual builds. */
export function isStatusTimeoutError(error: unknown): error is StatusTimeoutError {
  return hasName(error, 'StatusTimeoutError')
}

/** Whether a value is an {@link OutboxLockedError}, also across realms and dual builds. */
export function isOutboxLockedError(error: unknown): error is OutboxLockedError {
  return hasName(error, 'OutboxLockedError')
}

/** Whether a value is a {@link ClientClosedError}, also across realms and dual builds. */
export function isClientClosedError(error: unknown): error is ClientClosedError {
  return hasName(error, 'ClientClosedError')
}

/** Whether a value is a {@link RunFinishedError}, also across realms and dual builds. */
export function isRunFinishedError(error: unknown): error is RunFinishedError {
  return hasName(error, 'RunFinishedError')
}

/** Whether a value is a {@link RunDeletedError}, also across realms and dual builds. */
export function isRunDeletedError(error: unknown): error is RunDeletedError {
  return hasName(error, 'RunDeletedError')
}

/** Whether a value is a {@link CatalogueMismatchError}, also across realms and dual builds. */
export function isCatalogueMismatchError(error: unknown): error is CatalogueMismatchError {
  return hasName(error, 'CatalogueMismatchError')
}
