/**
 * Where the handlers report what they cannot answer with a status code alone: errors behind a
 * 500, an unreachable database behind a 503, a refused signature. `console` fits, as do pino
 * and winston loggers.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
 * const handlers = createPipelineStatusHandlers({ store, logger: console })
 * ```
 */
export interface HandlerLogger {
  /** Not called by the handlers today; accepted so any logger fits. */
  debug?(message: string, details?: Record<string, unknown>): void
  /** Not called by the handlers today; accepted so any logger fits. */
  info?(message: string, details?: Record<string, unknown>): void
  /**
   * Every refused request (4xx), in one line that names the method, path, run id, status,
   * problem code and detail (never a secret), with the same as `details` fields (`method`,
   * `path`, `runId`, `status`, `code`, `detail`) for structured loggers; a 503 in one line with
   * its cause (`details.cause`), not a stack.
   */
  warn(message: string, details?: Record<string, unknown>): void
  /**
   * Unexpected errors behind a 500, with the error in `details.error`; server configuration
   * errors (a body read before the handlers), once per handlers instance, with how to fix them.
   */
  error(message: string, details?: Record<string, unknown>): void
}

/**
 * The default logger: warnings to `console.warn` as one line each (the message says it all; an
 * `error` in the details adds its message, not its stack), errors to `console.error` with their
 * details. Warnings are on by default because a refused secret is otherwise invisible on the
 * server: the original system's runs showed PROCESSING forever while every update got a 401
 * nobody saw.
 */
export const consoleLogger: HandlerLogger = Object.freeze({
  warn: (message: string, details?: Record<string, unknown>) => {
    const error = details?.['error']
    console.warn(error instanceof Error ? `${message}: ${oneLine(error.message)}` : message)
  },
  error: (message: string, details?: Record<string, unknown>) => console.error(message, details ?? ''),
})

/** Text on one line: runs of whitespace, line breaks included, become one space. */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim()
}

/** Wraps a logger so that a logger that throws can never turn an answer into a crash. */
export function safeLogger(logger: HandlerLogger): Required<HandlerLogger> {
  const call =
    (level: keyof HandlerLogger) =>
    (message: string, details?: Record<string, unknown>): void => {
      try {
        logger[level]?.call(logger, message, details)
      } catch {
        // A broken logger must not change the response.
      }
    }
  return { debug: call('debug'), info: call('info'), warn: call('warn'), error: call('error') }
}
