/**
 * The store-independent steps of every write: read the run (and the stage), ask the state
 * machine, persist exactly what it decided. Writes go through the store's write protocol, chosen
 * once per store (`core/store-writes.ts`): the optimistic one (read, decide, write if the run's
 * version is unchanged, else again) or the locking one; a completion with the app's
 * `onRunCompleted` hook, a store without the optimistic path, and a write that lost the race too
 * often lock the run in one transaction instead.
 */
import type { CompleteRun } from '../contract/complete.js'
import type { CancelRun, Heartbeat, HeartbeatOutcome, RunEndReason } from '../contract/runner-control.js'
import type { StageUpdate } from '../contract/stage-update.js'
import { DEFAULT_PIPELINE, type StageCatalogue } from '../contract/stages.js'
import type { FinalStatus } from '../contract/status.js'
import { catalogueOfRun, type Pipelines, pipelinesOf, stageNumberOutside, stageNumberRuleOf, unknownPipeline, withCatalogue } from './run-catalogue.js'
import { distinctTags } from './run-labels.js'
import { decideHeartbeat, decideStaleRun, staleRunCutoff } from './run-liveness.js'
import type { ClampedInstant } from './runner-instants.js'
import { decideProgress } from './stage-progress.js'
import { decideOutputChunk, type OutputChunkDecision, type OutputChunkRefusal, resetsStreamedOutput, showsStreamedOutput, withStreamedOutput } from './stage-output.js'
import type { StageOutputChunk } from '../contract/output-chunks.js'
import { type CompletionDecision, type StageDecision, decideCancel, decideCompletion, decideStageUpdate, newRun, runEndReason } from './state-machine.js'
import type { OnRunCompleted, OnRunEnded, RetentionPolicy } from '../core/hooks.js'
import type { RunSnapshot, RunState, StageState } from '../core/state.js'
import type { Store } from '../core/store.js'
import { type Attempt, type StageWriteOf, storedStagesOf, storeWrites, UNDER_LOCK } from '../core/store-writes.js'
import { isPositive } from '../internal/is-positive.js'

/**
 * A stage update refused before the state machine decides: the run has no catalogue of its own
 * and its pipeline is not configured (409 `unknown_pipeline`), or `stageNumber` is outside the
 * run's catalogue (400 naming `stageNumber`).
 */
export type StageRefusal = ReturnType<typeof unknownPipeline> | { outcome: 'invalid'; field: 'stageNumber'; message: string }

/** Result of a stage update: the state machine's decision, a refusal, or `not_found` for an unknown run. */
export type StageUpdateResult =
  | { outcome: 'applied'; stage: StageState; run: RunState; statusChanged: boolean; clamped?: ClampedInstant }
  | Exclude<StageDecision, { outcome: 'applied' }>
  | StageRefusal
  | { outcome: 'not_found' }

/** Result of a completion: the decision, or `not_found` for an unknown run. */
export type CompletionResult =
  | { outcome: 'applied'; run: RunState; statusChanged: boolean; clamped?: ClampedInstant }
  | { outcome: 'duplicate'; run: RunState }
  | Extract<CompletionDecision, { outcome: 'conflict' }>
  | { outcome: 'not_found' }

/** Options of {@link applyStageUpdate}. */
interface StageUpdateOptions<Tx> {
  /** The configured pipelines, for a run without a catalogue of its own (see `catalogueOfRun`). @default `stages` as `default` */
  pipelines?: Pipelines | undefined
  /** Without `pipelines`: the catalogue of the one pipeline `default`. @default DEFAULT_STAGES */
  stages?: StageCatalogue | undefined
  now: Date
  onRunEnded?: OnRunEnded<Tx> | undefined
  clockSkewToleranceMs?: number | undefined
  /** The report's `traceparent`, checked (`parseTraceparent`); see `StageUpdateInput.traceparent`. */
  traceparent?: string | undefined
}

/**
 * Applies one stage update. On a store with `readRunStage` and `writeRunStage`: reads the run and
 * the stage, decides, and writes both only if the run's version is still the one read; a lost
 * race reads and decides again, at most `OPTIMISTIC_ATTEMPTS` times, then the update runs
 * under the run's lock. Other stores run it in one transaction under the run's lock. Every rule
 * uses the run's own catalogue ({@link catalogueOfRun}); a run without one gets the current one
 * of its pipeline, stored by this write when it applies.
 */
