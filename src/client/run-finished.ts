/**
 * Run-finished observation: reads the run out of every answer (stage update, heartbeat,
 * completion, status read, 409 refusal) and tells the runner, once per run, that it was finished
 * by someone else. Internal.
 */
import { CompleteRunResponse, PipelineRunRecord, RunStatusResponse, StageUpdateResponse } from '../contract/records.js'
import { type FinalStatus, type RunStatus, isFinalStatus } from '../contract/status.js'
import { CONFLICT_CAUSE_AND_FIX } from '../internal/conflict-cause.js'
import { type StatusHttpError, isStatusHttpError } from './errors.js'
import { failureReason } from './failure-reason.js'
import { ListenersByKey } from './listeners-by-key.js'
import type { Logger } from './logger.js'
import { recentRuns } from './recent-runs.js'

/** What {@link PrismaAPIClientOptions.onRunFinished} gets: the run was finished by someone else. */
export interface RunFinishedEvent {
  /** The run. */
  runId: string
  /** How it ended, as stored. */
  status: FinalStatus
  /** The run's stored `error`: the cancel reason, the sweeper's "no heartbeat for 45 s", ...; `null` when none. */
  reason: string | null
  /** The run as the server answered it. */
  run: PipelineRunRecord
  /**
   * Which answer told the client: `stream` is the run's live stream, which `runPipeline` follows
   * while a stage runs (see {@link PrismaAPIClientOptions.followRunStream}). `outbox` (only in
   * `runPipeline`'s `finishedElsewhere`, never given to `onRunFinished`): a restarted runner found
   * an earlier process's FAILED or CANCELLED stage update or `/complete` of the run still waiting
   * in the outbox, delivered before anything of its own, so the run is ended by that process;
   * `run` is then the run as read at start with the status and error that update gives it.
   */
  learnedFrom: 'stage-update' | 'heartbeat' | 'completion' | 'status' | 'refusal' | 'stream' | 'outbox'
}

/** The stage as a `conflict` answer carries it: already final, with another output. Internal. */
export interface StageConflictAnswer {
  stageNumber: number
  /** The stage's stored final status (the status sent: a conflict repeats a final status). */
  status: FinalStatus
  /** The output this update sent (after serialising and fitting), `null` when it sent none. Not truncated. */
  sentOutput: string | null
  /** The output the server kept, `null` when it has none. Not truncated. */
  storedOutput: string | null
}

/** An answered update, as the observer needs it. */
export interface AnsweredUpdate {
  runId: string
  route: 'stageUpdate' | 'complete' | 'stageOutput'
  json: string
  id: string
  what: string
  /** Whether it may finish the run (a FAILED or CANCELLED stage, the last stage COMPLETED, `/complete`). */
  finishing: boolean
}

/**
 * What happened to a run finished by someone else, and the likely cause, from the run as stored:
 * the sweeper's reason, a cancel, a finish before this client's first update was sent (a reused
 * run id), or a finish while this client's updates waited in the outbox.
 * `finishedBeforeFirstUpdate`: the server's first answer to this client's requests for the run
 * already showed it finished, and none of them had gone unanswered or waited before (see
 * {@link RunFinishedObserver}). `waited`: that first answer was to updates that waited in the
 * outbox. That order is the server's: the run's `completedAt` (the server's clock) is never
 * compared with this client's clock, which may be off, and whose millisecond may be the cancel's.
 */
export function describeRunFinished(run: PipelineRunRecord, finishedBeforeFirstUpdate: boolean, waited = false): string {
  const reason = run.error ? ` (error: ${JSON.stringify(run.error)})` : ''
  const at = run.completedAt ? ` at ${run.completedAt}` : ''
  let cause: string
  if (finishedBeforeFirstUpdate) {
    cause = `it finished before this client's first update for it: the run id was most likely reused (an earlier run, or another runner, used "${run.id}"); give each run a new id`
  } else if (waited) {
    cause = "it ended while this client's updates for it waited in the outbox"
  } else if (run.status === 'FAILED' && run.error !== null && /^No (?:heartbeat|update) for /.test(run.error)) {
    cause = "the stale-run sweeper failed it because the runner was silent too long (a blocked event loop, the web app unreachable, or a heartbeat interval the server's staleAfterMs does not allow)"
  } else if (run.status === 'CANCELLED') {
    cause = 'the web app cancelled it (POST /cancel), or another runner reporting under the same run id cancelled a stage'
  } else {
    cause = `another party ${run.status === 'COMPLETED' ? 'completed' : 'failed'} it: a /complete call or a stage update not sent by this client (another runner using the same run id, or an earlier run with it)`
  }
  return `Run ${run.id} was ${run.status}${reason} on the server${at}, not by this client: ${cause}`
}

