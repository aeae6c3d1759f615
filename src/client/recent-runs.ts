/**
 * The one bound of the client's per-run memories: a long-lived client (one process running many
 * runs) keeps what it learned of its most recent runs, not of every run it ever saw. Internal.
 */
import { RecentMap } from '../internal/recent-map.js'

/**
 * How many runs each per-run memory of the client holds, the least recently set forgotten first:
 * the causes of lost updates already logged, the runs whose requests waited, the runs shown
 * open, how the runs learned finished ended, an earlier process's dead letters not yet taken by
 * `runPipeline`.
 */
export const RECENT_RUNS = 1000

/** A per-run memory bounded by {@link RECENT_RUNS}. */
export function recentRuns<V>(): RecentMap<V> {
  return new RecentMap<V>(RECENT_RUNS)
}