export async function applyStageUpdate<Tx>(store: Store<Tx>, runId: string, update: StageUpdate, options: StageUpdateOptions<Tx>): Promise<StageUpdateResult> {
  const { onRunEnded } = options
  const attempt = await storeWrites(store).onRunStage(runId, update.stageNumber, (read): Attempt<StageUpdateResult, StageDecisionWrite> => {
    const decision = decideOnRunCatalogue(read.run, read.stage, update, options)
    if (decision.outcome !== 'applied') return { done: decision }
    // The write that ends the run holds the app's hook, so it needs the transaction.
    if (onRunEnded && runEndReason(read.run, decision.run, 'stage')) return UNDER_LOCK
    return { write: decision, result: applied(decision) }
  })
  if (attempt) return attempt.found ? attempt.result : { outcome: 'not_found' }
  return store.transaction(async (tx) => {
    const run = await tx.lockRun(runId)
    if (!run) return { outcome: 'not_found' }
    const stage = await tx.getStage(runId, update.stageNumber)
    const decision = decideOnRunCatalogue(run, stage, update, options)
    if (decision.outcome !== 'applied') return decision
    await tx.saveStage(runId, decision.stage)
    if (resetsStreamedOutput(stage, decision.stage)) await tx.deleteOutputChunks?.(runId, update.stageNumber)
    await tx.saveRun(decision.run)
    await runEnded(tx.client, run, decision.run, 'stage', onRunEnded)
    return applied(decision)
  })
}

/**
 * `stage`, as a write stored it, as `GET /status` shows it ({@link withStreamedOutput}): a stage
 * that shows its streamed text gets it as its `output`, read after the write (chunks 0 to its
 * `outputSeq`, `Store.getStreamedOutput`, else the stage of `Store.getRun`); any other stage is
 * returned as it is, without a read. What a stage update answers. Should a higher attempt of the
 * stage have reset its chunks between the write and this read, the text is the new attempt's.
 */
export async function stageAsShown<Tx>(store: Store<Tx>, runId: string, stage: StageState): Promise<StageState> {
  if (!showsStreamedOutput(stage) || stage.outputSeq == null) return stage
  const lastSeq = stage.outputSeq
  const text = store.getStreamedOutput
    ? await store.getStreamedOutput(runId, stage.stageNumber, lastSeq)
    : ((await store.getRun(runId))?.stages.find((stored) => stored.stageNumber === stage.stageNumber)?.output ?? '')
  return withStreamedOutput(stage, () => text)
}

/** Run `runId` as stored, by one read by primary key where the store has it (`readRun`), else `getRun`; `undefined` when there is none. */
async function readRunState<Tx>(store: Store<Tx>, runId: string): Promise<RunState | undefined> {
  return store.readRun ? (await store.readRun(runId))?.run : (await store.getRun(runId))?.run
}

/**
 * The catalogue the stage-number rule of run `runId` uses (`catalogueOfRun`): its own, else its
 * pipeline's in `pipelines`; `undefined` when there is no such run or its pipeline is not
 * configured. What a refusal of a stage number reads to word the rule with the run's last stage.
 */
async function catalogueOfStoredRun<Tx>(
  store: Store<Tx>,
  runId: string,
  options: { pipelines?: Pipelines | undefined; stages?: StageCatalogue | undefined },
): Promise<StageCatalogue | undefined> {
  const run = await readRunState(store, runId)
  return run && catalogueOfRun(run, pipelinesOf(options))
}

/**
 * The stage-number rule of stored run `runId` in words (`must be a whole number from 1 to 5`),
 * for the message of a number the schema refused. A read that fails (the database down) words it
 * without the run's N, as for a run with no catalogue: the number stays a 400 the caller must fix,
 * never a 503 that a runner would retry with the same number.
 */
export async function stageNumberRuleOfStoredRun<Tx>(
  store: Store<Tx>,
  runId: string,
  options: { pipelines?: Pipelines | undefined; stages?: StageCatalogue | undefined },
): Promise<string> {
  return stageNumberRuleOf(await catalogueOfStoredRun(store, runId, options).catch(() => undefined))
}

