/**
 * Delivery: every update goes out in its run's lane (one after another, in call order), with
 * retries, and when it fails it is classified once, by {@link classifyFailure}, the same way on
 * the first send and on a redelivery from the outbox. Internal.
 */
import type { CompleteRunResponse } from '../contract/records.js'
import type { StageUpdate } from '../contract/stage-update.js'
import { type StageCatalogue, lastStageNumber } from '../contract/stages.js'
import { PipelineStatusError, RunFinishedError, type StatusHttpError, isStatusHttpError } from './errors.js'
import { failureReason } from './failure-reason.js'
import type { Logger } from './logger.js'
import type { DeliveryResult, FlushResult, OutboxEntry, OutboxRoute, PendingEntry } from './outbox/entry.js'
import type { Outbox } from './outbox/outbox.js'
import { describeEntry } from './outbox/entry.js'
import { recentRuns } from './recent-runs.js'
import { parseRetryAfter, shouldRetry } from './retry-policy.js'
import { type RunFinishedEvent, type RunFinishedObserver, type StageConflictAnswer, safeJson } from './run-finished.js'
import { type OutputAlteration, fitStageUpdate, statedBodyLimit, utf8Bytes } from './stage-output.js'
import type { Transport } from './transport.js'

/**
 * An update that could not be delivered yet and waits in the outbox; it will be delivered in
 * order with the run's other updates. Only returned when the `outbox` option is set. How a
 * queued `/complete` comes out goes to the client's `onQueuedCompletion` ({@link QueuedCompletionEvent}).
 */
export interface QueuedDelivery {
  /** Always `true`: tells this apart from the server's answer (see {@link isQueuedDelivery}). */
  readonly queued: true
  /** The run the update belongs to. */
  readonly runId: string
  /** The idempotency key it will be delivered with. */
  readonly idempotencyKey: string
}

/**
 * Whether a `completeRun` result is a {@link QueuedDelivery} rather than the server's answer.
 *
 * @example
 * ```ts
 * import { isQueuedDelivery, PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient({ outbox: { dir: '.pipeline-outbox' } })
 * const result = await client.completeRun('run_1', { status: 'COMPLETED' })
 * if (isQueuedDelivery(result)) console.log('the completion waits in the outbox')
 * ```
 */
export function isQueuedDelivery(value: unknown): value is QueuedDelivery {
  return typeof value === 'object' && value !== null && (value as { queued?: unknown }).queued === true
}

/**
 * How a `/complete` that waited in the outbox came out, once it left the outbox (see
 * {@link PrismaAPIClientOptions.onQueuedCompletion}): the answer to the {@link QueuedDelivery}
 * that `completeRun` (and `runPipeline`'s `summary.completion.response`) resolved.
 */
export interface QueuedCompletionEvent {
  /** The run. */
  runId: string
  /** The completion's idempotency key: the {@link QueuedDelivery.idempotencyKey} it was queued with. */
  idempotencyKey: string
  /**
   * - `applied`: stored; its results reached the app's `onRunCompleted` hook.
   * - `duplicate`: delivered, but the run's completion had already been received (another party's
   *   `/complete` came while this one waited): the hook ran with those results, not these (also
   *   logged at warn). Unless an attempt of this one got no definite answer: see `unansweredAttempt`.
   * - `dead-lettered`: refused for good (a 4xx other than 401/403, a body too large) or older
   *   than `outbox.maxAgeMs`; kept in `dead-letters.jsonl` (`client.deadLetters()`), logged as an error.
   * - `superseded`: the run ended elsewhere while it waited (cancelled, failed by the stale-run
   *   sweeper): not stored; `onRunFinished` is called too.
   * - `unknown`: the server accepted it (2xx), so it left the outbox, but its answer is not JSON or
   *   does not match the contract (a proxy's page, a server of another version): whether it was
   *   `applied` or a `duplicate` cannot be told (also logged as an error); `reason` says which.
   *   Read the run with `getStatus` (its `completionReceivedAt`) if it matters.
   */
  outcome: 'applied' | 'duplicate' | 'dead-lettered' | 'superseded' | 'unknown'
  /** The server's answer, for `applied` and `duplicate`. */
  response?: CompleteRunResponse
  /** Why, for `dead-lettered`, `superseded` and `unknown`. */
  reason?: string
  /**
   * Set with `outcome: 'duplicate'` when an earlier attempt of this completion got no definite
   * answer (a timeout, a reset, a gateway's 502/504; kept in the outbox across processes): its
   * cause, e.g. `timed out after 30000 ms`. The server may have received that attempt, so the
   * `duplicate` may be its answer to this very completion, whose results then reached the hook
   * once; or another party's `/complete` came first, and they did not. The warning says both.
   */
  unansweredAttempt?: string
  /**
   * `true` for a completion an earlier process left in the outbox directory (a restarted runner's
   * client delivered it), `false` for one this client queued.
   */
  earlierProcess: boolean
}

