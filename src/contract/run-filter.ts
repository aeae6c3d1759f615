/**
 * The filter of lists, counts and set streams as callers give it (`listRuns`, `countRuns`,
 * `subscribeToRuns`, `useRuns`), and its one spelling as a query string (docs/design.md, "Runs as
 * a collection"). The server parses the same parameters in `run-list-query.ts`. Also the filters
 * a `RunList` shows (days, as its controls hold them) and their query, `runListQuery`: pure, so a
 * server component can call it from the root entry (the react entry is 'use client').
 */
import type { RunStatus } from './status.js'

/**
 * Which runs a list, a count or a set stream takes. Every given filter must hold; the server ANDs
 * in what the caller may see (a read token's scope, the app's `listScope`).
 */
export interface RunFilter {
  /** Runs in any of these statuses (query: repeated `status`). */
  status?: RunStatus | readonly RunStatus[] | undefined
  /** Runs of this pipeline (query: `pipeline`); a pipeline no longer configured is allowed. */
  pipeline?: string | undefined
  /** Runs carrying every one of these tags (query: repeated `tag`). */
  tag?: string | readonly string[] | undefined
  /** Runs created at or after this instant (inclusive; a `Date` or an ISO 8601 timestamp). */
  createdAfter?: Date | string | undefined
  /** Runs created before this instant (exclusive; a `Date` or an ISO 8601 timestamp). */
  createdBefore?: Date | string | undefined
}

/** The filter as a query (repeated `status` and `tag`), in the order the server documents them. */
export function runFilterQuery(filter: RunFilter): URLSearchParams {
  const query = new URLSearchParams()
  for (const status of [filter.status ?? []].flat()) query.append('status', status)
  if (filter.pipeline !== undefined) query.set('pipeline', filter.pipeline)
  for (const tag of [filter.tag ?? []].flat()) query.append('tag', tag)
  const instant = (value: Date | string) => (typeof value === 'string' ? value : value.toISOString())
  if (filter.createdAfter !== undefined) query.set('createdAfter', instant(filter.createdAfter))
  if (filter.createdBefore !== undefined) query.set('createdBefore', instant(filter.createdBefore))
  return query
}

/**
 * The filters a `RunList` (`pipeline-status-sdk/react`) shows, as its controls hold them. Empty
 * means "any". Dates are days (`YYYY-MM-DD`, UTC) as a date input gives them.
 */
export interface RunListFilters {
  /** Runs of this pipeline. */
  pipeline?: string | undefined
  /** Runs in this status. */
  status?: RunStatus | undefined
  /** Runs carrying this tag. */
  tag?: string | undefined
  /** Runs created on or after this day (`YYYY-MM-DD`, UTC). */
  createdFrom?: string | undefined
  /** Runs created on or before this day (`YYYY-MM-DD`, UTC; the whole day counts). */
  createdTo?: string | undefined
}

/**
 * The {@link RunFilter} of a list's filters: empty filters left out, the days as instants in UTC
 * (`createdAfter` the first day's start, inclusive; `createdBefore` the day after the last,
 * exclusive). A malformed day is left out.
 */
export function runListFilter(filters: RunListFilters): RunFilter {
  const filter: RunFilter = {}
  if (filters.status) filter.status = filters.status
  if (filters.pipeline) filter.pipeline = filters.pipeline
  if (filters.tag) filter.tag = filters.tag
  const from = dayStart(filters.createdFrom, 0)
  if (from) filter.createdAfter = from
  const to = dayStart(filters.createdTo, 1)
  if (to) filter.createdBefore = to
  return filter
}

/**
 * The query of `GET {base}/runs` (and of set streams) for a list's filters: `status`, `pipeline`,
 * `tag`, and the days as `createdAfter` (the first day's start, inclusive) and `createdBefore`
 * (the day after the last, exclusive), in UTC. Empty filters are left out. Pure: call it in a
 * server component to read a `RunList`'s `initialRuns` with its starting filters.
 *
 * @example
 * ```ts
 * import { runListQuery } from 'pipeline-status-sdk'
 * runListQuery({ status: 'FAILED', createdTo: '2026-12-06' }).toString()
 * // 'status=FAILED&createdBefore=2026-12-07T00%3A00%3A00.000Z'
 * ```
 */
export function runListQuery(filters: RunListFilters): URLSearchParams {
  return runFilterQuery(runListFilter(filters))
}

/** The start of `day` (`YYYY-MM-DD`) plus `addDays`, as ISO 8601 in UTC; `undefined` for no or a malformed day. */
export function dayStart(day: string | undefined, addDays: number): string | undefined {
  if (!day || !/^\d{4}-\d{2}-\d{2}$/.test(day)) return undefined
  const time = Date.parse(`${day}T00:00:00.000Z`)
  return Number.isFinite(time) ? new Date(time + addDays * 86_400_000).toISOString() : undefined
}