/** The state machine's decision on the run's own catalogue, or the refusal when it has none or the stage is outside it. */
function decideOnRunCatalogue<Tx>(
  run: RunState,
  stage: StageState | undefined,
  update: StageUpdate,
  options: StageUpdateOptions<Tx>,
): StageDecision | StageRefusal {
  const pipelines = pipelinesOf(options)
  const stages = catalogueOfRun(run, pipelines)
  if (!stages) return unknownPipeline(run, pipelines)
  const outside = stageNumberOutside(update.stageNumber, stages)
  if (outside) return { outcome: 'invalid', field: 'stageNumber', message: outside }
  const { now, clockSkewToleranceMs, traceparent } = options
  return decideStageUpdate({ run: withCatalogue(run, stages), stage, update, stages, now, clockSkewToleranceMs, traceparent })
}

/** What an applied stage decision writes: the run and the stage (and a streamed output chunk). */
type StageDecisionWrite = StageWriteOf

/** An applied stage decision as the result, with its clamped instant when there was one. */
function applied(decision: Extract<StageDecision, { outcome: 'applied' }>): StageUpdateResult {
  const { stage, run, statusChanged, clamped } = decision
  return clamped ? { outcome: 'applied', stage, run, statusChanged, clamped } : { outcome: 'applied', stage, run, statusChanged }
}

/**
 * One optimistic step on a run: `decision` as decided, with the run to write (`run`), unless it
 * writes nothing; a write that ends the run while the app's hook is configured (`endsRun`) goes
 * under the lock instead.
 */
function runAttempt<D>(
  before: RunState,
  decision: D,
  run: RunState | undefined,
  endsRun?: ((before: RunState, after: RunState) => boolean) | undefined,
): Attempt<D, RunState> {
  if (run === undefined) return { done: decision }
  if (endsRun?.(before, run)) return UNDER_LOCK
  return { write: run, result: decision }
}

/** Runs the app's `onRunEnded` hook when the write from `before` to `after` ended the run. */
async function runEnded<Tx>(
  tx: Tx,
  before: RunState,
  after: RunState,
  cause: Parameters<typeof runEndReason>[2],
  hook: OnRunEnded<Tx> | undefined,
): Promise<void> {
  const how = hook ? runEndReason(before, after, cause) : undefined
  if (how) await hook?.({ tx, run: after, how })
}

/**
 * Applies one explicit completion. With `onRunCompleted`, in one transaction under the run's
 * lock, the hook inside it when applied; without a hook, like a stage update: decided on the run
 * as read and written only if its version is unchanged.
 */
export async function completeRun<Tx>(
  store: Store<Tx>,
  runId: string,
  body: CompleteRun,
  options: {
    now: Date
    onRunCompleted?: OnRunCompleted<Tx> | undefined
    onRunEnded?: OnRunEnded<Tx> | undefined
    clockSkewToleranceMs?: number | undefined
  },
): Promise<CompletionResult> {
  const { onRunEnded, clockSkewToleranceMs } = options
  if (!options.onRunCompleted) {
    const endsRun = onRunEnded && ((before: RunState, after: RunState) => runEndReason(before, after, 'complete') !== undefined)
    const attempt = await storeWrites(store).onRun(runId, ({ run }) => {
      const decision = decideCompletion({ run, body, now: options.now, clockSkewToleranceMs })
      return runAttempt(run, decision, decision.outcome === 'applied' ? decision.run : undefined, endsRun)
    })
    if (attempt && !attempt.found) return { outcome: 'not_found' }
    if (attempt?.found) {
      const decision = attempt.result
      return decision.outcome === 'applied' ? completed(decision) : decision
    }
  }
  return store.transaction(async (tx) => {
    const run = await tx.lockRun(runId)
    if (!run) return { outcome: 'not_found' }
    const decision = decideCompletion({ run, body, now: options.now, clockSkewToleranceMs })
    if (decision.outcome !== 'applied') return decision
    await tx.saveRun(decision.run)
    await runEnded(tx.client, run, decision.run, 'complete', onRunEnded)
    // Inside the transaction: if the hook throws, the completion is rolled back and can be retried.
    await options.onRunCompleted?.(tx.client, decision.run, body)
    return completed(decision)
  })
}

/** An applied completion as the result, with its clamped instant when there was one. */
function completed(decision: Extract<CompletionDecision, { outcome: 'applied' }>): CompletionResult {
  const { run, statusChanged, clamped } = decision
  return clamped ? { outcome: 'applied', run, statusChanged, clamped } : { outcome: 'applied', run, statusChanged }
}

