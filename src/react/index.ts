/**
 * React bindings of the live status subscribers: {@link useRunStatus} renders a run and its stages
 * and keeps them live with `subscribeToRun` (the page's runs share one connection; polling when
 * the server has no stream); {@link useRuns} renders a live list of runs with `subscribeToRuns`.
 * React is an optional peer dependency, imported only from this entry.
 *
 * @example
 * ```tsx
 * 'use client'
 * import type { RunStatusResponse } from 'pipeline-status-sdk'
 * import { useRunStatus } from 'pipeline-status-sdk/react'
 *
 * export function RunView({ runId, token, initial }: { runId: string; token: string; initial?: RunStatusResponse }) {
 *   const { run, stages, state } = useRunStatus(runId, { url: '/api/pipeline', token, initial })
 *   return <p>{run?.status} ({state}), {stages.length} stages reported</p>
 * }
 * ```
 *
 * @module pipeline-status-sdk/react
 */
import { useMemo, useSyncExternalStore } from 'react'
import { isFinalStatus } from '../contract/status.js'
import type { PipelineRunRecord, RunStatusResponse, StageOutputRecord } from '../contract/records.js'
import type { RunFilter } from '../contract/run-filter.js'
import type { RunSummary } from '../contract/run-list.js'
import { type RunsConnectionState, type RunsSubscription, subscribeToRuns, type SubscribeToRunsOptions } from '../live/subscribe-to-runs.js'
import {
  type RunConnectionState,
  type RunSubscription,
  subscribeToRun,
  type SubscribeToRunOptions,
} from '../live/subscribe-to-run.js'

/** Options of {@link useRunStatus} and {@link createRunStatusStore}. */
export interface UseRunStatusOptions extends Omit<SubscribeToRunOptions, 'signal' | 'onUpdate' | 'onStateChange'> {
  /**
   * The run as already read (e.g. by a server component through `GET /status`), rendered
   * before any request, also in server-side rendering. Used only when its `run.id` is `runId`.
   * When it is finished, nothing is subscribed: a finished run never changes its status (later
   * details, such as a late stage output, are read with `GET /status`).
   * @default none: `run` is `undefined` and `state` `connecting` until the first snapshot
   */
  initial?: RunStatusResponse | undefined
}

/** What {@link useRunStatus} returns. */
export interface RunStatusState {
  /** The run as last received; `undefined` before the first snapshot (without `initial`). */
  run: PipelineRunRecord | undefined
  /** The stages that have a row, ordered by stage number; stages never reported are absent. */
  stages: StageOutputRecord[]
  /** The connection state: `connecting`, `live`, `reconnecting`, `finished` or `error`. */
  state: RunConnectionState
  /** Why the state is `error` (or, while `reconnecting`, the last failure); `undefined` otherwise. */
  error: Error | undefined
}

/**
 * An external store over one run's subscription, the shape `useSyncExternalStore` reads:
 * the connection opens with the first listener and closes with the last.
 */
export interface RunStatusStore {
  /** Adds a listener; returns its removal. The first listener opens the subscription, removing the last closes it. */
  subscribe(listener: () => void): () => void
  /** The current state; the same object until something changes. */
  getSnapshot(): RunStatusState
  /** The state server-side rendering shows: from `initial`, never changing. */
  getServerSnapshot(): RunStatusState
}

/**
 * Creates the store {@link useRunStatus} reads, for a framework other than React or a test.
 * Options are read once, here.
 *
 * @example
 * ```ts
 * import { createRunStatusStore } from 'pipeline-status-sdk/react'
 * const token = process.env.RUN_READ_TOKEN // a read token for run_1
 * const store = createRunStatusStore('run_1', { url: 'https://app.example.com/api/pipeline', token })
 * const unsubscribe = store.subscribe(() => console.log(store.getSnapshot().state))
 * ```
 */
export function createRunStatusStore(runId: string, options: UseRunStatusOptions = {}): RunStatusStore {
  const { initial: given, ...subscribeOptions } = options
  const initial = given?.run.id === runId ? given : undefined
  const serverSnapshot: RunStatusState = {
    run: initial?.run,
    stages: initial?.stages ?? [],
    state: initial && isFinalStatus(initial.run.status) ? 'finished' : 'connecting',
    error: undefined,
  }
  let snapshot = serverSnapshot
  const listeners = new Set<() => void>()
  let subscription: RunSubscription | undefined

  function update(next: Partial<RunStatusState>): void {
    snapshot = { ...snapshot, ...next }
    for (const listener of listeners) listener()
  }

  function open(): void {
    if (snapshot.state === 'finished' || snapshot.state === 'error') return
    subscription = subscribeToRun(runId, {
      ...subscribeOptions,
      onUpdate: ({ run, stages }) => update({ run, stages }),
      onStateChange: (state, error) => update({ state, error }),
    })
  }

  return {
    subscribe(listener) {
      listeners.add(listener)
      if (subscription === undefined) open()
      return () => {
        listeners.delete(listener)
        if (listeners.size === 0) {
          subscription?.close()
          subscription = undefined
        }
      }
    },
    getSnapshot: () => snapshot,
    getServerSnapshot: () => serverSnapshot,
  }
}

/**
 * A run's status, kept live: renders `initial` (or nothing) first, then follows the run with
 * `subscribeToRun` while the component is mounted, and stops when the run is finished. A new
 * `runId`, `url` or `token` opens a new subscription; the other options are read when it opens.
 * During server-side rendering it returns `initial` and opens nothing.
 *
 * @returns `{ run, stages, state, error }`; see {@link RunStatusState}.
 *
 * @example
 * ```tsx
 * import type { RunStatusResponse } from 'pipeline-status-sdk'
 * import { useRunStatus } from 'pipeline-status-sdk/react'
 *
 * export function RunView({ runId, readToken, initial }: { runId: string; readToken: string; initial: RunStatusResponse }) {
 *   const { run, stages, state, error } = useRunStatus(runId, { token: readToken, initial })
 *   if (state === 'error') return <p>Cannot follow this run: {error?.message}</p>
 *   return <p>{run?.status}: {stages.length} stages reported</p>
 * }
 * ```
 */
export function useRunStatus(runId: string, options: UseRunStatusOptions = {}): RunStatusState {
  // Only what names the subscription recreates it; a new options object on each render does not.
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const store = useMemo(() => createRunStatusStore(runId, options), [runId, options.url, options.token])
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getServerSnapshot)
}

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
  let snapshot = serverSnapshot
  const listeners = new Set<() => void>()
  let subscription: RunsSubscription | undefined

  function update(next: Partial<RunsState>): void {
    snapshot = { ...snapshot, ...next }
    for (const listener of listeners) listener()
  }

  return {
    subscribe(listener) {
      listeners.add(listener)
      if (subscription === undefined && snapshot.state !== 'error' && snapshot.state !== 'closed') {
        subscription = subscribeToRuns({
          ...connection,
          filter,
          view: 'summary',
          onChange: (runs) => update({ runs }),
          onStateChange: (state, error) => update({ state, error }),
        })
      }
      return () => {
        listeners.delete(listener)
        if (listeners.size === 0) {
          subscription?.close()
          subscription = undefined
        }
      }
    },
    getSnapshot: () => snapshot,
    getServerSnapshot: () => serverSnapshot,
  }
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
