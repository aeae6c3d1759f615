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
  /** Refused credentials or signatures (401, never the secret itself), an unreachable database (503), a failing replay store. */
  warn(message: string, details?: Record<string, unknown>): void
  /** Unexpected errors behind a 500, with the error in `details.error`. */
  error(message: string, details?: Record<string, unknown>): void
}

/**
 * The default logger: warnings to `console.warn`, errors to `console.error`. Warnings are on by
 * default because a refused secret is otherwise invisible on the server: the original system's
 * runs showed PROCESSING forever while every update got a 401 nobody saw.
 */
export const consoleLogger: HandlerLogger = Object.freeze({
  warn: (message: string, details?: Record<string, unknown>) => console.warn(message, details ?? ''),
  error: (message: string, details?: Record<string, unknown>) => console.error(message, details ?? ''),
})

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
