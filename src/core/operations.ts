/**
 * The store-independent steps of every write: read the run (and the stage), ask the state
 * machine, persist exactly what it decided. Writes take the store's optimistic path when it has
 * one (read, decide, write if the run's version is unchanged, else again); a completion with the
 * app's `onRunCompleted` hook, a store without that path, and a write that lost the race too
 * often lock the run in one transaction instead.
 */
import type { CompleteRun } from '../contract/complete.js'
import type { CancelRun, Heartbeat, HeartbeatOutcome, RunEndReason } from '../contract/runner-control.js'
import type { StageUpdate } from '../contract/stage-update.js'
import { lastStageNumber, type StageCatalogue } from '../contract/stages.js'
import type { FinalStatus } from '../contract/status.js'
import { type ClampedInstant, type CompletionDecision, type StageDecision, decideCancel, decideCompletion, decideHeartbeat, decideProgress, decideStaleRun, decideStageUpdate, newRun, runEndReason, staleRunCutoff } from './state-machine.js'
import type { OnRunCompleted, OnRunEnded, RetentionPolicy } from './hooks.js'
import { nextRunVersion } from './run-version.js'
import type { RunSnapshot, RunStageRead, RunState, StageState } from './state.js'
import type { Store, StoreTransaction } from './store.js'
import { isPositive } from '../internal/is-positive.js'

/** Result of a stage update: the state machine's decision, or `not_found` for an unknown run. */
export type StageUpdateResult =
  | { outcome: 'applied'; stage: StageState; run: RunState; clamped?: ClampedInstant }
  | Exclude<StageDecision, { outcome: 'applied' }>
  | { outcome: 'not_found' }

/** Result of a completion: the decision, or `not_found` for an unknown run. */
export type CompletionResult =
  | { outcome: 'applied'; run: RunState; clamped?: ClampedInstant }
  | { outcome: 'duplicate'; run: RunState }
  | Extract<CompletionDecision, { outcome: 'conflict' }>
  | { outcome: 'not_found' }

/**
 * How many times a stage update reads, decides and tries its conditional write before it takes
 * the run's lock instead: each lost race means another write to the same run succeeded, so this
 * only bounds the work under heavy contention on one run.
 */
export const OPTIMISTIC_ATTEMPTS = 4

/**
 * Applies one stage update. On a store with `readRunStage` and `writeRunStage`: reads the run and
 * the stage, decides, and writes both only if the run's version is still the one read; a lost
 * race reads and decides again, at most {@link OPTIMISTIC_ATTEMPTS} times, then the update runs
 * under the run's lock. Other stores run it in one transaction under the run's lock.
 */
export async function applyStageUpdate<Tx>(
  store: Store<Tx>,
  runId: string,
  update: StageUpdate,
  options: { stages: StageCatalogue; now: Date; onRunEnded?: OnRunEnded<Tx> | undefined; clockSkewToleranceMs?: number | undefined },
): Promise<StageUpdateResult> {
  const { onRunEnded, clockSkewToleranceMs } = options
  optimistic: if (store.readRunStage && store.writeRunStage) {
    for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
      const read = await store.readRunStage(runId, update.stageNumber)
      if (!read) return { outcome: 'not_found' }
      const decision = decideStageUpdate({ run: read.run, stage: read.stage, update, stages: options.stages, now: options.now, clockSkewToleranceMs })
      if (decision.outcome !== 'applied') return decision
      // The write that ends the run holds the app's hook, so it needs the transaction.
      if (onRunEnded && runEndReason(read.run, decision.run, 'stage')) break optimistic
      const written = await store.writeRunStage({
        run: decision.run,
        stage: decision.stage,
        expectedVersion: read.version,
        version: nextRunVersion(read.version),
      })
      if (written) return applied(decision)
    }
  }
  return store.transaction(async (tx) => {
    const run = await tx.lockRun(runId)
    if (!run) return { outcome: 'not_found' }
    const stage = await tx.getStage(runId, update.stageNumber)
    const decision = decideStageUpdate({ run, stage, update, stages: options.stages, now: options.now, clockSkewToleranceMs })
    if (decision.outcome !== 'applied') return decision
    await tx.saveStage(runId, decision.stage)
    await tx.saveRun(decision.run)
    await runEnded(tx.client, run, decision.run, 'stage', onRunEnded)
    return applied(decision)
  })
}

