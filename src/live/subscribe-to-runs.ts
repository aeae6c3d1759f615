import { applyOutputChunk, MAX_SET_STREAM_RUNS, mergeRunUpdate, type SetStreamView } from '../contract/live-status.js'
import type { RunStatusResponse } from '../contract/records.js'
import { type RunFilter, runFilterQuery } from '../contract/run-filter.js'
import { MAX_LIST_LIMIT, type RunSummary } from '../contract/run-list.js'
import { DEFAULT_BASE_PATH } from '../contract/routes.js'
import { absoluteUrl } from './page-url.js'
import { parseSetEvent, type SetStreamEvent } from './set-events.js'
import { followSetStream, requestHeaders, setEventsPath } from './set-stream.js'
import { reconnectDelays } from './subscribe-to-run.js'
import { RunSubscriptionError } from './subscription-errors.js'
import { createSubscriptionLifecycle } from './subscription-lifecycle.js'

/**
 * The connection state of a set subscription:
 * - `connecting`: the first connection is being opened, or its first snapshots are arriving;
 * - `live`: the server sent every run of the set (`ready`) and the stream is open;
 * - `reconnecting`: the connection dropped, went silent for three keep-alive intervals, or a
 *   request failed; the next attempt is waiting (the set shown stays until the new one is ready);
 * - `closed`: a `runIds` stream whose every run ended (the server closes it); no more requests;
 * - `error`: a failure that retrying cannot fix (401, 403, a 400 naming a parameter, a server
 *   without the set-stream route, a malformed event); no more requests.
 *
 * Closing the subscription (or aborting its `signal`) stops it in whatever state it was.
 */
export type RunsConnectionState = 'connecting' | 'live' | 'reconnecting' | 'closed' | 'error'

/** One run of a set: its list item (`RunSummary`) in the `summary` view, its status document in the `full` view. */
export type RunSetItem<V extends SetStreamView> = V extends 'full' ? RunStatusResponse : RunSummary

/** Options of {@link subscribeToRuns}. */
export interface SubscribeToRunsOptions<V extends SetStreamView = 'summary'> {
  /**
   * Where the routes live: the base path, absolute or, in a browser, relative to the page. The
   * stream is `{url}/events?…`. Outside a browser give the absolute URL, or the subscription stops
   * at once in state `error`.
   * @default '/api/pipeline'
   */
  url?: string | undefined
  /**
   * Which runs to follow, as lists filter them (`status` any of, `tag` all of, `pipeline`,
   * `createdAfter`, `createdBefore`): the stream follows the newest `limit` matching runs, a run
   * joins when it starts matching (or is created) and leaves when it stops matching or falls out
   * of the window. Give this or `runIds`, not both; neither follows the newest runs of all.
   * @default no filter
   */
  filter?: RunFilter | undefined
  /**
   * How many of the newest matching runs a `filter` stream follows, 1–200.
   * @default 50 (the server's)
   */
  limit?: number | undefined
  /**
   * The runs to follow by id, at most {@link MAX_SET_STREAM_RUNS} (50); repeats are sent once. The
   * stream closes after every one of them ended (state `closed`).
   */
  runIds?: readonly string[] | undefined
  /**
   * `summary` (lists and dashboards: each run a `RunSummary`, no stage outputs) or `full` (each run
   * its status document, kept up to date with every update and streamed output chunk).
   * @default 'summary'
   */
  view?: V | undefined
  /**
   * Sent as `Authorization: Bearer <token>`: a tag read token (`createRunReadToken({ tag })`), or
   * whatever the app's `authorize` hook accepts. A run read token reads one run and no set.
   * @default none (same-origin cookies still go along)
   */
  token?: string | undefined
  /** More request headers. @default none */
  headers?: Record<string, string> | undefined
  /**
   * fetch's `credentials` mode: `include` sends the app's cookies to another origin too.
   * @default fetch's own (`same-origin`)
   */
  credentials?: RequestCredentials | undefined
  /** Aborting it closes the connection and stops the subscription, like {@link RunsSubscription.close}. */
  signal?: AbortSignal | undefined
  /**
   * Called with the whole set after each change, newest run first (`createdAt` descending, then id
   * descending): once when the first snapshots are all in, then after each join, change and leave.
   * The array is new each time; unchanged runs are the same objects.
   */
  onChange?: ((runs: readonly RunSetItem<V>[]) => void) | undefined
  /** Called when {@link RunsSubscription.state} changes; `error` is set in `error` and, as the cause, in `reconnecting`. */
  onStateChange?: ((state: RunsConnectionState, error: Error | undefined) => void) | undefined
  /**
   * The first reconnection delay in milliseconds, until the server's `retry:` replaces it; doubled
   * per failure in a row up to `maxReconnectDelayMs`, with jitter. A `Retry-After` wins when longer.
   * @default 1_000
   */
  reconnectDelayMs?: number | undefined
  /** The longest wait between two attempts, in milliseconds. @default 30_000 */
  maxReconnectDelayMs?: number | undefined
  /** The `fetch` to use. @default globalThis.fetch */
  fetch?: typeof globalThis.fetch | undefined
}

