/**
 * The filter of lists, counts and set streams as callers give it (`listRuns`, `countRuns`,
 * `subscribeToRuns`, `useRuns`), and its one spelling as a query string (docs/design.md, "Runs as
 * a collection"). The server parses the same parameters in `run-list-query.ts`.
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
