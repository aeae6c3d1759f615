/**
 * A caller's scope ANDed into the filters of a list, a count or a set stream (docs/design.md,
 * "Runs as a collection": who may see what). One rule for the MemoryStore, PostgreSQL and the
 * streams: the query can narrow what the scope allows, never widen it. Internal.
 */
import type { RunScope } from '../contract/run-list.js'

/** Whether `value` is a {@link RunScope}: an object whose `tags` (when present) are strings and `pipeline` a string. */
export function isRunScope(value: unknown): value is RunScope {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const { tags, pipeline } = value as { tags?: unknown; pipeline?: unknown }
  if (tags !== undefined && !(Array.isArray(tags) && tags.every((tag) => typeof tag === 'string'))) return false
  return pipeline === undefined || typeof pipeline === 'string'
}