/** Options of {@link createRun}: what the run is created with, already checked against the contract's rules. */
export interface NewRunOptions {
  /** The run's id; a random UUID when absent. */
  id?: string | undefined
  /** Its pipeline. @default 'default' */
  pipeline?: string | undefined
  /** Its catalogue snapshot; absent or `null`: its first applied update stores its pipeline's then. */
  catalogue?: StageCatalogue | null | undefined
  /** Its tags; repeats are stored once. */
  tags?: readonly string[] | undefined
  /** Its metadata. */
  metadata?: Readonly<Record<string, unknown>> | undefined
  now: Date
}

/** Creates a run, or returns the existing one with the same id as stored (creation is idempotent). */
export async function createRun<Tx>(store: Store<Tx>, options: NewRunOptions): Promise<{ created: boolean; run: RunState }> {
  const run = newRun(options.id ?? crypto.randomUUID(), options.now)
  return store.insertRun({
    ...run,
    pipeline: options.pipeline ?? DEFAULT_PIPELINE,
    catalogue: options.catalogue ?? null,
    tags: distinctTags(options.tags ?? []),
    metadata: options.metadata ?? {},
  })
}

/** Options of {@link failStaleRuns}. */
export interface FailStaleRunsOptions<Tx = unknown> {
  /** How long an unfinished run may go without an applied update, in milliseconds. */
  staleAfterMs: number
  /** The current time. */
  now: Date
  /** The most runs to look at in this call. */
  limit: number
  /**
   * Called with each run right after its transaction committed it as `FAILED`. A throw stops
   * the call (the runs failed so far stay failed).
   */
  onFailed?: ((run: RunState) => Promise<void> | void) | undefined
  /** The app's {@link OnRunEnded} hook, run inside the transaction that fails each run (`how: 'swept_as_stale'`). */
  onRunEnded?: OnRunEnded<Tx> | undefined
}

/**
 * Fails the runs that stopped reporting: lists unfinished runs last updated before
 * `now - staleAfterMs`, then reads each again and decides again, since it may have been updated
 * or finished since the listing, and writes it only if its version is unchanged (or, on a store
 * without that path, locks it in one transaction). Concurrent calls (one per web instance) never
 * fail a run twice, and never fail one whose update committed first. Returns the runs it failed.
 * Throws a `TypeError` for a store without `listStaleRuns`, a `RangeError` for a `staleAfterMs`
 * or `limit` that is not positive.
 */
export async function failStaleRuns<Tx>(store: Store<Tx>, options: FailStaleRunsOptions<Tx>): Promise<RunState[]> {
  return (await failStaleBatch(store, options)).failed
}

/** Options of {@link sweepStaleRuns}: those of {@link failStaleRuns}, `limit` being the size of each batch. */
export interface SweepStaleRunsOptions<Tx = unknown> extends FailStaleRunsOptions<Tx> {
  /** The most batches of `limit` runs to take in this call; a whole number of at least 1. */
  maxBatches: number
}

/** What {@link sweepStaleRuns} did. */
export interface StaleRunSweep {
  /** The runs it failed, in the order it failed them. */
  failed: RunState[]
  /** How many batches it listed (1 to `maxBatches`). */
  batches: number
  /**
   * True when it stopped at `maxBatches` with its last batch full and at least one stale run
   * still listed after it: the backlog a later sweep works off.
   */
  backlog: boolean
}

/**
 * Fails stale runs batch after batch, like {@link failStaleRuns} (each run locked and decided
 * again, so concurrent sweeps fail each run once), while a batch comes back full (`limit` runs
 * listed), at most `maxBatches` batches, all judged at the same `now`. A batch that lists fewer
 * than `limit` runs drained the backlog. After `maxBatches` full batches it lists once more, one
 * run, to tell a backlog from an exact fit. Throws like {@link failStaleRuns}, and a `RangeError`
 * for a `maxBatches` that is not a positive whole number; the runs failed before a throw stay failed.
 */
