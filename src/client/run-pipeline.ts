import type { CompleteRunResponse } from '../contract/records.js'
import type { FinalStatus, StageStatus, StageUpdateStatus } from '../contract/status.js'
import { forwardAbort } from './forward-abort.js'
import { abortMessage, untilAborted } from './stage-abort.js'
import { clientInternals } from './client-internals.js'
import type { UpdateOutcome } from './delivery.js'
import type { StageAttemptFields } from './stage-output.js'
import { CatalogueMismatchError, ConfigurationError, RunDeletedError, RunFinishedError, isRunFinishedError } from './errors.js'
import { failureReason } from './failure-reason.js'
import type { PrismaAPIClient } from './prisma-api-client.js'
import type { ProgressReport } from './progress.js'
import type { RunFinishedEvent } from './run-finished.js'
import type { RunStreamHold } from './run-end-watch.js'
import { startingCatalogue } from './starting-catalogue.js'
import {
  type PipelineSummary,
  type StageConflict,
  type StageSummary,
  UndeliveredLog,
  allDelivered,
  describeAlteration,
  outputPreview,
  undeliveredLetter,
} from './pipeline-summary.js'
import type { OutputAlteration } from './stage-output.js'
import { saveOutput } from './debug-output.js'
import { resumedOutput } from './restart-attempts.js'
import { TRUNCATION_MARKER } from './stage-output.js'
import { type StageRetryOptions, resolveStageEntries, runStageAttempts } from './stage-retry.js'
import { StageOutputs } from './output-writer.js'

export type { PipelineSummary, StageConflict, StageSummary } from './pipeline-summary.js'
export type { StageRetryOptions } from './stage-retry.js'

/** What a stage function gets. */
export interface StageContext {
  /** The run being executed. */
  readonly runId: string
  /** 1-based. */
  readonly stageNumber: number
  /** The name from the client's catalogue. */
  readonly stageName: string
  /** The attempt running: 1 for the first, 2 for the first retry, ... (see {@link StageRetryOptions}). */
  readonly attempt: number
  /**
   * The outputs of the stages before this one, in order (`previousOutputs[0]` is stage 1's): what
   * each stage function returned. A stage skipped because an earlier process of the run had
   * completed it (a restarted runner, see {@link runPipeline}) did not return anything here: its
   * entry is read back from the output the server stored (or that the earlier process's pending
   * `COMPLETED` in the outbox carries), the text sent for it, as follows. Text that is the JSON of
   * an object or an array is parsed (what a stage returning an object or an array sent); any
   * other text is that string (what a stage returning a string sent; a stage that returned a
   * number, a boolean or `null` gets its JSON text back, `'42'`, and one that returned a string
   * holding the JSON of an object gets the object); no stored output (the stage returned
   * `undefined`) is `undefined`, except that one which streamed text with `write` and returned
   * `undefined` gets that text (the server keeps it as the stage's output). Values JSON does not keep come back as JSON made them (a `Date`
   * as its ISO string, a `BigInt` as its decimal string, a `Map` as `{}`, an `undefined` property
   * left out). An output the client had to change to send it comes back changed: cut to the
   * server's body limit (it ends with `TRUNCATION_MARKER`, is not parsed, and `warnings` says
   * so), characters PostgreSQL cannot store replaced with U+FFFD, or the placeholder of an output
   * JSON cannot hold.
   */
  readonly previousOutputs: readonly unknown[]
  /**
   * Aborted when the pipeline is cancelled (`options.signal`) or when the client learns that the
   * run was finished by someone else (cancelled by the web app, failed by the stale-run sweeper,
   * completed elsewhere), within a second while the client follows the run's live stream
   * (`followRunStream`, the default; else within one heartbeat interval); its `reason` is then a
   * `RunFinishedError`. Also aborted, with a `RunDeletedError`, when the run is deleted on the
   * server while it runs (the live stream's `: closed deleted`). Shared by the stage's attempts. Pass it on to long work (fetch, child processes).
   */
  readonly signal: AbortSignal
  /**
   * Reports progress within this stage (`{ current?, total?, percent?, message? }`); see
   * {@link PrismaAPIClient.reportProgress}. Never throws nor rejects: resolves `false` when the
   * report was refused or not delivered. Need not be awaited.
   */
  reportProgress(progress: ProgressReport): Promise<boolean>
  /**
   * Appends text to this stage's streamed output, which the web app's page shows growing
   * (`client.streamStageOutput`): never blocks nor throws, batched (250 ms or 16 KiB) and sent in
   * order with the stage's updates; flushed before the stage's final status, which then replaces
   * it with the returned output. Each attempt starts a new text. After a 409 or 413 it stops
   * with one warning (also in the summary's `warnings`) and drops later text.
   */
  write(text: string): void
}

