import { z } from 'zod'

// YYYY-MM-DDTHH:MM:SS[.1–9 digits][Z|±HH:MM]: RFC 3339's date-time with its offset optional,
// which is what Python's `isoformat()` (no offset for a naive datetime) and JavaScript's
// `toISOString()` send. Minutes-only times and basic (`+0200`) offsets are not in it.
const GRAMMAR = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):(\d{2}))?$/

/** The first millisecond of year 1, UTC: the earliest instant a contract timestamp may name. */
const MIN_INSTANT = utcMillis(1, 1, 1, 0, 0, 0, 0)
/** The last millisecond of year 9999, UTC. */
const MAX_INSTANT = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

/** The instant a string names, or why it is not a contract timestamp. */
type TimestampParse = { ok: true; millis: number } | { ok: false; reason: 'grammar' | 'range' }

function utcMillis(year: number, month: number, day: number, hour: number, minute: number, second: number, ms: number): number {
  // Date.UTC maps years 0–99 to 1900–1999; setUTCFullYear does not.
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, ms))
  date.setUTCFullYear(year, month - 1, day)
  return date.getTime()
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31
}

function parseTimestamp(value: string): TimestampParse {
  const match = GRAMMAR.exec(value)
  if (!match) return { ok: false, reason: 'grammar' }
  const [, y, mo, d, h, mi, s, fraction = '', zulu, sign, oh, om] = match
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number) as [number, number, number, number, number, number]
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return { ok: false, reason: 'grammar' }
  // No leap second (`:60`) and no `24:00`: neither a JS Date nor PostgreSQL keeps them as sent.
  if (hour > 23 || minute > 59 || second > 59) return { ok: false, reason: 'grammar' }
  let offsetMinutes = 0
  if (zulu === undefined && sign !== undefined) {
    const offsetHours = Number(oh)
    const offsetMins = Number(om)
    if (offsetHours > 23 || offsetMins > 59) return { ok: false, reason: 'grammar' }
    offsetMinutes = (sign === '-' ? -1 : 1) * (offsetHours * 60 + offsetMins)
  }
  // Stored to the millisecond: further digits are cut, never rounded (rounding could carry
  // 9999-12-31T23:59:59.9999Z into year 10000).
  const ms = Number(fraction.slice(0, 3).padEnd(3, '0'))
  const millis = utcMillis(year, month, day, hour, minute, second, ms) - offsetMinutes * 60_000
  if (millis < MIN_INSTANT || millis > MAX_INSTANT) return { ok: false, reason: 'range' }
  return { ok: true, millis }
}

/** The timestamp grammar, as it is stated in messages and docs. */
export const TIMESTAMP_FORMAT = 'YYYY-MM-DDTHH:MM:SS[.fraction of 1 to 9 digits][Z|±HH:MM]'

/**
 * A contract timestamp: `YYYY-MM-DDTHH:MM:SS[.1–9 fraction digits][Z|±HH:MM]` (RFC 3339 with
 * the offset optional), a real calendar date and time (no `:60` leap second, no `24:00`). Without
 * an offset it is UTC (Python's `isoformat()` of a naive datetime sends none). It is stored to
 * the millisecond (further digits are cut), and its UTC instant must fall in years 1–9999, the
 * range both PostgreSQL `timestamptz(3)` and a JS `Date` hold and print alike. Anything else is
 * refused with 400 `validation_failed` naming the field.
 *
 * @example
 * ```ts
 * import { Timestamp } from 'pipeline-status-sdk'
 * Timestamp.safeParse('2025-10-25T14:03:11.123456').success // true
 * Timestamp.safeParse('2025-10-25T14:03Z').success // false: minutes only
 * Timestamp.safeParse('9999-12-31T23:59:59-01:00').success // false: year 10000 in UTC
 * ```
 */
export const Timestamp = z.string().check((ctx) => {
  const result = parseTimestamp(ctx.value)
  if (result.ok) return
  ctx.issues.push({
    code: 'custom',
    input: ctx.value,
    message:
      result.reason === 'grammar'
        ? `must be a date-time written ${TIMESTAMP_FORMAT}, with a real date and time`
        : 'must name an instant in the years 0001 to 9999 UTC',
  })
  // The grammar in the JSON Schema and OpenAPI output; the calendar and range checks have no pattern.
}).meta({ pattern: GRAMMAR.source })
/** A contract timestamp string; see {@link Timestamp}. */
export type Timestamp = z.infer<typeof Timestamp>

/**
 * Whether a string is a contract timestamp (see {@link Timestamp}).
 *
 * @example
 * ```ts
 * import { isTimestamp } from 'pipeline-status-sdk'
 * isTimestamp('2025-10-25T14:03:11Z') // true
 * ```
 */
export function isTimestamp(value: string): boolean {
  return parseTimestamp(value).ok
}

/**
 * The instant a contract timestamp names, to the millisecond (a timestamp without an offset is
 * UTC; fraction digits after the third are cut). Throws `RangeError` for a string that is not a
 * contract timestamp (see {@link Timestamp}).
 *
 * @example
 * ```ts
 * import { timestampToDate } from 'pipeline-status-sdk'
 * timestampToDate('2025-10-25T14:03:11.123456').toISOString() // '2025-10-25T14:03:11.123Z'
 * ```
 */
export function timestampToDate(value: string): Date {
  const result = parseTimestamp(value)
  if (!result.ok) throw new RangeError(`Not a contract timestamp (${TIMESTAMP_FORMAT}, years 0001–9999 UTC): ${JSON.stringify(value.slice(0, 64))}`)
  return new Date(result.millis)
}