/** Tells the runner, once per run, that its run was finished by someone else. */
export class RunFinishedObserver {
  readonly #logger: Logger
  readonly #onRunFinished: ((event: RunFinishedEvent) => void) | undefined
  /** Reads the run (`GET /status`, one attempt): the answer's text. */
  readonly #readStatus: (runId: string) => Promise<string>
  /** Called when a run is learned finished elsewhere (the heartbeat stops). */
  readonly #onFinished: (runId: string) => void
  /**
   * Per run: finished by this client's own update (no event), or the event that was emitted; for
   * the most recent `RECENT_RUNS` runs learned finished (each event holds the run as stored).
   */
  readonly #finished = recentRuns<RunFinishedEvent | 'self'>()
  /** Per run, who waits to hear that it was finished elsewhere (`runPipeline`). */
  readonly #listeners = new ListenersByKey<(event: RunFinishedEvent) => void>()
  /** Per run, who waits to hear that it was deleted on the server while it ran (`runPipeline`). */
  readonly #deletedListeners = new ListenersByKey<() => void>()
  /**
   * The runs the server has shown this client unfinished, in an answer to one of its requests or
   * a read. A run first learned finished from an answer to this client's own update or heartbeat,
   * and never shown unfinished before, had finished before this client's first update reached the
   * server (a client's updates for a run reach the server in the order sent): a reused run id;
   * unless one of this client's requests for it had gone unanswered or waited in the outbox
   * before ({@link noteWaited}): the run may have ended after that one was sent. The most recent
   * `RECENT_RUNS` runs shown open only.
   */
  readonly #seenOpen = recentRuns<true>()
  /**
   * The runs one of this client's requests for was sent or queued without an answer showing the
   * run; the most recent `RECENT_RUNS` only (a run forgotten here reads as one that never waited).
   */
  readonly #waited = recentRuns<true>()
  /** How many of the run's updates wait in the outbox (0 without one). */
  readonly #pendingInOutbox: (runId: string) => number
  /** Per run, how many of this client's own updates that may finish it are being delivered. */
  readonly #finishing = new Map<string, number>()

  constructor(options: {
    logger: Logger
    onRunFinished: ((event: RunFinishedEvent) => void) | undefined
    readStatus: (runId: string) => Promise<string>
    onFinished: (runId: string) => void
    pendingInOutbox?: (runId: string) => number
  }) {
    this.#pendingInOutbox = options.pendingInOutbox ?? (() => 0)
    this.#logger = options.logger
    this.#onRunFinished = options.onRunFinished
    this.#readStatus = options.readStatus
    this.#onFinished = options.onFinished
  }