/** One stage: does its work and returns its output (sent as the stage's output). */
export type StageFunction = (context: StageContext) => unknown

/** A stage with its own retry options, which replace the pipeline's `retry` field by field. */
export interface StageWithRetry {
  /** The stage's work. */
  run: StageFunction
  /** How this stage is retried; see {@link StageRetryOptions}. */
  retry?: StageRetryOptions | undefined
}

/** A stage of {@link RunPipelineOptions.stages}: its function, or `{ run, retry }`. */
export type StageEntry = StageFunction | StageWithRetry

/** A step of the pipeline, for progress displays. */
export type PipelineProgressEvent =
  | { type: 'stage-started'; runId: string; stageNumber: number; stageName: string }
  /**
   * The stage was not run because an earlier process of this run completed it (a restarted
   * runner, see {@link runPipeline}): `from: 'server'` when the server holds it COMPLETED,
   * `'outbox'` when that process's last update of it, still waiting in the outbox, is its
   * COMPLETED. Nothing is reported for it; the later stages get its output as stored
   * ({@link StageContext.previousOutputs}). Comes instead of `stage-started` and `stage-finished`.
   */
  | { type: 'stage-skipped'; runId: string; stageNumber: number; stageName: string; reason: 'already-completed'; from: 'server' | 'outbox' }
  /** Attempt `attempt - 1` failed and attempt `attempt` follows at `nextRetryAt` (reported to the server too). */
  | { type: 'stage-retrying'; runId: string; stageNumber: number; stageName: string; attempt: number; maxAttempts: number; error: string; nextRetryAt: string }
  | { type: 'stage-finished'; runId: string; stageNumber: number; stageName: string; status: FinalStatus; durationMs: number; error?: string }
  | { type: 'run-finished'; runId: string; status: FinalStatus; durationMs: number; error?: string }
  /** The client learned that the run was finished by someone else; the running stage is aborted. */
  | { type: 'run-finished-elsewhere'; runId: string; status: FinalStatus; reason: string | null }

/**
 * Options of {@link runPipeline}.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient, runPipeline } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient()
 * const summary = await runPipeline({
 *   runId: 'run_1',
 *   client,
 *   // One function per stage of the catalogue (DEFAULT_STAGES: five), in order.
 *   stages: [
 *     async () => ({ signals: 3 }),
 *     async ({ previousOutputs }) => previousOutputs[0],
 *     async () => ({ themes: ['pricing'] }),
 *     async () => '## Findings',
 *     async ({ previousOutputs }) => ({ stagesBefore: previousOutputs.length }),
 *   ],
 *   debugDir: './debug',
 * })
 * ```
 */
