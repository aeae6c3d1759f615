/**
 * One attempt at the live stream for `subscribeToRun`: the package's one stream reader
 * (`src/contract/event-stream.ts`) with the subscriber's own errors. What to do about a failure
 * is decided by the subscription, in one place.
 */
import { type StreamAttempt as ContractStreamAttempt, type StreamErrors, type StreamOutcome, streamOnce as readOnce } from '../contract/event-stream.js'
import { refusal, RunStreamSilentError, RunSubscriptionError } from './subscription-errors.js'

export type { StreamOutcome } from '../contract/event-stream.js'

/** What one stream attempt needs from its subscription, and what it tells it. */
export type StreamAttempt = Omit<ContractStreamAttempt, 'errors' | 'connectMs'>

/** The subscriber's errors: a silent stream reconnects, a refusal carries the server's problem. */
const SUBSCRIBER_ERRORS: StreamErrors = {
  silent: (silentMs, keepAliveMs) => new RunStreamSilentError(silentMs, keepAliveMs),
  refused: (response) => refusal(response, 'The live status stream'),
  notEventStream: (type, status) => new RunSubscriptionError(`The live status stream answered ${type || 'no content type'}, not text/event-stream`, { status }),
  tooLarge: (maxChars) =>
    new RunSubscriptionError(`The live status stream sent an event (or a line) longer than ${maxChars} characters; stopped reading it rather than holding it in memory`),
}

/**
 * Opens the stream once and reads it to its end. One deadline, pushed back by every byte: a
 * connection quiet for three keep-alive intervals, headers included, is aborted with a
 * {@link RunStreamSilentError}.
 */
export function streamOnce(attempt: StreamAttempt): Promise<StreamOutcome> {
  return readOnce({ ...attempt, errors: SUBSCRIBER_ERRORS })
}
