/**
 * The run version (docs/design.md, "The run version and the hot path"): an integer on each run that
 * grows by one with every applied change to the run or to any of its stages, in the same write.
 * It is the `ETag` of `GET /status` and the optimistic-concurrency token of the stage-update
 * write. Pure: both stores take the rule from here.
 */
import type { RunSnapshot } from './state.js'

/** The version of a run that was just created (and of runs stored before versions existed). */
export const INITIAL_RUN_VERSION = 0

/**
 * The version a run has after one more applied change; a store of your own stores it with
 * every applied change ({@link StoreTransaction.saveRun}, `RunWrite.version`).
 *
 * @experimental Part of the custom-store API, which may change in a minor release until the
 *   `Store` interface settles.
 */
export function nextRunVersion(version: number): number {
  return version + 1
}

/**
 * The strong `ETag` of a run's `GET /status` document (RFC 9110 §8.8.3): its version, quoted.
 * Every change to the run or its stages raises the version, so equal tags mean equal documents.
 */
export function statusETag(snapshot: Pick<RunSnapshot, 'version'>): string {
  return `"${snapshot.version}"`
}

/**
 * Whether an `If-None-Match` header value matches `etag` with the weak comparison
 * RFC 9110 §13.1.2 prescribes (a `W/` prefix is ignored); `*` matches any current document.
 */
export function ifNoneMatchMatches(header: string | null, etag: string): boolean {
  if (header === null) return false
  const value = header.trim()
  if (value === '*') return true
  const opaque = etag.startsWith('W/') ? etag.slice(2) : etag
  for (const part of value.split(',')) {
    const tag = part.trim()
    if ((tag.startsWith('W/') ? tag.slice(2) : tag) === opaque) return true
  }
  return false
}
