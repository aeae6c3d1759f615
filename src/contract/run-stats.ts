/**
 * Stage statistics, the wire shapes (docs/design.md, "What people see"):
 * `GET {base}/runs/stats?pipeline=&days=` → per pipeline and stage number, how many COMPLETED
 * stages with both times ended in the window, how many FAILED, and their duration percentiles.
 */
import { z } from 'zod'

/** The default window of `GET {base}/runs/stats`, in days. */
export const DEFAULT_STATS_DAYS = 7
/** The largest window of `GET {base}/runs/stats`, in days; `days` outside 1..90 is a 400 naming `days`. */
export const MAX_STATS_DAYS = 90

/** One pipeline's stage in `GET {base}/runs/stats`. */
export const StageStats = z.object({
  /** The pipeline. */
  pipeline: z.string(),
  /** The stage's number. */
  stageNumber: z.number().int(),
  /** The stage's name, from the newest run that has it. */
  name: z.string(),
  /** COMPLETED stages with both `startedAt` and `completedAt` whose `completedAt` is in the window. */
  count: z.number().int(),
  /** FAILED stages whose `completedAt` is in the window. */
  failed: z.number().int(),
  /** Median duration (`completedAt - startedAt`) of the counted stages, integer milliseconds (`percentile_cont`); `null` when `count` is 0. */
  p50Ms: z.number().int().nullable(),
  /** 95th-percentile duration, integer milliseconds; `null` when `count` is 0. */
  p95Ms: z.number().int().nullable(),
})
/**
 * One pipeline's stage in the stats.
 * @interface
 */
export type StageStats = z.infer<typeof StageStats>

/** The answer of `GET {base}/runs/stats`, ordered by pipeline, then stage number. */
export const RunStatsResponse = z.object({
  /** One entry per (pipeline, stage number) with a counted or failed stage in the window. */
  stages: z.array(StageStats),
})
/**
 * The answer of `GET {base}/runs/stats`.
 * @interface
 */
export type RunStatsResponse = z.infer<typeof RunStatsResponse>
