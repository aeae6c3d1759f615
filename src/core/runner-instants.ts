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
  /** Whose instant it is: a stage's (a stage update) or the run's (`/complete`). */
  of: 'stage' | 'run'
  /** The instant the runner sent. */
  sent: Date
  /** The instant stored: the nearer end of the window. */
  stored: Date
  /**
   * Which end: `ahead` (after the server's now + tolerance: a runner clock ahead), `before_creation`
   * (before the run's row was created: a clock behind, or a naive local time read as UTC) or
   * `before_start` (before the stage, or the run, started: most often a stage's `PROCESSING`
   * update that reached the server late, from a runner's outbox after an outage; else the same
   * causes).
   */
  bound: 'ahead' | 'before_creation' | 'before_start'
  /**
   * For `before_start`, whose start it was stored clamped to: the stage's own (the server's receipt
   * of its first update, its `PROCESSING`), or the run's (the receipt of the run's first stage
   * update: for `/complete`, and for a stage whose first report is final).
   */
  startOf?: 'stage' | 'run'
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
 * of a run happened before its row existed) or, with `notBeforeIs: 'stage_start'` or
 * `'run_start'`, the stage's or the run's `startedAt` (so that no duration is negative). `of` says
 * whose instant it is (default `'stage'`). When the window is empty (a web instance's clock behind
 * the one that created the row by more than the tolerance), `notBefore` wins. `clamped` is set
 * only when the instant was moved.
 */
export function clampRunnerInstant(
  sent: Date,
  window: {
    notBefore: Date
    notBeforeIs?: 'creation' | 'stage_start' | 'run_start'
    of?: ClampedInstant['of']
    now: Date
    toleranceMs: number
    field?: ClampedInstant['field']
  },
): { at: Date; clamped?: ClampedInstant } {
  const { notBefore, now, toleranceMs, field = 'completedAt', of = 'stage', notBeforeIs = 'creation' } = window
  const latest = now.getTime() + toleranceMs
  const at = sent.getTime()
  if (at < notBefore.getTime()) {
    const early =
      notBeforeIs === 'creation'
        ? ({ bound: 'before_creation' } as const)
        : ({ bound: 'before_start', startOf: notBeforeIs === 'run_start' ? 'run' : 'stage' } as const)
    return { at: notBefore, clamped: { field, of, sent, stored: notBefore, ...early, skewMs: notBefore.getTime() - at, toleranceMs } }
  }
  if (at > latest) {
    const stored = new Date(Math.max(latest, notBefore.getTime()))
    return { at: stored, clamped: { field, of, sent, stored, bound: 'ahead', skewMs: at - now.getTime(), toleranceMs } }
  }
  return { at: sent }
}

/** What a runner that sends a local time without an offset should do instead. */
const SEND_UTC = "send UTC instants with 'Z' (Python: datetime.now(timezone.utc).isoformat())"

/**
 * The warning for a clamped instant, with its cause and its fix, e.g. `run r1: the runner sent
 * completedAt 2026-01-01T18:00:00.000Z, 9 hours ahead of the server's clock (tolerance 5 minutes);
 * stored clamped to 2026-01-01T09:05:00.000Z. The runner's clock is ahead: ...`. An instant
 * before a start names both causes, the likelier first: the stage's `PROCESSING` update arrived
 * late (a runner's outbox delivering after an outage; the wire does not mark a redelivery, so
 * the server cannot tell), or the runner's clock is behind; and that the duration is stored as 0 s.
 */
export function describeClampedInstant(runId: string, clamped: ClampedInstant): string {
  const sent = clamped.sent.toISOString()
  const stored = clamped.stored.toISOString()
  const off = approximateDuration(clamped.skewMs)
  const head = `run ${runId}: the runner sent ${clamped.field} ${sent}`
  if (clamped.bound === 'ahead') {
    return (
      `${head}, ${off} ahead of the server's clock (tolerance ${describeDuration(clamped.toleranceMs)}); ` +
      `stored clamped to ${stored}. The runner's clock is ahead: sync it (NTP), or raise clockSkewToleranceMs if such skew is expected`
    )
  }
  if (clamped.bound === 'before_creation') {
    return (
      `${head}, ${off} before the run was created (${stored}); stored clamped to its creation. ` +
      `The runner's clock is behind, or it sent a local time without an offset, which is read as UTC: ${SEND_UTC}`
    )
  }
  const [started, late] =
    clamped.startOf === 'run'
      ? ['the run started', "the run's first stage update"]
      : ['the stage started', "the stage's PROCESSING update"]
  return (
    `${head}, ${off} before ${started} (${stored}, when the server received ${late}); stored clamped to that start, ` +
    `so the ${clamped.of}'s duration is stored as 0 s. Either ${late} arrived late (a runner's outbox delivering after ` +
    "an outage or a server restart; nothing to fix then), or the runner's clock is behind, or it sent a local time " +
    `without an offset, which is read as UTC: sync its clock (NTP), or ${SEND_UTC}`
  )
}
