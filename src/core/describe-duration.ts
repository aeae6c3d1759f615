/**
 * How the state machine writes a duration for people, in the messages it stores (a stale run's
 * `error`) and logs (a clamped runner instant). Pure.
 */

const DURATION_UNITS: ReadonlyArray<readonly [ms: number, unit: string]> = [
  [86_400_000, 'day'],
  [3_600_000, 'hour'],
  [60_000, 'minute'],
  [1_000, 'second'],
]

/** `900000` → `15 minutes`; the largest unit that divides the duration exactly. */
export function describeDuration(ms: number): string {
  for (const [size, unit] of DURATION_UNITS) {
    if (ms >= size && ms % size === 0) {
      const count = ms / size
      return `${count} ${unit}${count === 1 ? '' : 's'}`
    }
  }
  return `${ms} ms`
}

/**
 * A skew for people: rounded to the unit below its largest, then at most two units, e.g.
 * `32399995` → `9 hours`, `5430000` → `1 hour 31 minutes`, `42000` → `42 seconds`, `250` → `250 ms`.
 */
export function approximateDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`
  const index = DURATION_UNITS.findIndex(([size]) => ms >= size)
  const granularity = DURATION_UNITS[index + 1]?.[0] ?? 1_000
  let rest = Math.round(ms / granularity) * granularity
  const parts: string[] = []
  for (const [size, unit] of DURATION_UNITS) {
    if (rest < size) {
      if (parts.length > 0) break
      continue
    }
    const count = Math.floor(rest / size)
    parts.push(`${count} ${unit}${count === 1 ? '' : 's'}`)
    rest -= count * size
    if (parts.length === 2 || rest === 0) break
  }
  return parts.join(' ')
}
