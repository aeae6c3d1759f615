/**
 * The one place the client talks HTTP: a per-attempt timeout, retries on ky, the secret and
 * idempotency headers, and the mapping of failures to the client's typed errors.
 * Internal: not exported from the package.
 *
 * An attempt is the whole exchange: it ends when the answer's last byte has arrived, and its
 * deadline (`timeout`) covers connecting, the headers and the body alike. A server or proxy that
 * sends the headers and then stalls, or trickles the body, ends the attempt as a timeout of
 * ours, retried like any other. `#attempt` is the one place that rule lives: ky's own `timeout`
 * stops at the headers and its body timeout is never retried, so ky runs with `timeout: false`
 * and gets answers already read to the end.
 *
 * The first attempt of a request is one plain `fetch`; only when it fails in a way worth
 * retrying (network error, timeout, 408, 429, 5xx) does ky take over for the retries, after the
 * first backoff wait. Almost every update succeeds at once, and ky's per-call machinery (a
 * Request built and cloned per call, options merged per call) costs as much as a loopback
 * round trip, so the happy path skips it; see bench/client-overhead.bench.ts.
 */
import ky, {
  HTTPError,
  NetworkError,
  type Options as KyOptions,
  type NormalizedOptions,
  TimeoutError,
  isHTTPError,
  isNetworkError,
  isTimeoutError,
} from 'ky'
import { HEADERS } from '../contract/headers.js'
import { Problem } from '../contract/problem.js'
import { isErrorNamed } from '../internal/is-error-named.js'
import { forwardAbort } from './forward-abort.js'
import { networkCause } from './network-cause.js'
import { PipelineStatusError, StatusHttpError, StatusNetworkError, StatusTimeoutError } from './errors.js'
import type { Logger } from './logger.js'

export { networkCause } from './network-cause.js'
import {
  type ResolvedRetryPolicy,
  isRetriableStatus,
  parseRetryAfter,
  retryDelay,
  toKyRetryOptions,
} from './retry-policy.js'

/**
 * Headers that sign one attempt (Standard Webhooks), computed per attempt. `unique` is the same
 * for every attempt of one request (its idempotency key, else a random id per request); `body`
 * is `''` for a request without one.
 */
export type AttemptSigner = (message: { method: string; url: string; body: string; unique: string }) => Promise<Record<string, string>>

/** Everything the transport needs, resolved by the client's constructor. */
export interface TransportConfig {
  /** Sent as `X-Webhook-Secret`; absent when the client only signs. */
  secret: string | undefined
  /** Per attempt, in milliseconds. */
  timeout: number
  retry: ResolvedRetryPolicy
  userAgent: string
  fetch: ((input: string, init: RequestInit) => Promise<Response>) | undefined
  signer: AttemptSigner | undefined
  /** Gets a warning per retry (cause and wait) and, at debug, a line per attempt. */
  logger: Logger
}

/** One logical request; its retries share `idempotencyKey`. */
export interface OutgoingRequest {
  method: 'GET' | 'POST'
  url: string
  /** The JSON body, already serialised, sent byte for byte on every attempt. */
  body?: string | undefined
  idempotencyKey?: string | undefined
  /**
   * What the request is, for the logs, e.g. `Run run_1: stage 2 COMPLETED`.
   * @default method and URL
   */
  what?: string | undefined
}

/** An answer read to its last byte within its attempt's deadline; `response`'s body is consumed. */
interface Answer {
  response: Response
  text: string
}

/** A 2xx answer. */
export interface TransportResponse {
  status: number
  text: string
  attempts: number
}

// ky forwards options it does not know to the `fetch` it calls: this one carries what each
// attempt needs beside ky's Request.
const ATTEMPT = 'pipelineStatusAttempt'

interface Attempt {
  body: string | undefined
  unique: string
  headers: Record<string, string>
  count: number
  request: OutgoingRequest
}

/** The first attempt's failure, before it is retried or reported. */
type FirstFailure =
  | { kind: 'http'; response: Response; data: unknown }
  | { kind: 'timeout' }
  | { kind: 'network'; cause: unknown }
  | { kind: 'other'; cause: unknown }

const TIMED_OUT = Symbol('timed out')

/** Sends requests; throws only {@link PipelineStatusError}s. */
export class Transport {
  readonly #config: TransportConfig
  readonly #kyFetch: (input: Request, init: { [ATTEMPT]: Attempt }) => Promise<Response>
  /** One controller per request in flight, so `abortInFlight` can stop them. */
  readonly #inflight = new Set<AbortController>()

