/**
 * When a run counts as stopped: heartbeats, the silence a run may keep, and the stale-run
 * sweep's decision. Pure: callers pass `now`.
 */
import { isFinalStatus } from '../contract/status.js'
import type { RunState } from './state.js'
import { isPositive } from '../internal/is-positive.js'
import { describeDuration } from './describe-duration.js'

/**
 * How many announced heartbeat intervals a run may miss before the stale-run sweep fails it: 3,
 * so one lost or late heartbeat (a slow request, a retry) never fails a healthy run, and a killed
 * runner is noticed within about three intervals plus the sweep interval.
 */
export const MISSED_HEARTBEATS_LIMIT = 3

/** When the runner was last heard from: the later of the run's last change and its last heartbeat. */
export function lastSeenAt(run: RunState): Date {
  const activity = run.lastActivityAt
  return activity && activity.getTime() > run.updatedAt.getTime() ? activity : run.updatedAt
}

/**
 * How long a run may stay silent before it counts as stopped, in milliseconds:
 * {@link MISSED_HEARTBEATS_LIMIT} × its announced heartbeat interval, or `staleAfterMs` for a run
 * that never announced one.
 */
export function silenceLimitMs(run: RunState, staleAfterMs: number): number {
  return run.heartbeatIntervalMs ? MISSED_HEARTBEATS_LIMIT * run.heartbeatIntervalMs : staleAfterMs
}

/**
 * What a heartbeat's activity (its `lastActivityAt` and announced interval) does to a run:
 * `recorded` on an unfinished run; `stale` on a finished one, which never changes again (a
 * heartbeat that arrives after the run finished is a late arrival, answered with the run as
 * stored so that the runner learns how it ended).
 */
export function decideHeartbeat(run: RunState): 'recorded' | 'stale' {
  return isFinalStatus(run.status) ? 'stale' : 'recorded'
}

/** The decision for a run that may have stopped reporting. */
export type StaleRunDecision =
  | {
      /** The run had no update for longer than allowed: it is failed. */
      outcome: 'failed'
      /** The run to store: `FAILED`, with `error`, `completedAt` and `updatedAt` set to now. */
      run: RunState
    }
  | {
      /** `finished`: the run already has a final status. `active`: it was updated recently enough. */
      outcome: 'finished' | 'active'
      /** The run, unchanged. */
      run: RunState
    }

/** Inputs of {@link decideStaleRun}. */
export interface StaleRunInput {
  /** The run as stored, read under the run's lock. */
  run: RunState
  /** The current time. */
  now: Date
  /**
   * How long an unfinished run may go without an applied update before it counts as stopped, in
   * milliseconds. A positive number.
   */
  staleAfterMs: number
}

/**
 * The moment before which an unfinished run's last activity (`updatedAt`) makes it stale:
 * `now - staleAfterMs`. Stores list candidates with it; {@link decideStaleRun} decides with it.
 * Throws a `RangeError` unless `staleAfterMs` is a positive, finite number.
 */
export function staleRunCutoff(now: Date, staleAfterMs: number): Date {
  if (!isPositive(staleAfterMs)) {
    throw new RangeError(`staleAfterMs must be a positive number of milliseconds, got ${String(staleAfterMs)}`)
  }
  return new Date(now.getTime() - staleAfterMs)
}

/**
 * Decides whether a run stopped reporting. An unfinished run (`PENDING` or `PROCESSING`) not
 * heard from (see {@link lastSeenAt}: its last applied update or heartbeat) for longer than its
 * silence limit (see {@link silenceLimitMs}: 3 announced heartbeat intervals, else `staleAfterMs`)
 * becomes `FAILED`, with an `error` that says why ("No heartbeat for 45 s ..."). `completionReceivedAt` stays `null`: the runner's own `/complete`
 * `FAILED`, should it still arrive, is accepted once and runs the app's `onRunCompleted` hook,
 * while a `/complete` `COMPLETED` is refused like for any failed run.
 */
export function decideStaleRun({ run, now, staleAfterMs }: StaleRunInput): StaleRunDecision {
  staleRunCutoff(now, staleAfterMs)
  if (isFinalStatus(run.status)) return { outcome: 'finished', run }
  const limit = silenceLimitMs(run, staleAfterMs)
  const silentMs = now.getTime() - lastSeenAt(run).getTime()
  if (silentMs <= limit) return { outcome: 'active', run }
  const error = run.heartbeatIntervalMs
    ? `No heartbeat for ${Math.floor(silentMs / 1000)} s (the runner announced one every ${describeDuration(run.heartbeatIntervalMs)}): the runner stopped reporting`
    : `No update for more than ${describeDuration(staleAfterMs)}: the runner stopped reporting`
  return { outcome: 'failed', run: { ...run, status: 'FAILED', error, completedAt: now, updatedAt: now } }
}
