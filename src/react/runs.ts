/**
 * A live list of runs for React: {@link useRuns} follows a filter with `subscribeToRuns` (the set
 * stream's summary view) and {@link createRunsStore} is the same store for other frameworks.
 */
import { useMemo, useSyncExternalStore } from 'react'
import type { RunFilter } from '../contract/run-filter.js'
import type { RunSummary } from '../contract/run-list.js'
import { createSubscriptionStore } from './subscription-store.js'
import { type RunsConnectionState, subscribeToRuns, type SubscribeToRunsOptions } from '../live/subscribe-to-runs.js'

/** Options of {@link useRuns} and {@link createRunsStore}: the list's filter, its size, and how to connect. */
export interface UseRunsOptions
  extends RunFilter,
    Omit<SubscribeToRunsOptions<'summary'>, 'filter' | 'runIds' | 'view' | 'signal' | 'onChange' | 'onStateChange'> {
  /**
   * The list as already read (e.g. by a server component through `GET /runs` with the same
   * filter), rendered before any request, also in server-side rendering; the live set replaces it
   * once the stream has sent every run (`ready`).
   * @default none: `runs` is empty and `state` `connecting` until then
   */
  initial?: readonly RunSummary[] | undefined
}

/** What {@link useRuns} returns. */
export interface RunsState {
  /** The runs, newest first (`createdAt` descending, then id descending), as list items (no stage outputs). */
  runs: readonly RunSummary[]
  /** The connection state: `connecting`, `live`, `reconnecting`, `closed` or `error`. */
  state: RunsConnectionState
  /** Why the state is `error` (or, while `reconnecting`, the last failure); `undefined` otherwise. */
  error: Error | undefined
}

/** An external store over a live list, the shape `useSyncExternalStore` reads; the connection opens with the first listener and closes with the last. */
export interface RunsStore {
  /** Adds a listener; returns its removal. The first listener opens the stream, removing the last closes it. */
  subscribe(listener: () => void): () => void
  /** The current state; the same object until something changes. */
  getSnapshot(): RunsState
  /** The state server-side rendering shows: from `initial`, never changing. */
  getServerSnapshot(): RunsState
}

/**
 * Creates the store {@link useRuns} reads, for a framework other than React or a test. Options
 * are read once, here.
 *
 * @throws TypeError for a `limit` outside 1–200 or a delay that is not a positive number (when
 * the first listener opens the stream).
 *
 * @example
 * ```ts
 * import { createRunsStore } from 'pipeline-status-sdk/react'
 * const store = createRunsStore({ url: 'https://app.example.com/api/pipeline', tag: 'nightly', status: 'FAILED' })
 * const unsubscribe = store.subscribe(() => console.log(store.getSnapshot().runs.length))
 * ```
 */
export function createRunsStore(options: UseRunsOptions = {}): RunsStore {
  const { initial, status, pipeline, tag, createdAfter, createdBefore, ...connection } = options
  const filter: RunFilter = { status, pipeline, tag, createdAfter, createdBefore }
  const serverSnapshot: RunsState = { runs: initial ?? [], state: 'connecting', error: undefined }
  return createSubscriptionStore(serverSnapshot, (update, current) => {
    if (current().state === 'error' || current().state === 'closed') return undefined
    return subscribeToRuns({
      ...connection,
      filter,
      view: 'summary',
      onChange: (runs) => update({ runs }),
      onStateChange: (state, error) => update({ state, error }),
    })
  })
}

/**
 * A live list of runs: renders `initial` (or nothing) first, then follows the newest runs that
 * match the filter (`tag` all of, `status` any of, `pipeline`, `createdAfter`, `createdBefore`;
 * `limit` of them, 50 by default) on one connection (`subscribeToRuns`, the `summary` view) while
 * the component is mounted: runs join when they are created or start matching, change as they
 * run, and leave when they stop matching. A change of the filter, `limit`, `url` or `token` opens
 * a new stream; the other options are read when it opens. During server-side rendering it returns
 * `initial` and opens nothing.
 *
 * Credentials: the app's session (cookies go along on the same origin; `authorize` with
 * `action: 'list'` and `listScope` decide what it sees), or a tag read token as `token`. A run
 * read token reads one run and no list.
 *
 * @returns `{ runs, state, error }`; see {@link RunsState}.
 *
 * @example
 * ```tsx
 * import { useRuns } from 'pipeline-status-sdk/react'
 *
 * export function FailedNightlies({ teamToken }: { teamToken: string }) {
 *   const { runs, state } = useRuns({ tag: 'nightly', status: 'FAILED', token: teamToken })
 *   return <ul data-state={state}>{runs.map((run) => <li key={run.id}>{run.id}: {run.error}</li>)}</ul>
 * }
 * ```
 */
export function useRuns(options: UseRunsOptions = {}): RunsState {
  const { status, pipeline, tag, createdAfter, createdBefore, limit, url, token, credentials } = options
  const instant = (value: Date | string | undefined) => (value instanceof Date ? value.toISOString() : value)
  // Only what names the stream recreates it; a new options object (or array) on each render does not.
  const key = JSON.stringify([[status ?? []].flat(), pipeline, [tag ?? []].flat(), instant(createdAfter), instant(createdBefore), limit, url, token, credentials])
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const store = useMemo(() => createRunsStore(options), [key])
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getServerSnapshot)
}
