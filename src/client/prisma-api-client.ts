/**
 * `PrismaAPIClient`: the facade of the runner's client over its seams: options
 * (`client-options.ts`), delivery with its one failure table (`delivery.ts`), run-finished
 * observation (`run-finished.ts`), the heartbeat (`heartbeat.ts`), progress (`progress.ts`), the
 * outbox (`outbox/`) and the one attempt path (`transport.ts`).
 */
import { CompleteRun } from '../contract/complete.js'
import { safeParseContract } from '../contract/field-messages.js'
import { PayloadValidationError, parseRunId } from '../contract/parse.js'
import { CompleteRunResponse, CreateRunResponse, type HeartbeatResponse, RunStatusResponse } from '../contract/records.js'
import type { RunCounts, RunListPage } from '../contract/run-list.js'
import { MAX_OUTPUT_CHUNK_BYTES, StageOutputChunk, StageOutputChunkResponse } from '../contract/output-chunks.js'
import { type RouteName, buildRoutePath, routePath } from '../contract/routes.js'
import { StageUpdate, stageUpdateSchemaFor } from '../contract/stage-update.js'
import { type StageCatalogue, lastStageNumber } from '../contract/stages.js'
import type { StageUpdateStatus } from '../contract/status.js'
import { toStorableText } from '../contract/storable-text.js'
import { CLIENT_INTERNALS, type ClientInternals, type InheritedRun, type RunCatalogue } from './client-internals.js'
import { type CloseOptions, type CloseResult, type CompleteRunInput, type PrismaAPIClientOptions, resolveClientOptions } from './client-options.js'
import { type CreateRunOptions, createRunBody } from './create-run.js'
import { type Delivered, Delivery, type QueuedCompletionEvent, type QueuedDelivery, type UpdateOutcome } from './delivery.js'
import { ClientClosedError, ConfigurationError } from './errors.js'
import { failureReason } from './failure-reason.js'
import { Heartbeats } from './heartbeat.js'
import { type Logger, consoleLogger } from './logger.js'
import { parseResponse } from './parse-response.js'
import type { DeadLetter, FlushResult, LeftQueue, OutboxEntry } from './outbox/entry.js'
import { type DuplicateCompletion, duplicateCompletion } from './pipeline-summary.js'
import { Outbox } from './outbox/outbox.js'
import { type ProgressReport, ProgressReports } from './progress.js'
import { type RunFinishedEvent, RunFinishedObserver, safeJson } from './run-finished.js'
import { type CountRunsOptions, type ListRunsOptions, type RunListTransport, countRuns, listRunPages, withQuery } from './run-list.js'
import { RunEndWatches, type RunStreamHold } from './run-end-watch.js'
import { type OutputAlteration, type StageAttemptFields, buildStageUpdate, storableStageUpdate, utf8Bytes } from './stage-output.js'
import { OutputStream, type StageOutputStream, type StageOutputStreamOptions, chunkResult } from './output-writer.js'
import { stageNumberError, stageNumberProblem } from './stage-number.js'
import { z } from 'zod'
import { Transport } from './transport.js'
import { type InheritedEnd, type InheritedStage, completedByItsStages, inheritedEndEvent, inheritedEnds, inheritedStages, notDeadLettered, stagesCompleted, stagesLeftProcessing } from './restart-attempts.js'
import { ListenersByKey } from './listeners-by-key.js'
import { recentRuns } from './recent-runs.js'

/**
 * An HTTP client of the web app's pipeline-status API; it touches no Prisma and no database.
 * The runner uses it to report stage changes of a pipeline run to the web app's handlers, which
 * store them. The name is the one the original Python runner's class has, so users of that
 * system recognise it.
 *
 * - `initializePipelineStages`, `markStage*` and `sendStageUpdate` never throw by default:
 *   they resolve `true` when the update was delivered (or durably queued in the outbox) and
 *   `false` otherwise, logging why, so a pipeline keeps running when reporting fails. With
 *   `throwOnError: true` they throw {@link StatusHttpError}, {@link StatusNetworkError} or
 *   {@link StatusTimeoutError} instead.
 * - `completeRun`, `getStatus` and `createRun` return the server's data and throw those errors,
 *   since their callers need the answer. `completeRun` resolves a {@link QueuedDelivery} when it
 *   went to the outbox.
 * - Retries (network errors, timeouts, 408, 429, 5xx) reuse one `Idempotency-Key` per update;
 *   other 4xx are never retried. Updates of one run are sent one after another, in call order.
 *   Each retry is logged as a warning with its cause (`ECONNREFUSED`, `HTTP 503
 *   database_unavailable`, a timeout) and its wait; with a `debug` method the logger also gets
 *   one line per attempt (method, URL, status, milliseconds).
 * - A stage's status is never lost because of its output: unstorable characters are replaced
 *   and an output over the server's body limit is cut to fit (see {@link markStageComplete}).
 * - With `outbox`, an update still undelivered after its retries is written to disk and resolves
 *   `true` (logged as a warning): it will be delivered, in order with the run's other updates,
 *   by a background flush, by `flush()` or `close()`, or by the next process on the same dir.
 *   While a run has queued updates, its new ones queue behind them. An update refused with
 *   401 or 403 (a secret that does not match) is queued too and retried slowly, with an error
 *   logged each time, so fixing the secret delivers it. An update no retry can fix (400, 404,
 *   409, 413 after truncation, 415, 422, ...) or older than `outbox.maxAgeMs` becomes a dead
 *   letter: kept on disk, logged, readable with {@link deadLetters}; the run's later updates go on.
 *   One refused because its run ended elsewhere while it waited (409 `run_finished` or
 *   `stage_finished`, or answered `stale`) is superseded instead: `onRunFinished` once, kept with
 *   `kind: 'superseded'`, one warning per run, not counted as undelivered. The run's other
 *   queued updates are still sent (a late `COMPLETED` is stored).
 * - `close()` resolves and logs what stays undelivered, per run.
 * - A stage number is checked before anything is sent, by one rule for every method that takes
 *   one: an integer (a `number`, not the string `'2'` plain JavaScript may pass), 1 or more, and
 *   for `markStage*` and `reportProgress` one of the catalogue's stages. `markStage*` and
 *   `reportProgress` log it and resolve `false` (throw {@link ConfigurationError} with
 *   `throwOnError`): `The stage number must be an integer (1..5 in the catalogue), got a string:
 *   "2" (pass the number 2)`, `Stage 7 is not in the catalogue (1..5)`; `sendStageUpdate`
 *   refuses it like any invalid body (a {@link PayloadValidationError}, logged, `false`), and
 *   `appendStageOutput`, `streamStageOutput` and `heartbeat` throw that error naming `stageNumber`.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient({ outbox: { dir: './.pipeline-outbox' } }) // FRONTEND_WEBHOOK_URL, WEBHOOK_SECRET
 * await client.initializePipelineStages('run_1')
 * await client.markStageComplete('run_1', 1, { signals: 12 })
 * await client.markStageProcessing('run_1', 2)
 * ```
 */