export async function sweepStaleRuns<Tx>(store: Store<Tx>, options: SweepStaleRunsOptions<Tx>): Promise<StaleRunSweep> {
  const { maxBatches, ...batch } = options
  if (!isPositive(maxBatches, { integer: true })) throw new RangeError(`maxBatches must be a positive whole number, got ${String(maxBatches)}`)
  const failed: RunState[] = []
  for (let batches = 1; ; batches++) {
    const { failed: failedNow, listed } = await failStaleBatch(store, batch)
    failed.push(...failedNow)
    if (listed < batch.limit) return { failed, batches, backlog: false }
    if (batches >= maxBatches) {
      const more = await store.listStaleRuns?.(staleRunCutoff(batch.now, batch.staleAfterMs), 1, batch.now)
      return { failed, batches, backlog: (more?.length ?? 0) > 0 }
    }
  }
}

/** One batch of {@link failStaleRuns}: the runs failed, and how many were listed. */
async function failStaleBatch<Tx>(store: Store<Tx>, options: FailStaleRunsOptions<Tx>): Promise<{ failed: RunState[]; listed: number }> {
  if (!store.listStaleRuns) throw new TypeError('This store cannot list stale runs: it has no listStaleRuns method')
  const { staleAfterMs, now, limit, onFailed, onRunEnded } = options
  assertLimit(limit)
  const candidates = await store.listStaleRuns(staleRunCutoff(now, staleAfterMs), limit, now)
  const failed: RunState[] = []
  const writes = storeWrites(store)
  for (const candidate of candidates) {
    const attempt = await writes.onRun(
      candidate.id,
      ({ run: current }) => {
        const decision = decideStaleRun({ run: current, now, staleAfterMs })
        return runAttempt(current, decision, decision.outcome === 'failed' ? decision.run : undefined, onRunEnded && (() => true))
      },
      // A heartbeat writes no new version: the write also checks that none came since the read.
      true,
    )
    const run = attempt
      ? attempt.found && attempt.result.outcome === 'failed'
        ? attempt.result.run
        : undefined
      : await failUnderLock(store, candidate.id, now, staleAfterMs, onRunEnded)
    if (!run) continue
    failed.push(run)
    await onFailed?.(run)
  }
  return { failed, listed: candidates.length }
}

/** The stale-run decision under the run's lock, in one transaction. */
function failUnderLock<Tx>(
  store: Store<Tx>,
  runId: string,
  now: Date,
  staleAfterMs: number,
  onRunEnded: OnRunEnded<Tx> | undefined,
): Promise<RunState | undefined> {
  return store.transaction(async (tx) => {
    const current = await tx.lockRun(runId)
    if (!current) return undefined
    const decision = decideStaleRun({ run: current, now, staleAfterMs })
    if (decision.outcome !== 'failed') return undefined
    await tx.saveRun(decision.run)
    await runEnded(tx.client, current, decision.run, 'sweep', onRunEnded)
    return decision.run
  })
}

/** Result of a heartbeat, `invalid` for a `stageNumber` outside the run's catalogue, or `not_found` for an unknown run. */
export type HeartbeatResult =
  | { outcome: HeartbeatOutcome; run: RunState; stage: StageState | null }
  | { outcome: 'invalid'; field: 'stageNumber'; message: string }
  | { outcome: 'not_found' }

/**
 * Records a heartbeat: stores the run's last activity (and announced interval) without a new
 * version; with `progress`, also stores it on the stage when the state machine says so
 * ({@link decideProgress}), as a change with a new version, written like a stage update (only if
 * the version is unchanged, else read and decide again, then under the run's lock).
 */
