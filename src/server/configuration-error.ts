import { isErrorNamed } from '../internal/is-error-named.js'

/**
 * Thrown when a server-side factory is given options that cannot work: the handlers and their
 * framework adapters (no webhook secret, an invalid stage catalogue, a bad limit), the stale-run
 * sweeper, the stores and `createPgRunListener`. A misconfigured app fails at start-up instead of
 * answering 500 to every request. (The runner's client has its own, `ConfigurationError`.)
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers, isServerConfigurationError, MemoryStore } from 'pipeline-status-sdk/server'
 * try {
 *   createPipelineStatusHandlers({ store: new MemoryStore(), secret: [] })
 * } catch (error) {
 *   if (isServerConfigurationError(error)) console.error(error.message)
 * }
 * ```
 */
export class ServerConfigurationError extends Error {
  /** Always `'ServerConfigurationError'`; check it with {@link isServerConfigurationError}. */
  override readonly name = 'ServerConfigurationError' as const
}

/** Whether a value is a {@link ServerConfigurationError}, also across realms and dual builds. */
export function isServerConfigurationError(error: unknown): error is ServerConfigurationError {
  return isErrorNamed(error, 'ServerConfigurationError')
}