export interface RunPipelineOptions {
  /**
   * The `PipelineRun.id`, created beforehand by the web app (or `client.createRun`). With
   * `pipeline`, the run is created here (idempotent: an existing run is taken as it is), and a
   * random UUID is its id when this is absent; without `pipeline` it is required.
   */
  runId?: string | undefined
  /**
   * Creates (or takes) the run in this pipeline first (`client.createRun({ id: runId, pipeline,
   * tags, metadata })`), then checks the stage functions against that run's own catalogue and
   * names the stages from it. A run that exists in another pipeline, or whose catalogue has
   * another number of stages, is a {@link CatalogueMismatchError} naming the pipeline.
   * @default none: the run must exist; it is checked against its own catalogue all the same
   */
  pipeline?: string | undefined
  /** With `pipeline`: the new run's tags (see `CreateRunOptions`). */
  tags?: readonly string[] | undefined
  /** With `pipeline`: the new run's metadata (see `CreateRunOptions`). */
  metadata?: Readonly<Record<string, unknown>> | undefined
  /** Reports every stage change. Its `stages` catalogue names the stages. */
  client: PrismaAPIClient
  /**
   * The stages in order, stage 1 first: each a function, or `{ run, retry }` with its own retry
   * options. At most as many as the client's catalogue has, and exactly as many as the server's
   * (checked at start, see {@link runPipeline}).
   */
  stages: readonly StageEntry[]
  /**
   * How stages are retried, for every stage without its own `retry`: `attempts` in all (default
   * 1: no retry), the wait `backoffMs` between them (default: full-jitter exponential backoff,
   * 1 s to 30 s), and `retryIf` (default: everything but an abort). After attempt k fails and
   * will be retried, the stage is reported PROCESSING with `attempt: k + 1`, `maxAttempts`,
   * `lastError` (attempt k's message, at most 2,000 characters) and `nextRetryAt`; when attempt
   * k + 1 starts, PROCESSING with `attempt: k + 1` and `nextRetryAt: null`. The wait ends at once
   * when the stage's `signal` aborts. Only the last failure fails the stage (and the run).
   * @default { attempts: 1 }
   */
  retry?: StageRetryOptions | undefined
  /** Cancels the run: the current stage is marked CANCELLED and the rest are not started. */
  signal?: AbortSignal | undefined
  /** When set, each stage's output is saved as `<debugDir>/<runId>/stage_<N>_output.json`. */
  debugDir?: string | undefined
  /** Called on each step, e.g. to print progress. Exceptions it throws are ignored. */
  onProgress?: ((event: PipelineProgressEvent) => void) | undefined
  /**
   * Whether to end the run with `POST /complete` (status, completedAt, duration in seconds,
   * error, plus `results`). The server also finishes the run by itself from the stages; the
   * explicit call is what hands the results to the app's `onRunCompleted` hook.
   * @default true
   */
  complete?: boolean | undefined
  /** App-specific fields for the `/complete` body, e.g. `{ opportunities, fullReportMarkdown }`. */
  results?: ((outputs: readonly unknown[], status: FinalStatus) => Record<string, unknown>) | undefined
}


