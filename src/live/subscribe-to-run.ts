import type { EventSourceMessage } from 'eventsource-parser/stream'
import type { RunStatusResponse } from '../contract/records.js'
import { DEFAULT_BASE_PATH, routeUrl } from '../contract/routes.js'
import { isFinalStatus } from '../contract/status.js'
import { sleep } from '../internal/sleep.js'
import { SILENT_KEEP_ALIVES } from '../internal/attempt-deadline.js'
import { applyOutputChunk, mergeRunUpdate } from '../contract/live-status.js'
import { absoluteUrl } from './page-url.js'
import { requestHeaders, setEventsPath } from './set-stream.js'
import { joinSharedStream, type SharedStreamKey } from './shared-streams.js'
import { pollOnce } from './poll-attempt.js'
import { applyRunEvent } from './run-events.js'
import { createReconnect, positiveMs } from './reconnect.js'
import { streamOnce } from './stream-attempt.js'
import { RunSubscriptionError } from './subscription-errors.js'
import { createSubscriptionLifecycle } from './subscription-lifecycle.js'

/**
 * The connection state of a run subscription:
 * - `connecting`: the first connection is being opened;
 * - `live`: connected and up to date (stream open, or the last poll succeeded);
 * - `reconnecting`: the connection dropped, went silent for three keep-alive intervals
 *   ({@link RunStreamSilentError}), or a request failed; the next attempt is waiting;
 * - `finished`: the run is finished (the stream sent `end`, or a poll read a final status); no more requests;
 * - `error`: a failure that retrying cannot fix (401, 403, 404 unknown run, a malformed answer, a
 *   relative `url` where there is no page to resolve it against); no more requests.
 *
 * Closing the subscription (or aborting its `signal`) stops it in whatever state it was.
 */
export type RunConnectionState = 'connecting' | 'live' | 'reconnecting' | 'finished' | 'error'

/** How updates arrive: the live stream, or polling `GET /status` when the server has no stream route. */
export type RunTransport = 'stream' | 'polling'

/** The default of {@link SubscribeToRunOptions.reconnectDelayMs}: 1 s. */
export const DEFAULT_RECONNECT_DELAY_MS = 1000
/** The default of {@link SubscribeToRunOptions.maxReconnectDelayMs}: 30 s. */
export const DEFAULT_MAX_RECONNECT_DELAY_MS = 30_000
/** The default of {@link SubscribeToRunOptions.pollIntervalMs}: 1 s. */
export const DEFAULT_POLL_INTERVAL_MS = 1000
/** Options of {@link subscribeToRun}. */
export interface SubscribeToRunOptions {
  /**
   * Where the routes live: the base path, absolute (`https://app.example.com/api/pipeline`) or,
   * in a browser, relative to the page. The stream is `{url}/{runId}/events`, the polling
   * fallback `{url}/{runId}/status`. Outside a browser (Node, edge runtimes) there is no page to
   * resolve a relative path against: give the absolute URL there, or the subscription stops at
   * once in state `error`.
   * @default '/api/pipeline'
   */
  url?: string | undefined
  /**
   * Sent as `Authorization: Bearer <token>`: a run read token (`createRunReadToken` from
   * `pipeline-status-sdk/server`) or whatever the app's `authorize` hook accepts.
   * @default none (same-origin cookies still go along)
   */
  token?: string | undefined
  /**
   * More request headers, e.g. `X-Webhook-Secret` for a trusted server-side subscriber.
   * @default none
   */
  headers?: Record<string, string> | undefined
  /** Aborting it closes the connection and stops the subscription, like {@link RunSubscription.close}. */
  signal?: AbortSignal | undefined
  /**
   * Called with the run's whole status after each change: the snapshot, each merged update, each
   * poll that read something new.
   */
  onUpdate?: ((status: RunStatusResponse) => void) | undefined
  /** Called when {@link RunSubscription.state} changes; `error` is set in the `error` state and, as the cause, in `reconnecting`. */
  onStateChange?: ((state: RunConnectionState, error: Error | undefined) => void) | undefined
  /**
   * The first reconnection delay in milliseconds, until the server's `retry:` field replaces it.
   * Consecutive failures double it up to {@link SubscribeToRunOptions.maxReconnectDelayMs}; each
   * wait is drawn at random between half and all of it (jitter), so clients do not return in step.
   * A `Retry-After` on a 429 or 503 wins when longer.
   * @default 1_000
   */
  reconnectDelayMs?: number | undefined
  /**
   * The longest wait between two attempts, in milliseconds.
   * @default 30_000
   */
  maxReconnectDelayMs?: number | undefined
  /**
   * Time between two `GET /status` requests in the polling fallback, in milliseconds, counted
   * from the end of one answer.
   * @default 1_000
   */
  pollIntervalMs?: number | undefined
  /**
   * The `fetch` to use (a test's, or one with the app's own credentials).
   * @default globalThis.fetch
   */
  fetch?: typeof globalThis.fetch | undefined
  /**
   * fetch's `credentials` mode: `include` sends the app's cookies to another origin too.
   * @default fetch's own (`same-origin`)
   */
  credentials?: RequestCredentials | undefined
  /**
   * Share one connection with the page's other subscriptions to the same server with the same
   * credentials (the same `url` origin and base path, `token`, `headers`, `credentials` and
   * `fetch`): all of them are served by one set stream, `GET {url}/events?run=a&run=b…`, per 50
   * runs, instead of one stream each. Browsers keep at most six HTTP/1.1 connections per host, so
   * without it a page following a seventh run waits for good, and so does every other request of
   * the page. A subscription with a run read token (`psrt1.<expires>.…`) never shares: the token
   * names no run, each reads its own run only, and two such tokens are two credentials (follow
   * many runs with a tag read token or the app's session instead, docs/following-many-runs.md).
   * A run the server refuses (an unknown run, a credential that does not cover it) ends in state
   * `error` with the server's answer, as on its own stream, and the page's other runs go on
   * sharing. A server without the set stream (404 `route_not_found`), or one whose refusal names no
   * run (a release older than the problem's `runId`), is logged once and each run concerned is
   * then followed on its own stream, as with `share: false`.
   * @default true in a browser page (where `document` exists), false elsewhere (Node and edge
   * runtimes have no per-host connection limit)
   */
  share?: boolean | undefined
}

