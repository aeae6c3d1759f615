/**
 * The store-independent steps of every write: read the run (and the stage), ask the state
 * machine, persist exactly what it decided. Writes take the store's optimistic path when it has
 * one (read, decide, write if the run's version is unchanged, else again); a completion with the
 * app's `onRunCompleted` hook, a store without that path, and a write that lost the race too
 * often lock the run in one transaction instead.
 */
import type { CompleteRun } from '../contract/complete.js'
import type { StageUpdate } from '../contract/stage-update.js'
import type { StageCatalogue } from '../contract/stages.js'
import {
  type CompletionDecision,
  type StageDecision,
  decideCompletion,
  decideStaleRun,
  decideStageUpdate,
  staleRunCutoff,
} from './state-machine.js'
import { nextRunVersion } from './run-version.js'
import { newRun, type RunSnapshot, type RunState, type StageState } from './state.js'
import type { Store } from './store.js'

/**
 * The app's hook that stores a run's results; runs inside the completing transaction, once per run.
 * `tx` is the store's transaction handle (your Prisma transaction client with `prisma`), `run`
 * the run as completed, `payload` the whole `/complete` body, your own fields included.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
 * const handlers = createPipelineStatusHandlers({
 *   prisma,
 *   onRunCompleted: async (tx, run, payload) => {
 *     if (run.status === 'COMPLETED') await tx.report.create({ data: { runId: run.id, markdown: String(payload.fullReportMarkdown) } })
 *   },
 * })
 * ```
 */
export type OnRunCompleted<Tx = unknown> = (tx: Tx, run: RunState, payload: CompleteRun) => Promise<void> | void

/** Result of a stage update: the state machine's decision, or `not_found` for an unknown run. */
export type StageUpdateResult =
  | { outcome: 'applied'; stage: StageState; run: RunState }
  | Exclude<StageDecision, { outcome: 'applied' }>
  | { outcome: 'not_found' }

/** Result of a completion: the decision, or `not_found` for an unknown run. */
export type CompletionResult =
  | { outcome: 'applied' | 'duplicate'; run: RunState }
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
  options: { stages: StageCatalogue; now: Date },
): Promise<StageUpdateResult> {
  if (store.readRunStage && store.writeRunStage) {
    for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
      const read = await store.readRunStage(runId, update.stageNumber)
      if (!read) return { outcome: 'not_found' }
      const decision = decideStageUpdate({ run: read.run, stage: read.stage, update, stages: options.stages, now: options.now })
      if (decision.outcome !== 'applied') return decision
      const written = await store.writeRunStage({
        run: decision.run,
        stage: decision.stage,
        expectedVersion: read.version,
        version: nextRunVersion(read.version),
      })
      if (written) return { outcome: 'applied', stage: decision.stage, run: decision.run }
    }
  }
  return store.transaction(async (tx) => {
    const run = await tx.lockRun(runId)
    if (!run) return { outcome: 'not_found' }
    const stage = await tx.getStage(runId, update.stageNumber)
    const decision = decideStageUpdate({ run, stage, update, stages: options.stages, now: options.now })
    if (decision.outcome !== 'applied') return decision
    await tx.saveStage(runId, decision.stage)
    await tx.saveRun(decision.run)
    return { outcome: 'applied', stage: decision.stage, run: decision.run }
  })
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
): Promise<{ found: false } | { found: true; decision: D } | undefined> {
  if (!store.readRun || !store.writeRun) return undefined
  for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
    const read = await store.readRun(runId)
    if (!read) return { found: false }
    const decision = decide(read.run)
    const run = toWrite(decision)
    if (run === undefined) return { found: true, decision }
    if (await store.writeRun({ run, expectedVersion: read.version, version: nextRunVersion(read.version) })) {
      return { found: true, decision }
    }
  }
  return undefined
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
  options: { now: Date; onRunCompleted?: OnRunCompleted<Tx> | undefined },
): Promise<CompletionResult> {
  if (!options.onRunCompleted) {
    const attempt = await decideOnRun(
      store,
      runId,
      (run) => decideCompletion({ run, body, now: options.now }),
      (decision) => (decision.outcome === 'applied' ? decision.run : undefined),
    )
    if (attempt && !attempt.found) return { outcome: 'not_found' }
    if (attempt?.found) {
      const { decision } = attempt
      return decision.outcome === 'applied' ? { outcome: 'applied', run: decision.run } : decision
    }
  }
  return store.transaction(async (tx) => {
    const run = await tx.lockRun(runId)
    if (!run) return { outcome: 'not_found' }
    const decision = decideCompletion({ run, body, now: options.now })
    if (decision.outcome !== 'applied') return decision
    await tx.saveRun(decision.run)
    // Inside the transaction: if the hook throws, the completion is rolled back and can be retried.
    await options.onRunCompleted?.(tx.client, decision.run, body)
    return { outcome: 'applied', run: decision.run }
  })
}

/** Creates a run, or returns the existing one with the same id (creation is idempotent). */
export async function createRun<Tx>(
  store: Store<Tx>,
  options: { id?: string | undefined; now: Date },
): Promise<{ created: boolean; run: RunState }> {
  return store.insertRun(newRun(options.id ?? crypto.randomUUID(), options.now))
}

/** Reads a run and its stored stages; `null` for an unknown run. */
export function getRunSnapshot<Tx>(store: Store<Tx>, runId: string): Promise<RunSnapshot | null> {
  return store.getRun(runId)
}

/** Options of {@link failStaleRuns}. */
export interface FailStaleRunsOptions {
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
export async function failStaleRuns<Tx>(store: Store<Tx>, options: FailStaleRunsOptions): Promise<RunState[]> {
  if (!store.listStaleRuns) throw new TypeError('This store cannot list stale runs: it has no listStaleRuns method')
  const { staleAfterMs, now, limit, onFailed } = options
  if (!Number.isSafeInteger(limit) || limit <= 0) throw new RangeError(`limit must be a positive whole number, got ${String(limit)}`)
  const candidates = await store.listStaleRuns(staleRunCutoff(now, staleAfterMs), limit)
  const failed: RunState[] = []
  for (const candidate of candidates) {
    const attempt = await decideOnRun(
      store,
      candidate.id,
      (current) => decideStaleRun({ run: current, now, staleAfterMs }),
      (decision) => (decision.outcome === 'failed' ? decision.run : undefined),
    )
    const run = attempt
      ? attempt.found && attempt.decision.outcome === 'failed'
        ? attempt.decision.run
        : undefined
      : await failUnderLock(store, candidate.id, now, staleAfterMs)
    if (!run) continue
    failed.push(run)
    await onFailed?.(run)
  }
  return failed
}

/** The stale-run decision under the run's lock, in one transaction. */
function failUnderLock<Tx>(store: Store<Tx>, runId: string, now: Date, staleAfterMs: number): Promise<RunState | undefined> {
  return store.transaction(async (tx) => {
    const current = await tx.lockRun(runId)
    if (!current) return undefined
    const decision = decideStaleRun({ run: current, now, staleAfterMs })
    if (decision.outcome !== 'failed') return undefined
    await tx.saveRun(decision.run)
    return decision.run
  })
}