/** Per run, the updates a client did not deliver; see {@link CloseResult}. */
export interface UndeliveredUpdates {
  /** Still waiting in the outbox (delivered later, by a flush or the next process). */
  queued: number
  /**
   * Refused for good or expired, kept as dead letters (see {@link PrismaAPIClient.deadLetters});
   * not those superseded because the run ended elsewhere.
   */
  deadLettered: number
  /** Neither delivered nor kept: no outbox, refused before sending, or the outbox could not be written. */
  failed: number
}

/** How one update went; what `runPipeline` reads beyond `true`/`false`. Internal. */
export interface UpdateOutcome {
  /**
   * `queued`: waits in the outbox; `dead-lettered`: refused for good, kept on disk; `failed`:
   * lost; `run-finished`: not stored because the run was finished by someone else; `invalid`:
   * refused before sending because the caller's input breaks the contract (not undelivered).
   */
  state: 'delivered' | 'queued' | 'dead-lettered' | 'failed' | 'run-finished' | 'invalid'
  /** Why it was not delivered, for `dead-lettered` and `failed`. */
  reason?: string
  /** What was changed in its output to make it deliverable. */
  alterations: OutputAlteration[]
  /**
   * Set when the server answered `conflict`: the stage was already final with another output,
   * which it kept; this update's output was not stored.
   */
  conflict?: StageConflictAnswer
}

/** One update on its way: its body and idempotency key (a new one whenever the body changes). */
export interface PendingUpdate {
  runId: string
  route: OutboxRoute
  /** The stage of a streamed output chunk (`route: 'stageOutput'`), which its URL names. */
  stageNumber?: number | undefined
  json: string
  id: string
  /** `stage 2 COMPLETED` or `completion`, for the logs. */
  what: string
  /** Whether it may finish the run (a FAILED or CANCELLED stage, the last stage COMPLETED, `/complete`). */
  finishing: boolean
  /** Called when the lane starts on it: a waiting progress report is replaced no more. */
  onStart?: () => void
}

/** How the lane body ended for one update. */
export type Delivered =
  /**
   * `unansweredAttempt`: for a `/complete`, the cause of an earlier attempt of it that got no
   * definite answer (`noDefiniteAnswer` in transport.ts): the server may have received that one.
   */
  | { state: 'delivered'; id: string; text: string; alterations: OutputAlteration[]; conflict?: StageConflictAnswer; unansweredAttempt?: string }
  | { state: 'queued'; id: string; alterations: OutputAlteration[] }
  | { state: 'dead-lettered' | 'failed'; id: string; error: unknown; alterations: OutputAlteration[] }
  | { state: 'run-finished'; id: string; error: RunFinishedError; alterations: OutputAlteration[] }
  /**
   * A streamed output chunk the server refused for good (409 `output_out_of_order`,
   * `stage_not_started`, `stage_finished`; 413; 400): neither logged nor dead-lettered here, the
   * output stream logs one line and stops (`output-writer.ts`).
   */
  | { state: 'refused'; id: string; error: StatusHttpError; alterations: OutputAlteration[] }

/**
 * What a failed send comes to, the one table of the client (first send and redelivery alike):
 * the run finished elsewhere → `superseded`; 413 → `cut` (or `dead-letter` when it cannot be
 * cut); 401/403 → `slow-queue` (a person fixes the secret); retriable → `queue`; any other 4xx →
 * `dead-letter`; anything else (an abort, a bug) → `other`.
 */