/** An applied stage decision as the result, with its clamped instant when there was one. */
function applied(decision: Extract<StageDecision, { outcome: 'applied' }>): StageUpdateResult {
  const { stage, run, clamped } = decision
  return clamped ? { outcome: 'applied', stage, run, clamped } : { outcome: 'applied', stage, run }
}

/**
 * Reads a run, decides on it and writes the decided run only if its version is unchanged, again
 * after a lost race, at most {@link OPTIMISTIC_ATTEMPTS} times. `undefined` when the store has no
 * such path or every attempt lost: the caller then decides under the run's lock.
 */
async function decideOnRun<Tx, D>(
  store: Store<Tx>,
  runId: string,
  decide: (run: RunState) => D,
  toWrite: (decision: D) => RunState | undefined,
  options: { endsRun?: ((before: RunState, after: RunState) => boolean) | undefined; guardActivity?: boolean } = {},
): Promise<{ found: false } | { found: true; decision: D } | undefined> {
  if (!store.readRun || !store.writeRun) return undefined
  for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
    const read = await store.readRun(runId)
    if (!read) return { found: false }
    const decision = decide(read.run)
    const run = toWrite(decision)
    if (run === undefined) return { found: true, decision }
    // A write that ends the run while the app's hook is configured goes under the lock instead.
    if (options.endsRun?.(read.run, run)) return undefined
    const write = { run, expectedVersion: read.version, version: nextRunVersion(read.version) }
    const guarded = options.guardActivity ? { ...write, expectedLastActivityAt: read.run.lastActivityAt ?? null } : write
    if (await store.writeRun(guarded)) return { found: true, decision }
  }
  return undefined
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
    const attempt = await decideOnRun(
      store,
      runId,
      (run) => decideCompletion({ run, body, now: options.now, clockSkewToleranceMs }),
      (decision) => (decision.outcome === 'applied' ? decision.run : undefined),
      { endsRun: onRunEnded && ((before, after) => runEndReason(before, after, 'complete') !== undefined) },
    )
    if (attempt && !attempt.found) return { outcome: 'not_found' }
    if (attempt?.found) {
      const { decision } = attempt
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
  return decision.clamped ? { outcome: 'applied', run: decision.run, clamped: decision.clamped } : { outcome: 'applied', run: decision.run }
}

