/**
 * The page's shared connections: every `subscribeToRun` (and so every `useRunStatus`) of one page
 * that asks the same server with the same credentials is served by one set stream,
 * `GET {base}/events?run=a&run=b…&view=full`, per {@link MAX_SET_STREAM_RUNS} runs, instead of one
 * stream per run. A browser keeps at most six HTTP/1.1 connections per host: a page following a
 * seventh run on its own connection would wait for good, and so would every other request of the
 * page (docs/following-many-runs.md).
 *
 * One {@link SharedConnections} per key (the stream's absolute URL, the request headers, the
 * `credentials` mode and the `fetch` used). A change of its runs is planned once per macrotask, so
 * twenty components mounting in one render open one connection, not twenty: a group is opened
 * again only when runs join it (a set stream cannot take runs while open), and a run that leaves
 * stays in its group's request until then (its events are no longer dispatched). Internal.
 */
import { errorMessage } from '../internal/error-message.js'
import { MAX_SET_STREAM_RUNS } from '../contract/live-status.js'
import { parseSetEvent, type SetStreamEvent } from './set-events.js'
import { followSetStream } from './set-stream.js'
import { isRunStreamClosedError, isRunSubscriptionError, RunStreamClosedError, type RunSubscriptionError } from './subscription-errors.js'

/** One subscriber of one run on a shared connection. */
export interface SharedRunListener {
  /** An event about the subscriber's run: `snapshot`, `update`, `output` or `end` (full view). */
  onEvent(event: SetStreamEvent): void
  /** The state of the connection that carries the run. */
  onState(state: 'live' | 'reconnecting', error: Error | undefined): void
  /**
   * The server refused this run on the shared connection, naming it (`problem.runId`: an unknown
   * run, a credential that does not cover it): the run's own answer, as its own stream would get
   * it. The listener is already removed; the other runs go on sharing. Or the server ended the
   * connection for a cause a reconnect cannot help ({@link RunStreamClosedError}, final): naming
   * this run (`deleted`, `not-admitted`: the other runs go on sharing on a new connection), or
   * no run (`credential-expired`: every run of the connection stops).
   */
  onRefused(error: RunSubscriptionError | RunStreamClosedError): void
  /**
   * The run cannot be followed on a shared connection: the server has no set stream (an older
   * server), or it refused the set without naming the run (a server older than the `runId`
   * member; the subscriber's own stream then gets its own answer). The listener is already
   * removed; it opens its own connection.
   */
  onFallback(): void
}

/** What identifies a shared connection: who asks whom, with what. */
export interface SharedStreamKey {
  /** The set stream's absolute URL, without a query. */
  readonly url: string
  /** The request's headers (credentials included). */
  readonly headers: Headers
  readonly credentials: RequestCredentials | undefined
  /** The caller's `fetch`, or `undefined` for the global one. */
  readonly fetch: typeof globalThis.fetch | undefined
  /** Reconnect timing, from the first subscriber. */
  readonly reconnectDelayMs: number
  readonly maxReconnectDelayMs: number
}

/** Each fallback is said once per page and server (set-stream URL), whatever the credentials. */
const warned = new Set<string>()
function warnOnce(kind: string, url: string, message: string): void {
  if (warned.has(`${kind} ${url}`)) return
  warned.add(`${kind} ${url}`)
  console.warn(message)
}

const byFetch = new Map<typeof globalThis.fetch | undefined, Map<string, SharedConnections>>()

/**
 * Follows `runId` for `listener` on the page's shared connection for `key`; returns the leave.
 * A server known to have no set stream (an earlier 404) calls `onFallback` at once (in a
 * microtask, so the caller has returned).
 */
export function joinSharedStream(key: SharedStreamKey, runId: string, listener: SharedRunListener): () => void {
  let pages = byFetch.get(key.fetch)
  if (pages === undefined) byFetch.set(key.fetch, (pages = new Map()))
  const id = JSON.stringify([key.url, key.credentials ?? '', [...key.headers].sort()])
  let shared = pages.get(id)
  if (shared === undefined) pages.set(id, (shared = new SharedConnections(key)))
  return shared.join(runId, listener)
}

