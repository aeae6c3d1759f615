/**
 * How the components write a stage's time, attempts and progress: pure text from the stored
 * record and a "now" in epoch milliseconds, so the server's first paint and the browser's ticking
 * clock use one rule. (Moved here from the Next.js example's lib/stage-timing.ts.)
 */
import type { PipelineRunRecord, StageOutputRecord } from '../contract/records.js'
import type { StageProgress } from '../contract/runner-control.js'
import { isFinalStatus } from '../contract/status.js'

/** The fields a stage's time and attempt line are read from. */
export type StageTimingFields = Pick<
  StageOutputRecord,
  'status' | 'startedAt' | 'createdAt' | 'completedAt' | 'updatedAt' | 'attempt' | 'maxAttempts' | 'nextRetryAt'
>

/**
 * A duration that is still running, for people, to the second and rounded down as a clock ticks:
 * `4 s`, `2 min 05 s`, `1 h 02 min`. Negative or non-finite durations read `0 s` (a duration is
 * never negative). A finished one reads as {@link formatTook} writes it.
 */
export function formatDuration(ms: number): string {
  const seconds = Number.isFinite(ms) && ms > 0 ? Math.floor(ms / 1000) : 0
  if (seconds < 60) return `${seconds} s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes} min ${pad(seconds % 60)} s`
  return `${Math.floor(minutes / 60)} h ${pad(minutes % 60)} min`
}

/**
 * A finished duration (`completedAt − startedAt` of a stage or a run), for people: below a second
 * in milliseconds (`879 ms`: a fast stage does not read `0 s`), else to the nearest second (`2 s`
 * for 1.72 s) in {@link formatDuration}'s units. Negative or non-finite durations read `0 ms`.
 */
export function formatTook(ms: number): string {
  const value = Number.isFinite(ms) && ms > 0 ? ms : 0
  if (value < 999.5) return `${Math.round(value)} ms`
  return formatDuration(Math.round(value / 1000) * 1000)
}

/** A wait still to come, rounded up to the second (29.2 s to go reads `30 s`, as a countdown does). */
export function formatCountdown(ms: number): string {
  return formatDuration(Math.ceil(Math.max(0, ms) / 1000) * 1000)
}

/** `HH:MM:SS UTC`: the same text on the server and in the browser, whatever their time zones. */
export function formatTime(iso: string): string {
  const time = Date.parse(iso)
  return Number.isFinite(time) ? `${new Date(time).toISOString().slice(11, 19)} UTC` : 'unknown time'
}

/** `YYYY-MM-DD HH:MM UTC`, for lists that span days. */
export function formatDateTime(iso: string): string {
  const time = Date.parse(iso)
  return Number.isFinite(time) ? `${new Date(time).toISOString().slice(0, 16).replace('T', ' ')} UTC` : 'unknown time'
}

/** Milliseconds from `fromIso` to `to` (epoch ms), floored at 0: a clock ahead never shows a negative time. */
export function elapsedMs(fromIso: string, to: number): number {
  const from = Date.parse(fromIso)
  return Number.isFinite(from) && Number.isFinite(to) ? Math.max(0, to - from) : 0
}

/** A stage's time as the timeline shows it. */
export interface StageTiming {
  /** When the stage started (ISO 8601): `startedAt`, or its row's creation from a server older than it. */
  startedAt: string
  /** Its whole time so far, all attempts and waits included, in milliseconds (≥ 0). */
  durationMs: number
  /**
   * `running`: PROCESSING on a run still going, the duration ticks; `took`: finished, its
   * `completedAt − startedAt`; `stopped`: left PROCESSING by a run that ended, up to the run's end.
   */
  kind: 'running' | 'took' | 'stopped'
}

/** The start and duration of a stored stage, at `now` (epoch ms). */
export function stageTiming(
  stage: StageTimingFields,
  run: Pick<PipelineRunRecord, 'status' | 'completedAt'>,
  now: number,
): StageTiming {
  const startedAt = stage.startedAt ?? stage.createdAt
  if (stage.status !== 'PROCESSING') {
    return { startedAt, durationMs: elapsedMs(startedAt, Date.parse(stage.completedAt ?? stage.updatedAt)), kind: 'took' }
  }
  if (isFinalStatus(run.status)) {
    return { startedAt, durationMs: elapsedMs(startedAt, Date.parse(run.completedAt ?? stage.updatedAt)), kind: 'stopped' }
  }
  return { startedAt, durationMs: elapsedMs(startedAt, now), kind: 'running' }
}

/**
 * The attempt line of a PROCESSING stage that is retrying: `attempt 2 of 3 · retrying in 30 s`
 * while it waits for `nextRetryAt` (`retrying now` once that has passed), `attempt 2 of 3` while
 * the retry runs (`attempt 2` without `maxAttempts`). `undefined` for a first attempt that is
 * not waiting, and for every other status.
 */
export function describeAttempt(stage: StageTimingFields, now: number): string | undefined {
  if (stage.status !== 'PROCESSING') return undefined
  const retrying = stage.attempt !== null && stage.attempt > 1
  if (!retrying && stage.nextRetryAt === null) return undefined
  const parts: string[] = []
  if (stage.attempt !== null) parts.push(stage.maxAttempts === null ? `attempt ${stage.attempt}` : `attempt ${stage.attempt} of ${stage.maxAttempts}`)
  if (stage.nextRetryAt !== null) {
    const wait = Date.parse(stage.nextRetryAt) - now
    parts.push(wait > 0 ? `retrying in ${formatCountdown(wait)}` : 'retrying now')
  }
  return parts.join(' · ')
}

/**
 * A stage's progress as one line: `37 of 40 · batch 37` (current of total, then the runner's
 * message), or the percent when no total was sent (`62% · …`); `undefined` when empty.
 */
export function describeProgress(progress: StageProgress): string | undefined {
  const parts: string[] = []
  if (progress.current !== undefined && progress.total !== undefined) parts.push(`${progress.current} of ${progress.total}`)
  else if (progress.current !== undefined) parts.push(`${progress.current} done`)
  if (progress.percent !== undefined && progress.total === undefined) parts.push(`${Math.round(progress.percent)}%`)
  if (progress.message) parts.push(progress.message)
  return parts.length > 0 ? parts.join(' · ') : undefined
}

/** The fraction done of a progress (0..1), or `undefined` when it says neither a total nor a percent. */
export function progressFraction(progress: StageProgress): number | undefined {
  if (progress.current !== undefined && progress.total !== undefined && progress.total > 0) {
    return Math.min(1, progress.current / progress.total)
  }
  if (progress.percent !== undefined) return Math.min(1, progress.percent / 100)
  return undefined
}

/** An ISO 8601 duration for `<time dateTime>`, to the millisecond: `PT125S`, `PT0.879S`. */
export function isoDuration(ms: number): string {
  const whole = Number.isFinite(ms) && ms > 0 ? Math.round(ms) : 0
  return `PT${Math.floor(whole / 1000)}${whole % 1000 === 0 ? '' : `.${String(whole % 1000).padStart(3, '0').replace(/0+$/, '')}`}S`
}

function pad(value: number): string {
  return String(value).padStart(2, '0')
}
