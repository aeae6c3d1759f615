/**
 * The one `Retry-After` parser (RFC 9110 §10.2.3), shared by the runner's client and the live
 * status subscriber so that both read a server's answer alike.
 */

/**
 * A `Retry-After` header value as milliseconds from `now`: delay-seconds or an HTTP date
 * (a date in the past is `0`). `undefined` when absent or unreadable.
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from 'pipeline-status-sdk/client'
 * parseRetryAfter('120') // 120000
 * ```
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}
