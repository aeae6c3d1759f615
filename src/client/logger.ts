/**
 * Where the client reports what it does: failed updates, queued updates, redeliveries.
 * `console` fits, and so does any logger with these methods (bind pino's or winston's).
 * `details` is a flat object of facts (runId, stageNumber, status, attempts, ...).
 *
 * @example
 * ```ts
 * import { PrismaAPIClient, type Logger } from 'pipeline-status-sdk/client'
 * const logger: Logger = { warn: (m, d) => console.warn(m, d), error: (m, d) => console.error(m, d) }
 * const client = new PrismaAPIClient({ logger })
 * ```
 */
export interface Logger {
  /**
   * Every attempt of every request, when it ends; noisy. One line each:
   * `POST <url> → 200 in 4 ms (attempt 1)`, or `→ no response (ECONNREFUSED) after 2 ms (attempt 2)`,
   * with `details` `{ idempotencyKey, attempt, bytes, status }`. Without this method nothing is
   * formatted for it.
   */
  debug?(message: string, details?: Record<string, unknown>): void
  /** Normal events worth a line: an update queued behind earlier ones, the outbox draining. */
  info?(message: string, details?: Record<string, unknown>): void
  /**
   * Something went wrong but nothing is lost: each retry, with its cause and wait
   * (`Run run_1: stage 2 COMPLETED failed (ECONNREFUSED); retry 1 of 5 in 212 ms`, `details`
   * `{ cause, status, code, retry, delayMs }`); an update queued in the outbox; an output the
   * client had to change; a failed redelivery from the outbox; what `close()` leaves undelivered.
   */
  warn(message: string, details?: Record<string, unknown>): void
  /**
   * An update was not delivered, or needs a person: a dead letter (refused for good, or too
   * old), an update lost for want of an outbox, and each 401/403 (a secret to fix).
   */
  error(message: string, details?: Record<string, unknown>): void
}

const PREFIX = '[pipeline-status]'

/** The default logger: warnings and errors to the console, nothing else. */
export const consoleLogger: Logger = Object.freeze({
  warn: (message: string, details?: Record<string, unknown>) =>
    details ? console.warn(PREFIX, message, details) : console.warn(PREFIX, message),
  error: (message: string, details?: Record<string, unknown>) =>
    details ? console.error(PREFIX, message, details) : console.error(PREFIX, message),
})

/** A logger that drops everything; for tests and for callers that check every result. */
export const silentLogger: Logger = Object.freeze({
  warn: () => undefined,
  error: () => undefined,
})