/** A running set subscription. */
export interface RunsSubscription<V extends SetStreamView = 'summary'> {
  /** The current connection state. */
  readonly state: RunsConnectionState
  /** The set as last received, newest first; empty before the first `ready`. */
  readonly runs: readonly RunSetItem<V>[]
  /** The ids of the runs that ended while followed (their `end` event arrived). */
  readonly ended: ReadonlySet<string>
  /** The error behind the `error` state (or the last `reconnecting`). */
  readonly error: Error | undefined
  /** Settles once the subscription stops: closed, failed for good, or closed by the caller. Never rejects. */
  readonly done: Promise<void>
  /** Closes the connection and stops; no more callbacks. */
  close(): void
}

/**
 * Follows a set of runs on one connection (`GET {url}/events`, Server-Sent Events, read with
 * `fetch` so it can send `Authorization`): the newest runs matching a `filter` (a live list), or
 * up to 50 runs named by `runIds`. Runs in browsers, Node and edge runtimes.
 *
 * - The server sends a `snapshot` per run, then `ready`; `onChange` gets the whole set then, and
 *   after every `snapshot` of a run that joins, `update`, `output` (full view: appended when it
 *   is the stage's next chunk), and `leave` (the run stopped matching, e.g. a tag was removed).
 * - `end` marks a run finished and keeps it in the set; a `runIds` stream closes once every listed
 *   run ended (state `closed`, after `onChange` showed them: runs that had all finished already
 *   are shown in their final status), a filter stream stays open.
 * - A refusal of a `runIds` stream (401, 403, 404) stops it with state `error`; the server's
 *   problem names the refused run in `error.problem.runId`.
 * - A dropped or silent connection (three keep-alive intervals without a byte) is opened again
 *   after the server's `retry:` delay, with backoff; a set stream has no resume, so the reconnect
 *   brings fresh snapshots, and the set shown is replaced when they are all in (`ready`): runs
 *   that left meanwhile are gone, none flickers.
 * - Who sees what is the server's: a tag read token sees its tag's runs, the app's session what
 *   `authorize` and `listScope` allow; 401 and 403 stop with state `error`.
 *
 * @throws TypeError for options no server would take: `filter` with `runIds`, more than 50 run
 * ids or an empty one, a `limit` outside 1–200, a delay that is not a positive number.
 *
 * @example
 * ```ts
 * import { subscribeToRuns } from 'pipeline-status-sdk'
 * const teamToken = process.env.TEAM_READ_TOKEN // createRunReadToken({ tag: 'team:42', secret }) on your server
 * const subscription = subscribeToRuns({
 *   url: 'https://app.example.com/api/pipeline',
 *   filter: { tag: 'team:42', status: ['PENDING', 'PROCESSING'] },
 *   token: teamToken,
 *   onChange: (runs) => console.log(runs.map((run) => `${run.id} ${run.status}`)),
 * })
 * subscription.close()
 * ```
 */
