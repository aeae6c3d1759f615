/**
 * The one window for every instant a runner sends (a stage's or a run's `completedAt`): what is
 * stored when a runner's clock is ahead or behind, and the warning that says so. Pure; the state
 * machine (`decideStageUpdate`, `decideCompletion`) applies it.
 */
import { approximateDuration, describeDuration } from './describe-duration.js'

/**
 * How far a runner-sent instant may be ahead of the server's clock before it is clamped, in
 * milliseconds: 5 minutes (see {@link clampRunnerInstant}).
 */
export const DEFAULT_CLOCK_SKEW_TOLERANCE_MS = 300_000

/** A runner-sent instant that was outside its window and was stored clamped to it. */
export interface ClampedInstant {
  /** The body field that carried it. */
  field: 'completedAt'
  /** The instant the runner sent. */
  sent: Date
  /** The instant stored: the nearer end of the window. */
  stored: Date
  /**
   * Which end: `ahead` (after the server's now + tolerance: a runner clock ahead), `before_creation`
   * (before the run's row was created: a clock behind, or a naive local time read as UTC) or
   * `before_start` (before the stage, or the run, started: the same causes).
   */
  bound: 'ahead' | 'before_creation' | 'before_start'
  /**
   * The skew, in milliseconds, a positive number: for `ahead`, how far the instant was past the
   * server's now; for the other two, how far before the run's creation or the start.
   */
  skewMs: number
  /** The tolerance the window was built with, in milliseconds. */
  toleranceMs: number
}

/**
 * The one rule for an instant a runner sends (a stage's or a run's `completedAt`): it is stored as
 * sent inside [`notBefore`, `now + toleranceMs`], clamped to the nearer end outside it, never
 * refused (a status must not be lost for a clock). `notBefore` is the run's `createdAt` (nothing
 * of a run happened before its row existed) or, with `notBeforeIs: 'start'`, the stage's or the
 * run's `startedAt` (so that no duration is negative). When the window is empty (a web instance's
 * clock behind the one that created the row by more than the tolerance), `notBefore` wins.
 * `clamped` is set only when the instant was moved.
 */
export function clampRunnerInstant(
  sent: Date,
  window: { notBefore: Date; notBeforeIs?: 'creation' | 'start'; now: Date; toleranceMs: number; field?: ClampedInstant['field'] },
): { at: Date; clamped?: ClampedInstant } {
  const { notBefore, now, toleranceMs, field = 'completedAt' } = window
  const early = window.notBeforeIs === 'start' ? 'before_start' : 'before_creation'
  const latest = now.getTime() + toleranceMs
  const at = sent.getTime()
  if (at < notBefore.getTime()) {
    return { at: notBefore, clamped: { field, sent, stored: notBefore, bound: early, skewMs: notBefore.getTime() - at, toleranceMs } }
  }
  if (at > latest) {
    const stored = new Date(Math.max(latest, notBefore.getTime()))
    return { at: stored, clamped: { field, sent, stored, bound: 'ahead', skewMs: at - now.getTime(), toleranceMs } }
  }
  return { at: sent }
}

/**
 * The warning for a clamped instant, with its cause and its fix, e.g. `run r1: the runner sent
 * completedAt 2026-01-01T18:00:00.000Z, 9 hours ahead of the server's clock (tolerance 5 minutes);
 * stored clamped to 2026-01-01T09:05:00.000Z. The runner's clock is ahead: ...`.
 */
export function describeClampedInstant(runId: string, clamped: ClampedInstant): string {
  const sent = clamped.sent.toISOString()
  const stored = clamped.stored.toISOString()
  const off = approximateDuration(clamped.skewMs)
  if (clamped.bound === 'ahead') {
    return (
      `run ${runId}: the runner sent ${clamped.field} ${sent}, ${off} ahead of the server's clock (tolerance ` +
      `${describeDuration(clamped.toleranceMs)}); stored clamped to ${stored}. The runner's clock is ahead: sync it (NTP), ` +
      'or raise clockSkewToleranceMs if such skew is expected'
    )
  }
  const what = clamped.bound === 'before_start' ? ['it started', 'its start'] : ['the run was created', 'its creation']
  return (
    `run ${runId}: the runner sent ${clamped.field} ${sent}, ${off} before ${what[0]} (${stored}); ` +
    `stored clamped to ${what[1]}. The runner's clock is behind, or it sent a local time without an offset, ` +
    "which is read as UTC: send UTC instants with 'Z' (Python: datetime.now(timezone.utc).isoformat())"
  )
}
