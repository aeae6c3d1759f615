import { isErrorNamed } from '../internal/is-error-named.js'

/**
 * Thrown when the handlers are created with options that cannot work (no webhook secret, an
 * invalid stage catalogue, a bad limit), so a misconfigured app fails at start-up instead of
 * answering 500 to every request.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers, isHandlerConfigurationError, MemoryStore } from 'pipeline-status-sdk/server'
 * try {
 *   createPipelineStatusHandlers({ store: new MemoryStore(), secret: [] })
 * } catch (error) {
 *   if (isHandlerConfigurationError(error)) console.error(error.message)
 * }
 * ```
 */
export class HandlerConfigurationError extends Error {
  /** Always `'HandlerConfigurationError'`; check it with {@link isHandlerConfigurationError}. */
  override readonly name = 'HandlerConfigurationError' as const
}

/** Whether a value is a {@link HandlerConfigurationError}, also across realms and dual builds. */
export function isHandlerConfigurationError(error: unknown): error is HandlerConfigurationError {
  return isErrorNamed(error, 'HandlerConfigurationError')
}
