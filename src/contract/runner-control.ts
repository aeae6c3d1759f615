import { z } from 'zod'
import { StageNumber } from './stored-integer.js'
import { type StageCatalogue, stageNumberIn } from './stages.js'

/** The longest `progress.message`, in UTF-16 code units: a status line, not a log. */
export const MAX_PROGRESS_MESSAGE_LENGTH = 500

/** The longest cancellation `reason`, in UTF-16 code units; it becomes the run's `error`. */
export const MAX_CANCEL_REASON_LENGTH = 2000

/** The shortest heartbeat interval a runner may announce, in milliseconds (1 s). */
export const MIN_HEARTBEAT_INTERVAL_MS = 1000

/** The longest heartbeat interval a runner may announce, in milliseconds (1 h). */
export const MAX_HEARTBEAT_INTERVAL_MS = 3_600_000

/**
 * Progress within a `PROCESSING` stage, sent on a stage update or a heartbeat and stored on the
 * stage. `seq` is a per-stage sequence number the runner assigns (0, 1, 2, ...): the server keeps
 * the progress with the highest `seq`, never the last to arrive, so a retried or delayed report
 * never overwrites a newer one. All other fields are optional; unknown fields are dropped.
 *
 * @example
 * ```ts
 * import { StageProgress } from 'pipeline-status-sdk'
 * StageProgress.parse({ seq: 3, current: 30, total: 120, message: 'Translating batch 3' })
 * ```
 */
export const StageProgress = z
  .object({
    /** Per-stage sequence number (a non-negative safe integer); the highest stored wins. */
    seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    /** Units done so far (a non-negative finite number). */
    current: z.number().finite().nonnegative().optional(),
    /** Units in all (a non-negative finite number); `current` must not exceed it. */
    total: z.number().finite().nonnegative().optional(),
    /** Percent done, 0 to 100. */
    percent: z.number().finite().min(0).max(100).optional(),
    /** A short status line, at most {@link MAX_PROGRESS_MESSAGE_LENGTH} characters. */
    message: z.string().max(MAX_PROGRESS_MESSAGE_LENGTH).optional(),
  })
  .check((ctx) => {
    const { current, total } = ctx.value
    if (current !== undefined && total !== undefined && current > total) {
      ctx.issues.push({
        code: 'custom',
        input: current,
        path: ['current'],
        message: 'must not exceed total',
      })
    }
  })
/**
 * Progress within a `PROCESSING` stage.
 * @interface
 */
export type StageProgress = z.infer<typeof StageProgress>

// The heartbeat's fields before the cross-field rule, so that heartbeatSchemaFor can extend them.
const HeartbeatFields = z.object({
    /** The stage that is running (1..N); required with `progress`. */
    stageNumber: StageNumber.optional(),
    /** Progress of that stage (see {@link StageProgress}). */
    progress: StageProgress.optional(),
    /** The runner's heartbeat interval in milliseconds, 1000 to 3 600 000. */
    intervalMs: z
      .number()
      .int()
      .min(MIN_HEARTBEAT_INTERVAL_MS)
      .max(MAX_HEARTBEAT_INTERVAL_MS)
      .optional(),
})

function stageNumberWithProgress(ctx: z.core.ParsePayload<{ stageNumber?: number | undefined; progress?: unknown }>): void {
  if (ctx.value.progress !== undefined && ctx.value.stageNumber === undefined) {
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      path: ['stageNumber'],
      message: 'is required with progress',
    })
  }
}

/**
 * Body of `POST {basePath}/{runId}/heartbeat` (the body itself is optional: no body, or `{}`, is
 * a bare "still alive"). Authenticated like a stage update. Without `progress` it records only the
 * run's last activity (no new run version, no live event); with `progress` (which needs
 * `stageNumber`) it also stores the stage's progress when its `seq` is the highest yet.
 * `intervalMs` announces how often the runner sends heartbeats; the stale-run sweeper then judges
 * the run by it instead of its global `staleAfterMs`.
 *
 * @example
 * ```ts
 * import { Heartbeat } from 'pipeline-status-sdk'
 * Heartbeat.parse({ stageNumber: 2, intervalMs: 10_000, progress: { seq: 4, percent: 40 } })
 * ```
 */
export const Heartbeat = HeartbeatFields.check(stageNumberWithProgress)
/**
 * Body of a heartbeat.
 * @interface
 */
export type Heartbeat = z.infer<typeof Heartbeat>

/**
 * The heartbeat schema restricted to a catalogue: `stageNumber` must be 1..N.
 *
 * @example
 * ```ts
 * import { heartbeatSchemaFor, DEFAULT_STAGES } from 'pipeline-status-sdk'
 * heartbeatSchemaFor(DEFAULT_STAGES).safeParse({ stageNumber: 6 }).success // false
 * ```
 */
export function heartbeatSchemaFor(stages: StageCatalogue) {
  return HeartbeatFields.extend({ stageNumber: stageNumberIn(stages).optional() }).check(stageNumberWithProgress)
}

/**
 * Body of `POST {basePath}/{runId}/cancel` (JSON only), sent by the web app: the run and its
 * `PROCESSING` stage become `CANCELLED` in one write. `reason` becomes the run's `error`.
 */
export const CancelRun = z.object({
  /** Why the run is cancelled (at most {@link MAX_CANCEL_REASON_LENGTH} characters); stored as the run's `error`. */
  reason: z.string().max(MAX_CANCEL_REASON_LENGTH).optional(),
})
/**
 * Body of a cancellation.
 * @interface
 */
export type CancelRun = z.infer<typeof CancelRun>

/**
 * What a heartbeat did: recorded the run's activity only (`recorded`, no progress sent), also
 * stored the progress (`applied`), found that progress already stored (`duplicate`, same `seq`),
 * or kept a newer one (`stale`: a lower `seq`, a stage that is not `PROCESSING`, or a finished run,
 * which a heartbeat never changes: not even its last activity or interval).
 */
export const HeartbeatOutcome = z.enum(['recorded', 'applied', 'duplicate', 'stale'])
/**
 * What a heartbeat did.
 * @useDeclaredType
 */
export type HeartbeatOutcome = z.infer<typeof HeartbeatOutcome>

/** How a run ended, as handed to the `onRunEnded` hook. */
export const RunEndReason = z.enum([
  /** The last stage completed. */
  'last_stage_completed',
  /** A stage update sent `FAILED`. */
  'stage_failed',
  /** A stage update sent `CANCELLED`. */
  'stage_cancelled',
  /** `POST /cancel`. */
  'cancelled',
  /** The stale-run sweeper failed it. */
  'swept_as_stale',
  /** `POST /complete` finished it. */
  'completed_explicitly',
])
/**
 * How a run ended.
 * @useDeclaredType
 */
export type RunEndReason = z.infer<typeof RunEndReason>
