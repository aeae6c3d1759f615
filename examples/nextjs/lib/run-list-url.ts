import { type RunListFilters, RunStatus } from 'pipeline-status-sdk'

/**
 * The home page's list filters in its URL, under the names the list's controls use
 * (`/?status=FAILED&tag=nightly&createdFrom=2026-12-01`), so a filtered view can be shared and
 * survives a reload. Pure: the page (on the server) and app/run-list-in-url.tsx (in the browser)
 * read the same query the same way.
 */
const FILTER_KEYS = ['pipeline', 'status', 'tag', 'createdFrom', 'createdTo'] as const

/** The filters a query names; an empty value, and a status that is none, are left out. */
export function filtersFromQuery(query: URLSearchParams): RunListFilters {
  const filters: RunListFilters = {}
  for (const key of FILTER_KEYS) {
    const value = query.get(key)
    if (!value) continue
    if (key === 'status') {
      const status = RunStatus.safeParse(value)
      if (status.success) filters.status = status.data
    } else filters[key] = value
  }
  return filters
}

/** `query` with its filter parameters set to `filters` (an empty filter removed); other parameters are kept. */
export function queryWithFilters(query: URLSearchParams, filters: RunListFilters): URLSearchParams {
  const next = new URLSearchParams(query)
  for (const key of FILTER_KEYS) {
    const value = filters[key]
    if (value) next.set(key, value)
    else next.delete(key)
  }
  return next
}

/** A page's `searchParams` (a repeated parameter is an array) as a query. */
export function queryOf(searchParams: Record<string, string | string[] | undefined>): URLSearchParams {
  const query = new URLSearchParams()
  for (const [key, value] of Object.entries(searchParams)) {
    for (const one of [value ?? []].flat()) query.append(key, one)
  }
  return query
}
