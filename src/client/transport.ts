/**
 * The one place the client talks HTTP: one attempt path, one retry loop (whose rule is
 * `shouldRetry`, in retry-policy.ts), the secret and idempotency headers, and the mapping of
 * failures to the client's typed errors.
 * Internal: not exported from the package.
 *
 * Every attempt, the first and each retry alike, is one call of ky with ky's own retry and
 * timeout off: the loop and the deadline are ours. An attempt is the whole exchange: it ends
 * when the answer's last byte has arrived, and its deadline (`timeoutMs`) covers connecting, the
 * headers and the body alike, so a server or proxy that sends the headers and then stalls, or
 * trickles the body, ends the attempt as a timeout, retried like any other. ky's errors are its
 * own (`HTTPError` with the problem read, `NetworkError`), carried as the typed errors' `cause`.
 *
 * What ky costs per call (bench/client-overhead.bench.ts): it merges the options, builds a
 * `Request`, clones it when it may retry, and joins a given signal with its own through
 * `AbortSignal.any`. So the call passes ky only the method (ky's `Request` is then body-less and
 * cheap, never cloned with `retry: 0`, its signal its own), and the attempt's `fetch` sends the
 * body string, the headers and the attempt's signal itself, byte for byte the same on every
 * attempt; errors thus never carry the secret.
 */
import ky, { type Options as KyOptions, isHTTPError, isNetworkError } from 'ky'
import { HEADERS } from '../contract/headers.js'
import { isErrorNamed } from '../internal/is-error-named.js'
import { addTraceHeaders } from '../internal/trace-propagation.js'
import { forwardAbort } from './forward-abort.js'
import { networkCause } from './network-cause.js'
import { PipelineStatusError, StatusHttpError, StatusNetworkError, StatusTimeoutError, isStatusHttpError } from './errors.js'
import type { Logger } from './logger.js'
import { type ResolvedRetryPolicy, describeRetry, parseRetryAfter, retryDelay, shouldRetry } from './retry-policy.js'

export { networkCause } from './network-cause.js'

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
  /** The deadline of one attempt, in milliseconds. */
  timeoutMs: number
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
   * @default `${method} ${url}`
   */
  what?: string | undefined
}

/** A 2xx answer. */
export interface TransportResponse {
  status: number
  text: string
  attempts: number
}

/**
 * The reason an attempt's deadline aborts it with: the platform's own timeout error (what
 * `AbortSignal.timeout` gives), one per attempt, told apart from the caller's abort by identity.
 */
function timedOut(timeoutMs: number): DOMException {
  return new DOMException(`The attempt took longer than its deadline of ${timeoutMs} ms (headers and body)`, 'TimeoutError')
}

/** The attempts' signals their deadline aborted, so a caller's own timeout is not taken for one. */
const deadlines = new WeakSet<AbortSignal>()

/** Sends requests; throws only {@link PipelineStatusError}s. */
export class Transport {
  readonly #config: TransportConfig
  /** ky's options shared by every call: its retry and timeout off, the loop and deadline are ours. */
  readonly #kyDefaults: KyOptions
  /** One controller per request in flight, so `abortInFlight` can stop them. */
  readonly #inflight = new Set<AbortController>()

  constructor(config: TransportConfig) {
    this.#config = config
    this.#kyDefaults = { retry: 0, timeout: false }
  }

