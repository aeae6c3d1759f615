/**
 * A stage's attempts (docs/contract.md "Attempts"; DESIGN.md "Timing, attempts and streamed
 * output"): which `attempt` of a `PROCESSING` update wins, and the attempt fields a stage keeps.
 * Pure: callers pass `now`. The state machine (`decideStageUpdate`) applies it, so the in-memory
 * store and PostgreSQL agree.
 */
import type { StageUpdate } from '../contract/stage-update.js'
import { timestampToDate } from '../contract/timestamp.js'
import type { StageState } from './state.js'

/** How far ahead a runner's `nextRetryAt` may be, in milliseconds: 24 hours; later ones are stored as now + 24 h. */
export const MAX_RETRY_DELAY_MS = 24 * 60 * 60 * 1000

/** The attempt fields of a stored stage. */
export interface StageAttemptFields {
  attempt: number | null
  maxAttempts: number | null
  lastError: string | null
  nextRetryAt: Date | null
}

/**
 * How an update's `attempt` compares with the stored one: `none` (the update has none: it never
 * is stale for the attempt and leaves it as stored), `higher` (a new attempt: it wins and resets
 * the stage's progress), `same`, or `lower` (a late report of an earlier attempt: stale). A stage
 * without a stored attempt counts as on attempt 1: an attempt is never lower than that.
 */
export function compareAttempt(stored: number | null | undefined, incoming: number | undefined): 'none' | 'higher' | 'same' | 'lower' {
  if (incoming === undefined) return 'none'
  const current = stored ?? 1
  return incoming > current ? 'higher' : incoming === current ? 'same' : 'lower'
}

/** A runner's `nextRetryAt` as stored: clamped to [now, now + {@link MAX_RETRY_DELAY_MS}]. */
export function clampNextRetryAt(sent: Date, now: Date): Date {
  return new Date(Math.min(Math.max(sent.getTime(), now.getTime()), now.getTime() + MAX_RETRY_DELAY_MS))
}

/** A stage's stored attempt fields, `null` for each it does not have. */
export function storedAttemptFields(stage: StageState | undefined): StageAttemptFields {
  return {
    attempt: stage?.attempt ?? null,
    maxAttempts: stage?.maxAttempts ?? null,
    lastError: stage?.lastError ?? null,
    nextRetryAt: stage?.nextRetryAt ?? null,
  }
}

/**
 * The attempt fields of a stage that becomes final (`COMPLETED`, `FAILED` or `CANCELLED`, by its
 * own update or by `POST /cancel`): the stored ones, with `nextRetryAt` `null`. A final stage
 * never retries, so a retry it was waiting for is not pending any more; `attempt`, `maxAttempts`
 * and `lastError` stay (they say which attempt ended the stage and why the one before failed).
 * The one rule both final transitions of the state machine apply (docs/contract.md "Attempts").
 */
export function finalAttemptFields(stage: StageState | undefined): StageAttemptFields {
  return { ...storedAttemptFields(stage), nextRetryAt: null }
}

/**
 * The attempt fields a stage keeps after a `PROCESSING` update that is not stale for its attempt:
 * - without `attempt`: the stored ones, unchanged;
 * - the same attempt: each field sent replaces the stored one (`null` clears it, so
 *   `nextRetryAt: null` says the attempt started), each absent one stays;
 * - a higher attempt: the update's fields, with `lastError` and `nextRetryAt` `null` when absent
 *   (what is stored belongs to an earlier attempt) and `maxAttempts` kept when absent.
 * `nextRetryAt` is stored clamped by {@link clampNextRetryAt}; one sent already past while one is
 * stored keeps the stored one (a repeated delivery stays a duplicate).
 */
export function nextAttemptFields(stage: StageState | undefined, update: StageUpdate, now: Date): StageAttemptFields {
  const stored = storedAttemptFields(stage)
  const order = compareAttempt(stage?.attempt, update.attempt)
  if (order === 'none' || order === 'lower') return stored
  const base = order === 'higher' ? { ...stored, lastError: null, nextRetryAt: null } : stored
  return {
    attempt: update.attempt ?? base.attempt,
    maxAttempts: update.maxAttempts ?? base.maxAttempts,
    lastError: update.lastError !== undefined ? update.lastError : base.lastError,
    nextRetryAt: nextRetryAtOf(update.nextRetryAt, base.nextRetryAt, now),
  }
}

function nextRetryAtOf(sent: string | null | undefined, stored: Date | null, now: Date): Date | null {
  if (sent === undefined) return stored
  if (sent === null) return null
  const at = timestampToDate(sent)
  // A repeat that arrives after its retry time says nothing new: keeping the stored instant
  // makes it a duplicate, where clamping it to a later now would store a change per delivery.
  if (stored !== null && at.getTime() <= now.getTime()) return stored
  return clampNextRetryAt(at, now)
}

/** Whether two sets of attempt fields differ (an update that changes them is applied, not a duplicate). */
export function attemptFieldsDiffer(a: StageAttemptFields, b: StageAttemptFields): boolean {
  return (
    a.attempt !== b.attempt ||
    a.maxAttempts !== b.maxAttempts ||
    a.lastError !== b.lastError ||
    (a.nextRetryAt?.getTime() ?? null) !== (b.nextRetryAt?.getTime() ?? null)
  )
}