/** Creates a run, or returns the existing one with the same id (creation is idempotent). */
export async function createRun<Tx>(
  store: Store<Tx>,
  options: { id?: string | undefined; now: Date },
): Promise<{ created: boolean; run: RunState }> {
  return store.insertRun(newRun(options.id ?? crypto.randomUUID(), options.now))
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
  if (!store.listStaleRuns) throw new TypeError('This store cannot list stale runs: it has no listStaleRuns method')
  const { staleAfterMs, now, limit, onFailed, onRunEnded } = options
  assertLimit(limit)
  const candidates = await store.listStaleRuns(staleRunCutoff(now, staleAfterMs), limit, now)
  const failed: RunState[] = []
  for (const candidate of candidates) {
    const attempt = await decideOnRun(
      store,
      candidate.id,
      (current) => decideStaleRun({ run: current, now, staleAfterMs }),
      (decision) => (decision.outcome === 'failed' ? decision.run : undefined),
      // A heartbeat writes no new version: the write also checks that none came since the read.
      { guardActivity: true, endsRun: onRunEnded && (() => true) },
    )
    const run = attempt
      ? attempt.found && attempt.decision.outcome === 'failed'
        ? attempt.decision.run
        : undefined
      : await failUnderLock(store, candidate.id, now, staleAfterMs, onRunEnded)
    if (!run) continue
    failed.push(run)
    await onFailed?.(run)
  }
  return failed
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

/** Result of a heartbeat, or `not_found` for an unknown run. */
export type HeartbeatResult =
  | { outcome: HeartbeatOutcome; run: RunState; stage: StageState | null }
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
  options: { now: Date },
): Promise<HeartbeatResult> {
  const { now } = options
  const touched = store.touchRun
    ? await store.touchRun({ runId, at: now, heartbeatIntervalMs: heartbeat.intervalMs, stageNumber: heartbeat.stageNumber })
    : await readWithoutTouch(store, runId, heartbeat.stageNumber)
  if (!touched) return { outcome: 'not_found' }
  const { progress, stageNumber } = heartbeat
  if (progress === undefined || stageNumber === undefined) {
    return { outcome: decideHeartbeat(touched.run), run: touched.run, stage: touched.stage ?? null }
  }
  if (store.readRunStage && store.writeRunStage) {
    let read: RunStageRead | null = touched
    for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
      if (attempt > 0) read = await store.readRunStage(runId, stageNumber)
      if (!read) return { outcome: 'not_found' }
      const decision = decideProgress({ run: read.run, stage: read.stage, progress, now })
      if (decision.outcome !== 'applied') return decision
      const write = { run: decision.run, stage: decision.stage, expectedVersion: read.version, version: nextRunVersion(read.version) }
      if (await store.writeRunStage(write)) return decision
    }
  }
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

/** A store without `touchRun`: the heartbeat is answered from a read and records nothing. */
async function readWithoutTouch<Tx>(store: Store<Tx>, runId: string, stageNumber: number | undefined): Promise<RunStageRead | null> {
  const snapshot = await store.getRun(runId)
  if (!snapshot) return null
  const stage = snapshot.stages.find((candidate) => candidate.stageNumber === stageNumber)
  return { run: snapshot.run, version: snapshot.version ?? 0, stage }
}

/** Result of a cancellation, or `not_found` for an unknown run. */
export type CancelResult =
  | { outcome: 'applied' | 'duplicate'; run: RunState }
  | { outcome: 'conflict'; code: 'run_finished'; detail: string }
  | { outcome: 'not_found' }

/**
 * Cancels a run: in one transaction under the run's lock, the run and its `PROCESSING` stages
 * become `CANCELLED` ({@link decideCancel}), and the app's `onRunEnded` hook runs inside it.
 */
export function cancelRun<Tx>(
  store: Store<Tx>,
  runId: string,
  body: CancelRun,
  options: { now: Date; stages: StageCatalogue; onRunEnded?: OnRunEnded<Tx> | undefined },
): Promise<CancelResult> {
  return store.transaction(async (tx) => {
    const run = await tx.lockRun(runId)
    if (!run) return { outcome: 'not_found' }
    const stages = tx.getStages
      ? await tx.getStages(runId)
      : await storedStagesOf(tx, runId, lastStageNumber(options.stages))
    const decision = decideCancel({ run, stages, reason: body.reason, now: options.now })
    if (decision.outcome !== 'applied') return decision
    for (const stage of decision.stages) await tx.saveStage(runId, stage)
    await tx.saveRun(decision.run)
    await runEnded(tx.client, run, decision.run, 'cancel', options.onRunEnded)
    return { outcome: 'applied', run: decision.run }
  })
}

async function storedStagesOf<Tx>(tx: StoreTransaction<Tx>, runId: string, count: number): Promise<StageState[]> {
  const stages: StageState[] = []
  for (let number = 1; number <= count; number++) {
    const stage = await tx.getStage(runId, number)
    if (stage) stages.push(stage)
  }
  return stages
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