export type FailureClass =
  | { kind: 'superseded'; finished: RunFinishedEvent }
  | { kind: 'cut'; json: string; alteration: OutputAlteration }
  | { kind: 'slow-queue' }
  | { kind: 'queue'; retryAfterMs: number | undefined }
  | { kind: 'dead-letter'; error: StatusHttpError; uncut?: boolean }
  | { kind: 'other' }

/** Delivers updates in per-run lanes, queues and dead-letters them, and counts what was lost. */
export class Delivery {
  readonly #transport: Transport
  readonly #observer: RunFinishedObserver
  readonly #logger: Logger
  readonly #stages: StageCatalogue
  readonly #url: (route: OutboxRoute, runId: string, stageNumber?: number) => string
  #outbox: Outbox | undefined
  /** The tail of each run's chain of updates, so they go out one by one in call order. */
  readonly #lanes = new Map<string, Promise<unknown>>()
  /** Per run, updates that left this client undelivered (for the report of `close`). */
  readonly #undelivered = new Map<string, { deadLettered: number; failed: number }>()
  /** Per run, the causes of lost updates already logged as errors (the most recent `RECENT_RUNS` runs failing). */
  readonly #loggedCauses = recentRuns<Set<string>>()
  /** Set when `close` aborted the requests still in flight at its deadline: they go to the outbox. */
  #closing = false

  constructor(options: {
    transport: Transport
    observer: RunFinishedObserver
    logger: Logger
    stages: StageCatalogue
    url: (route: OutboxRoute, runId: string, stageNumber?: number) => string
  }) {
    this.#transport = options.transport
    this.#observer = options.observer
    this.#logger = options.logger
    this.#stages = options.stages
    this.#url = options.url
  }

  /** The outbox, set once the client made it (its redelivery calls {@link redeliver}). */
  attach(outbox: Outbox | undefined): void {
    this.#outbox = outbox
  }