  /**
   * Notes one of this client's updates that may finish the run while it is delivered; returns
   * its end. Meanwhile a finished run seen on the run stream may be that update's doing: its
   * answer decides instead ({@link ownFinishPending}).
   */
  finishingUpdate(runId: string): () => void {
    this.#finishing.set(runId, (this.#finishing.get(runId) ?? 0) + 1)
    let ended = false
    return () => {
      if (ended) return
      ended = true
      const left = (this.#finishing.get(runId) ?? 1) - 1
      if (left > 0) this.#finishing.set(runId, left)
      else this.#finishing.delete(runId)
    }
  }

  /**
   * One of this client's requests for the run was sent or queued and got no answer showing the
   * run: a finish learned later may have come after it, so it is no sign of a reused run id.
   */
  noteWaited(runId: string): void {
    this.#waited.set(runId, true)
  }

  /** Whether one of this client's own updates that may finish the run is being delivered. */
  ownFinishPending(runId: string): boolean {
    return this.#finishing.has(runId)
  }

  /** The event, when the run was finished by someone else and this client learned it. */
  runFinished(runId: string): RunFinishedEvent | undefined {
    const finished = this.#finished.get(runId)
    return finished === 'self' ? undefined : finished
  }

  /** Listens for the run being finished elsewhere; returns the unsubscribe. */
  listen(runId: string, listener: (event: RunFinishedEvent) => void): () => void {
    return this.#listeners.add(runId, listener)
  }

  /** Listens for the run being deleted on the server while it runs ({@link deleted}); returns the unsubscribe. */
  listenDeleted(runId: string, listener: () => void): () => void {
    return this.#deletedListeners.add(runId, listener)
  }

  /**
   * The run's live stream said the run was deleted (`: closed deleted <runId>`): no run is left to
   * finish, so this is not `onRunFinished` (no status, no stored run); the heartbeat and the stream
   * stop, `runPipeline` is told (it aborts the running stage and sends nothing more), and it is
   * logged here, once per deletion, at warn with the cause.
   */
  deleted(runId: string): void {
    this.#logger.warn(
      `Run ${runId} was deleted on the server while it ran (its live stream ended with ': closed deleted ${runId}': the app deleted it, or someone by hand): ` +
        'the running stage is aborted, no further stage starts and nothing more is sent for the run (its updates would be answered 404 run_not_found)',
      { runId, cause: 'deleted' },
    )
    this.#onFinished(runId)
    for (const listener of this.#deletedListeners.of(runId)) {
      try {
        listener()
      } catch (error) {
        this.#logger.error(`Run ${runId}: a run-deleted listener threw: ${failureReason(error)}`, { runId })
      }
    }
  }