/** How many shared connections are open now, over every key (for tests and diagnostics). */
export function openSharedConnections(): number {
  let open = 0
  for (const pages of byFetch.values()) for (const shared of pages.values()) open += shared.openGroups
  return open
}

/** One connection and the runs it carries. */
interface Group {
  readonly ids: readonly string[]
  readonly controller: AbortController
  readonly ended: Set<string>
}

/** The shared connections of one key. */
class SharedConnections {
  readonly #key: SharedStreamKey
  readonly #listeners = new Map<string, Set<SharedRunListener>>()
  /** The subscribers that got an event of their run: a run they streamed existed (see `deletedIfGone`). */
  readonly #streamed = new WeakSet<SharedRunListener>()
  #groups: Group[] = []
  #planned = false
  /** Set once the server answered that it has no set stream: every subscriber follows alone. */
  #noSetStream = false

  constructor(key: SharedStreamKey) {
    this.#key = key
  }

  get openGroups(): number {
    return this.#groups.length
  }

  join(runId: string, listener: SharedRunListener): () => void {
    if (this.#noSetStream) {
      queueMicrotask(() => listener.onFallback())
      return () => {}
    }
    let listeners = this.#listeners.get(runId)
    if (listeners === undefined) this.#listeners.set(runId, (listeners = new Set()))
    listeners.add(listener)
    this.#plan()
    return () => this.#remove(runId, listener)
  }