  /**
   * The end of `close`: waits (up to `timeoutMs`) for the updates in flight, aborts what is
   * left (each lane then moves its update to the outbox), flushes and closes the outbox, and
   * logs what stays undelivered, per run.
   */
  async close(timeoutMs: number): Promise<FlushResult & { undelivered: Record<string, UndeliveredUpdates> }> {
    const deadline = Date.now() + timeoutMs
    await settleWithin([...this.#lanes.values()], deadline - Date.now())
    this.#closing = true
    this.#transport.abortInFlight(new Error('The client was closed before this request finished'))
    await Promise.allSettled([...this.#lanes.values()])
    const outbox = this.#outbox
    const pendingByRun = outbox?.pendingByRun() ?? {}
    const flushed = outbox ? await outbox.close(Math.max(0, deadline - Date.now())) : { delivered: 0, rejected: 0, pending: 0 }
    // What is still queued after the last flush (it may have delivered some of them).
    for (const runId of Object.keys(pendingByRun)) pendingByRun[runId] = outbox?.pendingCount(runId) ?? 0
    const undelivered = this.undeliveredReport(pendingByRun)
    const runs = Object.entries(undelivered)
    if (runs.length > 0) {
      const total = runs.reduce((sum, [, u]) => sum + u.queued + u.deadLettered + u.failed, 0)
      const where = outbox ? ` (outbox ${outbox.dir})` : ''
      this.#logger.warn(
        `Closed with ${total} update(s) undelivered${where}: ${runs.map(([runId, u]) => `run ${runId}: ${describeUndelivered(u)}`).join('; ')}`,
        { undelivered },
      )
    }
    return { ...flushed, undelivered }
  }

  /**
   * The one lane body of every update: behind the run's queued updates, or sent with retries;
   * a failure is classified by {@link classifyFailure} and acted on.
   */
  deliver(update: PendingUpdate): Promise<Delivered> {
    const { runId } = update
    if (!update.finishing) return this.#deliverInLane(update)
    const ended = this.#observer.finishingUpdate(runId)
    return this.#deliverInLane(update).finally(ended)
  }

  #deliverInLane(update: PendingUpdate): Promise<Delivered> {
    const { runId } = update
    return this.#inLane(runId, async (): Promise<Delivered> => {
      update.onStart?.()
      const outbox = this.#outbox
      const alterations: OutputAlteration[] = []
      let current = update
      // A number, made a string only when the update is kept (the hot path allocates less).
      const started = Date.now()
      // A completion's first attempt that may have been received without an answer: its `duplicate` may be the answer to it.
      let unanswered: string | undefined
      const onNoAnswer = update.route === 'complete' ? (cause: string) => void (unanswered ??= cause) : undefined
      try {
        if (outbox && outbox.pendingCount(runId) > 0) {
          await this.#enqueue(current, undefined, 'queued behind earlier updates')
          return { state: 'queued', id: current.id, alterations }
        }
        for (;;) {
          try {
            const response = await this.#transport.send(
              { method: 'POST', url: this.#url(current.route, runId, current.stageNumber), body: current.json, idempotencyKey: current.id, what: `Run ${runId}: ${current.what}` },
              { retry: true, onNoAnswer },
            )
            outbox?.nudge()
            // An earlier attempt was sent and failed: the run may have ended after it.
            if (response.attempts > 1) this.#observer.noteWaited(runId)
            const { finished, conflict } = this.#observer.learnFromAnswer(current, response.text)
            if (finished) {
              const error = new RunFinishedError(runId, finished.status, finished.reason)
              this.#logger.warn(`Run ${runId}: ${current.what} was not stored: ${error.message}`, { runId, idempotencyKey: current.id })
              return { state: 'run-finished', id: current.id, error, alterations }
            }
            return {
              state: 'delivered',
              id: current.id,
              text: response.text,
              alterations,
              ...(conflict ? { conflict } : {}),
              ...(unanswered === undefined ? {} : { unansweredAttempt: unanswered }),
            }
          } catch (error) {
            // An earlier attempt was sent and failed: the run may have ended after it.
            if (isStatusHttpError(error) && error.attempts > 1) this.#observer.noteWaited(runId)
            const failure = await this.classifyFailure(runId, current.route, current.json, error)
            const firstAttemptAt = new Date(started).toISOString()
            switch (failure.kind) {
              case 'superseded': {
                const refused = new RunFinishedError(runId, failure.finished.status, failure.finished.reason, { cause: error })
                this.#logger.warn(`Run ${runId}: ${current.what} was refused: ${refused.message}`, { runId, idempotencyKey: current.id })
                return { state: 'run-finished', id: current.id, error: refused, alterations }
              }
              case 'cut':
                alterations.push(failure.alteration)
                current = { ...current, json: failure.json, id: crypto.randomUUID() }
                // Another update now (another body and key): the attempts of the old one are not its.
                unanswered = undefined
                continue
              case 'queue':
              case 'slow-queue':
                if (!outbox) throw error
                await this.#enqueue(current, firstAttemptAt, failureReason(error), failure.kind === 'slow-queue', unanswered)
                return { state: 'queued', id: current.id, alterations }
              case 'dead-letter':
                // A refused chunk ends its output stream, which says so once: no line per chunk.
                if (current.route === 'stageOutput') return { state: 'refused', id: current.id, error: failure.error, alterations }
                if (!outbox) throw error
                await outbox.deadLetter(
                  { v: 1, id: current.id, runId, route: current.route, body: current.json, queuedAt: firstAttemptAt, firstAttemptAt },
                  { status: failure.error.status, code: failure.error.problem?.code, reason: failureReason(error) },
                )
                return { state: 'dead-lettered', id: current.id, error, alterations }
              case 'other':
                // Aborted by `close` at its deadline: kept in the outbox, not dropped.
                if (!outbox || !this.#closing) throw error
                await this.#enqueue(current, firstAttemptAt, failureReason(error), false, unanswered)
                return { state: 'queued', id: current.id, alterations }
            }
          }
        }
      } catch (error) {
        this.count(runId, 'failed')
        // A lost chunk ends its output stream, which logs the one line (cause and fix).
        if (current.route !== 'stageOutput') this.#logUndelivered(runId, current, error)
        return { state: 'failed', id: current.id, error, alterations }
      }
    })
  }

  /**
   * The one classification of a failed send, for the first send and for a redelivery: a
   * refusal is never the update itself finishing the run (an idempotent replay answers as the
   * first time), so a 409 `run_finished` means the run ended elsewhere, even for a finishing
   * update; a 413 on a stage update is answered by cutting its output to fit.
   */
  async classifyFailure(runId: string, route: OutboxRoute, json: string, error: unknown): Promise<FailureClass> {
    const finished = await this.#observer.learnFromRefusal(runId, error)
    if (finished) return { kind: 'superseded', finished }
    this.#observer.noteWaited(runId)
    if (!isStatusHttpError(error)) return shouldRetry(error) ? { kind: 'queue', retryAfterMs: undefined } : { kind: 'other' }
    if (error.status === 413) {
      const fitted = route === 'stageUpdate' ? this.#fit(runId, json, error) : undefined
      return fitted ? { kind: 'cut', ...fitted } : { kind: 'dead-letter', error, uncut: true }
    }
    if (error.status === 401 || error.status === 403) return { kind: 'slow-queue' }
    if (shouldRetry(error)) return { kind: 'queue', retryAfterMs: parseRetryAfter(error.response.headers.get('Retry-After')) }
    return { kind: 'dead-letter', error }
  }

  /** The outbox's delivery of one queued update: one attempt; the outbox does the backoff. */
  async redeliver(entry: OutboxEntry, signal: AbortSignal): Promise<DeliveryResult> {
    const what = `${describeEntry(entry)} (from the outbox)`
    // A completion's attempt that may have been received without an answer: the outbox keeps that it was.
    let unanswered: string | undefined
    const onNoAnswer = entry.route === 'complete' ? (cause: string) => void (unanswered = cause) : undefined
    // Queued, maybe by an earlier process: it waited, so the run may have ended after it was queued.
    this.#observer.noteWaited(entry.runId)
    try {
      const response = await this.#transport.send(
        { method: 'POST', url: this.#url(entry.route, entry.runId, entry.stageNumber), body: entry.body, idempotencyKey: entry.id, what: `Run ${entry.runId}: ${what}` },
        { retry: false, signal, onNoAnswer },
      )
      const update = { runId: entry.runId, route: entry.route, stageNumber: entry.stageNumber, json: entry.body, id: entry.id, what, finishing: isFinishing(entry, this.#stages) }
      const { finished: stale } = this.#observer.learnFromAnswer(update, response.text)
      // Answered but not stored: the run had ended elsewhere.
      if (stale) return { result: 'superseded', reason: `not stored: the run ended elsewhere (${stale.status})` }
      return { result: 'delivered', answer: response.text }
    } catch (error) {
      const failure = await this.classifyFailure(entry.runId, entry.route, entry.body, error)
      const refusal = isStatusHttpError(error) ? { status: error.status, code: error.problem?.code, reason: failureReason(error) } : undefined
      switch (failure.kind) {
        case 'superseded':
          return refusal
            ? { result: 'superseded', ...refusal, reason: `${refusal.reason}; the run ended elsewhere (${failure.finished.status})` }
            : { result: 'superseded', reason: `the run ended elsewhere (${failure.finished.status})` }
        case 'cut':
          return { result: 'replace', entry: { ...entry, id: crypto.randomUUID(), body: failure.json }, reason: failureReason(error) }
        case 'slow-queue':
          return { result: 'retry', reason: failureReason(error), slow: true }
        case 'dead-letter':
          return { result: 'rejected', ...refusal, reason: `${failureReason(error)}${failure.uncut ? '; it cannot be cut to fit' : ''}` }
        case 'queue':
          return { result: 'retry', reason: failureReason(error), retryAfterMs: failure.retryAfterMs, unanswered }
        case 'other':
          return { result: 'retry', reason: failureReason(error), retryAfterMs: undefined, unanswered }
      }
    }
  }

  /**
   * The outbox's coalescing rule for progress: a progress report takes the place of its stage's
   * newest pending update when that is a progress report not being delivered, so only the newest
   * progress per stage is kept. Status changes are never replaced, and no report moves across one.
   */
  static progressTakesPlaceOf(entry: OutboxEntry): ((pending: readonly PendingEntry[]) => OutboxEntry | undefined) | undefined {
    const stage = progressStageOf(entry)
    if (stage === undefined) return undefined
    return (pending) => {
      const newest = pending.findLast((queued) => stageOf(queued.entry) === stage)
      return newest && !newest.inFlight && progressStageOf(newest.entry) === stage ? newest.entry : undefined
    }
  }

  /** Counts an update that left this client undelivered. */
  count(runId: string, what: 'deadLettered' | 'failed'): void {
    const counts = this.#undelivered.get(runId) ?? { deadLettered: 0, failed: 0 }
    counts[what]++
    this.#undelivered.set(runId, counts)
  }

  /** Per run, what this client did not deliver (with what still waits in the outbox). */
  undeliveredReport(pendingByRun: Record<string, number> = this.#outbox?.pendingByRun() ?? {}): Record<string, UndeliveredUpdates> {
    const report: Record<string, UndeliveredUpdates> = {}
    for (const [runId, queued] of Object.entries(pendingByRun)) {
      if (queued > 0) report[runId] = { queued, deadLettered: 0, failed: 0 }
    }
    for (const [runId, counts] of this.#undelivered) {
      report[runId] = { queued: report[runId]?.queued ?? 0, ...counts }
    }
    return report
  }

  /**
   * An update lost for good (no outbox): one error line per run and cause, so a wrong secret
   * reads as one line, not one per update; the same cause again in that run is a debug line.
   * `close()` counts every one of them.
   */
  #logUndelivered(runId: string, update: PendingUpdate, error: unknown): void {
    const reason = failureReason(error)
    const details = {
      runId,
      idempotencyKey: update.id,
      ...(isStatusHttpError(error) ? { status: error.status, code: error.problem?.code } : {}),
    }
    const logged = this.#loggedCauses.get(runId) ?? new Set<string>()
    if (logged.has(reason)) {
      this.#logger.debug?.(`Run ${runId}: ${update.what} was not delivered either: ${reason}`, details)
      return
    }
    logged.add(reason)
    // Bounded: the runs most recently failing keep their record.
    this.#loggedCauses.set(runId, logged)
    const auth = isStatusHttpError(error) && (error.status === 401 || error.status === 403)
    const fix = auth ? "; check that the runner's secret (WEBHOOK_SECRET) matches the web app's" : ''
    this.#logger.error(
      `Run ${runId}: ${update.what} was not delivered: ${reason}${fix}. Later updates of this run failing the same way are logged at debug level`,
      details,
    )
  }

  /** The update's body with its output cut to the limit a 413 states; logged. `undefined` when it cannot fit. */
  #fit(runId: string, json: string, error: StatusHttpError): { json: string; alteration: OutputAlteration } | undefined {
    const body = JSON.parse(json) as StageUpdate
    const { limit, stated } = statedBodyLimit(error, utf8Bytes(json))
    const fitted = fitStageUpdate(body, limit)
    if (!fitted) return undefined
    const alteration: OutputAlteration = {
      runId,
      stageNumber: body.stageNumber,
      kind: 'truncated',
      originalBytes: fitted.originalBytes,
      sentBytes: fitted.sentBytes,
      ...(stated ? { maxBodyBytes: limit } : {}),
    }
    this.#logger.warn(
      `Run ${runId}: stage ${body.stageNumber} ${body.status}: the server refused the body as too large (413${stated ? `, limit ${limit} bytes` : ''}); ` +
        `sending it again with the output cut from ${fitted.originalBytes} to ${fitted.sentBytes} bytes, ending with the truncation marker`,
      { ...alteration },
    )
    return { json: fitted.json, alteration }
  }

  /**
   * Queues an update durably; logs where it went. Throws when the disk write fails. `unanswered`:
   * the cause of an attempt of it that got no definite answer, kept with the entry.
   */
  async #enqueue(update: PendingUpdate, firstAttemptAt: string | undefined, why: string, unauthorized = false, unanswered?: string): Promise<void> {
    const outbox = this.#outbox as Outbox
    this.#observer.noteWaited(update.runId)
    const entry: OutboxEntry = {
      v: 1,
      id: update.id,
      runId: update.runId,
      route: update.route,
      ...(update.stageNumber === undefined ? {} : { stageNumber: update.stageNumber }),
      body: update.json,
      queuedAt: new Date().toISOString(),
      ...(firstAttemptAt === undefined ? {} : { firstAttemptAt }),
      ...(unanswered === undefined ? {} : { unanswered }),
    }
    try {
      await outbox.append(entry, { slow: unauthorized, takesPlaceOf: Delivery.progressTakesPlaceOf(entry) })
    } catch (error) {
      throw new PipelineStatusError(`Run ${update.runId}: ${update.what} could not be written to the outbox ${outbox.dir}`, { cause: error })
    }
    const details = { runId: update.runId, idempotencyKey: update.id, pending: outbox.pendingCount(update.runId) }
    if (unauthorized) {
      this.#logger.error(
        `Run ${update.runId}: ${update.what} refused (${why}); check that the runner's secret matches the web app's. ` +
          'Queued in the outbox and retried slowly, so it is delivered once the secret is fixed',
        details,
      )
    } else if (firstAttemptAt === undefined) {
      this.#logger.info?.(`Run ${update.runId}: ${update.what} queued in the outbox (${why}); it will be delivered in order`, details)
    } else {
      this.#logger.warn(`Run ${update.runId}: ${update.what} queued in the outbox (${why}); it will be delivered in order`, details)
    }
  }

  #inLane<T>(runId: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#lanes.get(runId)
    const result = previous ? previous.then(task, task) : task()
    const tail = result.then(noop, noop)
    this.#lanes.set(runId, tail)
    void tail.then(() => {
      if (this.#lanes.get(runId) === tail) this.#lanes.delete(runId)
    })
    return result
  }
}

