/**
 * Stage statistics, the rules both stores share (docs/design.md, "What people see"): which
 * stages count, PostgreSQL's `percentile_cont` (linear interpolation) as one pure function, the
 * rounding to integer milliseconds and the order of the answer. `MemoryStore` computes the whole
 * answer with {@link computeStageStats}; the PostgreSQL store's one statement does the same in SQL
 * and rounds its percentiles with {@link percentileMs}. The contract suite holds both to it.
 */
import type { RunListFilter } from '../contract/run-list.js'
import type { StageStats } from '../contract/run-stats.js'
import { DEFAULT_PIPELINE } from '../contract/stages.js'
import type { RunState, StageState } from './state.js'

/**
 * What `Store.runStats` is asked: the runs (the filter's `pipeline` and `tags`, the caller's scope
 * already ANDed in; an empty `statuses` matches nothing, other fields are not used) and the
 * window's start (stages whose `completedAt` is at or after it count; the handlers compute it
 * from their clock).
 *
 * @experimental Part of the custom-store API, which may change in a minor release until the
 *   `Store` interface settles.
 */
export interface RunStatsRequest {
  /** The runs whose stages count. */
  readonly filter: RunListFilter
  /** Stages whose `completedAt` is at or after this instant count. */
  readonly since: Date
}

/** The fractions of the answer's percentiles: `p50Ms` and `p95Ms`. */
export const STATS_PERCENTILES = { p50Ms: 0.5, p95Ms: 0.95 } as const

/**
 * PostgreSQL's `percentile_cont(fraction) WITHIN GROUP (ORDER BY value)` over `sorted` (ascending):
 * the value at position `fraction × (n − 1)`, interpolated linearly between its neighbours, in the
 * same floating-point steps as PostgreSQL's `float8_lerp` (`lo + (hi − lo) × (position − floor)`),
 * so both stores agree to the last bit. `null` for no values.
 */
export function percentileCont(sorted: readonly number[], fraction: number): number | null {
  if (sorted.length === 0) return null
  const position = fraction * (sorted.length - 1)
  const first = Math.floor(position)
  const second = Math.ceil(position)
  const lo = sorted[first] as number
  if (first === second) return lo
  const hi = sorted[second] as number
  return lo + (hi - lo) * (position - first)
}

/** A percentile of durations as the wire's integer milliseconds: rounded half up; `null` stays `null`. */
export function percentileMs(value: number | null): number | null {
  return value === null ? null : Math.round(value)
}

/** The answer's order: pipeline (code-unit order, `COLLATE "C"`), then stage number. Negative = `a` first. */
export function compareStageStats(a: Pick<StageStats, 'pipeline' | 'stageNumber'>, b: Pick<StageStats, 'pipeline' | 'stageNumber'>): number {
  return (a.pipeline < b.pipeline ? -1 : a.pipeline > b.pipeline ? 1 : 0) || a.stageNumber - b.stageNumber
}

/** Whether run `a` is newer than run `b` in the list's order (`createdAt`, then id in code-unit order). */
function isNewer(a: RunState, b: RunState): boolean {
  return a.createdAt.getTime() !== b.createdAt.getTime() ? a.createdAt.getTime() > b.createdAt.getTime() : a.id > b.id
}

/**
 * The stats of the given runs' stages (the runs already filtered): per pipeline and stage number,
 * `count` and the percentiles of `completedAt − startedAt` over COMPLETED stages with both times
 * whose `completedAt` ≥ `since`, `failed` = FAILED stages whose `completedAt` ≥ `since`, `name`
 * from the newest run among those stages. A stage without `startedAt` (a custom store's) starts
 * at its `createdAt`, as the PostgreSQL store writes it. Ordered by {@link compareStageStats}.
 */
export function computeStageStats(runs: Iterable<{ run: RunState; stages: Iterable<StageState> }>, since: Date): StageStats[] {
  const groups = new Map<string, { pipeline: string; stageNumber: number; newest: RunState; name: string; durations: number[]; failed: number }>()
  const from = since.getTime()
  for (const { run, stages } of runs) {
    const pipeline = run.pipeline ?? DEFAULT_PIPELINE
    for (const stage of stages) {
      if (stage.completedAt === null || stage.completedAt.getTime() < from) continue
      if (stage.status !== 'COMPLETED' && stage.status !== 'FAILED') continue
      const key = JSON.stringify([pipeline, stage.stageNumber])
      let group = groups.get(key)
      if (!group) {
        group = { pipeline, stageNumber: stage.stageNumber, newest: run, name: stage.stageName, durations: [], failed: 0 }
        groups.set(key, group)
      } else if (isNewer(run, group.newest)) {
        group.newest = run
        group.name = stage.stageName
      }
      if (stage.status === 'FAILED') group.failed += 1
      else group.durations.push(stage.completedAt.getTime() - (stage.startedAt ?? stage.createdAt).getTime())
    }
  }
  return [...groups.values()]
    .map(({ pipeline, stageNumber, name, durations, failed }): StageStats => {
      const sorted = durations.sort((a, b) => a - b)
      return {
        pipeline,
        stageNumber,
        name,
        count: sorted.length,
        failed,
        p50Ms: percentileMs(percentileCont(sorted, STATS_PERCENTILES.p50Ms)),
        p95Ms: percentileMs(percentileCont(sorted, STATS_PERCENTILES.p95Ms)),
      }
    })
    .sort(compareStageStats)
}
