import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { HEADERS } from '../contract/headers.js'
import { LIVE_EVENTS, mergeRunUpdate, RunEndEvent, RunSnapshotEvent, RunUpdateEvent } from '../contract/live-status.js'
import { Problem } from '../contract/problem.js'
import { RunStatusResponse } from '../contract/records.js'
import { parseRetryAfter } from '../contract/retry-after.js'
import { DEFAULT_BASE_PATH, routeUrl } from '../contract/routes.js'
import { isFinalStatus } from '../contract/status.js'
import { isErrorNamed } from '../internal/is-error-named.js'
import { isPositive } from '../internal/is-positive.js'

/**
 * The connection state of a run subscription:
 * - `connecting`: the first connection is being opened;
 * - `live`: connected and up to date (stream open, or the last poll succeeded);
 * - `reconnecting`: the connection dropped, went silent for three keep-alive intervals
 *   ({@link RunStreamSilentError}), or a request failed; the next attempt is waiting;
 * - `finished`: the run is finished (the stream sent `end`, or a poll read a final status); no more requests;
 * - `error`: a failure that retrying cannot fix (401, 403, 404 unknown run, a malformed answer); no more requests.
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
/**
 * The keep-alive interval assumed until the server announces its own (`: keep-alive-ms N`, sent
 * first on every stream; docs/contract.md): 15 s, the handlers' default.
 */
export const DEFAULT_SERVER_KEEP_ALIVE_MS = 15_000
/** How many keep-alive intervals without a byte make a stream count as lost: 3. */
export const SILENT_KEEP_ALIVES = 3

/** The comment that announces the server's keep-alive interval, e.g. `: keep-alive-ms 15000`. */
const KEEP_ALIVE_ANNOUNCEMENT = /^\s*keep-alive-ms\s+(\d+)\s*$/

/** Options of {@link subscribeToRun}. */
export interface SubscribeToRunOptions {
  /**
   * Where the routes live: the base path, absolute (`https://app.example.com/api/pipeline`) or,
   * in a browser, relative to the page. The stream is `{url}/{runId}/events`, the polling
   * fallback `{url}/{runId}/status`.
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
 * Why a subscription failed: an HTTP answer it cannot use, with the server's problem when it
 * sent one, or a malformed event.
 */
export class RunSubscriptionError extends Error {
  /** Always `'RunSubscriptionError'`; check it with {@link isRunSubscriptionError}. */
  override readonly name = 'RunSubscriptionError' as const
  /** The HTTP status of the refused request; `undefined` for a malformed event. */
  readonly status: number | undefined
  /** The server's `application/problem+json` body, when it sent one. */
  readonly problem: Problem | undefined

  constructor(message: string, details: { status?: number | undefined; problem?: Problem | undefined; cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.status = details.status
    this.problem = details.problem
  }
}

/**
 * The live stream said nothing, not even a keep-alive, for {@link SILENT_KEEP_ALIVES} of the
 * server's keep-alive intervals (or the answer's headers took that long): the path is taken as
 * dead (a NAT entry or proxy dropped it without a FIN), and the subscriber reconnects with
 * `Last-Event-ID`. Reported as the cause of the `reconnecting` state; never fatal.
 */
export class RunStreamSilentError extends Error {
  /** Always `'RunStreamSilentError'`; check it with {@link isRunStreamSilentError}. */
  override readonly name = 'RunStreamSilentError' as const
  /** How long nothing arrived, in milliseconds. */
  readonly silentMs: number
  /** The keep-alive interval the deadline was derived from, in milliseconds (announced by the server, or the default). */
  readonly keepAliveMs: number

  constructor(silentMs: number, keepAliveMs: number) {
    super(
      `The live status stream sent nothing for ${silentMs} ms (${SILENT_KEEP_ALIVES} keep-alive intervals of ${keepAliveMs} ms); taking the connection as lost and reconnecting`,
    )
    this.silentMs = silentMs
    this.keepAliveMs = keepAliveMs
  }
}

/**
 * A poll of the fallback (`GET {url}/{runId}/status`) did not complete, headers and body, within
 * its deadline: {@link SILENT_KEEP_ALIVES} keep-alive intervals (45 s with the default 15 s, or 3 ×
 * the interval a stream of this server announced), the same figure that bounds a silent stream.
 * The request is aborted and retried like any failed request (state `reconnecting`, backoff).
 */
export class RunPollTimeoutError extends Error {
  /** Always `'RunPollTimeoutError'`; check it with {@link isRunPollTimeoutError}. */
  override readonly name = 'RunPollTimeoutError' as const
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number