function noop(): void {}

/** Whether a queued update may finish its run; see {@link PendingUpdate.finishing}. */
function isFinishing(entry: Pick<OutboxEntry, 'route' | 'body'>, stages: StageCatalogue): boolean {
  if (entry.route === 'complete') return true
  const body = safeJson(entry.body) as { status?: unknown; stageNumber?: unknown } | undefined
  if (body?.status === 'FAILED' || body?.status === 'CANCELLED') return true
  return body?.status === 'COMPLETED' && body.stageNumber === lastStageNumber(stages)
}

/** The stage a stage update is about; `undefined` for a completion. */
function stageOf(entry: Pick<OutboxEntry, 'route' | 'body'>): number | undefined {
  if (entry.route !== 'stageUpdate') return undefined
  const match = /"stageNumber":(\d+)/.exec(entry.body)
  return match ? Number(match[1]) : undefined
}

/** The stage of a progress report (a `PROCESSING` stage update with `progress`); `undefined` for any other update. */
function progressStageOf(entry: Pick<OutboxEntry, 'route' | 'body'>): number | undefined {
  if (entry.route !== 'stageUpdate' || !entry.body.includes('"progress"')) return undefined
  try {
    const body = JSON.parse(entry.body) as { stageNumber?: unknown; status?: unknown; progress?: unknown }
    return body.status === 'PROCESSING' && typeof body.progress === 'object' && body.progress !== null && typeof body.stageNumber === 'number'
      ? body.stageNumber
      : undefined
  } catch {
    return undefined
  }
}

async function settleWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    Promise.allSettled(promises),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, ms))
    }),
  ])
  clearTimeout(timer)
}

function describeUndelivered(u: UndeliveredUpdates): string {
  const parts: string[] = []
  if (u.queued > 0) parts.push(`${u.queued} queued in the outbox`)
  if (u.deadLettered > 0) parts.push(`${u.deadLettered} dead-lettered`)
  if (u.failed > 0) parts.push(`${u.failed} failed`)
  return parts.join(', ')
}