/**
 * Runs a pipeline and reports it, like the original runner's `execute_pipeline_background`:
 * initialises the run (stage 1 PROCESSING), then for each stage marks it PROCESSING, runs it,
 * saves its output under `debugDir` when set, and marks it COMPLETED with that output. A stage
 * that throws is marked FAILED and the run stops; an abort marks the current stage CANCELLED and
 * stops. Finally `POST /complete` with the outcome (unless `complete: false`).
 *
 * Runner control (docs/contract.md "Runner control"):
 * - With `pipeline`, it first creates the run in that pipeline (`client.createRun`, idempotent;
 *   a failure to create it throws the client's typed errors).
 * - At start it reads the run's own stage catalogue (from the client's `createRun` answer for
 *   this run, else `GET /status`) and refuses to start with a {@link CatalogueMismatchError}
 *   (naming the pipeline) when the number of stage functions differs from it, or when the run
 *   is in another pipeline than `pipeline`. A run of a pipeline other than `default` names its
 *   stages from that catalogue, not from the client's `stages`. When the server cannot be read (or is
 *   older and sends no catalogue), it starts anyway and says so in `warnings`.
 * - A restarted runner (the same `runId` again, after a crash or a deploy; with the same outbox
 *   directory when it has one) resumes the run (docs/llm-pipelines.md "Restarting a runner"):
 *   from the run read at start (`GET /status`) and the earlier process's updates still in the
 *   outbox, a stage the server holds COMPLETED, or whose last pending update is its COMPLETED (one
 *   the outbox has not dead-lettered by then: that one never reaches the server), is not run again: nothing is sent for it, `onProgress` gets `stage-skipped`, its summary entry
 *   has `skipped: 'already-completed'`, and the later stages, `outputs`, `results` and the
 *   `/complete` get its output as stored ({@link StageContext.previousOutputs} says how it is read
 *   back). A stage left PROCESSING runs again as the next attempt (its streamed text restarts).
 *   A run the server holds COMPLETED because its last stage completed it, with every stage
 *   COMPLETED and no `/complete` received yet (an earlier process died after its last stage's
 *   COMPLETED was delivered and before its `/complete`), is resumed like any other: every stage is
 *   skipped, then the `/complete` (with `results(outputs)`) is sent, which the server takes as
 *   that run's first (`applied`: the app's `onRunCompleted` hook gets the results, once), and the
 *   summary says COMPLETED. Any other run already finished on the server (FAILED, CANCELLED,
 *   completed by a `/complete` it received) is not resumed (`finishedElsewhere`), nor is one
 *   whose earlier process's updates still in the outbox hold a stage's FAILED or CANCELLED or its
 *   `/complete` (delivered first, they end the run; one the outbox has dead-lettered by then never
 *   reaches the server and ends nothing): nothing runs, nothing is sent, the summary
 *   has that outcome (`finishedElsewhere.learnedFrom: 'outbox'`) and a warning naming them, the
 *   same whether their redelivery landed before the start-of-run read or not.
 * - While a stage runs, the client sends heartbeats (its `heartbeatIntervalMs`) and the stage may
 *   call `reportProgress`.
 * - When an answer shows the run finished by someone else (cancelled, failed by the stale-run
 *   sweeper, completed elsewhere), the running stage's `signal` is aborted, no further stage
 *   starts, nothing more is sent for the run, and the summary carries the run's stored status
 *   and reason (`finishedElsewhere`). With heartbeats this is learned within one interval.
 *   Updates already waiting in the outbox are still delivered in order; those the server refuses
 *   because the run ended are settled as superseded, not undelivered (docs/operations.md).
 * - When the run is deleted on the server while it runs (the app deleted it; learned from the live
 *   stream's `: closed deleted`, so only with `followRunStream`), the same: the running stage's
 *   `signal` is aborted (a `RunDeletedError`), no further stage starts, nothing more is sent (no
 *   stage update, no `/complete`: each would be answered 404), one warning says so, and the summary
 *   says `status: 'CANCELLED'`, `deleted: true`, with the error naming the deletion.
 * - It does not wait for a stage that ignores its `signal`: once the run ended elsewhere (or
 *   `options.signal` aborted), it resolves the summary at once, while such a stage function keeps
 *   running in the background and its result is ignored. Make long stages cooperative: pass
 *   `signal` on to `fetch` and child processes, call `signal.throwIfAborted()` between batches,
 *   or stop a worker from `signal.addEventListener('abort', ...)`.
 * - A progress report the contract refuses (`percent` over 100, ...) is the stage's mistake, not
 *   an undelivered update: it is listed in `warnings` and leaves `delivered` unchanged.
 *
 * It never throws for a failed stage or a failed report: the outcome is in the summary. It
 * throws {@link ConfigurationError} for a wrong number of stage functions and, before anything is
 * sent, for a stage entry that is not a function or `{ run, retry }` with `run` a function and
 * valid retry options (the message names the entry, `stages[1] (stage 2)`, and what is wrong);
 * and {@link CatalogueMismatchError}.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient, runPipeline } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient()
 * await client.createRun('run_1')
 * // Exactly as many functions as the server's catalogue has stages (five by default).
 * const stages = [1, 2, 3, 4, 5].map((n) => () => `stage ${n} done`)
 * const summary = await runPipeline({ runId: 'run_1', client, stages })
 * console.log(summary.status) // 'COMPLETED'
 * ```
 */