  constructor(timeoutMs: number) {
    super(`GET /status did not complete (headers and body) within ${timeoutMs} ms; aborting it and polling again`)
    this.timeoutMs = timeoutMs
  }
}

/** Whether a value is a {@link RunPollTimeoutError}, also across realms and dual builds. */
export function isRunPollTimeoutError(error: unknown): error is RunPollTimeoutError {
  return isErrorNamed(error, 'RunPollTimeoutError')
}

/** Whether a value is a {@link RunStreamSilentError}, also across realms and dual builds. */
export function isRunStreamSilentError(error: unknown): error is RunStreamSilentError {
  return isErrorNamed(error, 'RunStreamSilentError')
}

/** Whether a value is a {@link RunSubscriptionError}, also across realms and dual builds. */
export function isRunSubscriptionError(error: unknown): error is RunSubscriptionError {
  return isErrorNamed(error, 'RunSubscriptionError')
}

/** Whether retrying cannot fix an answer: a 4xx other than 408 and 429. */
function isFatalStatus(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429
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
  const base = options.url ?? DEFAULT_BASE_PATH
  const eventsUrl = `${routeUrl(base, 'events', { runId })}?outputs=changed`
  const statusUrl = routeUrl(base, 'status', { runId })
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis)
  const maxDelay = positive(options.maxReconnectDelayMs, DEFAULT_MAX_RECONNECT_DELAY_MS)
  const pollInterval = positive(options.pollIntervalMs, DEFAULT_POLL_INTERVAL_MS)
  let retryDelay = positive(options.reconnectDelayMs, DEFAULT_RECONNECT_DELAY_MS)

  const controller = new AbortController()
  const stop = () => controller.abort()
  if (options.signal?.aborted) stop()
  else options.signal?.addEventListener('abort', stop, { once: true })
  const signal = controller.signal

  let state: RunConnectionState = 'connecting'
  let status: RunStatusResponse | undefined
  let transport: RunTransport | undefined
  let lastError: Error | undefined
  let lastEventId: string | undefined
  let failures = 0
  let serverKeepAliveMs = DEFAULT_SERVER_KEEP_ALIVE_MS

  function setState(next: RunConnectionState, error?: Error): void {
    if (signal.aborted && next !== 'finished' && next !== 'error') return
    lastError = error
    if (next === state && error === undefined) return
    state = next
    options.onStateChange?.(next, error)
  }

  function publish(next: RunStatusResponse): void {
    status = next
    if (!signal.aborted) options.onUpdate?.(next)
  }

  function requestHeaders(accept: string): Headers {
    const headers = new Headers(options.headers)
    headers.set('Accept', accept)
    if (options.token !== undefined) headers.set('Authorization', `Bearer ${options.token}`)
    return headers
  }

  /** The wait before the next attempt: `retry:` (or its default) doubled per failure, jittered. */
  function backoff(retryAfterMs = 0): number {
    const exponential = Math.min(maxDelay, retryDelay * 2 ** Math.max(0, failures - 1))
    return Math.max(retryAfterMs, exponential / 2 + (Math.random() * exponential) / 2)
  }