  #remove(runId: string, listener: SharedRunListener): void {
    const listeners = this.#listeners.get(runId)
    if (!listeners?.delete(listener)) return
    if (listeners.size === 0) this.#listeners.delete(runId)
    this.#plan()
  }

  /** Plans the connections once per macrotask: the runs of one render share the first request. */
  #plan(): void {
    if (this.#planned) return
    this.#planned = true
    setTimeout(() => {
      this.#planned = false
      this.#replan()
    }, 0)
  }

  #replan(): void {
    // Groups none of whose runs is followed any more are closed.
    for (const group of this.#groups) {
      if (!group.ids.some((id) => this.#listeners.has(id))) group.controller.abort()
    }
    this.#groups = this.#groups.filter((group) => !group.controller.signal.aborted)
    const carried = new Set(this.#groups.flatMap((group) => group.ids))
    const joining = [...this.#listeners.keys()].filter((id) => !carried.has(id))
    if (joining.length === 0) return
    // Runs join the last group while it has room (it is opened again with them), then new groups.
    const last = this.#groups.at(-1)
    if (last !== undefined) {
      const kept = last.ids.filter((id) => this.#listeners.has(id))
      if (kept.length < MAX_SET_STREAM_RUNS) {
        last.controller.abort()
        this.#groups.pop()
        joining.unshift(...kept)
      }
    }
    for (let start = 0; start < joining.length; start += MAX_SET_STREAM_RUNS) {
      this.#open(joining.slice(start, start + MAX_SET_STREAM_RUNS))
    }
  }

  #open(ids: readonly string[]): void {
    const group: Group = { ids, controller: new AbortController(), ended: new Set() }
    this.#groups.push(group)
    const query = new URLSearchParams(ids.map((id) => ['run', id]))
    query.set('view', 'full')
    const each = (action: (listener: SharedRunListener) => void) => {
      for (const id of ids) for (const listener of [...(this.#listeners.get(id) ?? [])]) action(listener)
    }
    const complete = () => ids.every((id) => group.ended.has(id))
    void followSetStream({
      url: `${this.#key.url}?${query.toString()}`,
      fetch: this.#key.fetch ?? globalThis.fetch.bind(globalThis),
      headers: new Headers(this.#key.headers),
      credentials: this.#key.credentials,
      signal: group.controller.signal,
      reconnectDelayMs: this.#key.reconnectDelayMs,
      maxReconnectDelayMs: this.#key.maxReconnectDelayMs,
      onOpen: () => each((listener) => listener.onState('live', undefined)),
      onEvent: (message) => {
        const event = parseSetEvent(message, 'full')
        if (event === undefined || event.kind === 'ready' || event.kind === 'leave') return false
        if (!ids.includes(event.runId)) return false
        if (event.kind === 'end') group.ended.add(event.runId)
        for (const listener of [...(this.#listeners.get(event.runId) ?? [])]) {
          this.#streamed.add(listener)
          listener.onEvent(event)
        }
        return complete()
      },
      complete,
      onReconnecting: (error) => each((listener) => listener.onState('reconnecting', error)),
    }).then(
      (outcome) => {
        this.#groups = this.#groups.filter((other) => other !== group)
        if (outcome === 'no-stream') {
          this.#noSetStream = true
          warnOnce(
            'no-set-stream',
            this.#key.url,
            `pipeline-status: ${this.#key.url} is not served (404 route_not_found or 405): this server has no set stream, so each run on this page is followed on its own connection; a browser allows six per host over HTTP/1.1, so a page following more runs stalls. Fix: update pipeline-status-sdk on the server (GET {base}/events), or route {base}/events to its handlers`,
          )
          this.#fallBack(() => true)
        }
      },
      (error: unknown) => {
        this.#groups = this.#groups.filter((other) => other !== group)
        if (isRunStreamClosedError(error) && error.runId === undefined) {
          // Ended for the whole connection (its credential expired, and a read token's, or a
          // session its reconnect found not renewed): every run it carried stops, saying why.
          for (const id of ids) {
            const listeners = this.#listeners.get(id) ?? new Set()
            this.#listeners.delete(id)
            for (const listener of listeners) listener.onRefused(error)
          }
          this.#plan()
          return
        }
        const refused = refusedRun(error)
        if (refused !== undefined && ids.includes(refused)) {
          // Only the run the server named leaves; the others share a connection again.
          const listeners = this.#listeners.get(refused) ?? new Set()
          this.#listeners.delete(refused)
          for (const listener of listeners) listener.onRefused(this.#streamed.has(listener) ? deletedIfGone(error, refused) : (error as RunSubscriptionError | RunStreamClosedError))
          this.#plan()
          return
        }
        warnOnce(
          'refused',
          this.#key.url,
          `pipeline-status: the shared stream of ${ids.length} run(s) at ${this.#key.url} was refused (${errorMessage(error)}) without naming the run refused (a server older than the problem's runId member), so each of them is now followed on its own connection, which reports its own answer; a browser allows six per host over HTTP/1.1, so a page following more runs stalls. Fix: update pipeline-status-sdk on the server (said once per page and server)`,
        )
        this.#fallBack((id) => ids.includes(id))
      },
    )
  }

  /** Hands the runs `which` picks to their subscribers' own connections. */
  #fallBack(which: (runId: string) => boolean): void {
    for (const [id, listeners] of [...this.#listeners]) {
      if (!which(id)) continue
      this.#listeners.delete(id)
      for (const listener of listeners) listener.onFallback()
    }
  }
}

/**
 * A reopen's `404 run_not_found` for a run the subscriber had already streamed (so it existed): the
 * run was deleted while the connection reopened (two runs deleted together: the server's
 * `: closed deleted` names the first, the reopen finds the second gone), reported as the final
 * `RunStreamClosedError` (`deleted`) its own stream's comment would have been. Anything else as it is.
 */
function deletedIfGone(error: unknown, runId: string): RunSubscriptionError | RunStreamClosedError {
  if (isRunSubscriptionError(error) && error.status === 404 && error.problem?.code === 'run_not_found') {
    return new RunStreamClosedError({ cause: 'deleted', runId }, true)
  }
  return error as RunSubscriptionError | RunStreamClosedError
}

/**
 * The run a refusal of a `run=` stream names: its problem's `runId` member (401, 403, 404), which a
 * server that predates the member does not send; or the member run a final `: closed` comment
 * named (`deleted`, `not-admitted`).
 */
function refusedRun(error: unknown): string | undefined {
  if (isRunStreamClosedError(error)) return error.runId
  if (!isRunSubscriptionError(error) || error.status === undefined || error.status < 400 || error.status >= 500) return undefined
  const runId = error.problem?.runId
  return typeof runId === 'string' ? runId : undefined
}
