import type { FinalStatus } from '../contract/status.js'
import type { OnRunEnded, RetentionPolicy } from '../core/hooks.js'
import { deleteExpiredRuns, sweepStaleRuns } from '../core/operations.js'
import type { RunState } from '../core/state.js'
import { isStoreUnavailableError, type Store } from '../core/store.js'
import { ServerConfigurationError } from './configuration-error.js'
import { consoleLogger, type Logger, oneLine, safeLogger } from '../internal/logger.js'
import type { PrismaStoreClient } from './storage/prisma-client.js'
import { positiveInteger, resolveStore } from './storage/store-option.js'
import { isPositive } from '../internal/is-positive.js'
import { describeReceived } from '../internal/received-value.js'
import { unrefTimer } from '../internal/unref-timer.js'
import { type InstrumentationCalls, type PipelineStatusInstrumentation, reportRunTransition, reportStagesEnded, resolveInstrumentation } from './instrumentation.js'

/** The default of {@link StaleRunSweeperSettings.intervalMs}: one minute. */
const DEFAULT_INTERVAL_MS = 60_000
/** The default of {@link StaleRunSweeperSettings.batchSize}. */
const DEFAULT_BATCH_SIZE = 100
/**
 * The most batches of `batchSize` runs one sweep takes while they come back full: 10, so a sweep
 * with the defaults fails up to 1,000 runs (a host running a thousand runs dies: all failed in
 * one sweep, not one batch per interval), yet stays bounded. Each run is one short transaction:
 * 1,000 runs took a median 1.3 s on PostgreSQL on a shared 2-core machine, well inside the
 * default `intervalMs`, and `stop()` never waits for an unbounded sweep. A larger backlog is logged.
 */
export const MAX_BATCHES_PER_SWEEP = 10
/** The longest delay `setTimeout` honours (about 24.8 days); a longer one fires at once. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1

/** Options of {@link createStaleRunSweeper} other than the store. */
export interface StaleRunSweeperSettings {
  /**
   * How long an unfinished run (`PENDING` or `PROCESSING`) may go without an applied update or a
   * heartbeat before the sweeper fails it, in milliseconds, unless it announced a heartbeat
   * interval: such a run is failed after 3 missed intervals (`MISSED_HEARTBEATS_LIMIT` ×
   * `intervalMs` it announced) instead, however long its stages take. Required. For runners
   * that never heartbeat, choose more than your longest stage (they report a stage when it starts
   * and when it ends, nothing in between) and, since `PENDING` runs count too, more than a run
   * may wait in your queue before a runner starts it.
   */
  staleAfterMs: number
  /**
   * The pause between the end of one timed sweep and the start of the next, in milliseconds.
   * Used by {@link StaleRunSweeper.start} only. A run is therefore failed at most about
   * `staleAfterMs + intervalMs` after its last update.
   * @default 60_000 (one minute)
   */
  intervalMs?: number | undefined
  /**
   * How many stale runs one listing takes, oldest first. A sweep keeps taking batches while they
   * come back full, up to 10 batches (`MAX_BATCHES_PER_SWEEP`), so it fails up to
   * `10 × batchSize` runs; a larger backlog is worked off by the next sweeps and logged (`warn`,
   * one line per such sweep). Each run is failed in a short transaction of its own.
   * @default 100 (so up to 1,000 runs per sweep)
   */
  batchSize?: number | undefined
  /**
   * Receives each failed run (`warn`), a sweep that stopped at its bound with stale runs left
   * (`warn`, one line per sweep, with the fix), a database that cannot be reached during a timed sweep
   * (`warn`), and any other error of a timed sweep or of `onRunStale` (`error`); also a
   * `PrismaStore`'s warnings when it has no `logger` of its own and no handlers lent it theirs first.
   * @default warnings to `console.warn`, errors to `console.error`
   */
  logger?: Logger | undefined
  /**
   * The current time, for tests.
   * @default () => new Date()
   */
  clock?: (() => Date) | undefined
  /**
   * Called with each run the sweeper failed, after its transaction committed, e.g. to alert
   * someone or to clean up the run's resources. Runs one at a time; a throw is logged with
   * `logger.error` and does not stop the sweep (the run stays `FAILED`). The app's
   * `onRunCompleted` hook is not called for a stale run: it runs when the runner's own
   * `/complete` `FAILED` arrives, if it ever does.
   * @default none
   */
  onRunStale?: ((run: RunState) => Promise<void> | void) | undefined
  /**
   * The app's hook for the end of a run (the same one the handlers take): called with
   * `how: 'swept_as_stale'` inside the transaction that fails the run, exactly once per run. When
   * it throws, that run is not failed this time (the sweep logs it and tries again next time).
   * @default none
   */
  onRunEnded?: OnRunEnded<unknown> | undefined
  /**
   * The retention sweep: how long to keep finished runs of each final status after their last
   * change, in milliseconds (`{ COMPLETED: 30 * DAY, FAILED: 90 * DAY }`); a status left out is
   * kept forever. Each timed sweep, and each {@link StaleRunSweeper.purge}, deletes up to
   * `batchSize` expired runs per status with their stages, in one bounded statement per status that
   * skips rows another instance is deleting (`FOR UPDATE SKIP LOCKED`), so every instance may run it.
   * @default none: finished runs are kept forever
   */
  retention?: RetentionPolicy | undefined
  /**
   * Where the sweeper reports what it fails (DESIGN.md "Observability"): each run's transition to
   * `FAILED`, and, for each of its stages still `PROCESSING`, the stage ended as `FAILED` at the
   * sweep (the stored stage stays as it was; its span ends with the run). `pipelineStatusInstrumentation()`
   * of `pipeline-status-sdk/otel`, or an object of your own.
   * @default none: nothing is recorded
   */
  instrumentation?: PipelineStatusInstrumentation | undefined
}