  /** Opens the stream once and reads it to its end. Returns what to do next. */
  async function streamOnce(): Promise<'ended' | 'dropped' | 'no-stream'> {
    const headers = requestHeaders('text/event-stream')
    if (lastEventId !== undefined) headers.set('Last-Event-ID', lastEventId)
    // One deadline, pushed back by every byte: a connection that goes quiet for longer than
    // SILENT_KEEP_ALIVES keep-alives (headers included) is aborted and counted as dropped.
    const attempt = new AbortController()
    let silence: ReturnType<typeof setTimeout> | undefined
    let silentError: RunStreamSilentError | undefined
    const watch = () => {
      if (silence !== undefined) clearTimeout(silence)
      const keepAliveMs = serverKeepAliveMs
      const silentMs = SILENT_KEEP_ALIVES * keepAliveMs
      silence = setTimeout(() => {
        silentError = new RunStreamSilentError(silentMs, keepAliveMs)
        attempt.abort(silentError)
      }, silentMs)
    }
    // Closing the subscription aborts the attempt too (by hand: AbortSignal.any is too recent for some browsers).
    const forward = () => attempt.abort(signal.reason)
    signal.addEventListener('abort', forward, { once: true })
    watch()
    try {
      return await readStream(headers, attempt.signal, watch)
    } catch (error) {
      throw silentError ?? error
    } finally {
      clearTimeout(silence)
      signal.removeEventListener('abort', forward)
    }
  }