/** A running subscription. */
export interface RunSubscription {
  /** The current connection state. */
  readonly state: RunConnectionState
  /** The run's status as last received; `undefined` before the first snapshot. */
  readonly status: RunStatusResponse | undefined
  /** How updates arrive; `undefined` until the first answer tells. */
  readonly transport: RunTransport | undefined
  /** The error behind the `error` state (or the last `reconnecting`). */
  readonly error: Error | undefined
  /** Settles once the subscription stops: finished, failed for good, or closed. Never rejects. */
  readonly done: Promise<void>
  /** Closes the connection and stops; no more callbacks. */
  close(): void
}

/**
 * Subscribes to a run's live status (`GET {url}/{runId}/events`, Server-Sent Events), read
 * with `fetch` so it can send `Authorization`, which `EventSource` cannot. Runs in browsers,
 * Node and edge runtimes (no Node built-ins).
 *
 * - The first event is a `snapshot`; each `update` is merged into it ({@link mergeRunUpdate})
 *   and `onUpdate` gets the whole status; `end` stops for good (state `finished`).
 * - A dropped connection is resumed with `Last-Event-ID` (the last run version seen) after the
 *   server's `retry:` delay; failed attempts back off exponentially with jitter. 401, 403 and an
 *   unknown run stop with state `error`.
 * - A silent connection counts as dropped: no byte for {@link SILENT_KEEP_ALIVES} times the
 *   keep-alive interval the server announces (`: keep-alive-ms N`; 15 s assumed until then),
 *   answer headers included, is state `reconnecting` with a {@link RunStreamSilentError}.
 * - The stream is opened with `?outputs=changed`: an `update` leaves out a stage's output
 *   when it did not change, and the output already held is kept.
 * - A server without the stream route (404 `route_not_found`, a 404 that is no problem+json,
 *   or 405 on the events path) is
 *   polled instead: `GET {url}/{runId}/status` every `pollIntervalMs`, with `If-None-Match` when
 *   the server sends an `ETag`, until the run is finished. Each poll must complete, headers and
 *   body, within {@link SILENT_KEEP_ALIVES} keep-alive intervals (45 s by default); one that does
 *   not is aborted and retried with backoff (state `reconnecting`, a {@link RunPollTimeoutError}).
 *
 * @example
 * ```ts
 * import { subscribeToRun, type PipelineRunRecord, type StageOutputRecord } from 'pipeline-status-sdk'
 * const readToken = process.env.RUN_READ_TOKEN // minted by your server for this run (createRunReadToken)
 * const render = (run: PipelineRunRecord, stages: StageOutputRecord[]) => console.log(run.status, stages.length)
 * const controller = new AbortController()
 * const subscription = subscribeToRun('run_1', {
 *   url: '/api/pipeline',
 *   token: readToken,
 *   signal: controller.signal,
 *   onUpdate: ({ run, stages }) => render(run, stages),
 *   onStateChange: (state) => console.log(state), // connecting, live, ..., finished
 * })
 * await subscription.done
 * ```
 */
export function subscribeToRun(runId: string, options: SubscribeToRunOptions = {}): RunSubscription {
  const key = (options.share ?? hasPage()) ? sharedKey(options) : undefined
  if (key === undefined || isRunReadToken(options.token)) return subscribeAlone(runId, options)
  return subscribeShared(runId, options, key)
}