export async function recordHeartbeat<Tx>(
  store: Store<Tx>,
  runId: string,
  heartbeat: Heartbeat,
  options: { now: Date; pipelines?: Pipelines | undefined; stages?: StageCatalogue | undefined },
): Promise<HeartbeatResult> {
  const { now } = options
  const { progress, stageNumber } = heartbeat
  if (stageNumber !== undefined) {
    // Checked against the run's own catalogue before anything is written, so a refused heartbeat
    // stores nothing (one read by primary key; a run whose catalogue is unknown takes any number).
    const run = await readRunState(store, runId)
    if (!run) return { outcome: 'not_found' }
    const catalogue = catalogueOfRun(run, pipelinesOf(options))
    const outside = catalogue && stageNumberOutside(stageNumber, catalogue)
    if (outside) return { outcome: 'invalid', field: 'stageNumber', message: outside }
  }
  const writes = storeWrites(store)
  const touched = await writes.touchRun({ runId, at: now, heartbeatIntervalMs: heartbeat.intervalMs, stageNumber })
  if (!touched) return { outcome: 'not_found' }
  if (progress === undefined || stageNumber === undefined) {
    return { outcome: decideHeartbeat(touched.run), run: touched.run, stage: touched.stage ?? null }
  }
  const attempt = await writes.onRunStage(
    runId,
    stageNumber,
    (read): Attempt<HeartbeatResult, StageDecisionWrite> => {
      const decision = decideProgress({ run: read.run, stage: read.stage, progress, now })
      return decision.outcome === 'applied' ? { write: decision, result: decision } : { done: decision }
    },
    touched,
  )
  if (attempt) return attempt.found ? attempt.result : { outcome: 'not_found' }
  return store.transaction(async (tx) => {
    const run = await tx.lockRun(runId)
    if (!run) return { outcome: 'not_found' }
    const decision = decideProgress({ run, stage: await tx.getStage(runId, stageNumber), progress, now })
    if (decision.outcome !== 'applied') return decision
    await tx.saveStage(runId, decision.stage)
    await tx.saveRun(decision.run)
    return decision
  })
}

/** Result of a cancellation, or `not_found` for an unknown run. */
export type CancelResult =
  | { outcome: 'applied'; run: RunState; stages: StageState[] }
  | { outcome: 'duplicate'; run: RunState }
  | { outcome: 'conflict'; code: 'run_finished'; detail: string }
  | { outcome: 'not_found' }

/**
 * Cancels a run: in one transaction under the run's lock, the run and its `PROCESSING` stages
 * become `CANCELLED` ({@link decideCancel}), and the app's `onRunEnded` hook runs inside it.
 * Applied, it returns the stages it cancelled.
 */
export function cancelRun<Tx>(
  store: Store<Tx>,
  runId: string,
  body: CancelRun,
  options: { now: Date; pipelines?: Pipelines | undefined; stages?: StageCatalogue | undefined; onRunEnded?: OnRunEnded<Tx> | undefined },
): Promise<CancelResult> {
  return store.transaction(async (tx) => {
    const locked = await tx.lockRun(runId)
    if (!locked) return { outcome: 'not_found' }
    const catalogue = catalogueOfRun(locked, pipelinesOf(options))
    // A run whose catalogue is unknown can still be cancelled: its stored stages are all there is.
    const run = catalogue ? withCatalogue(locked, catalogue) : locked
    const stages = await storedStagesOf(tx, runId, catalogue?.length ?? 0)
    const decision = decideCancel({ run, stages, reason: body.reason, now: options.now })
    if (decision.outcome !== 'applied') return decision
    for (const stage of decision.stages) await tx.saveStage(runId, stage)
    await tx.saveRun(decision.run)
    await runEnded(tx.client, locked, decision.run, 'cancel', options.onRunEnded)
    return { outcome: 'applied', run: decision.run, stages: decision.stages }
  })
}

/** Options of {@link deleteExpiredRuns}. */
export interface DeleteExpiredRunsOptions {
  /** How long to keep finished runs of each final status after their last change, in milliseconds. */
  keep: RetentionPolicy
  /** The current time. */
  now: Date
  /** The most runs to delete per status in this call (one bounded statement each). */
  limit: number
}

/**
 * The retention sweep: deletes, for each final status in `keep`, up to `limit` runs of that status
 * last changed more than its time ago, with their stages. Returns how many runs it deleted per
 * status. Throws a `TypeError` for a store without `deleteFinishedRuns`, a `RangeError` for a
 * `limit` or a keep time that is not positive.
 */
export async function deleteExpiredRuns<Tx>(
  store: Store<Tx>,
  options: DeleteExpiredRunsOptions,
): Promise<Partial<Record<FinalStatus, number>>> {
  if (!store.deleteFinishedRuns) throw new TypeError('This store cannot delete runs: it has no deleteFinishedRuns method')
  const { keep, now, limit } = options
  assertLimit(limit)
  const deleted: Partial<Record<FinalStatus, number>> = {}
  for (const [status, keepMs] of Object.entries(keep) as Array<[FinalStatus, number | undefined]>) {
    if (keepMs === undefined) continue
    if (!isPositive(keepMs)) throw new RangeError(`keep.${status} must be a positive number of milliseconds`)
    deleted[status] = await store.deleteFinishedRuns({ status, updatedBefore: new Date(now.getTime() - keepMs), limit })
  }
  return deleted
}