export function subscribeToRuns<V extends SetStreamView = 'summary'>(options: SubscribeToRunsOptions<V> = {}): RunsSubscription<V> {
  const view: SetStreamView = options.view ?? 'summary'
  const query = setStreamQuery(options, view)
  const { reconnectDelayMs, maxReconnectDelayMs } = reconnectDelays(options)
  const base = options.url ?? DEFAULT_BASE_PATH
  const url = absoluteUrl('subscribeToRuns', base, `${setEventsPath(base)}?${query.toString()}`)
  const listed = options.runIds === undefined ? undefined : new Set(options.runIds)

  const lifecycle = createSubscriptionLifecycle(options, 'closed')
  const { signal, setState } = lifecycle
  let runs: readonly RunSetItem<V>[] = []
  let shown = new Map<string, RunSetItem<V>>()
  // Between an attempt's opening and its `ready`: the snapshots of the new set, shown at `ready`.
  let gathering: Map<string, RunSetItem<V>> | undefined
  const ended = new Set<string>()

  function publish(): void {
    runs = [...shown.values()].sort(newestFirst)
    if (!signal.aborted) options.onChange?.(runs)
  }

  /** Applies one event to the set it is about (the one gathering, or the one shown); `true` when the shown set changed. */
  function apply(event: SetStreamEvent): boolean {
    if (event.kind === 'ready') {
      if (gathering === undefined) return false
      shown = gathering
      gathering = undefined
      return true
    }
    const set = gathering ?? shown
    const held = set.get(event.runId)
    let next: RunSetItem<V> | undefined
    switch (event.kind) {
      case 'snapshot':
        next = ('summary' in event ? event.summary : event.full) as RunSetItem<V>
        break
      case 'update':
        if ('summary' in event) next = event.summary as RunSetItem<V>
        // An update of a run not held (it cannot be: its snapshot comes first) is ignored.
        else if (held !== undefined) next = mergeRunUpdate(held as RunStatusResponse, event.full) as RunSetItem<V>
        break
      case 'output':
        if (held !== undefined && view === 'full') {
          const merged = applyOutputChunk(held as RunStatusResponse, event.chunk)
          if (merged !== held) next = merged as RunSetItem<V>
        }
        break
      case 'end':
        ended.add(event.runId)
        if (held !== undefined) {
          const final = withFinalRun(held, event.run, view) as RunSetItem<V>
          // Most often the last update already brought the final run: nothing to publish.
          if (JSON.stringify(final) !== JSON.stringify(held)) next = final
        }
        break
      case 'leave':
        if (!set.delete(event.runId)) return false
        return set === shown
    }
    if (next === undefined) return false
    set.set(event.runId, next)
    return set === shown
  }

  const complete = () => listed !== undefined && [...listed].every((id) => ended.has(id))

  /**
   * A `run=` stream completed (its last run's `end` is applied): a set still gathering (the
   * server's `ready` not read, or never sent before the close) is shown as it is, so runs that
   * were all finished already are seen in their final status.
   */
  function completed(): void {
    if (gathering !== undefined && apply({ kind: 'ready', runs: gathering.size })) publish()
    setState('closed')
  }

  async function run(): Promise<void> {
    // Every state change is reported once subscribeToRuns has returned.
    await Promise.resolve()
    if (url instanceof Error) return setState('error', url)
    const outcome = await followSetStream({
      url,
      fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
      headers: requestHeaders(options),
      credentials: options.credentials,
      signal,
      reconnectDelayMs,
      maxReconnectDelayMs,
      onOpen: () => {
        gathering = new Map()
        if (lifecycle.state !== 'live') setState(lifecycle.state === 'reconnecting' ? 'reconnecting' : 'connecting')
      },
      onEvent: (message) => {
        const event = parseSetEvent(message, view)
        if (event === undefined) return false
        if (apply(event)) publish()
        if (event.kind === 'ready') setState('live')
        return complete()
      },
      complete,
      onReconnecting: (error) => setState('reconnecting', error),
    })
    if (outcome === 'closed') return completed()
    if (outcome === 'no-stream') {
      return setState(
        'error',
        new RunSubscriptionError(
          `subscribeToRuns: ${url} is not served (404 or 405): this server has no set stream (GET {base}/events). Update pipeline-status-sdk on the server, or mount its catch-all route (a Next.js app with one file per route needs one for /events)`,
          { status: 404 },
        ),
      )
    }
  }

  return lifecycle.handle(lifecycle.settle(run()), {
    get runs() {
      return runs
    },
    ended,
  })
}

/** The query of a set stream: the filter and `limit`, or the run ids; the view always. */
function setStreamQuery(options: SubscribeToRunsOptions<SetStreamView>, view: SetStreamView): URLSearchParams {
  const { filter, runIds, limit } = options
  if (view !== 'summary' && view !== 'full') throw new TypeError(`subscribeToRuns: view must be 'summary' or 'full', got ${String(view)}`)
  let query: URLSearchParams
  if (runIds !== undefined) {
    if (filter !== undefined || limit !== undefined) throw new TypeError('subscribeToRuns: give runIds or a filter (with its limit), not both')
    const ids = [...new Set(runIds)]
    if (ids.length === 0 || ids.length > MAX_SET_STREAM_RUNS) {
      throw new TypeError(`subscribeToRuns: runIds must name 1 to ${MAX_SET_STREAM_RUNS} runs, got ${ids.length}; follow more with several subscriptions`)
    }
    if (ids.some((id) => typeof id !== 'string' || id === '')) throw new TypeError('subscribeToRuns: every run id must be a non-empty string')
    query = new URLSearchParams(ids.map((id) => ['run', id]))
  } else {
    query = runFilterQuery(filter ?? {})
    if (limit !== undefined) {
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) throw new TypeError(`subscribeToRuns: limit must be a whole number from 1 to ${MAX_LIST_LIMIT}, got ${String(limit)}`)
      query.set('limit', String(limit))
    }
  }
  query.set('view', view)
  return query
}

/** A run's item with its final run from `end`: the list item's own fields, or the status document's run. */
function withFinalRun(held: RunSummary | RunStatusResponse, run: SetStreamEvent & { kind: 'end' } extends { run: infer R } ? R : never, view: SetStreamView): RunSummary | RunStatusResponse {
  if (view === 'full') return { ...(held as RunStatusResponse), run: run as RunStatusResponse['run'] }
  const summary = held as RunSummary
  if ('stageCounts' in run) return run
  return { ...summary, status: run.status, completedAt: run.completedAt, startedAt: run.startedAt, tags: run.tags, metadata: run.metadata }
}

/** Newest first: `createdAt` descending, then id descending in code-unit order (the list's order). */
function newestFirst(a: RunSummary | RunStatusResponse, b: RunSummary | RunStatusResponse): number {
  const [ra, rb] = ['run' in a ? a.run : a, 'run' in b ? b.run : b]
  const [ta, tb] = [Date.parse(ra.createdAt), Date.parse(rb.createdAt)]
  if (ta !== tb) return tb - ta
  return ra.id < rb.id ? 1 : ra.id > rb.id ? -1 : 0
}