/** Whether this runtime has a page (a browser window): where HTTP/1.1's six connections per host bind. */
function hasPage(): boolean {
  return typeof (globalThis as { document?: unknown }).document !== 'undefined'
}

/** A run read token names no run (its run is the request's path), so it cannot read a set: `psrt1.<expires>.<signature>`. */
function isRunReadToken(token: string | undefined): boolean {
  return token !== undefined && /^psrt1\.[1-9]/.test(token)
}

/** The key of the page's shared connection for these options; `undefined` when the URL cannot be built (the run's own subscription reports it). */
function sharedKey(options: SubscribeToRunOptions): SharedStreamKey | undefined {
  const base = options.url ?? DEFAULT_BASE_PATH
  const url = absoluteUrl('subscribeToRun', base, setEventsPath(base))
  if (url instanceof RunSubscriptionError) return undefined
  return {
    url,
    headers: requestHeaders(options),
    credentials: options.credentials,
    fetch: options.fetch,
    ...reconnectDelays(options),
  }
}

/** The first and longest reconnection delay of a subscriber's options, defaults filled in; a TypeError for one that is not a positive number. */
export function reconnectDelays(options: Pick<SubscribeToRunOptions, 'reconnectDelayMs' | 'maxReconnectDelayMs'>): {
  reconnectDelayMs: number
  maxReconnectDelayMs: number
} {
  return {
    reconnectDelayMs: positiveMs(options.reconnectDelayMs, DEFAULT_RECONNECT_DELAY_MS),
    maxReconnectDelayMs: positiveMs(options.maxReconnectDelayMs, DEFAULT_MAX_RECONNECT_DELAY_MS),
  }
}

/**
 * A run followed on the page's shared connection ({@link joinSharedStream}): the same events as
 * its own stream, dispatched by run. When the connection cannot carry it (no set stream on the
 * server, a refused set) it goes on with its own subscription, the same callbacks, to the end.
 */
function subscribeShared(runId: string, options: SubscribeToRunOptions, key: SharedStreamKey): RunSubscription {
  const lifecycle = createSubscriptionLifecycle(options, 'finished')
  const { signal, setState } = lifecycle
  let status: RunStatusResponse | undefined
  let alone: RunSubscription | undefined
  let settle: () => void = () => {}
  const followed = new Promise<void>((resolve) => (settle = resolve))

  const leave = joinSharedStream(key, runId, {
    onEvent: (event) => {
      if (signal.aborted) return
      let next: RunStatusResponse | undefined
      if (event.kind === 'snapshot' && 'full' in event) next = event.full
      else if (event.kind === 'update' && 'full' in event) next = mergeRunUpdate(status, event.full)
      else if (event.kind === 'output' && status !== undefined) {
        const merged = applyOutputChunk(status, event.chunk)
        if (merged !== status) next = merged
      } else if (event.kind === 'end') {
        const run = event.run as RunStatusResponse['run']
        if (status !== undefined && JSON.stringify(status.run) !== JSON.stringify(run)) next = { ...status, run }
      }
      if (next !== undefined) {
        status = next
        options.onUpdate?.(next)
      }
      if (event.kind === 'end') {
        setState('finished')
        lifecycle.close()
      }
    },
    onState: (next, error) => {
      if (!signal.aborted) setState(next, error)
    },
    onRefused: (error) => {
      if (signal.aborted) return
      setState('error', error)
      lifecycle.close()
    },
    onFallback: () => {
      if (signal.aborted) return
      alone = subscribeAlone(runId, {
        ...options,
        onUpdate: (next) => {
          status = next
          options.onUpdate?.(next)
        },
        onStateChange: (next, error) => setState(next, error),
      })
      void alone.done.then(() => {
        lifecycle.close()
        settle()
      })
    },
  })
  // Closed on its own, it is done; on its own connection, once that one is (closed with it).
  lifecycle.onClose(() => {
    leave()
    if (alone === undefined) settle()
    else alone.close()
  })

  return lifecycle.handle(lifecycle.settle(followed), {
    get status() {
      return status
    },
    get transport() {
      return alone === undefined ? (lifecycle.state === 'connecting' ? undefined : 'stream') : alone.transport
    },
  })
}

