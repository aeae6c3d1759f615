/**
 * A caller's scope ANDed into the filters of a list, a count or a set stream (docs/design.md,
 * "Runs as a collection": who may see what). One rule for the MemoryStore, PostgreSQL and the
 * streams: the query can narrow what the scope allows, never widen it. Internal.
 */
import { MAX_TAGS, type RunListFilter, type RunScope } from '../contract/run-list.js'

/**
 * `filter` narrowed to `scope`: the tags of both (a run must carry every one), the scope's
 * pipeline (a `filter.pipeline` naming another pipeline matches nothing: `'empty'`). `'empty'`
 * also when more than {@link MAX_TAGS} distinct tags are required, which no run can carry. The
 * other filters (statuses, dates) pass unchanged.
 */
export function scopeFilter(filter: RunListFilter, scope: RunScope): RunListFilter | 'empty' {
  let scoped: RunListFilter = filter
  if (scope.pipeline !== undefined) {
    if (filter.pipeline !== undefined && filter.pipeline !== scope.pipeline) return 'empty'
    scoped = { ...scoped, pipeline: scope.pipeline }
  }
  if (scope.tags !== undefined && scope.tags.length > 0) {
    const tags = [...new Set([...(filter.tags ?? []), ...scope.tags])]
    if (tags.length > MAX_TAGS) return 'empty'
    scoped = { ...scoped, tags }
  }
  return scoped
}

/** Whether `value` is a {@link RunScope}: an object whose `tags` (when present) are strings and `pipeline` a string. */
export function isRunScope(value: unknown): value is RunScope {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const { tags, pipeline } = value as { tags?: unknown; pipeline?: unknown }
  if (tags !== undefined && !(Array.isArray(tags) && tags.every((tag) => typeof tag === 'string'))) return false
  return pipeline === undefined || typeof pipeline === 'string'
}