export class PrismaAPIClient {
  /** The resolved origin, without a trailing slash. */
  readonly baseUrl: string
  /** The resolved base path of the routes. */
  readonly basePath: string
  /** The stage catalogue in use. */
  readonly stages: StageCatalogue
  readonly #logger: Logger
  readonly #throwOnError: boolean
  readonly #transport: Transport
  readonly #outbox: Outbox | undefined
  readonly #delivery: Delivery
  readonly #observer: RunFinishedObserver
  readonly #heartbeats: Heartbeats
  /** The run-end watch's streams; `undefined` with `followRunStream: false`. */
  readonly #watches: RunEndWatches | undefined
  readonly #progress: ProgressReports
  #closed = false
  /** The run's catalogue from `createRun`'s answer, per run, until `runPipeline` reads it. */
  readonly #catalogues = new Map<string, RunCatalogue>()
  /** Per run, who waits to hear of its updates the outbox dead-letters after this client queued them (`runPipeline`). */
  readonly #queuedDeadLetterListeners = new ListenersByKey<(letter: DeadLetter) => void>()
  /**
   * Per run, the updates an earlier process left in the outbox that it dead-lettered, kept
   * whenever that happened until `runPipeline` takes them (at most as many as that process left),
   * for the most recent `RECENT_RUNS` runs: a run never given to `runPipeline` does not keep them forever.
   */
  readonly #earlierDeadLetters = recentRuns<DeadLetter[]>()
  readonly #onQueuedCompletion: ((event: QueuedCompletionEvent) => void) | undefined
  /** The updates an earlier process left in the outbox, as loaded (see `restart-attempts.ts`). */
  #inheritedEntries: readonly OutboxEntry[] = []
  /** The ids of those the outbox has dead-lettered since: they never land, so they say nothing of the run. */
  readonly #inheritedDeadLettered = new Set<string>()
  /** The list and count reads: a GET like `getStatus`, retried, refused once the client is closed. */
  readonly #reads: RunListTransport = {
    url: (route, query) => withQuery(this.#url(route), query),
    get: async (url, signal) => {
      if (this.#closed) throw new ClientClosedError()
      return (await this.#transport.send({ method: 'GET', url }, { retry: true, signal })).text
    },
  }

  constructor(options: PrismaAPIClientOptions = {}) {
    const { baseUrl, basePath, secret, timeoutMs, heartbeatIntervalMs, stages, retry, signer } = resolveClientOptions(options)
    this.basePath = basePath
    this.baseUrl = baseUrl
    this.stages = stages
    const logger = options.logger ?? consoleLogger
    this.#logger = logger
    this.#throwOnError = options.throwOnError ?? false
    this.#onQueuedCompletion = options.onQueuedCompletion
    const transport = new Transport({ secret, timeoutMs, retry, userAgent: options.userAgent ?? 'pipeline-status-sdk', fetch: options.fetch, signer, logger })
    this.#transport = transport
    this.#observer = new RunFinishedObserver({
      logger,
      onRunFinished: options.onRunFinished,
      readStatus: async (runId) => (await transport.send({ method: 'GET', url: this.#url('status', runId) }, { retry: false })).text,
      onFinished: (runId) => {
        this.#heartbeats.stop(runId)
        this.#watches?.stop(runId)
      },
      pendingInOutbox: (runId) => this.#outbox?.pendingCount(runId) ?? 0,
    })
    this.#heartbeats = new Heartbeats({ intervalMs: heartbeatIntervalMs, transport, observer: this.#observer, logger, url: (runId) => this.#url('heartbeat', runId) })
    this.#watches =
      options.followRunStream === false
        ? undefined
        : new RunEndWatches({
            transport,
            observer: this.#observer,
            logger,
            url: (runId) => this.#url('events', runId),
            // The summary view sends no stage outputs and no chunks: the runner only needs the run's end.
            summaryUrl: (runId) => withQuery(this.#url('runSetEvents'), new URLSearchParams({ run: runId, view: 'summary' })),
            connectMs: timeoutMs,
            heartbeatIntervalMs,
          })
    this.#delivery = new Delivery({ transport, observer: this.#observer, logger, stages, url: (route, runId, stageNumber) => this.#url(route, runId, stageNumber) })
    this.#progress = new ProgressReports(this.#delivery)
    try {
      this.#outbox = options.outbox
        ? new Outbox({
            ...options.outbox,
            logger,
            deliver: (entry, signal) => this.#delivery.redeliver(entry, signal),
            onDeadLetter: (letter) => this.#delivery.count(letter.runId, 'deadLettered'),
            onLeft: (entry, left, inherited) => this.#leftOutbox(entry, left, inherited),
          })
        : undefined
    } catch (error) {
      if (error instanceof RangeError) throw new ConfigurationError(error.message, { cause: error })
      throw error
    }
    this.#delivery.attach(this.#outbox)
    // Read before the first redelivery can land: a restarted runner's attempts do not depend on its timing.
    this.#inheritedEntries = this.#outbox?.takeInherited() ?? []
    const internals: ClientInternals = {
      stageUpdate: (runId, stageNumber, status, output, catalogue, attempt) => this.#stageUpdate(runId, stageNumber, status, output, catalogue, attempt),
      reportProgress: (runId, stageNumber, progress, catalogue) =>
        this.#reportProgress(runId, stageNumber, progress, catalogue).catch(
          (error: unknown): UpdateOutcome => ({
            state: error instanceof PayloadValidationError ? 'invalid' : 'failed',
            reason: failureReason(error),
            alterations: [],
          }),
        ),
      startHeartbeat: (runId, stageNumber) => (this.#closed || this.runFinished(runId) ? noop : this.#heartbeats.start(runId, stageNumber)),
      holdRunStream: (runId) => (this.#closed || this.runFinished(runId) || this.#watches === undefined ? NO_HOLD : this.#watches.hold(runId)),
      onRunFinished: (runId, listener) => this.#observer.listen(runId, listener),
      runFinished: (runId) => this.runFinished(runId),
      onRunDeleted: (runId, listener) => this.#observer.listenDeleted(runId, listener),
      openOutputStream: (runId, stageNumber) => this.#openOutputStream(runId, stageNumber),
      logger: this.#logger,
      outboxDir: this.#outbox?.dir,
      onQueuedDeadLetter: (runId, listener) => this.#queuedDeadLetterListeners.add(runId, listener),
      takeEarlierDeadLetters: (runId) => {
        const letters = this.#earlierDeadLetters.get(runId) ?? []
        this.#earlierDeadLetters.delete(runId)
        return letters
      },
      serverCatalogue: async (runId, stageCount) => {
        const known = this.#catalogues.get(runId)
        this.#catalogues.delete(runId)
        if (known?.processing) return { ...known, ...this.#inheritedRun(runId, known.pipeline) }
        // Without the stages (a status read that failed) the catalogue `createRun` answered still checks the runner.
        const status = known ? await this.#readStatus(runId).catch(() => undefined) : await this.#readStatus(runId)
        if (status === undefined) return { ...(known as RunCatalogue), ...this.#inheritedRun(runId, known?.pipeline) }
        const { catalogue, run, stages } = status
        // A run its stages completed before the earlier process's `/complete` is resumed (that
        // `/complete` is still to be sent), not learned finished elsewhere; any other run is read as `getStatus` reads it.
        if (!completedByItsStages(run, stages, (known?.catalogue ?? catalogue)?.length ?? stageCount)) this.#observer.observe(runId, run, 'status', false)
        // Taken after the read: a pending update dead-lettered by now never lands, so it says nothing (a stage
        // whose COMPLETED it was runs again; a run its FAILED, CANCELLED or /complete was is resumed); one
        // dead-lettered later counts against `delivered` (pipeline-summary.ts).
        const inherited = this.#inheritedStagesOf(runId)
        const processing = stagesLeftProcessing(stages, inherited)
        const completed = stagesCompleted(stages, inherited)
        const end = this.#inheritedEndOf(runId)
        // Ended by the earlier process's pending updates, whether their redelivery landed before this read or not.
        const ended = end && { event: inheritedEndEvent(runId, end, run), updates: end.updates }
        // An existing run's catalogue as `createRun` answered it (the snapshot it was created with); its stages as read now.
        return known ? { ...known, processing, completed, ended } : { catalogue, pipeline: run.pipeline, processing, completed, ended }
      },
      inheritedRun: (runId) => this.#inheritedRun(runId),
      completeRun: (runId, body, otherCause) => this.#completeRun(runId, body, otherCause),
    }
    // Not enumerable, not in the types: `runPipeline` reaches it through `clientInternals`.
    Object.defineProperty(this, CLIENT_INTERNALS, { value: internals })
  }

  /**
   * Starts a run's reporting: stage 1 PROCESSING (the server then marks the run PROCESSING).
   * Resolves `true` when delivered or queued in the outbox, `false` when not (logged).
   */
  initializePipelineStages(runId: string): Promise<boolean> {
    return this.markStageProcessing(runId, 1)
  }

  /** Marks stage `stageNumber` PROCESSING. Resolves `true`/`false`; see the class notes. */
  markStageProcessing(runId: string, stageNumber: number): Promise<boolean> {
    return reported(this.#stageUpdate(runId, stageNumber, 'PROCESSING', undefined))
  }

  /**
   * Marks stage `stageNumber` COMPLETED with its output: a string is sent as it is (JSON or
   * markdown), anything else as `JSON.stringify(output, outputJsonReplacer)` (a `BigInt`
   * becomes its decimal string); `undefined` sends no output (the server keeps what
   * PROCESSING stored). `completedAt` is now.
   *
   * The status is never lost because of the output: an output that cannot become JSON (a
   * circular object, a throwing `toJSON`) is sent as the placeholder
   * `[output not serialisable as JSON: <reason>]` (`UNSERIALISABLE_OUTPUT_PREFIX`); NUL characters and lone UTF-16 surrogates
   * (which PostgreSQL cannot store) are replaced with U+FFFD before sending, and an output the
   * server refuses as too large (413) is cut to the limit its problem states and ended with
   * {@link TRUNCATION_MARKER}, then sent as a new update (new `Idempotency-Key`). Both are
   * logged as warnings; `runPipeline` lists them in its summary ({@link OutputAlteration}).
   */
  markStageComplete(runId: string, stageNumber: number, output?: unknown): Promise<boolean> {
    return reported(this.#stageUpdate(runId, stageNumber, 'COMPLETED', output))
  }

  /** Marks stage `stageNumber` FAILED; `errorMessage` is sent as its output and becomes the run's error. */
  markStageFailed(runId: string, stageNumber: number, errorMessage: string): Promise<boolean> {
    return reported(this.#stageUpdate(runId, stageNumber, 'FAILED', errorMessage))
  }

  /** Marks stage `stageNumber` CANCELLED (the server then marks the run CANCELLED). */
  markStageCancelled(runId: string, stageNumber: number): Promise<boolean> {
    return reported(this.#stageUpdate(runId, stageNumber, 'CANCELLED', undefined))
  }

  /**
   * Sends a stage-update body as given (validated against the contract and the catalogue
   * first). The `mark*` methods build it for you. Resolves `true`/`false`; see the class notes.
   * Its `output` is made storable and cut to fit like {@link markStageComplete}'s.
   */
  sendStageUpdate(runId: string, update: StageUpdate): Promise<boolean> {
    // Not a number at all (`'2'` from plain JavaScript): said as such; the schema says the catalogue's range.
    const problem = stageNumberProblem((update as { stageNumber?: unknown } | undefined)?.stageNumber)
    if (problem !== undefined) return reported(this.#refuse(runId, stageNumberError('stage update', problem, update?.stageNumber)))
    const parsed = safeParseContract(stageUpdateSchemaFor(this.stages), update)
    if (!parsed.success) return reported(this.#refuse(runId, new PayloadValidationError('stage update', parsed.error.issues)))
    return reported(this.#submitStageUpdate(runId, parsed.data))
  }

  /**
   * Ends a run explicitly (`POST /complete`) with its results: `status`, `duration` (seconds),
   * `error` and any app-specific fields, handed to the app's `onRunCompleted` hook.
   * `completedAt` defaults to now. On a run a stage already finished with the same status (a
   * stage `FAILED`, then `completeRun` `FAILED`) the completion is still `applied` and the hook
   * runs, but the run keeps its `completedAt` and the stage's `error`: `body.error` is stored only
   * on a run that has none. Resolves the server's answer, or a {@link QueuedDelivery}
   * when the outbox took it (server unreachable, or the run's earlier updates still queued);
   * how that one comes out later (applied, duplicate, dead-lettered, superseded) goes to the
   * client's `onQueuedCompletion`. An answer `duplicate` (the run's completion had already been
   * received, so these results did not reach the app's `onRunCompleted` hook; or, after an
   * attempt of this call got no definite answer, maybe they did) is logged once at warn, in
   * `runPipeline`'s words.
   * Throws {@link PayloadValidationError} for an invalid body, and the transport errors when
   * it could not be delivered and there is no outbox (or the server refused it with a 4xx).
   *
   * @example
   * ```ts
   * import { isQueuedDelivery, PrismaAPIClient } from 'pipeline-status-sdk/client'
   * const client = new PrismaAPIClient()
   * const result = await client.completeRun('run_1', { status: 'COMPLETED', duration: 409.5, fullReportMarkdown: '# Report' })
   * if (!isQueuedDelivery(result)) console.log(result.outcome) // 'applied' the first time, then 'duplicate'
   * ```
   */
  async completeRun(runId: string, body: CompleteRunInput): Promise<CompleteRunResponse | QueuedDelivery> {
    return (await this.#completeRun(runId, body, COMPLETED_BEFORE_THIS_CALL)).response
  }

  /**
   * `completeRun`, with the `duplicate` answer's warning (see `ClientInternals.completeRun`),
   * logged here once at warn for every caller: the one place a delivered `duplicate` is said
   * (one queued in the outbox is said when it leaves it, `#completionLeft`).
   */
  async #completeRun(runId: string, body: CompleteRunInput, otherCause: string): Promise<{ response: CompleteRunResponse | QueuedDelivery; duplicate?: DuplicateCompletion }> {
    const completedAt = body.completedAt instanceof Date ? body.completedAt.toISOString() : (body.completedAt ?? new Date().toISOString())
    const parsed = safeParseContract(CompleteRun, { ...body, completedAt })
    if (!parsed.success) throw new PayloadValidationError('completion', parsed.error.issues)
    parseRunId(runId) // the contract's rule, before anything is sent: throws `PayloadValidationError`
    if (this.#closed) throw new ClientClosedError()
    const data = parsed.data
    // The run's error is stored like an output: make it storable rather than lose the completion.
    if (typeof data.error === 'string') data.error = toStorableText(data.error).text
    const idempotencyKey = crypto.randomUUID()
    const outcome = await this.#delivery.deliver({ runId, route: 'complete', json: JSON.stringify(data), id: idempotencyKey, what: 'completion', finishing: true })
    switch (outcome.state) {
      case 'delivered': {
        const response = parseResponse(CompleteRunResponse, outcome.text, 'completion')
        // Delivered, yet the app's hook ran with an earlier /complete's results, or maybe with these
        // (an attempt of this one went unanswered): never silent.
        const duplicate = duplicateCompletion(response, outcome.unansweredAttempt, otherCause)
        if (!duplicate) return { response }
        this.#logger.warn(`Run ${runId}: ${duplicate.warning}`, { runId, idempotencyKey })
        return { response, duplicate }
      }
      case 'run-finished':
        throw outcome.error
      case 'queued':
        return { response: { queued: true, runId, idempotencyKey: outcome.id } }
      default:
        throw outcome.error
    }
  }

  /**
   * Reads a run and its stages (`GET /status`), retried like updates. Throws the typed
   * errors; a 404 is a {@link StatusHttpError} with `problem.code === 'run_not_found'`.
   */
  async getStatus(runId: string): Promise<RunStatusResponse> {
    const status = await this.#readStatus(runId)
    this.#observer.observe(runId, status.run, 'status', false)
    return status
  }

  /** `getStatus` without learning from the run read: its caller decides (`runPipeline`'s start). */
  async #readStatus(runId: string): Promise<RunStatusResponse> {
    parseRunId(runId) // the contract's rule, before anything is sent: throws `PayloadValidationError`
    if (this.#closed) throw new ClientClosedError()
    const response = await this.#transport.send({ method: 'GET', url: this.#url('status', runId) }, { retry: true })
    return parseResponse(RunStatusResponse, response.text, 'status')
  }

  /**
   * Creates a run (`POST /runs`) with {@link CreateRunOptions} `{ id?, pipeline?, tags?, metadata? }`
   * (a string is the id alone, as in 0.1). Idempotent: an existing id answers `created: false`
   * with the stored run. Without `id` the client picks a random UUID before the first attempt,
   * so a retry after a lost response finds the same run. The answer's `catalogue` is the run's
   * own (its pipeline's stages), which `runPipeline` checks against. Throws
   * {@link PayloadValidationError} before sending for input the contract refuses (the run id,
   * over 20 tags, a tag over 128 characters, metadata over 16 KiB), and the typed errors (an
   * unknown pipeline is a 400 {@link StatusHttpError}).
   *
   * @example
   * ```ts
   * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
   * const client = new PrismaAPIClient()
   * const { run } = await client.createRun({ pipeline: 'report', tags: ['nightly'], metadata: { customer: 'acme' } })
   * ```
   */
  async createRun(idOrOptions?: string | CreateRunOptions): Promise<CreateRunResponse> {
    if (this.#closed) throw new ClientClosedError()
    const body = createRunBody(idOrOptions)
    const response = await this.#transport.send({ method: 'POST', url: this.#url('createRun'), body, idempotencyKey: crypto.randomUUID() }, { retry: true })
    const created = parseResponse(CreateRunResponse, response.text, 'run creation')
    // A run this call created has no stage rows yet; an existing one's stages are read with `GET /status` when runPipeline starts.
    if (created.catalogue !== undefined) {
      this.#catalogues.set(created.run.id, { catalogue: created.catalogue, pipeline: created.run.pipeline, ...(created.created ? { processing: new Map() } : {}) })
    }
    return created
  }

  /**
   * Lists runs (`GET {base}/runs`), newest first, one {@link RunListPage} `{ runs, nextCursor }`
   * per iteration, following `nextCursor` with the same filters until it is `null` or `maxRuns`
   * runs were read ({@link ListRunsOptions}). Authenticated, retried and timed like
   * {@link getStatus}; `signal` aborts the page in flight. Throws
   * {@link PayloadValidationError} for options the contract refuses (checked when iteration
   * starts), and the typed errors (a refused cursor is a 400 `invalid_cursor`).
   *
   * @example
   * ```ts
   * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
   * const client = new PrismaAPIClient()
   * for await (const page of client.listRuns({ tag: 'x', status: ['FAILED'] })) {
   *   for (const run of page.runs) console.log(run.id, run.pipeline, run.stageCounts.COMPLETED)
   * }
   * ```
   */
  listRuns(options: ListRunsOptions = {}): AsyncGenerator<RunListPage, void, undefined> {
    return listRunPages(this.#reads, options)
  }

  /** Counts runs per status or pipeline (`GET {base}/runs/counts`): `{ counts: { FAILED: 3 } }`, zero keys absent; see {@link CountRunsOptions}. Throws like {@link listRuns}. */
  countRuns(options: CountRunsOptions): Promise<RunCounts> {
    return countRuns(this.#reads, options)
  }

  /**
   * Reports progress within a running stage (`PROCESSING`): sent as a `PROCESSING` stage update
   * with `progress`, in order with the run's other updates, and kept in the outbox like them
   * when the server cannot be reached. The client assigns `progress.seq`: per run and stage,
   * increasing, never below the current time in milliseconds, so a report delayed by retries
   * or redelivered from the outbox (also by a later process) never overwrites a newer one on the
   * server, which keeps the highest `seq`.
   *
   * Reports are coalesced, never their status changes: while one report of a stage waits
   * behind the update in flight, a newer report replaces it (both calls resolve with its
   * result), and the outbox keeps only the newest pending report per stage. Resolves like the
   * `mark*` methods (`true` when delivered or queued); a report the contract refuses (`percent`
   * over 100, `current` over `total`, a message over 500 characters) is not sent: `false`, or
   * `PayloadValidationError` with `throwOnError`.
   *
   * @example
   * ```ts
   * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
   * const client = new PrismaAPIClient()
   * const batches = [['Guten Tag'], ['Danke'], ['Tschüss']]
   * const translate = async (lines: string[]) => lines.map((line) => line.toUpperCase()) // your own work
   * await client.markStageProcessing('run_1', 2)
   * for (const [i, batch] of batches.entries()) {
   *   await translate(batch)
   *   void client.reportProgress('run_1', 2, { current: i + 1, total: batches.length, message: `batch ${i + 1}` })
   * }
   * ```
   */
  reportProgress(runId: string, stageNumber: number, progress: ProgressReport): Promise<boolean> {
    return reported(this.#reportProgress(runId, stageNumber, progress))
  }

  /**
   * Appends one chunk to a running stage's streamed output (`POST
   * {base}/{runId}/stages/{stageNumber}/output` with `{ seq, text }`), in order with the run's
   * other updates, retried with one `Idempotency-Key` and kept in the outbox like them. `seq` is
   * 0, 1, 2, ... per stage and attempt (it restarts at 0 when a higher attempt of the stage was
   * reported). Most runners call {@link streamStageOutput} (or `write` in `runPipeline`), which
   * numbers, batches and splits the text.
   *
   * Resolves the server's answer `{ outcome, stage: { stageNumber, outputSeq }, run }`
   * (`outcome`: `applied`, `duplicate` for a repeat, `conflict` for a repeat with other text), or
   * a {@link QueuedDelivery} when the outbox took it. Throws {@link PayloadValidationError}
   * before sending for a run id, stage number or `seq` the contract refuses, or a `text` over
   * 64 KiB as UTF-8 (`MAX_OUTPUT_CHUNK_BYTES`); {@link StatusHttpError} for a refusal: 409
   * `stage_not_started`, `output_out_of_order` (the problem's `expectedSeq` is the next one),
   * `stage_finished`, `run_finished` (a `RunFinishedError`), 413 `output_too_large` (the stage's
   * text would pass the server's `maxBytes`); and the transport errors without an outbox. NUL
   * characters and lone surrogates in `text` are replaced with U+FFFD.
   *
   * @example
   * ```ts
   * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
   * const client = new PrismaAPIClient()
   * await client.markStageProcessing('run_1', 4)
   * await client.appendStageOutput('run_1', 4, { seq: 0, text: '## Find' })
   * await client.appendStageOutput('run_1', 4, { seq: 1, text: 'ings\n' })
   * ```
   */
  async appendStageOutput(runId: string, stageNumber: number, chunk: StageOutputChunk): Promise<StageOutputChunkResponse | QueuedDelivery> {
    const problem = stageNumberProblem(stageNumber)
    if (problem !== undefined) throw stageNumberError('output chunk', problem, stageNumber)
    // Checked as it will be sent: NUL and lone surrogates become U+FFFD (3 bytes each) first.
    const text = typeof chunk?.text === 'string' ? toStorableText(chunk.text).text : chunk?.text
    const parsed = safeParseContract(OutputChunkInput, { stageNumber, ...chunk, text })
    if (!parsed.success) throw new PayloadValidationError('output chunk', parsed.error.issues)
    parseRunId(runId) // the contract's rule, before anything is sent: throws `PayloadValidationError`
    if (this.#closed) throw new ClientClosedError()
    const outcome = await this.#sendOutputChunk(runId, stageNumber, parsed.data.seq, parsed.data.text)
    switch (outcome.state) {
      case 'delivered':
        return parseResponse(StageOutputChunkResponse, outcome.text, 'output chunk')
      case 'queued':
        return { queued: true, runId, idempotencyKey: outcome.id }
      default:
        throw outcome.error
    }
  }

  /**
   * Streams a running stage's output as it is produced (an LLM's tokens): `write(text)` never
   * blocks; the text goes out in chunks, batched by time (`flushIntervalMs`, 250 ms) and size
   * (`flushBytes`, 16 KiB; at most 64 KiB a chunk, cut between characters), one request in
   * flight at a time, through the run's delivery lane and the outbox like every update. At most
   * `maxBufferedBytes` (1 MiB) wait to be sent. A 409 or 413 (or an undelivered chunk) stops the
   * stream with one warning; later writes are dropped. Call `close()` and await it before the
   * stage's final status, so the text arrives first. One stream per stage attempt: `seq` starts
   * at 0. `runPipeline` gives each stage function this as `write`.
   *
   * Throws {@link PayloadValidationError} for an invalid run id or stage number and
   * {@link ConfigurationError} for options out of range; never after that.
   *
   * @example
   * ```ts
   * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
   * const client = new PrismaAPIClient()
   * const tokens = ['## Find', 'ings\n', '- pricing\n'] // a model's output, as it comes
   * await client.markStageProcessing('run_1', 4)
   * const stream = client.streamStageOutput('run_1', 4)
   * for (const token of tokens) stream.write(token)
   * const { stopped } = await stream.close()
   * await client.markStageComplete('run_1', 4, tokens.join(''))
   * ```
   */
  streamStageOutput(runId: string, stageNumber: number, options: StageOutputStreamOptions = {}): StageOutputStream {
    return this.#openOutputStream(runId, stageNumber, options)
  }

  #openOutputStream(runId: string, stageNumber: number, options: StageOutputStreamOptions = {}): OutputStream {
    const problem = stageNumberProblem(stageNumber)
    if (problem !== undefined) throw stageNumberError('output stream', problem, stageNumber)
    parseRunId(runId)
    try {
      return new OutputStream({
        ...options,
        logger: this.#logger,
        label: `Run ${runId}: stage ${stageNumber}`,
        send: async (seq, text) => {
          if (this.#closed) return { state: 'stopped', reason: new ClientClosedError().message }
          return chunkResult(seq, await this.#sendOutputChunk(runId, stageNumber, seq, text))
        },
      })
    } catch (error) {
      throw error instanceof RangeError ? new ConfigurationError(`streamStageOutput: ${error.message}`, { cause: error }) : error
    }
  }

  /** One chunk through the run's lane; never rejects. */
  #sendOutputChunk(runId: string, stageNumber: number, seq: number, text: string): Promise<Delivered> {
    // `seq` first: the outbox's logs read it from the start of the body.
    const json = JSON.stringify({ seq, text: toStorableText(text).text })
    return this.#delivery.deliver({ runId, route: 'stageOutput', stageNumber, json, id: crypto.randomUUID(), what: `stage ${stageNumber} output chunk ${seq}`, finishing: false })
  }

  /**
   * Sends one heartbeat now (`POST {base}/{runId}/heartbeat` with `stageNumber` and the
   * client's `intervalMs`): one attempt, no retry, never queued. `runPipeline` sends them by
   * itself while a stage runs; call this from a runner of your own. Resolves the server's
   * answer (whose `run` shows whether the run was finished elsewhere; `onRunFinished` is called
   * then), or `undefined` when it got none (logged at debug level). Throws
   * {@link PayloadValidationError} before sending for a run id the contract refuses, or a
   * `stageNumber` that is not an integer of 1 or more.
   */
  async heartbeat(runId: string, stageNumber?: number): Promise<HeartbeatResponse | undefined> {
    const problem = stageNumber === undefined ? undefined : stageNumberProblem(stageNumber)
    if (problem !== undefined) throw stageNumberError('heartbeat', problem, stageNumber)
    parseRunId(runId) // the contract's rule, before anything is sent: throws `PayloadValidationError`
    if (this.#closed) throw new ClientClosedError()
    return this.#heartbeats.send(runId, stageNumber, undefined)
  }

  /**
   * How the run was finished by someone else, when this client learned it (see
   * {@link PrismaAPIClientOptions.onRunFinished}); `undefined` while it has not, or when this
   * client's own update finished the run, or when the run is not among the 1,000 runs this
   * client most recently learned finished.
   */
  runFinished(runId: string): RunFinishedEvent | undefined {
    return this.#observer.runFinished(runId)
  }

  /**
   * Delivers what waits in the outbox now, in order per run, without waiting out the
   * background backoff. Resolves what it did and what is left; all zeros without an outbox.
   */
  flush(): Promise<FlushResult> {
    return this.#outbox?.flush() ?? Promise.resolve({ delivered: 0, rejected: 0, pending: 0 })
  }

  /** Updates waiting in the outbox, for one run or for all; `0` without an outbox. */
  pendingCount(runId?: string): number {
    return this.#outbox?.pendingCount(runId) ?? 0
  }

  /**
   * The updates that left the outbox undelivered because no retry could fix them (refused with
   * 400, 404, 409, 413 after truncation, 415, 422, ..., or older than `outbox.maxAgeMs`), oldest
   * first, also those of earlier processes on the same directory: for one run or all. They are
   * kept in `dead-letters.jsonl` in the outbox directory. Resolves `[]` without an outbox.
   * Updates refused because their run ended elsewhere while they waited (cancelled, swept,
   * completed elsewhere) are kept there too with `kind: 'superseded'`; they are not undelivered
   * and `close()` does not count them.
   *
   * @example
   * ```ts
   * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
   * const client = new PrismaAPIClient({ outbox: { dir: '.pipeline-outbox' } })
   * for (const letter of await client.deadLetters('run_1')) console.warn(letter.status, letter.code, letter.reason)
   * ```
   */
  deadLetters(runId?: string): Promise<DeadLetter[]> {
    return this.#outbox?.deadLetters(runId) ?? Promise.resolve([])
  }

  /**
   * Waits (up to `timeoutMs`) for updates in flight, flushes the outbox, then stops its timer
   * and releases its directory. Updates still in flight at the deadline are moved to the
   * outbox, not dropped. Later calls reject with {@link ClientClosedError} (or resolve `false`).
   *
   * Resolves, and logs as a warning, what stays undelivered, per run (see {@link CloseResult}).
   *
   * @example
   * ```ts
   * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
   * const client = new PrismaAPIClient({ outbox: { dir: '.pipeline-outbox' } })
   * await client.markStageComplete('run_1', 1, { pages: 12 })
   * const { pending, undelivered } = await client.close({ timeoutMs: 5_000 })
   * if (pending > 0) console.warn(`${pending} update(s) wait in the outbox for the next run`, undelivered)
   * ```
   */
  async close(options: CloseOptions = {}): Promise<CloseResult> {
    if (this.#closed) return { delivered: 0, rejected: 0, pending: this.pendingCount(), undelivered: this.#delivery.undeliveredReport() }
    this.#closed = true
    this.#heartbeats.stopAll()
    this.#watches?.stopAll()
    return this.#delivery.close(options.timeoutMs ?? 10_000)
  }

  /** `catalogue`: the run's own (`runPipeline` of a pipeline), else the client's `stages`; `attempt`: a retrying stage's attempt fields. */
  #stageUpdate(runId: string, stageNumber: number, status: StageUpdateStatus, output: unknown, catalogue = this.stages, attempt?: StageAttemptFields): Promise<UpdateOutcome> {
    const problem = stageNumberProblem(stageNumber, catalogue)
    if (problem !== undefined) return this.#refuse(runId, new ConfigurationError(problem))
    const stage = catalogue[stageNumber - 1] as StageCatalogue[number]
    // An output JSON cannot hold must not cost the stage its status: a placeholder is sent.
    const { body, alterations } = buildStageUpdate(runId, stage, status, output, this.#logger, attempt)
    return this.#submitStageUpdate(runId, body, alterations, catalogue)
  }

  /** Makes the output storable, then delivers the update; see `markStageComplete`. */
  async #submitStageUpdate(runId: string, body: StageUpdate, alterations: OutputAlteration[] = [], catalogue = this.stages): Promise<UpdateOutcome> {
    const refused = this.#refusedBeforeSending(runId)
    if (refused) return this.#refuse(runId, refused)
    const storable = storableStageUpdate(runId, body, this.#logger)
    const finishing = body.status !== 'PROCESSING' && (body.status !== 'COMPLETED' || body.stageNumber === lastStageNumber(catalogue))
    const what = `stage ${body.stageNumber} ${body.status}`
    const outcome = await this.#delivery.deliver({ runId, route: 'stageUpdate', json: JSON.stringify(storable.body), id: crypto.randomUUID(), what, finishing })
    return this.#settle(outcome, [...alterations, ...storable.alterations])
  }

  /** What the earlier process's updates of the run still in the outbox say, without the server's view. */
  /**
   * A queued update left the outbox: a dead letter goes to whoever waits for the run's (an
   * earlier process's is kept for `runPipeline` to name as that process's, whenever it came); a
   * completion's outcome goes to `onQueuedCompletion`.
   */
  #leftOutbox(entry: OutboxEntry, left: LeftQueue, inherited: boolean): void {
    if (left.result === 'rejected') {
      if (inherited) {
        this.#earlierDeadLetters.set(entry.runId, [...(this.#earlierDeadLetters.get(entry.runId) ?? []), left.letter])
        // As loaded, the entry had its own id, or the one a replacement (an output cut to fit) took the place of.
        this.#inheritedDeadLettered.add(entry.id)
        if (entry.replaces !== undefined) this.#inheritedDeadLettered.add(entry.replaces)
      }
      else {
        for (const listener of this.#queuedDeadLetterListeners.of(entry.runId)) listener(left.letter)
      }
    }
    if (entry.route === 'complete') this.#completionLeft(entry, left, inherited)
  }

  /** Tells `onQueuedCompletion` how a queued `/complete` came out; a duplicate is also logged at warn, an unreadable answer at error. */
  #completionLeft(entry: OutboxEntry, left: LeftQueue, earlierProcess: boolean): void {
    const { runId, id: idempotencyKey } = entry
    let event: QueuedCompletionEvent
    if (left.result === 'delivered') {
      const answer = CompleteRunResponse.safeParse(left.answer === undefined ? undefined : safeJson(left.answer))
      if (!answer.success) {
        this.#logger.error(`Run ${runId}: the completion delivered from the outbox got an answer that does not match the contract; its outcome is unknown`, { runId, idempotencyKey })
        const what = left.answer !== undefined && safeJson(left.answer) !== undefined ? 'does not match the contract' : 'is not JSON'
        const reason = `the server accepted it (2xx), but its answer ${what}: whether its results reached the app's onRunCompleted hook is unknown`
        return this.#tellQueuedCompletion({ runId, idempotencyKey, outcome: 'unknown', reason, earlierProcess })
      }
      const response = answer.data
      // An attempt of it that got no definite answer (this process's or an earlier one's, kept in the outbox) may be what the duplicate answers.
      const duplicate = duplicateCompletion(response, entry.unanswered, 'another party completed the run while this /complete waited in the outbox')
      if (duplicate) {
        this.#logger.warn(`Run ${runId}: ${duplicate.warning}`, { runId, idempotencyKey })
      } else {
        this.#logger.info?.(`Run ${runId}: the completion delivered from the outbox was applied: its results reached the app's onRunCompleted hook`, { runId, idempotencyKey })
      }
      event = {
        runId,
        idempotencyKey,
        outcome: duplicate ? 'duplicate' : 'applied',
        response,
        earlierProcess,
        ...(duplicate?.unansweredAttempt === undefined ? {} : { unansweredAttempt: duplicate.unansweredAttempt }),
      }
    } else {
      event = { runId, idempotencyKey, outcome: left.result === 'rejected' ? 'dead-lettered' : 'superseded', reason: left.result === 'rejected' ? left.letter.reason : left.reason, earlierProcess }
    }
    this.#tellQueuedCompletion(event)
  }

  /** Calls `onQueuedCompletion`; what it throws is logged. */
  #tellQueuedCompletion(event: QueuedCompletionEvent): void {
    try {
      this.#onQueuedCompletion?.(event)
    } catch (error) {
      this.#logger.error(`Run ${event.runId}: onQueuedCompletion threw: ${failureReason(error)}`, { runId: event.runId })
    }
  }

  /**
   * The earlier process's updates of the run still in the outbox or delivered since, less those
   * dead-lettered since (`notDeadLettered`, the one rule): read when `runPipeline` starts, not
   * when the outbox was opened.
   */
  #inheritedOf(runId: string): OutboxEntry[] {
    return notDeadLettered(
      this.#inheritedEntries.filter((entry) => entry.runId === runId),
      this.#inheritedDeadLettered,
    )
  }

  /** Per stage, what {@link #inheritedOf} says (`inheritedStages`). */
  #inheritedStagesOf(runId: string): ReadonlyMap<number, InheritedStage> | undefined {
    return inheritedStages(this.#inheritedOf(runId)).get(runId)
  }

  /** How {@link #inheritedOf} ends the run, when it does (`inheritedEnds`). */
  #inheritedEndOf(runId: string): InheritedEnd | undefined {
    return inheritedEnds(this.#inheritedOf(runId)).get(runId)
  }

  #inheritedRun(runId: string, pipeline?: string): InheritedRun {
    const inherited = this.#inheritedStagesOf(runId)
    const end = this.#inheritedEndOf(runId)
    const ended = end && { event: inheritedEndEvent(runId, end, undefined, pipeline), updates: end.updates }
    return { processing: stagesLeftProcessing([], inherited), completed: stagesCompleted([], inherited), ended }
  }

  /** Builds, coalesces and delivers a progress report; see `reportProgress`. */
  async #reportProgress(runId: string, stageNumber: number, report: ProgressReport, catalogue = this.stages): Promise<UpdateOutcome> {
    const refused = this.#refusedBeforeSending(runId)
    if (refused) return this.#refuse(runId, refused)
    const problem = stageNumberProblem(stageNumber, catalogue)
    if (problem !== undefined) return this.#refuse(runId, new ConfigurationError(problem))
    const stage = catalogue[stageNumber - 1] as StageCatalogue[number]
    let delivered: Promise<Delivered>
    try {
      delivered = this.#progress.report(runId, stageNumber, stage.name, report)
    } catch (error) {
      // The caller's mistake, not an undelivered update: not counted by `close()`.
      return this.#refuse(runId, error as PayloadValidationError, 'invalid')
    }
    return this.#settle(await delivered, [])
  }

  /** Why an update of `runId` cannot be sent at all (an invalid run id, a closed client). */
  #refusedBeforeSending(runId: string): Error | undefined {
    try {
      parseRunId(runId)
    } catch (error) {
      return error as Error
    }
    return this.#closed ? new ClientClosedError() : undefined
  }

  /** What a stage update came to, for the `mark*` methods: throws with `throwOnError`. */
  #settle(outcome: Delivered, alterations: OutputAlteration[]): UpdateOutcome {
    const all = [...alterations, ...outcome.alterations]
    if (outcome.state === 'failed' || outcome.state === 'dead-lettered' || outcome.state === 'run-finished' || outcome.state === 'refused') {
      if (this.#throwOnError) throw outcome.error
      // `refused` comes of output chunks only, which do not come here.
      return { state: outcome.state === 'refused' ? 'failed' : outcome.state, reason: failureReason(outcome.error), alterations: all }
    }
    if (outcome.state === 'delivered' && outcome.conflict) return { state: outcome.state, alterations: all, conflict: outcome.conflict }
    return { state: outcome.state, alterations: all }
  }

  /** Refuses an update before sending it; `invalid`: the caller's input, not counted as undelivered. */
  #refuse(runId: string, error: Error, state: 'failed' | 'invalid' = 'failed'): Promise<UpdateOutcome> {
    if (state === 'failed' && typeof runId === 'string' && runId !== '') this.#delivery.count(runId, 'failed')
    this.#logger.error(`Run ${String(runId)}: update not sent: ${error.message}`, { runId })
    return this.#throwOnError ? Promise.reject(error) : Promise.resolve({ state, reason: error.message, alterations: [] })
  }

  #url(route: RouteName, runId?: string, stageNumber?: number): string {
    if (stageNumber !== undefined && runId !== undefined) return this.baseUrl + buildRoutePath(route, { runId, stageNumber: String(stageNumber) }, this.basePath)
    return this.baseUrl + routePath(route, runId, this.basePath)
  }
}

function noop(): void {}

/** Who may have sent the `/complete` a public `completeRun` answered `duplicate` came after (`duplicateCompletion`'s `otherCause`). */
const COMPLETED_BEFORE_THIS_CALL =
  "another /complete of this run was received before this call (this client's own earlier completeRun, another runner or process on the same run id, or the web app)"

/** A chunk as `appendStageOutput` checks it before sending. */
const OutputChunkInput = StageOutputChunk.extend({
  stageNumber: z.number().int().min(1),
  text: z.string().refine((text) => utf8Bytes(text) <= MAX_OUTPUT_CHUNK_BYTES, { message: `must be at most ${MAX_OUTPUT_CHUNK_BYTES} bytes as UTF-8 (MAX_OUTPUT_CHUNK_BYTES)` }),
})

/** The hold of a run whose stream is not followed. */
const NO_HOLD: RunStreamHold = { arm: noop, disarm: noop, release: noop }

/** `true` when delivered or kept in the outbox, as the `mark*` methods resolve. */
async function reported(outcome: Promise<UpdateOutcome>): Promise<boolean> {
  const { state } = await outcome
  return state === 'delivered' || state === 'queued'
}

