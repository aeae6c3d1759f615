/**
 * Runs as a collection, the rules both stores share (docs/design.md, "Runs as a collection"):
 * a run's list item, the list's order, the filter predicate and the caller's scope ANDed into a
 * filter. `MemoryStore` runs them in memory; the PostgreSQL store's SQL does the same and the
 * contract suite holds both to it.
 */
import { MAX_SUMMARY_ERROR_LENGTH, type RunListFilter, type RunScope, type RunSummary } from '../contract/run-list.js'
import type { RunListPosition } from '../contract/run-list-query.js'
import { DEFAULT_PIPELINE } from '../contract/stages.js'
import type { StageStatus } from '../contract/status.js'
import type { RunState, StageState } from './state.js'

/**
 * One run as a store lists it: the run, its version and what its stored stages add up to. The
 * handlers turn it into a {@link RunSummary} with the length of the run's catalogue.
 *
 * @experimental Part of the custom-store API, which may change in a minor release until the
 *   `Store` interface settles.
 */
export interface RunListItem {
  /** The run as stored. */
  readonly run: RunState
  /** The run's version. */
  readonly version: number
  /** Stored stage rows per status (absent = 0); `PENDING` is never stored. */
  readonly stageRows: Readonly<Partial<Record<StageStatus, number>>>
  /** The highest-numbered `PROCESSING` stage, else `null`. */
  readonly currentStage: number | null
}

/** What `Store.listRuns` is asked: the filters (scope already ANDed in), where to start, how many. */
export interface RunListRequest {
  /** Every run listed matches it. */
  readonly filter: RunListFilter
  /** Start after this position (the cursor's); absent = from the newest run. */
  readonly after?: RunListPosition | undefined
  /** At most this many runs (the handlers ask one more than the page to know whether another follows). */
  readonly limit: number
}

/**
 * One run of a set stream's window (`Store.listRunWindow`): its id and version, in the list's
 * order.
 *
 * @experimental Part of the custom-store API, which may change in a minor release until the
 *   `Store` interface settles.
 */
export interface RunWindowEntry {
  /** The run's id. */
  readonly id: string
  /** The run's version. */
  readonly version: number
}

/** What `Store.countRuns` is asked: the filters (scope already ANDed in) and the grouping key. */
export interface RunCountRequest {
  /** Only matching runs are counted. */
  readonly filter: RunListFilter
  /** Count per `status` or per `pipeline`. */
  readonly groupBy: 'status' | 'pipeline'
}

/** A filter that no run matches (a scope and a query that contradict each other). */
export const MATCHES_NOTHING: RunListFilter = Object.freeze({ statuses: Object.freeze([]) })

/** Whether a filter can match no run at all (an empty `statuses`). */
export function matchesNothing(filter: RunListFilter): boolean {
  return filter.statuses !== undefined && filter.statuses.length === 0
}

/**
 * The filter ANDed with the caller's scope: the scope's tags join the filter's (all must be
 * carried); a scope's pipeline becomes the filter's, and a filter naming another pipeline
 * matches nothing. `{}` changes nothing.
 */
export function applyScope(filter: RunListFilter, scope: RunScope): RunListFilter {
  if (scope.pipeline !== undefined && filter.pipeline !== undefined && filter.pipeline !== scope.pipeline) return MATCHES_NOTHING
  const tags = [...new Set([...(filter.tags ?? []), ...(scope.tags ?? [])])]
  const pipeline = filter.pipeline ?? scope.pipeline
  return { ...filter, ...(tags.length > 0 && { tags }), ...(pipeline !== undefined && { pipeline }) }
}

/** Whether a run matches a filter (statuses any, tags all, createdAfter inclusive, createdBefore exclusive). */
export function matchesRunFilter(run: RunState, filter: RunListFilter): boolean {
  if (filter.statuses !== undefined && !filter.statuses.includes(run.status)) return false
  if (filter.pipeline !== undefined && (run.pipeline ?? DEFAULT_PIPELINE) !== filter.pipeline) return false
  if (filter.tags !== undefined && !filter.tags.every((tag) => run.tags?.includes(tag) === true)) return false
  const created = run.createdAt.getTime()
  if (filter.createdAfter !== undefined && created < filter.createdAfter.getTime()) return false
  if (filter.createdBefore !== undefined && created >= filter.createdBefore.getTime()) return false
  return true
}

/** Compares ids in JS code-unit order, which is PostgreSQL's `COLLATE "C"` for the ASCII run ids. */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** The list's order: newest first (`createdAt` desc), ties by id desc in code-unit order. Negative = `a` first. */
export function compareRunsForList(a: RunListPosition, b: RunListPosition): number {
  return b.createdAt.getTime() - a.createdAt.getTime() || compareIds(b.id, a.id)
}

/** Whether `run` comes after `position` in the list's order (the keyset condition). */
export function isAfterPosition(run: RunListPosition, position: RunListPosition): boolean {
  return compareRunsForList(position, run) < 0
}

/** A run's stored stages summed up as a {@link RunListItem}. */
export function toRunListItem(run: RunState, version: number, stages: readonly StageState[]): RunListItem {
  const stageRows: Partial<Record<StageStatus, number>> = {}
  let currentStage: number | null = null
  for (const stage of stages) {
    stageRows[stage.status] = (stageRows[stage.status] ?? 0) + 1
    if (stage.status === 'PROCESSING' && (currentStage === null || stage.stageNumber > currentStage)) currentStage = stage.stageNumber
  }
  return { run, version, stageRows, currentStage }
}

/**
 * A run's list item: its fields, `currentStage`, `stageCounts` with all five statuses (`PENDING`
 * = `catalogueLength` − stored rows, never below 0) and `error` cut to 1,000 characters with
 * `errorTruncated: true`. `catalogueLength` is the length of the run's own catalogue, or, for a
 * run without one, of its pipeline's current catalogue.
 */
export function summarizeRun(item: RunListItem, catalogueLength: number): RunSummary {
  const { run, stageRows } = item
  const stored = Object.values(stageRows).reduce((sum, count) => sum + (count ?? 0), 0)
  const error = run.error
  const truncated = error !== null && error.length > MAX_SUMMARY_ERROR_LENGTH
  return {
    id: run.id,
    status: run.status,
    pipeline: run.pipeline ?? DEFAULT_PIPELINE,
    tags: [...(run.tags ?? [])],
    metadata: { ...(run.metadata ?? {}) },
    createdAt: run.createdAt.toISOString(),
    startedAt: run.startedAt?.toISOString() ?? null,
    completedAt: run.completedAt?.toISOString() ?? null,
    error: truncated ? error.slice(0, MAX_SUMMARY_ERROR_LENGTH) : error,
    ...(truncated && { errorTruncated: true as const }),
    version: item.version,
    currentStage: item.currentStage,
    stageCounts: {
      PENDING: Math.max(0, catalogueLength - stored),
      PROCESSING: stageRows.PROCESSING ?? 0,
      COMPLETED: stageRows.COMPLETED ?? 0,
      FAILED: stageRows.FAILED ?? 0,
      CANCELLED: stageRows.CANCELLED ?? 0,
    },
  }
}

/** The grouping key of a run for counts. */
export function countKey(run: RunState, groupBy: RunCountRequest['groupBy']): string {
  return groupBy === 'status' ? run.status : (run.pipeline ?? DEFAULT_PIPELINE)
}
