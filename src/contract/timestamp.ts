import { z } from 'zod'

/**
 * An ISO 8601 date-time with any sub-second precision. The Python runner sends
 * `2025-10-25T14:03:11.123456Z`; a timestamp without an offset is read as UTC.
 */
export const Timestamp = z.iso.datetime({ offset: true, local: true })
/** An ISO 8601 date-time string. */
export type Timestamp = z.infer<typeof Timestamp>

/**
 * Parses a contract timestamp into a `Date`, reading one without an offset as UTC.
 *
 * @example
 * ```ts
 * import { timestampToDate } from 'pipeline-status-sdk'
 * timestampToDate('2025-10-25T14:03:11.123456').toISOString() // '2025-10-25T14:03:11.123Z'
 * ```
 */
export function timestampToDate(value: string): Date {
  const hasOffset = /(?:Z|[+-]\d{2}(?::?\d{2})?)$/i.test(value)
  return new Date(hasOffset ? value : `${value}Z`)
}