/** One run on its own connection: its stream, or polling when the server has none. */
function subscribeAlone(runId: string, options: SubscribeToRunOptions = {}): RunSubscription {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis)
  const pollInterval = positiveMs(options.pollIntervalMs, DEFAULT_POLL_INTERVAL_MS)
  const { reconnectDelayMs, maxReconnectDelayMs } = reconnectDelays(options)
  const reconnect = createReconnect(reconnectDelayMs, maxReconnectDelayMs)
  // Built once, here: a URL that cannot be built stops the subscription instead of failing every attempt.
  const urls = buildRunUrls(options.url ?? DEFAULT_BASE_PATH, runId)

  const lifecycle = createSubscriptionLifecycle(options, 'finished')
  const { signal, setState } = lifecycle
  let status: RunStatusResponse | undefined
  let transport: RunTransport | undefined
  let lastEventId: string | undefined
  let etag: string | undefined

  function publish(next: RunStatusResponse): void {
    status = next
    if (!signal.aborted) options.onUpdate?.(next)
  }

  function acceptHeaders(accept: string): Headers {
    const headers = requestHeaders(options)
    headers.set('Accept', accept)
    return headers
  }

  /** Applies one stream event; `true` for `end`. Its id becomes `Last-Event-ID` once the event is applied. */
  function onEvent(message: EventSourceMessage): boolean {
    // A connection that delivers events is healthy again: the next drop waits the base delay.
    reconnect.healthy()
    const { next, end } = applyRunEvent(status, message)
    if (next !== undefined) publish(next)
    if (message.id) lastEventId = message.id
    return end
  }

  /** One stream attempt: what to do next, or a thrown failure. */
  function stream(url: string): Promise<'ended' | 'dropped' | 'no-stream'> {
    const headers = acceptHeaders('text/event-stream')
    if (lastEventId !== undefined) headers.set('Last-Event-ID', lastEventId)
    return streamOnce({
      url,
      fetch: doFetch,
      signal,
      headers,
      credentials: options.credentials,
      ...reconnect.hooks,
      onOpen: () => {
        transport = 'stream'
        setState('live')
      },
      onEvent,
    })
  }

  /** One poll; `true` once the run is finished, or a thrown failure. */
  async function poll(url: string): Promise<boolean> {
    const headers = acceptHeaders('application/json')
    if (etag !== undefined) headers.set('If-None-Match', etag)
    const result = await pollOnce({ url, fetch: doFetch, signal, headers, credentials: options.credentials, timeoutMs: SILENT_KEEP_ALIVES * reconnect.keepAliveMs() })
    if (result !== 'not-modified') {
      etag = result.etag
      if (status === undefined || JSON.stringify(status) !== JSON.stringify(result.status)) publish(result.status)
    }
    reconnect.healthy()
    setState('live')
    return status !== undefined && isFinalStatus(status.run.status)
  }

  async function run(): Promise<void> {
    if (urls instanceof Error) {
      // Every attempt would fail alike; reported once subscribeToRun has returned, like every state change.
      await Promise.resolve()
      return setState('error', urls)
    }
    let mode: RunTransport = 'stream'
    while (!signal.aborted) {
      let failure: Error | undefined
      try {
        if (mode === 'stream') {
          const outcome = await stream(urls.events)
          if (outcome === 'ended') return setState('finished')
          if (outcome === 'no-stream') {
            mode = 'polling'
            transport = 'polling'
            continue
          }
          // A clean drop: resume after the server's retry delay, with Last-Event-ID.
        } else {
          if (await poll(urls.status)) return setState('finished')
          await sleep(pollInterval, signal)
          continue
        }
      } catch (error) {
        if (signal.aborted) return
        failure = error as Error
      }
      // The server's `: closed` cause, when it said why it ended the stream, is the failure.
      failure = reconnect.failureOf(failure, requestHeaders(options).get('Authorization'))
      // What a failed or dropped attempt means (the part `onerror` plays in fetch-event-source).
      const wait = reconnect.nextWait(failure)
      if (wait === undefined) return setState('error', failure)
      setState('reconnecting', failure)
      await sleep(wait, signal)
    }
  }

  return lifecycle.handle(lifecycle.settle(run()), {
    get status() {
      return status
    },
    get transport() {
      return transport
    },
  })
}

/** The absolute URLs of a run's stream and of the polling fallback. */
interface RunUrls {
  readonly events: string
  readonly status: string
}

/**
 * The URLs of one run under the base path `url`: the stream with `?outputs=changed`, and the
 * polling fallback.
 */
function runUrls(url: string, runId: string): RunUrls {
  return { events: `${routeUrl(url, 'events', { runId })}?outputs=changed`, status: routeUrl(url, 'status', { runId }) }
}

/**
 * {@link runUrls} made absolute once (see {@link absoluteUrl}): the error to stop with when they
 * cannot be.
 */
function buildRunUrls(url: string, runId: string): RunUrls | RunSubscriptionError {
  const relative = runUrls(url, runId)
  const events = absoluteUrl('subscribeToRun', url, relative.events)
  if (events instanceof RunSubscriptionError) return events
  const status = absoluteUrl('subscribeToRun', url, relative.status)
  if (status instanceof RunSubscriptionError) return status
  return { events, status }
}