export async function runPipeline(options: RunPipelineOptions): Promise<PipelineSummary> {
  const { client, stages, signal } = options
  if (!Array.isArray(stages) || stages.length === 0) throw new ConfigurationError('runPipeline needs `stages`: an array of at least one stage function or { run, retry }')
  const internals = clientInternals(client)
  // Checked before anything is sent: a wrong entry or option is the caller's mistake, not a failed stage.
  let backoffWarning = (_message: string): void => {}
  const entries = resolveStageEntries<StageFunction>(stages, options.retry, (message) => backoffWarning(message))
  const { runId, runCatalogue, processing, completed, ended, warnings } = await startingCatalogue(internals, {
    runId: options.runId,
    pipeline: options.pipeline,
    stageCount: stages.length,
    create: (pipeline) => client.createRun({ id: options.runId, pipeline, tags: options.tags, metadata: options.metadata }),
  })
  // The run's own catalogue names the stages of a pipeline; the client's names those of `default`.
  const catalogue = runCatalogue ?? client.stages
  if (stages.length > catalogue.length) {
    throw new ConfigurationError(`runPipeline needs 1..${catalogue.length} stage functions (the catalogue's size), got ${stages.length}`)
  }
  backoffWarning = (message) => {
    warnings.push(message)
    internals.logger.warn(`Run ${runId}: ${message}`, { runId })
  }
  const progress = (event: PipelineProgressEvent) => {
    try {
      options.onProgress?.(event)
    } catch {
      // A broken progress display must not break the pipeline.
    }
  }
  const started = performance.now()
  const summaries: StageSummary[] = stages.map((_, index) => ({
    stageNumber: index + 1,
    stageName: catalogue[index]?.name ?? `Stage ${index + 1}`,
    status: 'PENDING',
    durationMs: undefined,
    reported: true,
  }))
  const outputs: unknown[] = []
  const alteredOutputs: OutputAlteration[] = []
  const conflicts: StageConflict[] = []
  let status: FinalStatus = 'COMPLETED'
  let error: string | undefined
  // The run finished by someone else: set by the client's answers, at any moment.
  /**
   * Updates not delivered, kept as the summary says them (in memory bounded by the catalogue, not
   * by how many reports the run sends: `UndeliveredLog`); one warning per cause at the end, and
   * `delivered` by one rule (`allDelivered`). An update queued in the outbox is not in it: the outbox may still deliver it,
   * so it is judged when the run ends (what the outbox still holds then, and what it dead-lettered
   * meanwhile: every kind of update, a progress report and an output chunk too), in one place below.
   */
  const undelivered = new UndeliveredLog()
  /** Per stage, its progress reports refused as invalid: one warning, its place in `warnings`, rewritten with their count. */
  const invalidProgress = new Map<number, { index: number; count: number; first: string }>()
  const noteInvalidProgress = (stageNumber: number, reason: string) => {
    const known = invalidProgress.get(stageNumber)
    if (!known) {
      invalidProgress.set(stageNumber, { index: warnings.length, count: 1, first: reason })
      warnings.push(`Stage ${stageNumber} progress report refused as invalid: ${reason}`)
      return
    }
    known.count++
    warnings[known.index] = `Stage ${stageNumber} progress report refused as invalid ×${known.count}, the first: ${known.first}`
  }
  const unsubscribeDeadLetters = internals.onQueuedDeadLetter(runId, (letter) => undelivered.add(undeliveredLetter(letter, false)))
  /**
   * What this run relied on of the updates an earlier process left pending in the outbox: the
   * stages it skipped because of a pending COMPLETED, and the run end it was not resumed for.
   * Such an update the outbox dead-letters counts against `delivered` (pipeline-summary.ts).
   */
  const skippedFromOutbox = new Set<number>()
  let endedByOutbox = false
  let elsewhere: RunFinishedEvent | undefined = internals.runFinished(runId)
  // An earlier process's FAILED/CANCELLED stage update or /complete still waiting in the outbox is
  // delivered before anything of this process's: the run is already ended by it (restart-attempts.ts).
  if (elsewhere === undefined && ended) {
    elsewhere = ended.event
    endedByOutbox = true
    const message =
      `An earlier process of this run left ${ended.updates.join(' and ')} waiting in the outbox ${internals.outboxDir ?? ''}; ` +
      `${ended.updates.length === 1 ? 'it is' : 'they are'} delivered first, so this run is not resumed`
    warnings.push(message)
    internals.logger.warn(`Run ${runId}: ${message}`, { runId })
  }
  let stageController: AbortController | undefined
  const unsubscribe = internals.onRunFinished(runId, (event) => {
    elsewhere = event
    progress({ type: 'run-finished-elsewhere', runId, status: event.status, reason: event.reason })
    stageController?.abort(new RunFinishedError(runId, event.status, event.reason))
  })
  // The run deleted on the server while it runs (its stream's `: closed deleted`): the run is gone,
  // so, as for a run finished elsewhere, the stage is aborted, no further stage starts and nothing
  // more is sent (every update, the completion too, would be answered 404 run_not_found).
  let deleted: RunDeletedError | undefined
  const unsubscribeDeleted = internals.onRunDeleted(runId, () => {
    deleted = new RunDeletedError(runId)
    stageController?.abort(deleted)
  })
  /** Whether the run is over for this runner: finished elsewhere or deleted. */
  const gone = (): boolean => elsewhere !== undefined || deleted !== undefined
  /** Sends one stage update; true when delivered or queued; notes what went wrong. */
  const report = async (stageNumber: number, stageStatus: StageUpdateStatus, output?: unknown, attempt?: StageAttemptFields): Promise<boolean> => {
    const outcome: UpdateOutcome = await internals.stageUpdate(runId, stageNumber, stageStatus, output, catalogue, attempt)
    for (const alteration of outcome.alterations) {
      alteredOutputs.push(alteration)
      warnings.push(describeAlteration(alteration))
    }
    if (outcome.conflict) {
      conflicts.push({
        stageNumber,
        status: outcome.conflict.status,
        sentOutput: outputPreview(outcome.conflict.sentOutput),
        storedOutput: outputPreview(outcome.conflict.storedOutput),
      })
      warnings.push(
        `Stage ${stageNumber} ${stageStatus}: the server already had it ${outcome.conflict.status} with another output and kept that one (outcome "conflict"); this output was not stored`,
      )
    }
    if (outcome.state !== 'delivered' && outcome.state !== 'queued') {
      undelivered.add({ subject: { kind: 'status', stageNumber: String(stageNumber), status: stageStatus }, state: outcome.state, reason: outcome.reason ?? 'unknown reason' })
    }
    return outcome.state === 'delivered' || outcome.state === 'queued'
  }

  try {
    // One stream per run, shared by its stages: a run ending elsewhere aborts the running stage within a second.
    const stream = elsewhere ? NO_STREAM : internals.holdRunStream(runId)
    try {
      for (const [index, { run: stageFunction, retry }] of entries.entries()) {
        const summary = summaries[index] as StageSummary
        const { stageNumber, stageName } = summary
        if (gone()) break
        // An earlier process of this run completed it (a restarted runner): not run again, nothing
        // is sent for it, and the later stages get its output as stored.
        const earlier = completed.get(stageNumber)
        if (earlier) {
          const output = resumedOutput(earlier.output)
          outputs.push(output)
          summary.status = 'COMPLETED'
          summary.skipped = 'already-completed'
          if (earlier.from === 'outbox') skippedFromOutbox.add(stageNumber)
          if (earlier.output?.endsWith(TRUNCATION_MARKER)) {
            warnings.push(
              `Stage ${stageNumber} was skipped as already completed; its stored output was cut to the server's body limit, so later stages get that text (ending with the truncation marker) in previousOutputs[${index}], not the value the stage returned`,
            )
          }
          progress({ type: 'stage-skipped', runId, stageNumber, stageName, reason: 'already-completed', from: earlier.from })
          continue
        }
        if (signal?.aborted) {
          summary.status = 'CANCELLED'
          summary.reported = await report(stageNumber, 'CANCELLED')
          status = 'CANCELLED'
          error = abortMessage(signal)
          break
        }
        // A stage an earlier process left PROCESSING (a runner restarted with the same runId) runs as a
        // new attempt on the server: its streamed output restarts at seq 0 instead of colliding with
        // the earlier process's chunks. `base` shifts every attempt number this process reports.
        const base = processing.get(stageNumber) ?? 0
        // Stage 1 PROCESSING is the run's initialisation. A stage that may retry says so from its first attempt.
        summary.reported = await report(
          stageNumber,
          'PROCESSING',
          undefined,
          retry.attempts > 1 || base > 0 ? { attempt: base + 1, maxAttempts: base + retry.attempts, nextRetryAt: null } : undefined,
        )
        // Its answer may be the first to show the run finished elsewhere: then the stage never starts.
        if (gone()) break
        progress({ type: 'stage-started', runId, stageNumber, stageName })
        const stageStarted = performance.now()
        const controller = new AbortController()
        stageController = controller
        const stopHeartbeat = internals.startHeartbeat(runId, stageNumber)
        const stopForwarding = forwardAbort(signal, controller)
        stream.arm()
        let output: unknown
        // Each attempt's streamed text is flushed before the stage's next report (a retry's or its final status).
        const streamed = new StageOutputs(stageNumber, () => internals.openOutputStream(runId, stageNumber), (message) => warnings.push(message))
        try {
          const context = (attempt: number): StageContext => ({
            runId,
            stageNumber,
            stageName,
            attempt,
            previousOutputs: outputs.slice(),
            signal: controller.signal,
            write: streamed.writer(),
            reportProgress: async (report) => {
              const outcome = await internals.reportProgress(runId, stageNumber, report, catalogue)
              // Invalid input is the stage's mistake, not an undelivered update: a warning, `delivered` unchanged.
              if (outcome.state === 'invalid') noteInvalidProgress(stageNumber, outcome.reason ?? 'unknown reason')
              else if (outcome.state === 'failed' || outcome.state === 'dead-lettered') {
                undelivered.add({ subject: { kind: 'progress', stageNumber: String(stageNumber) }, state: outcome.state, reason: outcome.reason ?? 'unknown reason' })
              }
              return outcome.state === 'delivered' || outcome.state === 'queued'
            },
          })
          output = await runStageAttempts(retry, controller.signal, {
            run: (attempt) => untilAborted(Promise.resolve().then(() => stageFunction(context(attempt))), controller.signal),
            retrying: async ({ attempt, maxAttempts, lastError, nextRetryAt }) => {
              await streamed.settle()
              summary.attempts = attempt
              progress({ type: 'stage-retrying', runId, stageNumber, stageName, attempt, maxAttempts, error: lastError, nextRetryAt: nextRetryAt.toISOString() })
              summary.reported =
                (await report(stageNumber, 'PROCESSING', undefined, { attempt: base + attempt, maxAttempts: base + maxAttempts, lastError, nextRetryAt: nextRetryAt.toISOString() })) &&
                summary.reported
            },
            starting: async (attempt) => {
              summary.reported = (await report(stageNumber, 'PROCESSING', undefined, { attempt: base + attempt, maxAttempts: base + retry.attempts, nextRetryAt: null })) && summary.reported
            },
          })
        } catch (thrown) {
          stream.disarm()
          summary.durationMs = performance.now() - stageStarted
          await streamed.settle(gone())
          stopHeartbeat()
          stopForwarding()
          if (gone()) {
            // The server already finished the run (and its PROCESSING stage), or deleted it: nothing to report.
            summary.status = 'CANCELLED'
          } else if (signal?.aborted) {
            summary.status = 'CANCELLED'
            status = 'CANCELLED'
            error = abortMessage(signal)
            summary.reported = (await report(stageNumber, 'CANCELLED')) && summary.reported
          } else {
            summary.status = 'FAILED'
            status = 'FAILED'
            error = thrown instanceof Error ? thrown.message : String(thrown)
            summary.error = error
            summary.reported = (await report(stageNumber, 'FAILED', error)) && summary.reported
          }
          progress({
            type: 'stage-finished',
            runId,
            stageNumber,
            stageName,
            status: summary.status,
            durationMs: summary.durationMs,
            ...(summary.error === undefined ? {} : { error: summary.error }),
          })
          break
        } finally {
          stageController = undefined
          // The runner's own final status follows: a finished run on the stream is no longer news.
          stream.disarm()
        }
        summary.durationMs = performance.now() - stageStarted
        await streamed.settle(gone())
        stopHeartbeat()
        stopForwarding()
        outputs.push(output)
        if (options.debugDir !== undefined) {
          try {
            await saveOutput(options.debugDir, runId, stageNumber, output)
          } catch (thrown) {
            warnings.push(`Stage ${stageNumber} output not saved: ${thrown instanceof Error ? thrown.message : String(thrown)}`)
          }
        }
        summary.status = 'COMPLETED'
        // A run deleted while the stage returned: its COMPLETED would be answered 404; nothing is sent.
        if (deleted === undefined) summary.reported = (await report(stageNumber, 'COMPLETED', output)) && summary.reported
        progress({ type: 'stage-finished', runId, stageNumber, stageName, status: 'COMPLETED', durationMs: summary.durationMs })
      }
    } finally {
      stream.release()
      unsubscribe()
      unsubscribeDeleted()
    }

    const finishedElsewhere = elsewhere as RunFinishedEvent | undefined
    const deletedRun = deleted as RunDeletedError | undefined
    if (finishedElsewhere) {
      status = finishedElsewhere.status
      error = finishedElsewhere.reason ?? `The run was ${finishedElsewhere.status} ${finishedElsewhere.learnedFrom === 'outbox' ? 'by an earlier process of this run' : 'by someone else'}`
    } else if (deletedRun) {
      // No stored status is left to take: CANCELLED, as the runner's own cancel would end it.
      status = 'CANCELLED'
      error = deletedRun.message
    }
    const durationMs = performance.now() - started
    // `delivered` is judged at the end, once the completion was sent.
    const result: PipelineSummary = { runId, status, stages: summaries, outputs, durationMs, warnings, delivered: false, alteredOutputs, conflicts }
    if (error !== undefined) result.error = error
    if (finishedElsewhere) result.finishedElsewhere = finishedElsewhere
    else if (deletedRun) result.deleted = true
    // A run finished elsewhere is not completed again: its status is the server's. A deleted run has none to complete.
    if ((options.complete ?? true) && !finishedElsewhere && !deletedRun) {
      try {
        const { response, duplicate } = await internals.completeRun(
          runId,
          {
            ...options.results?.(outputs, status),
            status,
            duration: durationMs / 1000,
            ...(error !== undefined ? { error } : {}),
          },
          "another party completed the run between this runner's start-of-run read and its /complete",
        )
        // Delivered, yet the app's hook ran with an earlier /complete's results, or maybe with these
        // (an attempt of this one went unanswered): never silent. The client logged it; the summary says it too.
        result.completion = { ok: true, response, ...(duplicate?.unansweredAttempt === undefined ? {} : { unansweredAttempt: duplicate.unansweredAttempt }) }
        if (duplicate) warnings.push(duplicate.warning)
      } catch (thrown) {
        result.completion = { ok: false, error: thrown }
        const elsewhereNow = isRunFinishedError(thrown) ? client.runFinished(runId) : undefined
        if (elsewhereNow) {
          // Refused because the run ended elsewhere first: superseded, not undelivered.
          result.finishedElsewhere = elsewhereNow
          result.status = elsewhereNow.status
          result.error = elsewhereNow.reason ?? `The run was ${elsewhereNow.status} by someone else`
          warnings.push(`The completion was superseded: ${(thrown as Error).message}`)
        } else {
          undelivered.add({ subject: { kind: 'completion' }, state: 'failed', reason: failureReason(thrown) })
        }
      }
    }
    // An earlier process's updates the outbox dead-lettered, before this run started or during it: named as that
    // process's, and held against `delivered` when this run relied on them.
    const reliance = { skipped: skippedFromOutbox, ended: endedByOutbox }
    for (const letter of internals.takeEarlierDeadLetters(runId)) undelivered.add(undeliveredLetter(letter, reliance))
    warnings.push(...undelivered.warnings())
    // The one judgement of queued updates (the completion's too): undelivered while they still wait.
    const queued = client.pendingCount(runId)
    if (queued > 0) {
      warnings.push(
        `${queued} update(s) of this run wait in the outbox ${internals.outboxDir ?? ''}; they are delivered in order once the server takes them ` +
          "(by this client's flush() or close(), or by the next process that opens that directory)",
      )
    }
    result.delivered = allDelivered(undelivered, queued)
    progress({ type: 'run-finished', runId, status: result.status, durationMs, ...(result.error !== undefined ? { error: result.error } : {}) })
    return result
  } finally {
    unsubscribeDeadLetters()
  }
}

/** No stream followed: a run already finished at start (an earlier process's pending updates end it). */
const NO_STREAM: RunStreamHold = { arm: () => {}, disarm: () => {}, release: () => {} }
