/**
 * How the operations write to a store: its write protocol, chosen once per store from the
 * methods it implements (its declared capabilities), so that the operations never ask a store
 * which optional methods it has.
 *
 * - A store with `readRunStage` + `writeRunStage` (and `readRun` + `writeRun`) gets the
 *   optimistic protocol: read, decide, write only if the run's version is unchanged, again
 *   after a lost race, at most {@link OPTIMISTIC_ATTEMPTS} times.
 * - A store without them gets the locking protocol: every write is decided under the run's lock
 *   in one {@link Store.transaction}.
 * - A store with `touchRun` records heartbeats; one without answers them from a read.
 *
 * Internal: the operations (`operations.ts`) call {@link storeWrites}; `resolveStore` calls it
 * when the handlers or the sweeper are created, so the choice is made there.
 */
import { nextRunVersion } from './run-version.js'
import { resetsStreamedOutput } from './stage-output.js'
import type { OutputChunkWrite, RunStageRead, RunStageWrite, RunState, RunTouch, RunWrite, StageState, VersionedRun } from './state.js'
import type { Store, StoreTransaction } from './store.js'

/**
 * How many times an optimistic write reads, decides and tries its conditional write before it
 * takes the run's lock instead: each lost race means another write to the same run succeeded,
 * so this only bounds the work under heavy contention on one run.
 */
export const OPTIMISTIC_ATTEMPTS = 4

/**
 * One optimistic decision on a run as read: `done` (nothing to write; the result as decided),
 * `write` (write this if the run's version is unchanged, then answer `result`), or
 * {@link UNDER_LOCK} (decide again under the run's lock, e.g. because the app's hook must run
 * inside the write's transaction).
 */
export type Attempt<R, W> = { done: R } | { write: W; result: R } | typeof UNDER_LOCK

/** The verdict of an {@link Attempt} that sends the write under the run's lock. */
export const UNDER_LOCK = 'under_lock' as const

/**
 * What an optimistic write came to: the run is unknown, or the result of an attempt that was
 * done or written. `undefined` when the write must be decided under the run's lock instead (the
 * locking protocol, an attempt that said {@link UNDER_LOCK}, or every attempt lost its race).
 */
export type Optimistic<R> = { found: false } | { found: true; result: R } | undefined

/** A store's write protocol; see the module's description. */
export interface StoreWrites {
  /**
   * Reads a run and one of its stages (`first`, when the caller already has that read), decides
   * with `decide`, and writes the stage and the run if the version is unchanged.
   */
  onRunStage<R>(
    runId: string,
    stageNumber: number,
    decide: (read: RunStageRead) => Attempt<R, StageWriteOf>,
    first?: RunStageRead | null,
  ): Promise<Optimistic<R>>
  /**
   * Reads a run, decides with `decide`, and writes the run if the version is unchanged; with
   * `guardActivity`, also only if no heartbeat came since the read (a heartbeat writes no version).
   */
  onRun<R>(runId: string, decide: (read: VersionedRun) => Attempt<R, RunState>, guardActivity?: boolean): Promise<Optimistic<R>>
  /** Records a heartbeat (`Store.touchRun`), or, on a store without it, reads the run as stored. */
  touchRun(touch: RunTouch): Promise<RunStageRead | null>
}

/** What a stage decision writes: the run, the stage, and a streamed output chunk when it applied one. */
export interface StageWriteOf {
  run: RunState
  stage: StageState
  chunk?: OutputChunkWrite | undefined
}

const chosen = new WeakMap<object, StoreWrites>()

/** The write protocol of `store`, chosen on its first use and kept for the store's lifetime. */
export function storeWrites<Tx>(store: Store<Tx>): StoreWrites {
  let writes = chosen.get(store)
  if (writes === undefined) {
    // One lane per store: a process's optimistic writes to one run never race each other.
    const lanes = new RunLanes()
    writes = {
      onRunStage: hasStageWrites(store) ? optimisticRunStage(store, lanes) : underLock,
      onRun: hasRunWrites(store) ? optimisticRun(store, lanes) : underLock,
      touchRun: hasTouch(store) ? touching(store) : (touch) => readWithoutTouch(store, touch),
    }
    chosen.set(store, writes)
  }
  return writes
}

/**
 * Every stored stage of a run inside a transaction: `getStages` when the store's transaction has
 * it, else the catalogue's stages `1..count` one by one.
 */
export async function storedStagesOf<Tx>(tx: StoreTransaction<Tx>, runId: string, count: number): Promise<StageState[]> {
  if (tx.getStages) return tx.getStages(runId)
  const stages: StageState[] = []
  for (let number = 1; number <= count; number++) {
    const stage = await tx.getStage(runId, number)
    if (stage) stages.push(stage)
  }
  return stages
}

type StageWritingStore = Pick<Required<Store<unknown>>, 'readRunStage' | 'writeRunStage'>
type RunWritingStore = Pick<Required<Store<unknown>>, 'readRun' | 'writeRun'>
type TouchingStore = Pick<Required<Store<unknown>>, 'touchRun'>

function hasStageWrites(store: object): store is StageWritingStore {
  const { readRunStage, writeRunStage } = store as Store<unknown>
  return typeof readRunStage === 'function' && typeof writeRunStage === 'function'
}

function hasRunWrites(store: object): store is RunWritingStore {
  const { readRun, writeRun } = store as Store<unknown>
  return typeof readRun === 'function' && typeof writeRun === 'function'
}

