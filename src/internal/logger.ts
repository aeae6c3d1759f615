/**
 * The one logger shape and the one console logger, for the runner's client and the web app's
 * handlers alike. The entries re-export `Logger` and `consoleLogger`; `safeLogger` and `oneLine`
 * stay internal.
 */

/**
 * Where the package reports what a return value or a status code alone cannot say. `console`
 * fits, as does any logger with these methods (bind pino's or winston's). `details` is a flat
 * object of facts (`runId`, `stageNumber`, `status`, `code`, `error`, ...).
 *
 * - The client: each retry with its cause and wait, an update queued in the outbox, an output it
 *   had to change (`warn`); an update not delivered, a dead letter, each 401/403 (`error`); with
 *   `debug`, one line per attempt; with `info`, an update queued behind earlier ones.
 * - The handlers and the stale-run sweeper: every refused request (4xx) in one line naming the
 *   method, path, run id, status, problem code and detail, never a secret, and a 503 with its
 *   cause (`warn`); unexpected errors behind a 500 with the error in `details.error`, and server
 *   configuration errors with how to fix them (`error`); the end of a read replica's outage
 *   (`warn`, as its start).
 *
 * The rule for the levels: `debug` and `info` are optional and opt-in, so {@link consoleLogger}
 * has neither. Only the client calls them, for lines a caller asks for (above); the handlers, the
 * store and the stale-run sweeper call neither, so whatever they log the default logger shows
 * (src/internal/logger.test.ts checks the sources).
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
   * Every attempt of every client request, when it ends; noisy. One line each:
   * `POST <url> → 200 in 4 ms (attempt 1)` (when the whole body has arrived), or
   * `→ no response (ECONNREFUSED) after 2 ms (attempt 2)` / `(timed out after 30000 ms)`, with
   * `details` `{ idempotencyKey, attempt, bytes, status }` (`durationMs` instead of `status`
   * when there was no response). Without this method nothing is
   * formatted for it.
   */
  debug?(message: string, details?: Record<string, unknown>): void
  /** Normal events worth a line: an update queued behind earlier ones, the outbox draining. */
  info?(message: string, details?: Record<string, unknown>): void
  /** Something went wrong but nothing is lost, or a request was refused. */
  warn(message: string, details?: Record<string, unknown>): void
  /** Something was lost, failed unexpectedly, or needs a person. */
  error(message: string, details?: Record<string, unknown>): void
}

const PREFIX = 'pipeline-status: '

/** The message with the package's prefix, once. */
function prefixed(message: string): string {
  return message.startsWith(PREFIX) ? message : PREFIX + message
}

/**
 * The default logger: warnings to `console.warn` as one line each (the message says it all; an
 * `error` in the details adds its message, not its stack), errors to `console.error` with their
 * details; every line starts with `pipeline-status: `. Warnings are on by default because a
 * refused secret is otherwise invisible: the original system's runs showed PROCESSING forever
 * while every update got a 401 nobody saw.
 */
export const consoleLogger: Logger = Object.freeze({
  warn: (message: string, details?: Record<string, unknown>) => {
    const error = details?.['error']
    console.warn(prefixed(error instanceof Error ? `${message}: ${oneLine(error.message)}` : message))
  },
  error: (message: string, details?: Record<string, unknown>) => console.error(prefixed(message), details ?? ''),
})

/** A logger that drops everything; for tests and for callers that check every result. */
export const silentLogger: Logger = Object.freeze({
  warn: () => undefined,
  error: () => undefined,
})

/** Text on one line: runs of whitespace, line breaks included, become one space. */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim()
}

/** Wraps a logger so that a logger that throws can never turn an answer into a crash. */
export function safeLogger(logger: Logger): Required<Logger> {
  const call =
    (level: keyof Logger) =>
    (message: string, details?: Record<string, unknown>): void => {
      try {
        logger[level]?.call(logger, message, details)
      } catch {
        // A broken logger must not change the response.
      }
    }
  return { debug: call('debug'), info: call('info'), warn: call('warn'), error: call('error') }
}