  constructor(config: TransportConfig) {
    this.#config = config
    // The body and the headers travel beside ky's Request, not inside it: ky clones its Request
    // for every retry, which would tee a body stream, and errors carry that Request, which
    // must not hold the secret. Every attempt sends the same string and headers.
    this.#kyFetch = async (request, init) => {
      const attempt = init[ATTEMPT]
      attempt.count++
      // The attempt's own controller: its deadline aborts it with TIMED_OUT, ky's signal (the
      // caller's abort) with ky's reason.
      const controller = new AbortController()
      const unlink = forwardAbort(request.signal, controller)
      try {
        const { response, text } = await this.#attempt(attempt.request, attempt.headers, controller, attempt.count + 1, attempt.unique)
        // ky reads the body again: hand it the text already read (no body for 204, 205, 304).
        const body = text === '' && NULL_BODY_STATUSES.has(response.status) ? null : text
        return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers })
      } catch (error) {
        // ky retries its own TimeoutError as a timeout.
        if (controller.signal.reason === TIMED_OUT) throw new TimeoutError(request)
        throw error
      } finally {
        unlink()
      }
    }
  }

  /** Aborts every request in flight, and its retry waits; later requests are not affected. */
  abortInFlight(reason: unknown): void {
    for (const controller of this.#inflight) controller.abort(reason)
  }

  /**
   * Sends one logical request: with `retry`, network errors, timeouts, 408, 429 and 5xx are
   * retried per the policy, every attempt carrying the same idempotency key and body.
   */
  async send(
    request: OutgoingRequest,
    options: { retry: boolean; signal?: AbortSignal | undefined },
  ): Promise<TransportResponse> {
    const headers: Record<string, string> = { 'User-Agent': this.#config.userAgent, Accept: 'application/json' }
    if (this.#config.secret !== undefined) headers[HEADERS.webhookSecret] = this.#config.secret
    // What the signature's webhook-id names this request by, equal across its attempts.
    const unique = request.idempotencyKey ?? crypto.randomUUID()
    if (request.body !== undefined) headers['Content-Type'] = 'application/json'
    if (request.idempotencyKey !== undefined) headers[HEADERS.idempotencyKey] = request.idempotencyKey
    // One controller per request, never one long-lived signal (every request would hang a
    // listener on it): `abortInFlight` and the caller's signal abort it, and so does the first
    // attempt's timeout, with its own reason. Signals are not free (undici registers each
    // request's with a FinalizationRegistry), so the plain path makes only this one.
    const controller = new AbortController()
    this.#inflight.add(controller)
    let unlink = forwardAbort(options.signal, controller)
    let attempts = 1
    try {
      const first = await this.#firstAttempt(request, headers, controller, unique)
      if (!('kind' in first)) return { status: first.response.status, text: first.text, attempts }
      const retriable =
        first.kind === 'timeout' || first.kind === 'network' || (first.kind === 'http' && isRetriableStatus(first.response.status))
      if (!options.retry || this.#config.retry.limit === 0 || !retriable) throw this.#firstFailureError(first, request)

      // The retries' own controller: the first attempt's has fired when it timed out.
      const retries = new AbortController()
      this.#inflight.add(retries)
      unlink()
      unlink = forwardAbort(options.signal, retries)
      const signal = retries.signal
      const retryAfter = first.kind === 'http' ? parseRetryAfter(first.response.headers.get(HEADERS.retryAfter)) : undefined
      const wait = retryDelay(this.#config.retry, 1, retryAfter)
      this.#logRetry(request, firstFailureCause(first, this.#config.timeout), 1, wait)
      try {
        await abortableDelay(wait, signal)
        const attempt: Attempt = { body: request.body, unique, headers, count: 0, request }
        const init: KyOptions & { [ATTEMPT]: Attempt } = {
          method: request.method,
          // The deadline is #attempt's, over the whole exchange; ky's would stop at the headers.
          timeout: false,
          retry: toKyRetryOptions(this.#config.retry, (error, retry) => this.#planRetry(request, error, retry)),
          fetch: this.#kyFetch as NonNullable<KyOptions['fetch']>,
          signal,
          [ATTEMPT]: attempt,
        }
        try {
          const response = await ky(request.url, init)
          return { status: response.status, text: await response.text(), attempts: attempts + attempt.count }
        } finally {
          attempts += attempt.count
        }
      } finally {
        this.#inflight.delete(retries)
      }
    } catch (error) {
      throw this.#toStatusError(error, request, attempts)
    } finally {
      unlink()
      this.#inflight.delete(controller)
    }
  }

  /**
   * The first attempt, on the request's own controller: its deadline aborts it with
   * `TIMED_OUT`, so a timeout is told apart from an abort of the whole request.
   */
  async #firstAttempt(
    request: OutgoingRequest,
    headers: Record<string, string>,
    controller: AbortController,
    unique: string,
  ): Promise<Answer | FirstFailure> {
    const { signal } = controller
    if (signal.aborted) return { kind: 'other', cause: signal.reason }
    try {
      const answer = await this.#attempt(request, headers, controller, 1, unique)
      if (answer.response.ok) return answer
      return { kind: 'http', response: answer.response, data: parseErrorData(answer.response, answer.text) }
    } catch (error) {
      if (signal.reason === TIMED_OUT) return { kind: 'timeout' }
      if (signal.aborted) return { kind: 'other', cause: signal.reason }
      // fetch rejects with a TypeError when no response arrived (refused, reset, DNS) or the
      // connection broke during the body (undici's `terminated`).
      if (error instanceof TypeError) return { kind: 'network', cause: error }
      return { kind: 'other', cause: error }
    }
  }

  /** Whether and how long to wait before ky's next attempt; logs the retry. */
  #planRetry(request: OutgoingRequest, error: Error, retry: number): number | undefined {
    let retryAfter: number | undefined
    if (isHTTPError(error)) {
      if (!isRetriableStatus(error.response.status)) return undefined
      retryAfter = parseRetryAfter(error.response.headers.get(HEADERS.retryAfter))
    } else if (!isNetworkError(error) && !isTimeoutError(error)) {
      return undefined
    }
    const wait = retryDelay(this.#config.retry, retry, retryAfter)
    this.#logRetry(request, kyErrorCause(error, this.#config.timeout), retry, wait)
    return wait
  }

  /** One warning per retry: what failed, why, which retry this is and how long it waits. */
  #logRetry(request: OutgoingRequest, cause: FailureCause, retry: number, wait: number): void {
    const what = request.what ?? `${request.method} ${request.url}`
    this.#config.logger.warn(
      `${what} failed (${cause.text}); retry ${retry} of ${this.#config.retry.limit} in ${Math.round(wait)} ms`,
      {
        url: request.url,
        idempotencyKey: request.idempotencyKey,
        retry,
        delayMs: Math.round(wait),
        cause: cause.text,
        ...(cause.status === undefined ? {} : { status: cause.status }),
        ...(cause.code === undefined ? {} : { code: cause.code }),
      },
    )
  }

  /**
   * One attempt, the whole exchange: the request, the headers and the body read to its end,
   * all within one deadline of `timeout` ms, which aborts `controller` with `TIMED_OUT` (a
   * stalled or trickled body included). The wait is bounded even with a custom `fetch` that
   * ignores the signal. At debug level, one line with its outcome and duration.
   */
  #attempt(
    request: OutgoingRequest,
    headers: Record<string, string>,
    controller: AbortController,
    number: number,
    unique: string,
  ): Promise<Answer> {
    const debug = this.#config.logger.debug !== undefined
    const started = debug ? performance.now() : 0
    const timer = setTimeout(() => controller.abort(TIMED_OUT), this.#config.timeout)
    const { signal } = controller
    const exchange = this.#fetch(request.url, request.method, headers, request.body, signal, unique)
      .then(async (response) => ({ response, text: await response.text() }))
    const answer = untilAborted(exchange, signal).finally(() => clearTimeout(timer))
    // No extra async frame when nobody listens: this is every update's path.
    return debug ? this.#logAttempt(answer, request, number, started, signal) : answer
  }

  async #logAttempt(answer: Promise<Answer>, request: OutgoingRequest, number: number, started: number, signal: AbortSignal): Promise<Answer> {
    const logger = this.#config.logger as Required<Logger>
    const line = `${request.method} ${request.url}`
    const details = { idempotencyKey: request.idempotencyKey, attempt: number, bytes: request.body?.length ?? 0 }
    try {
      const done = await answer
      logger.debug(`${line} → ${done.response.status} in ${Math.round(performance.now() - started)} ms (attempt ${number})`, {
        ...details,
        status: done.response.status,
      })
      return done
    } catch (error) {
      const elapsed = Math.round(performance.now() - started)
      const cause = signal.reason === TIMED_OUT ? `timed out after ${this.#config.timeout} ms` : networkCause(error)
      logger.debug(`${line} → no response (${cause}) after ${elapsed} ms (attempt ${number})`, { ...details, durationMs: elapsed })
      throw error
    }
  }

  async #fetch(
    url: string,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal,
    unique: string,
  ): Promise<Response> {
    const signer = this.#config.signer
    // Every request is signed, reads too: a body-less one signs the empty body.
    const sent = signer ? { ...headers, ...(await signer({ method, url, body: body ?? '', unique })) } : headers
    const send = this.#config.fetch ?? globalThis.fetch
    return send(url, { method, headers: sent, body: body ?? null, signal })
  }

  /** The first attempt's failure as ky would have reported it, so `cause` is always ky's error. */
  #firstFailureError(failure: FirstFailure, request: OutgoingRequest): unknown {
    const shown = shownRequest(request)
    switch (failure.kind) {
      case 'http': {
        const error = new HTTPError(failure.response, shown, { method: request.method } as NormalizedOptions)
        error.data = failure.data
        return error
      }
      case 'timeout':
        return new TimeoutError(shown)
      case 'network':
        return new NetworkError(shown, { cause: failure.cause as Error })
      case 'other':
        return failure.cause
    }
  }

  #toStatusError(error: unknown, request: OutgoingRequest, attempts: number): PipelineStatusError {
    if (error instanceof PipelineStatusError) return error
    const shown = shownRequest(request)
    if (isHTTPError(error)) {
      return new StatusHttpError({ request: shown, response: error.response, body: error.data, attempts, cause: error })
    }
    if (isTimeoutError(error)) {
      return new StatusTimeoutError({ request: shown, timeout: this.#config.timeout, attempts, cause: error })
    }
    if (isNetworkError(error)) return new StatusNetworkError({ request: shown, attempts, cause: error })
    const aborted = isErrorNamed(error, 'AbortError')
    return new PipelineStatusError(
      `${request.method} ${request.url} ${aborted ? 'was aborted' : `failed: ${error instanceof Error ? error.message : String(error)}`}`,
      { cause: error },
    )
  }
}

