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
  /** Every request and delivery; noisy. */
  debug?(message: string, details?: Record<string, unknown>): void
  /** Normal events worth a line: an update queued behind earlier ones, the outbox draining. */
  info?(message: string, details?: Record<string, unknown>): void
  /** Something went wrong but nothing is lost: an update was queued in the outbox. */
  warn(message: string, details?: Record<string, unknown>): void
  /** An update was not delivered and will not be: a 4xx, or no outbox to keep it. */
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