function hasTouch(store: object): store is TouchingStore {
  return typeof (store as Store<unknown>).touchRun === 'function'
}

/** The locking protocol's optimistic step: none, so the caller decides under the run's lock. */
async function underLock(): Promise<undefined> {
  return undefined
}

/**
 * The optimistic writes of one process, one run at a time: a write to a run waits for the
 * process's write to that run before it (read, decide, conditional write) to finish, so that
 * concurrent writes to one run in one process never lose their race to each other and never
 * fall back to the run's lock; races are left only between instances. Without it, a burst of
 * concurrent updates to one run (1,000 stage updates a second over 100 runs, bench/README.md
 * "Issue 31") lost 47% of its races and sent them through the lock's transaction, which made
 * the instance slower the more it was loaded.
 *
 * Bounds: one entry per run with a write in flight, removed when its last write ends; a write
 * waits only for the writes queued before it, each bounded by the store's own deadlines
 * (`queryTimeoutMs`). A write that fails does not hold up the next one.
 */
export class RunLanes {
  readonly #tails = new Map<string, Promise<void>>()

  /** Runs `work` once the writes to `runId` queued before it have ended; its result, as is. */
  run<T>(runId: string, work: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(runId)
    const result = before === undefined ? work() : before.then(work)
    const tail = result.then(ended, ended)
    this.#tails.set(runId, tail)
    void tail.then(() => {
      if (this.#tails.get(runId) === tail) this.#tails.delete(runId)
    })
    return result
  }

  /** Runs with a write in flight or queued (for tests and metrics). */
  get size(): number {
    return this.#tails.size
  }
}

function ended(): void {}

function optimisticRunStage(store: StageWritingStore, lanes: RunLanes): StoreWrites['onRunStage'] {
  return (runId, stageNumber, decide, first) => lanes.run(runId, () => optimisticRunStageAttempts(store, runId, stageNumber, decide, first))
}

async function optimisticRunStageAttempts<R>(
  store: StageWritingStore,
  runId: string,
  stageNumber: number,
  decide: (read: RunStageRead) => Attempt<R, StageWriteOf>,
  first: RunStageRead | null | undefined,
): Promise<Optimistic<R>> {
  for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
    const read = attempt === 0 && first !== undefined ? first : await store.readRunStage(runId, stageNumber)
    if (!read) return { found: false }
    const step = decide(read)
    if (step === UNDER_LOCK) return undefined
    if ('done' in step) return { found: true, result: step.done }
    const { run, stage, chunk } = step.write
    const write: RunStageWrite = { run, stage, expectedVersion: read.version, version: nextRunVersion(read.version), ...columnsChanged(read.run, run) }
    if (chunk) write.chunk = chunk
    if (resetsStreamedOutput(read.stage, stage)) write.dropOutputChunks = true
    if (await store.writeRunStage(write)) {
      return { found: true, result: step.result }
    }
  }
  return undefined
}

function optimisticRun(store: RunWritingStore, lanes: RunLanes): StoreWrites['onRun'] {
  return (runId, decide, guardActivity) => lanes.run(runId, () => optimisticRunAttempts(store, runId, decide, guardActivity))
}

async function optimisticRunAttempts<R>(
  store: RunWritingStore,
  runId: string,
  decide: (read: VersionedRun) => Attempt<R, RunState>,
  guardActivity: boolean | undefined,
): Promise<Optimistic<R>> {
  for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
    const read = await store.readRun(runId)
    if (!read) return { found: false }
    const step = decide(read)
    if (step === UNDER_LOCK) return undefined
    if ('done' in step) return { found: true, result: step.done }
    const write = { run: step.write, expectedVersion: read.version, version: nextRunVersion(read.version), ...columnsChanged(read.run, step.write) }
    const guarded = guardActivity ? { ...write, expectedLastActivityAt: read.run.lastActivityAt ?? null } : write
    if (await store.writeRun(guarded)) return { found: true, result: step.result }
  }
  return undefined
}

/**
 * The run's columns beyond its status fields that a write from `before` to `after` must store
 * (see {@link RunWrite}): the catalogue it gained, the tags or metadata a decision replaced.
 * Decisions keep the objects they do not change, so an unchanged column costs the write nothing.
 */
export function columnsChanged(before: RunState, after: RunState): Pick<RunWrite, 'catalogue' | 'tags' | 'metadata'> {
  const changed: Pick<RunWrite, 'catalogue' | 'tags' | 'metadata'> = {}
  if (!before.catalogue && after.catalogue) changed.catalogue = after.catalogue
  if (after.tags !== undefined && after.tags !== before.tags) changed.tags = after.tags
  if (after.metadata !== undefined && after.metadata !== before.metadata) changed.metadata = after.metadata
  return changed
}

function touching(store: TouchingStore): StoreWrites['touchRun'] {
  return (touch) => store.touchRun(touch)
}

/** A store without `touchRun`: the heartbeat is answered from a read and records nothing. */
async function readWithoutTouch<Tx>(store: Store<Tx>, touch: RunTouch): Promise<RunStageRead | null> {
  const snapshot = await store.getRun(touch.runId)
  if (!snapshot) return null
  const stage = snapshot.stages.find((candidate) => candidate.stageNumber === touch.stageNumber)
  return { run: snapshot.run, version: snapshot.version ?? 0, stage }
}