/** Why an attempt failed, for the logs. */
interface FailureCause {
  /** `ECONNREFUSED`, `HTTP 503 database_unavailable`, `timed out after 30000 ms`. */
  text: string
  status?: number | undefined
  code?: string | undefined
}

function httpCause(status: number, data: unknown): FailureCause {
  const problem = Problem.safeParse(data)
  const code = problem.success ? problem.data.code : undefined
  return { text: `HTTP ${status}${code ? ` ${code}` : ''}`, status, code }
}

function firstFailureCause(failure: FirstFailure, timeout: number): FailureCause {
  switch (failure.kind) {
    case 'http':
      return httpCause(failure.response.status, failure.data)
    case 'timeout':
      return { text: `timed out after ${timeout} ms` }
    default:
      return { text: networkCause(failure.cause) }
  }
}

function kyErrorCause(error: Error, timeout: number): FailureCause {
  if (isHTTPError(error)) return httpCause(error.response.status, error.data)
  if (isTimeoutError(error)) return { text: `timed out after ${timeout} ms` }
  return { text: networkCause(error) }
}

/** What an error shows of its request: method, URL and idempotency key, never the secret. */
function shownRequest(request: OutgoingRequest): Request {
  return new Request(request.url, {
    method: request.method,
    headers: request.idempotencyKey === undefined ? {} : { [HEADERS.idempotencyKey]: request.idempotencyKey },
  })
}

/** Statuses whose response has no body. */
const NULL_BODY_STATUSES: ReadonlySet<number> = new Set([101, 204, 205, 304])

/** An error body as ky reads it: parsed JSON for a JSON media type, else text. */
function parseErrorData(response: Response, text: string): unknown {
  if (text === '') return undefined
  const type = (response.headers.get('content-type') ?? '').split(';', 1)[0]?.trim().toLowerCase() ?? ''
  if (!/\/(?:.*[.+-])?json$/.test(type)) return text
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

/**
 * `work`, or a rejection with the signal's reason as soon as `signal` aborts: an attempt's
 * deadline holds even when the `fetch` in use ignores its signal while reading a body.
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined)
    return Promise.reject(signal.reason as Error)
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      // The exchange settles later (rejected by the abort); nobody waits for it any more.
      work.catch(() => undefined)
      reject(signal.reason as Error)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error as Error)
      },
    )
  })
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