/**
 * Options of {@link createStaleRunSweeper}: a `store` or a `prisma` client, as for the handlers,
 * plus {@link StaleRunSweeperSettings}.
 */
export type StaleRunSweeperOptions = StaleRunSweeperSettings &
  (
    | {
        /** Where runs are kept; it must implement `listStaleRuns` (`MemoryStore` and `PrismaStore` do). */
        store: Store<unknown>
        prisma?: undefined
      }
    | {
        /** The app's `PrismaClient`, used through a `PrismaStore` with default options. */
        prisma: PrismaStoreClient
        store?: undefined
      }
  )

/** A stale-run sweeper; see {@link createStaleRunSweeper}. */
export interface StaleRunSweeper {
  /**
   * Sweeps once, now, and resolves with the runs it failed: batches of `batchSize` while they come
   * back full, at most 10 (`MAX_BATCHES_PER_SWEEP`), so at most `10 × batchSize` runs; with more
   * left it logs one `warn` line. Throws what the
   * store throws, e.g. `StoreUnavailableError`. Calls are single-flight: a call while a sweep is
   * running waits for it to end and then sweeps itself (reading the clock then), so sweeps of one
   * sweeper never overlap and each failed run is returned by exactly one call (two concurrent
   * calls never both report the same run; the later one finds it already `FAILED`).
   */
  sweep(): Promise<RunState[]>
  /**
   * Runs the retention sweep once, now (see {@link StaleRunSweeperSettings.retention}), and
   * resolves with how many runs it deleted per status; `{}` without `retention`. Throws what the
   * store throws.
   */
  purge(): Promise<Partial<Record<FinalStatus, number>>>
  /**
   * Sweeps at once, then again `intervalMs` after each sweep ends, until {@link StaleRunSweeper.stop}.
   * Errors of these sweeps are logged, never thrown; the next one retries. The timer does not
   * keep a Node.js process alive. Calling `start` again while started does nothing.
   */
  start(): void
  /** Stops the timer and resolves once a sweep in progress, if any, has ended. */
  stop(): Promise<void>
}