/** The batch size of a sweep: a positive whole number, or a `RangeError`. */
function assertLimit(limit: number): void {
  if (!isPositive(limit, { integer: true })) throw new RangeError(`limit must be a positive whole number, got ${String(limit)}`)
}

/** Result of a streamed output chunk: applied, a repeat, a refusal, or `not_found` for an unknown run. */
export type OutputChunkResult =
  | { outcome: 'applied' | 'duplicate' | 'conflict'; stage: StageState; run: RunState }
  | OutputChunkRefusal
  | { outcome: 'not_found' }

/** Options of {@link appendOutputChunk}. */
export interface OutputChunkOptions {
  /** The current time. */
  now: Date
  /** The most UTF-8 bytes one stage attempt's streamed text may hold (`maxStreamedOutputBytes`). */
  maxBytes: number
  /** The configured pipelines, for a run without a catalogue of its own (see `catalogueOfRun`). @default `stages` as `default` */
  pipelines?: Pipelines | undefined
  /** Without `pipelines`: the catalogue of the one pipeline `default`. @default DEFAULT_STAGES */
  stages?: StageCatalogue | undefined
}

/**
 * Applies one streamed output chunk ({@link decideOutputChunk}) of stage `stageNumber`: like a
 * stage update, decided on the run and stage as read and written (the stage, the run's new
 * version and the chunk's row in one write) only if the run's version is unchanged, else read and
 * decided again, then under the run's lock. A repeated `seq` reads the stored chunk
 * (`Store.getOutputChunk`) to tell `duplicate` from `conflict`. Throws a `TypeError` for a store
 * without the streamed-output methods.
 */
export async function appendOutputChunk<Tx>(
  store: Store<Tx>,
  runId: string,
  stageNumber: number,
  chunk: StageOutputChunk,
  options: OutputChunkOptions,
): Promise<OutputChunkResult> {
  const { getOutputChunk } = store
  if (!getOutputChunk) throw new TypeError('This store cannot store streamed output: it has no getOutputChunk method')
  const { now, maxBytes } = options
  const pipelines = pipelinesOf(options)
  // `null`: the repeated chunk is not stored (a reset deleted it meanwhile), so it conflicts:
  // decided against a NUL, which no stored (storable) text equals.
  let stored: string | null | undefined
  const decide = (run: RunState, stage: StageState | undefined): OutputChunkDecision =>
    decideOutputChunk({ run, stageNumber, catalogue: catalogueOfRun(run, pipelines), stage, chunk, maxBytes, stored: stored === null ? '\u0000' : stored, now })
  const readStored = async (): Promise<void> => {
    stored = (await getOutputChunk.call(store, runId, stageNumber, chunk.seq)) ?? null
  }
  const writes = storeWrites(store)
  for (let round = 0; round < 2; round++) {
    const attempt = await writes.onRunStage(runId, stageNumber, (read): Attempt<OutputChunkDecision, StageDecisionWrite> => {
      const decision = decide(read.run, read.stage)
      return decision.outcome === 'applied' ? { write: { run: decision.run, stage: decision.stage, chunk }, result: decision } : { done: decision }
    })
    if (!attempt) break
    if (!attempt.found) return { outcome: 'not_found' }
    if (attempt.result.outcome !== 'repeat') return attempt.result
    await readStored()
  }
  for (let round = 0; round < 2; round++) {
    const result = await store.transaction(async (tx): Promise<OutputChunkDecision | { outcome: 'not_found' }> => {
      const run = await tx.lockRun(runId)
      if (!run) return { outcome: 'not_found' }
      const decision = decide(run, await tx.getStage(runId, stageNumber))
      if (decision.outcome !== 'applied') return decision
      if (!tx.saveOutputChunk) throw new TypeError('This store cannot store streamed output in a transaction: it has no saveOutputChunk method')
      await tx.saveStage(runId, decision.stage)
      await tx.saveRun(decision.run)
      await tx.saveOutputChunk(runId, stageNumber, chunk.seq, chunk.text)
      return decision
    })
    if (result.outcome !== 'repeat') return result
    await readStored()
  }
  // With the stored text read, a repeat is always decided `duplicate` or `conflict`.
  throw new Error(`Streamed output chunk ${chunk.seq} of run ${runId} stage ${stageNumber} could not be decided`)
}
