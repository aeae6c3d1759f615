/**
 * The one short wording of why a request failed, for the client's log lines and
 * `runPipeline`'s warnings, so that the same cause reads the same everywhere and can be
 * grouped. Internal.
 */
import { isStatusHttpError, isStatusNetworkError } from './errors.js'

/**
 * `HTTP 401 unauthorized: X-Webhook-Secret does not match` for a refusal (status, problem code
 * and detail); the error's message otherwise (a network error's names its cause and address,
 * a timeout's its timeout).
 */
export function failureReason(error: unknown): string {
  if (isStatusHttpError(error)) {
    return `HTTP ${error.status}${error.problem ? ` ${error.problem.code}` : ''}${error.problem?.detail ? `: ${error.problem.detail}` : ''}`
  }
  if (isStatusNetworkError(error)) return error.message
  return error instanceof Error ? error.message : String(error)
}