  async function readStream(headers: Headers, attemptSignal: AbortSignal, heard: () => void): Promise<'ended' | 'dropped' | 'no-stream'> {
    const response = await doFetch(eventsUrl, { headers, signal: attemptSignal, cache: 'no-store' })
    heard()
    if (await hasNoStreamRoute(response)) return 'no-stream'
    if (!response.ok) throw await httpError(response, 'The live status stream')
    const type = response.headers.get('content-type') ?? ''
    if (!/^text\/event-stream\b/i.test(type) || !response.body) {
      await response.body?.cancel()
      throw new RunSubscriptionError(`The live status stream answered ${type || 'no content type'}, not text/event-stream`, {
        status: response.status,
      })
    }
    transport = 'stream'
    setState('live')
    let ended = false
    let malformed: Error | undefined
    const parser = createParser({
      onEvent: (message) => {
        if (ended || malformed) return
        // A connection that delivers events is healthy again: the next drop waits the base delay.
        failures = 0
        try {
          ended = handleEvent(message)
        } catch (error) {
          malformed = error as Error
        }
      },
      onId: (value) => {
        if (value !== '') lastEventId = value
      },
      onRetry: (value) => {
        if (value > 0) retryDelay = value
      },
      onComment: (comment) => {
        const announced = KEEP_ALIVE_ANNOUNCEMENT.exec(comment)
        const value = announced ? Number(announced[1]) : 0
        if (value > 0) {
          serverKeepAliveMs = value
          heard()
        }
      },
    })
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        heard()
        parser.feed(value)
        if (malformed) throw malformed
        if (ended) break
      }
    } finally {
      // Frees the connection at once (end, malformed event, abort) instead of waiting for the server.
      await reader.cancel().catch(() => {})
    }
    return ended ? 'ended' : 'dropped'
  }

  /** Applies one event; `true` for `end`. */
  function handleEvent(message: EventSourceMessage): boolean {
    const parse = <T>(schema: { parse: (value: unknown) => T }): T => {
      try {
        return schema.parse(JSON.parse(message.data))
      } catch (cause) {
        throw new RunSubscriptionError(`The stream sent a malformed ${message.event ?? 'message'} event`, { cause })
      }
    }
    switch (message.event) {
      case LIVE_EVENTS.snapshot:
        publish(parse(RunSnapshotEvent))
        return false
      case LIVE_EVENTS.update:
        publish(mergeRunUpdate(status, parse(RunUpdateEvent)))
        return false
      case LIVE_EVENTS.end: {
        const { run } = parse(RunEndEvent)
        if (status && JSON.stringify(status.run) !== JSON.stringify(run)) publish({ run, stages: status.stages })
        return true
      }
      default:
        // Unknown event names are for later protocol versions.
        return false
    }
  }

  async function hasNoStreamRoute(response: Response): Promise<boolean> {
    if (response.status === 405) {
      await response.body?.cancel()
      return true
    }
    if (response.status !== 404) return false
    // The handlers answer an unknown run with a problem (`run_not_found`); a 404 that is not a
    // problem comes from the app's router (a Next.js app with one file per route and none for
    // `events`), so it too means "no stream route here".
    const problem = await readProblem(response.clone())
    if (problem === undefined || problem.code === 'route_not_found') {
      await response.body?.cancel()
      return true
    }
    return false
  }

  /**
   * One `GET /status` under one deadline for the whole exchange (a trickled body must not
   * outlast it, so bytes do not push it back); `true` once the run is finished.
   */
  let etag: string | undefined
  async function pollOnce(): Promise<boolean> {
    const attempt = new AbortController()
    const timeoutMs = SILENT_KEEP_ALIVES * serverKeepAliveMs
    let timedOut: RunPollTimeoutError | undefined
    const deadline = setTimeout(() => {
      timedOut = new RunPollTimeoutError(timeoutMs)
      attempt.abort(timedOut)
    }, timeoutMs)
    const forward = () => attempt.abort(signal.reason)
    signal.addEventListener('abort', forward, { once: true })
    try {
      return await pollExchange(attempt.signal)
    } catch (error) {
      throw timedOut ?? error
    } finally {
      clearTimeout(deadline)
      signal.removeEventListener('abort', forward)
    }
  }

  async function pollExchange(attemptSignal: AbortSignal): Promise<boolean> {
    const headers = requestHeaders('application/json')
    if (etag !== undefined) headers.set('If-None-Match', etag)
    const response = await doFetch(statusUrl, { headers, signal: attemptSignal, cache: 'no-store' })
    if (response.status === 304) {
      await response.body?.cancel()
    } else if (response.ok) {
      let next: RunStatusResponse
      try {
        next = RunStatusResponse.parse(await response.json())
      } catch (cause) {
        throw new RunSubscriptionError('GET /status answered a body that is not a status document', { status: response.status, cause })
      }
      etag = response.headers.get('etag') ?? undefined
      if (status === undefined || JSON.stringify(status) !== JSON.stringify(next)) publish(next)
    } else {
      throw await httpError(response, 'GET /status')
    }
    failures = 0
    setState('live')
    return status !== undefined && isFinalStatus(status.run.status)
  }

  async function run(): Promise<void> {
    let mode: RunTransport = 'stream'
    while (!signal.aborted) {
      try {
        if (mode === 'stream') {
          const outcome = await streamOnce()
          if (outcome === 'ended') return setState('finished')
          if (outcome === 'no-stream') {
            mode = 'polling'
            transport = 'polling'
            continue
          }
          // A clean drop: resume after the server's retry delay, with Last-Event-ID.
          failures += 1
          setState('reconnecting')
          await sleep(backoff(), signal)
        } else {
          if (await pollOnce()) return setState('finished')
          await sleep(pollInterval, signal)
        }
      } catch (error) {
        if (signal.aborted) return
        if (isRunSubscriptionError(error) && (error.status === undefined || isFatalStatus(error.status))) {
          return setState('error', error)
        }
        failures += 1
        setState('reconnecting', error as Error)
        await sleep(backoff(retryAfterMs(error)), signal)
      }
    }
  }

  const done = run()
    .catch((error: unknown) => setState('error', error as Error))
    .finally(() => options.signal?.removeEventListener('abort', stop))

  return {
    get state() {
      return state
    },
    get status() {
      return status
    },
    get transport() {
      return transport
    },
    get error() {
      return lastError
    },
    done,
    close: stop,
  }
}

function positive(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!isPositive(value)) throw new TypeError(`Expected a positive number of milliseconds, got ${String(value)}`)
  return value
}

async function readProblem(response: Response): Promise<Problem | undefined> {
  try {
    const parsed = Problem.safeParse(await response.json())
    return parsed.success ? parsed.data : undefined
  } catch {
    return undefined
  }
}

async function httpError(response: Response, what: string): Promise<RunSubscriptionError> {
  const problem = await readProblem(response)
  const error = new RunSubscriptionError(
    `${what} answered ${response.status}${problem ? ` ${problem.code}${problem.detail ? `: ${problem.detail}` : ''}` : ''}`,
    { status: response.status, problem },
  )
  const retryAfter = parseRetryAfter(response.headers.get(HEADERS.retryAfter))
  if (retryAfter !== undefined && retryAfter > 0) retryAfterByError.set(error, retryAfter)
  return error
}

const retryAfterByError = new WeakMap<Error, number>()

function retryAfterMs(error: unknown): number {
  return error instanceof Error ? (retryAfterByError.get(error) ?? 0) : 0
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}