  /** Aborts every request in flight, and its retry waits; later requests are not affected. */
  abortInFlight(reason: unknown): void {
    for (const controller of this.#inflight) controller.abort(reason)
  }

  /**
   * Sends one logical request: with `retry`, what {@link shouldRetry} allows is sent again per
   * the policy, every attempt carrying the same idempotency key and body. `onNoAnswer` is told
   * the cause of each attempt that went out and got no definite answer ({@link noDefiniteAnswer}):
   * the server may have received and stored it, whether the request then succeeds or fails.
   */
  async send(
    request: OutgoingRequest,
    options: { retry: boolean; signal?: AbortSignal | undefined; onNoAnswer?: ((cause: string) => void) | undefined },
  ): Promise<TransportResponse> {
    const headers: Record<string, string> = { 'User-Agent': this.#config.userAgent, Accept: 'application/json' }
    if (this.#config.secret !== undefined) headers[HEADERS.webhookSecret] = this.#config.secret
    if (request.body !== undefined) headers['Content-Type'] = 'application/json'
    if (request.idempotencyKey !== undefined) headers[HEADERS.idempotencyKey] = request.idempotencyKey
    // The caller's trace context, read here, before the first await, while it is still active
    // (`pipeline-status-sdk/otel`); the same on every attempt of the request.
    addTraceHeaders(headers)
    // What the signature's webhook-id names this request by, equal across its attempts.
    const unique = request.idempotencyKey ?? crypto.randomUUID()
    const limit = options.retry ? this.#config.retry.limit : 0
    // One controller per attempt, never one long-lived signal (every request would hang a
    // listener on it): its deadline, `abortInFlight` and the caller's signal abort it.
    for (let attempt = 1; ; attempt++) {
      const controller = new AbortController()
      this.#inflight.add(controller)
      const unlink = forwardAbort(options.signal, controller)
      let failure: PipelineStatusError
      let sent = false
      try {
        if (controller.signal.aborted) throw controller.signal.reason
        sent = true
        const { status, text } = await this.#attempt(request, headers, unique, controller, attempt)
        return { status, text, attempts: attempt }
      } catch (error) {
        failure = this.#toStatusError(error, controller.signal, request, attempt)
        const unanswered = sent && options.onNoAnswer ? noDefiniteAnswer(failure, this.#config.timeoutMs) : undefined
        if (unanswered !== undefined) options.onNoAnswer?.(unanswered)
      } finally {
        unlink()
        this.#inflight.delete(controller)
      }
      if (attempt > limit || !shouldRetry(failure)) throw failure
      const retryAfter = isStatusHttpError(failure) ? parseRetryAfter(failure.response.headers.get(HEADERS.retryAfter)) : undefined
      const wait = retryDelay(this.#config.retry, attempt, retryAfter)
      this.#logRetry(request, failure, attempt, wait)
      await this.#wait(wait, options.signal, request)
    }
  }

  /**
   * What a request the caller reads itself (the run-end watch's event stream) needs: the
   * client's `fetch`, and the headers of every request of the client (`User-Agent`, the secret,
   * the signature when the client signs) with `accept`. No deadline, no retry: the caller's.
   */
  async openRequest(url: string, accept: string): Promise<{ headers: Record<string, string>; fetch: (input: string, init: RequestInit) => Promise<Response> }> {
    const headers: Record<string, string> = { 'User-Agent': this.#config.userAgent, Accept: accept }
    if (this.#config.secret !== undefined) headers[HEADERS.webhookSecret] = this.#config.secret
    addTraceHeaders(headers)
    const signer = this.#config.signer
    const signed = signer ? { ...headers, ...(await signer({ method: 'GET', url, body: '', unique: crypto.randomUUID() })) } : headers
    return { headers: signed, fetch: this.#config.fetch ?? globalThis.fetch.bind(globalThis) }
  }

  /** A backoff wait that `abortInFlight` and the caller's signal end early. */
  async #wait(ms: number, signal: AbortSignal | undefined, request: OutgoingRequest): Promise<void> {
    const controller = new AbortController()
    this.#inflight.add(controller)
    const unlink = forwardAbort(signal, controller)
    try {
      await abortableDelay(ms, controller.signal)
    } catch (error) {
      throw aborted(request, error)
    } finally {
      unlink()
      this.#inflight.delete(controller)
    }
  }

  /**
   * One attempt, the whole exchange through ky: the request, the headers and the body read to
   * its end, all within one deadline of `timeoutMs`, which aborts `controller` with
   * its timeout error (a stalled or trickled body included). The wait is bounded even with a custom
   * `fetch` that ignores the signal. Resolves the 2xx answer's text; throws ky's errors.
   */
  async #attempt(request: OutgoingRequest, headers: Record<string, string>, unique: string, controller: AbortController, attempt: number): Promise<{ status: number; text: string }> {
    const debug = this.#config.logger.debug !== undefined
    const started = debug ? performance.now() : 0
    const { signal } = controller
    // The error is made only when the deadline passes: it is rare, and an error costs a stack.
    const timer = setTimeout(() => {
      deadlines.add(signal)
      controller.abort(timedOut(this.#config.timeoutMs))
    }, this.#config.timeoutMs)
    // The body, the headers and the signal travel in this closure, not in ky's Request: that
    // Request stays body-less (cheap to build), never holds the secret that errors would show,
    // and ky makes no `AbortSignal.any` per call (the costliest part of a ky call given a
    // signal); the attempt's own signal aborts the fetch, and `untilAborted` the wait.
    const fetch = (): Promise<Response> => this.#fetch(request, headers, unique, signal)
    const exchange = ky(request.url, { ...this.#kyDefaults, method: request.method, fetch }).then(async (response) => ({
      status: response.status,
      text: await response.text(),
    }))
    try {
      const answer = await untilAborted(exchange, signal)
      if (debug) this.#logAttempt(request, attempt, started, { status: answer.status })
      return answer
    } catch (error) {
      if (debug) {
        const cause = deadlines.has(signal) ? `timed out after ${this.#config.timeoutMs} ms` : networkCause(error)
        this.#logAttempt(request, attempt, started, isHTTPError(error) ? { status: error.response.status } : { cause })
      }
      throw error
    } finally {
      clearTimeout(timer)
    }
  }

  /** At debug level, one line per attempt: its status, or why no response came, and its duration. */
  #logAttempt(request: OutgoingRequest, attempt: number, started: number, outcome: { status: number } | { cause: string }): void {
    const elapsed = Math.round(performance.now() - started)
    const line = `${request.method} ${request.url}`
    const details = { idempotencyKey: request.idempotencyKey, attempt, bytes: request.body?.length ?? 0 }
    if ('status' in outcome) {
      this.#config.logger.debug?.(`${line} → ${outcome.status} in ${elapsed} ms (attempt ${attempt})`, { ...details, status: outcome.status })
    } else {
      this.#config.logger.debug?.(`${line} → no response (${outcome.cause}) after ${elapsed} ms (attempt ${attempt})`, { ...details, durationMs: elapsed })
    }
  }

  async #fetch(request: OutgoingRequest, headers: Record<string, string>, unique: string, signal: AbortSignal): Promise<Response> {
    const { method, url, body } = request
    const signer = this.#config.signer
    // Every request is signed, reads too: a body-less one signs the empty body.
    const sent = signer ? { ...headers, ...(await signer({ method, url, body: body ?? '', unique })) } : headers
    const send = this.#config.fetch ?? globalThis.fetch
    return send(url, { method, headers: sent, body: body ?? null, signal })
  }

  /** One warning per retry: what failed, why, which attempt and retry this is (`describeRetry`) and how long it waits. */
  #logRetry(request: OutgoingRequest, failure: PipelineStatusError, retry: number, wait: number): void {
    const what = request.what ?? `${request.method} ${request.url}`
    const cause = failureCause(failure, this.#config.timeoutMs)
    const { limit } = this.#config.retry
    this.#config.logger.warn(`${what} failed (${cause.text}); ${describeRetry(retry, limit)} in ${Math.round(wait)} ms`, {
      url: request.url,
      idempotencyKey: request.idempotencyKey,
      retry,
      attempt: retry + 1,
      attempts: limit + 1,
      delayMs: Math.round(wait),
      cause: cause.text,
      ...(cause.status === undefined ? {} : { status: cause.status }),
      ...(cause.code === undefined ? {} : { code: cause.code }),
    })
  }

  /** A failed attempt as the client's typed error, `attempts` counting this one. */
  #toStatusError(error: unknown, signal: AbortSignal, request: OutgoingRequest, attempts: number): PipelineStatusError {
    if (error instanceof PipelineStatusError) return error
    const shown = shownRequest(request)
    if (deadlines.has(signal)) return new StatusTimeoutError({ request: shown, timeoutMs: this.#config.timeoutMs, attempts, cause: signal.reason })
    if (signal.aborted) return aborted(request, signal.reason)
    if (isHTTPError(error)) return new StatusHttpError({ request: shown, response: error.response, body: error.data, attempts, cause: error })
    if (isNetworkError(error)) return new StatusNetworkError({ request: shown, attempts, cause: error })
    // ky wraps the errors it knows as network errors; a TypeError from a custom fetch (or the
    // connection broken during the body, undici's `terminated`) is one too.
    if (error instanceof TypeError) return new StatusNetworkError({ request: shown, attempts, cause: error })
    return new PipelineStatusError(`${request.method} ${request.url} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
}

/** The request aborted by the caller or by `close`, before an answer. */
function aborted(request: OutgoingRequest, reason: unknown): PipelineStatusError {
  if (reason instanceof PipelineStatusError) return reason
  const detail = isErrorNamed(reason, 'AbortError') || reason === undefined ? '' : `: ${reason instanceof Error ? reason.message : String(reason)}`
  return new PipelineStatusError(`${request.method} ${request.url} was aborted${detail}`, { cause: reason })
}

/**
 * System error codes of a request that never reached the server: the connection was refused, or
 * the host name did not resolve. Any other failure of an attempt that went out may have been
 * received (the answer was lost, not the request).
 */
const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'])

/**
 * The one rule of an attempt that went out and got no definite answer, so that the server may
 * have received (and stored) it: a timeout, a reset or closed connection, an abort in flight, or a
 * gateway's 502 or 504 (the server behind it may have taken the request). Returns its cause as
 * the retry warnings say it (`timed out after 30000 ms`, `ECONNRESET`, `HTTP 502`); `undefined`
 * for a definite answer (any other HTTP status) and for a request that never left (connection
 * refused, unknown host). The same rule as the Python client's `_unanswered_cause`.
 */
export function noDefiniteAnswer(error: PipelineStatusError, timeoutMs: number): string | undefined {
  if (isStatusHttpError(error)) return error.status === 502 || error.status === 504 ? failureCause(error, timeoutMs).text : undefined
  if (error.name === 'StatusNetworkError' && NEVER_SENT.has(networkCause(error.cause))) return undefined
  return failureCause(error, timeoutMs).text
}

/** Why an attempt failed, for the retry warnings. */
function failureCause(error: PipelineStatusError, timeoutMs: number): { text: string; status?: number | undefined; code?: string | undefined } {
  if (isStatusHttpError(error)) {
    const code = error.problem?.code
    return { text: `HTTP ${error.status}${code ? ` ${code}` : ''}`, status: error.status, code }
  }
  if (error.name === 'StatusTimeoutError') return { text: `timed out after ${timeoutMs} ms` }
  return { text: networkCause(error.cause) }
}

/** What an error shows of its request: method, URL and idempotency key, never the secret. */
function shownRequest(request: OutgoingRequest): Request {
  return new Request(request.url, {
    method: request.method,
    headers: request.idempotencyKey === undefined ? {} : { [HEADERS.idempotencyKey]: request.idempotencyKey },
  })
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
