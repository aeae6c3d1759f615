/**
 * {@link useRunStatus} and the store it reads (moved out of index.ts so the components can use
 * the hook without importing the entry point, which exports them).
 */
import { useMemo, useSyncExternalStore } from 'react'
import { isFinalStatus } from '../contract/status.js'
import { createSubscriptionStore } from './subscription-store.js'
import type { CatalogueEntry, PipelineRunRecord, RunStatusResponse, StageOutputRecord } from '../contract/records.js'
import {
  type RunConnectionState,
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
  /**
   * The run's own stage catalogue as the server last sent it (so a page can list the stages that
   * have not reported yet); `undefined` before the first snapshot or from a server that sends none.
   */
  catalogue: CatalogueEntry[] | undefined
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
    catalogue: initial?.catalogue,
    state: initial && isFinalStatus(initial.run.status) ? 'finished' : 'connecting',
    error: undefined,
  }
  return createSubscriptionStore(serverSnapshot, (update, current) => {
    if (current().state === 'finished' || current().state === 'error') return undefined
    return subscribeToRun(runId, {
      ...subscribeOptions,
      onUpdate: ({ run, stages, catalogue }) => update({ run, stages, catalogue: catalogue ?? current().catalogue }),
      onStateChange: (state, error) => update({ state, error }),
    })
  })
}

/**
 * A run's status, kept live: renders `initial` (or nothing) first, then follows the run with
 * `subscribeToRun` while the component is mounted, and stops when the run is finished. A new
 * `runId`, `url` or `token` opens a new subscription; the other options are read when it opens.
 * During server-side rendering it returns `initial` and opens nothing.
 *
 * @returns `{ run, stages, catalogue, state, error }`; see {@link RunStatusState}.
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
