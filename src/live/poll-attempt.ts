/**
 * One poll of the fallback (`GET {url}/{runId}/status`) for a server without a stream route.
 * Every failure is thrown; what to do about it is decided by the subscription, in one place.
 */
import { RunStatusResponse } from '../contract/records.js'
import { AttemptDeadline } from '../internal/attempt-deadline.js'
import { refusal, RunPollTimeoutError, RunSubscriptionError } from './subscription-errors.js'

/** What one poll needs from its subscription. */
export interface PollAttempt {
  /** The status route's absolute URL. */
  readonly url: string
  readonly fetch: typeof globalThis.fetch
  /** The subscription's signal: aborting it aborts the poll. */
  readonly signal: AbortSignal
  /** The request's headers (`Accept`, `Authorization`, `If-None-Match`). */
  readonly headers: Headers
  /** The fetch `credentials` mode; `undefined` for fetch's default. */
  readonly credentials?: RequestCredentials | undefined
  /** The deadline of the whole exchange, headers and body, in milliseconds. */
  readonly timeoutMs: number
}

/** What a poll read: the status, or `not-modified` for a 304, and the answer's `ETag`. */
export type PollResult = { readonly status: RunStatusResponse; readonly etag: string | undefined } | 'not-modified'

/**
 * One `GET /status` under one deadline for the whole exchange: a trickled body must not outlast
 * it, so bytes do not push it back. Past it the request is aborted with a {@link RunPollTimeoutError}.
 */
export async function pollOnce(attempt: PollAttempt): Promise<PollResult> {
  const deadline = new AttemptDeadline(attempt.signal)
  deadline.arm(attempt.timeoutMs, () => new RunPollTimeoutError(attempt.timeoutMs))
  try {
    return await exchange(attempt, deadline.signal)
  } catch (error) {
    throw deadline.expired ?? error
  } finally {
    deadline.dispose()
  }
}

async function exchange(attempt: PollAttempt, signal: AbortSignal): Promise<PollResult> {
  const init: RequestInit = { headers: attempt.headers, signal, cache: 'no-store' }
  if (attempt.credentials !== undefined) init.credentials = attempt.credentials
  const response = await attempt.fetch(attempt.url, init)
  if (response.status === 304) {
    await response.body?.cancel()
    return 'not-modified'
  }
  if (!response.ok) throw await refusal(response, 'GET /status')
  let status: RunStatusResponse
  try {
    status = RunStatusResponse.parse(await response.json())
  } catch (cause) {
    throw new RunSubscriptionError('GET /status answered a body that is not a status document', { status: response.status, cause })
  }
  return { status, etag: response.headers.get('etag') ?? undefined }
}