/**
 * Creates a sweeper that fails runs which stopped reporting: a runner that crashed, was killed
 * or lost its machine mid-stage would otherwise leave its run `PROCESSING` forever. Each sweep
 * lists unfinished runs silent for too long (no applied update or heartbeat for `staleAfterMs`, or
 * for 3 of the heartbeat intervals a run announced), then reads each again, decides again and
 * stores it `FAILED` only if nothing changed since (its version and last heartbeat), with an
 * `error` such as `No heartbeat for 45 s (the runner announced one every 10 seconds): the runner
 * stopped reporting` or `No update for more than 15 minutes: the runner stopped reporting`.
 * With `retention`, each timed sweep also deletes expired finished runs (see {@link StaleRunSweeper.purge}).
 *
 * Every web instance may run a sweeper: the run's lock and the second check make sure a run is
 * failed once, and never right after an update committed. A runner that was only slow is not
 * harmed beyond its run's status: its late `PROCESSING` is `stale`, a late stage `COMPLETED` is
 * still stored, its `/complete` `FAILED` is accepted once (and runs `onRunCompleted`), and its
 * `/complete` `COMPLETED` is a `409 run_finished`.
 *
 * On serverless platforms, where no timer outlives a request, do not `start()` it: call
 * `sweep()` from a scheduled (cron) route instead.
 *
 * Throws {@link ServerConfigurationError} when `staleAfterMs` is missing or not positive, when
 * `intervalMs` or `batchSize` is not a positive whole number, or when the store cannot list
 * stale runs.
 *
 * @example
 * ```ts
 * import { createStaleRunSweeper } from 'pipeline-status-sdk/server'
 * import { prisma } from './prisma.js' // your app's PrismaClient
 *
 * const sweeper = createStaleRunSweeper({
 *   prisma,
 *   staleAfterMs: 15 * 60_000, // longer than the longest stage, in milliseconds
 *   onRunStale: (run) => console.warn(`run ${run.id}: ${run.error}`),
 * })
 * sweeper.start()
 * process.once('SIGTERM', () => void sweeper.stop())
 *
 * // Or, on a serverless platform, from a route your scheduler calls every few minutes:
 * export async function GET(): Promise<Response> {
 *   const failed = await sweeper.sweep()
 *   return Response.json({ failed: failed.map((run) => run.id) })
 * }
 * ```
 */
export function createStaleRunSweeper(options: StaleRunSweeperOptions): StaleRunSweeper {
  const logger = safeLogger(options.logger ?? consoleLogger)
  const store = resolveSweepableStore(options, logger)
  const staleAfterMs = positiveNumber('staleAfterMs', options.staleAfterMs)
  const intervalMs = positiveInteger('intervalMs', options.intervalMs ?? DEFAULT_INTERVAL_MS)
  if (intervalMs > MAX_TIMER_DELAY_MS) {
    throw new ServerConfigurationError(`intervalMs must be at most ${MAX_TIMER_DELAY_MS}, got ${intervalMs}`)
  }
  const batchSize = positiveInteger('batchSize', options.batchSize ?? DEFAULT_BATCH_SIZE)
  const clock = options.clock ?? (() => new Date())
  const { onRunStale, onRunEnded } = options
  const retention = resolveRetention(store, options.retention)
  const instrumentation = options.instrumentation ? resolveInstrumentation(options.instrumentation, logger) : undefined

  /** The last sweep asked for; each waits for the one before it. */
  let inFlight: Promise<RunState[]> | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let started = false

  async function onFailed(run: RunState): Promise<void> {
    logger.warn(`pipeline-status: failed stale run ${run.id}: ${run.error ?? ''}`, { runId: run.id })
    if (instrumentation) await reportSwept(store, instrumentation, run, logger)
    if (!onRunStale) return
    try {
      await onRunStale(run)
    } catch (error) {
      logger.error(`pipeline-status: onRunStale threw for run ${run.id}`, { error, runId: run.id })
    }
  }

  function sweep(): Promise<RunState[]> {
    const previous = inFlight?.catch(() => undefined) ?? Promise.resolve()
    const mine = previous.then(() => sweepOnce())
    inFlight = mine
    const settled = () => {
      if (inFlight === mine) inFlight = undefined
    }
    mine.then(settled, settled)
    return mine
  }

  async function sweepOnce(): Promise<RunState[]> {
    const options = { staleAfterMs, now: clock(), limit: batchSize, maxBatches: MAX_BATCHES_PER_SWEEP, onFailed, onRunEnded }
    const { failed, batches, backlog } = await sweepStaleRuns(store, options)
    if (backlog) {
      logger.warn(
        `pipeline-status: the stale-run sweep failed ${failed.length} runs in ${batches} batches of ${batchSize} (its most per sweep) and more stale runs remain for the next sweep; ` +
          `if this repeats, raise batchSize (now ${batchSize}) or lower intervalMs (now ${intervalMs} ms)`,
        { failed: failed.length, batches, batchSize, intervalMs },
      )
    }
    return failed
  }

  async function purge(): Promise<Partial<Record<FinalStatus, number>>> {
    if (!retention) return {}
    const deleted = await deleteExpiredRuns(store, { keep: retention, now: clock(), limit: batchSize })
    const total = Object.values(deleted).reduce((sum, count) => sum + count, 0)
    if (total > 0) logger.warn(`pipeline-status: deleted ${total} finished runs past their retention`, { deleted })
    return deleted
  }

  function schedule(delayMs: number): void {
    // A Node.js timer must not keep the process alive.
    timer = unrefTimer(setTimeout(() => void tick(), delayMs))
  }

  async function tick(): Promise<void> {
    timer = undefined
    try {
      await sweep()
    } catch (error) {
      if (isStoreUnavailableError(error)) {
        // The store's message carries the driver's cause (`connect ECONNREFUSED 127.0.0.1:5432`).
        logger.warn(`pipeline-status: database unavailable during the stale-run sweep (${oneLine(error.message)}); retrying in ${intervalMs} ms`, { error })
      } else {
        logger.error('pipeline-status: the stale-run sweep failed', { error })
      }
    }
    try {
      await purge()
    } catch (error) {
      logger.error('pipeline-status: the retention sweep failed', { error })
    }
    // A stop() and start() during the sweep may already have scheduled the next one.
    if (started && timer === undefined) schedule(intervalMs)
  }

  return {
    sweep,
    purge,
    start() {
      if (started) return
      started = true
      schedule(0)
    },
    async stop() {
      started = false
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      // The sweep's own errors were already logged by its tick, or thrown to sweep()'s caller.
      await inFlight?.catch(() => undefined)
    },
  }
}