  /**
   * Reads the run out of an answer; emits `onRunFinished` the first time an answer shows it
   * finished by someone else. `self`: the answer is to this client's own finishing update.
   */
  observe(runId: string, run: PipelineRunRecord, learnedFrom: RunFinishedEvent['learnedFrom'], self: boolean): RunFinishedEvent | undefined {
    const status = run.status
    if (!isFinalStatus(status)) {
      this.#seenOpen.set(runId, true)
      return undefined
    }
    const known = this.#finished.get(runId)
    if (known !== undefined) return known === 'self' ? undefined : known
    if (self) {
      this.#finished.set(runId, 'self')
      return undefined
    }
    const event: RunFinishedEvent = { runId, status, reason: run.error, run, learnedFrom }
    this.#finished.set(runId, event)
    this.#onFinished(runId)
    const ownRequest = learnedFrom !== 'status' && learnedFrom !== 'stream' && !this.#seenOpen.has(runId)
    const waited = ownRequest && this.#waited.has(runId)
    // It ended while this client's updates waited in the outbox: the outbox's warning says so,
    // once; this line is the record of who ended it. A status read is how a reader learns
    // anything: no warning for it either.
    const quiet = learnedFrom === 'status' || (waited && this.#pendingInOutbox(runId) > 0)
    const log = quiet ? this.#logger.info?.bind(this.#logger) : this.#logger.warn.bind(this.#logger)
    log?.(describeRunFinished(run, ownRequest && !waited, waited && quiet), { runId, status, reason: run.error })
    for (const listener of [this.#onRunFinished, ...this.#listeners.of(runId)]) {
      try {
        listener?.(event)
      } catch (error) {
        this.#logger.error(`Run ${runId}: an onRunFinished listener threw: ${failureReason(error)}`, { runId })
      }
    }
    return event
  }

  /**
   * Learns from a delivered update's answer: `finished` when it is `stale` to a run finished
   * elsewhere (refused); `conflict` when the stage was already final with another output (logged
   * as a warning here, for a first send and a redelivery alike).
   */
  learnFromAnswer(update: AnsweredUpdate, text: string): { finished?: RunFinishedEvent; conflict?: StageConflictAnswer } {
    const answer = safeJson(text)
    const conflict = update.route === 'stageUpdate' ? conflictOf(answer, update.json) : undefined
    if (conflict) {
      this.#logger.warn(
        `Run ${update.runId}: ${update.what}: the server already had stage ${conflict.stageNumber} ${conflict.status} ` +
          `with another output and kept it (outcome "conflict"); this output was not stored. ${CONFLICT_CAUSE_AND_FIX}`,
        { runId: update.runId, stageNumber: conflict.stageNumber, status: conflict.status, outcome: 'conflict', idempotencyKey: update.id },
      )
    }
    const learned = conflict ? { conflict } : {}
    // Only a finished run teaches anything, so the answers to a running run's updates (almost
    // every answer) are not validated: that would cost more than the rest of the client's work.
    const status = runStatusOf(answer)
    if (status === undefined) return learned
    if (!isFinalStatus(status as RunStatus)) {
      this.#seenOpen.set(update.runId, true)
      return learned
    }
    if (update.route === 'complete') {
      const parsed = CompleteRunResponse.safeParse(answer)
      if (parsed.success) this.observe(update.runId, parsed.data.run, 'completion', true)
      return learned
    }
    const parsed = StageUpdateResponse.safeParse(answer)
    if (!parsed.success) return learned
    const { outcome, run } = parsed.data
    const event = this.observe(update.runId, run, 'stage-update', update.finishing && outcome !== 'stale')
    return outcome === 'stale' && event ? { ...learned, finished: event } : learned
  }

  /**
   * A 409 `run_finished` or `stage_finished`: the run as the problem carries it, or else as
   * `GET /status` reads it. Resolves the event when the run was finished by someone else.
   */
  async learnFromRefusal(runId: string, error: unknown): Promise<RunFinishedEvent | undefined> {
    // `stage_finished` too: a stage the runner still runs was finished by a cancel or the sweeper.
    if (!isRunEndedRefusal(error)) return undefined
    const known = this.#finished.get(runId)
    if (known !== undefined) return known === 'self' ? undefined : known
    // A refusal is never this client's update finishing the run: the run ended elsewhere.
    const carried = PipelineRunRecord.safeParse((error.problem as { run?: unknown }).run)
    if (carried.success) return this.observe(runId, carried.data, 'refusal', false)
    try {
      const status = RunStatusResponse.safeParse(safeJson(await this.#readStatus(runId)))
      return status.success ? this.observe(runId, status.data.run, 'refusal', false) : undefined
    } catch {
      return undefined
    }
  }
}

/** A 409 `run_finished` or `stage_finished`: the run (or the stage) was finished, by a cancel, the sweeper or a completion. */
function isRunEndedRefusal(error: unknown): error is StatusHttpError {
  return isStatusHttpError(error) && error.status === 409 && (error.problem?.code === 'run_finished' || error.problem?.code === 'stage_finished')
}

/** `JSON.parse`, `undefined` for a text that is not JSON. */
export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** `answer.run.status` when the answer has one, without validating the rest of it. */
function runStatusOf(answer: unknown): string | undefined {
  if (typeof answer !== 'object' || answer === null) return undefined
  const run = (answer as { run?: unknown }).run
  if (typeof run !== 'object' || run === null) return undefined
  const status = (run as { status?: unknown }).status
  return typeof status === 'string' ? status : undefined
}

/**
 * The stored stage of a `conflict` answer, without validating the rest of it, with the output
 * the update sent (read back from its JSON body: only on a conflict, which is rare).
 */
function conflictOf(answer: unknown, sentJson: string): StageConflictAnswer | undefined {
  if (typeof answer !== 'object' || answer === null || (answer as { outcome?: unknown }).outcome !== 'conflict') return undefined
  const stage = (answer as { stage?: { stageNumber?: unknown; status?: unknown; output?: unknown } | null }).stage
  if (typeof stage?.stageNumber !== 'number' || typeof stage.status !== 'string' || !isFinalStatus(stage.status as RunStatus)) return undefined
  const sent = safeJson(sentJson) as { output?: unknown } | undefined
  return {
    stageNumber: stage.stageNumber,
    status: stage.status as FinalStatus,
    sentOutput: typeof sent?.output === 'string' ? sent.output : null,
    storedOutput: typeof stage.output === 'string' ? stage.output : null,
  }
}