/** Reports a swept run's transition and, read back, its stages that were still running as ended `FAILED` with it. */
async function reportSwept(store: Store<unknown>, calls: InstrumentationCalls, run: RunState, logger: Logger): Promise<void> {
  reportRunTransition(calls, run)
  try {
    const snapshot = await store.getRun(run.id)
    const running = (snapshot?.stages ?? []).filter((stage) => stage.status === 'PROCESSING')
    reportStagesEnded(calls, run, running.map((stage) => ({ ...stage, status: 'FAILED' as const, completedAt: run.completedAt })))
  } catch (error) {
    logger.warn(`pipeline-status: could not read the stages of swept run ${run.id} for their spans`, { error, runId: run.id })
  }
}

function resolveSweepableStore(options: StaleRunSweeperOptions, logger: Logger): Store<unknown> {
  const resolved = resolveStore(options, logger, ' to the stale-run sweeper')
  if (typeof resolved.listStaleRuns !== 'function') {
    throw new ServerConfigurationError('The store cannot list stale runs (it has no listStaleRuns method), so the sweeper cannot find them')
  }
  return resolved
}

function resolveRetention(store: Store<unknown>, retention: RetentionPolicy | undefined): RetentionPolicy | undefined {
  if (retention === undefined) return undefined
  if (typeof store.deleteFinishedRuns !== 'function') {
    throw new ServerConfigurationError('The store cannot delete runs (it has no deleteFinishedRuns method), so retention cannot work')
  }
  for (const [status, keepMs] of Object.entries(retention)) {
    if (!['COMPLETED', 'FAILED', 'CANCELLED'].includes(status)) {
      throw new ServerConfigurationError(`retention has an unknown status ${status}; use COMPLETED, FAILED or CANCELLED`)
    }
    if (keepMs !== undefined) positiveNumber(`retention.${status}`, keepMs)
  }
  return retention
}

function positiveNumber(name: string, value: unknown): number {
  if (!isPositive(value)) {
    throw new ServerConfigurationError(
      `${name} must be a positive number of milliseconds (e.g. 15 * 60_000 for 15 minutes), got ${describeReceived(value)}`,
    )
  }
  return value
}
