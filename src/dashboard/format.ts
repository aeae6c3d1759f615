/** Formatting for the dashboard: durations, instants, outputs. Pure; no HTML is ever built. */

/** A duration in milliseconds for people: `850 ms`, `12.4 s`, `3 min 5 s`, `2 h 4 min`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–'
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
  const minutes = Math.floor(ms / 60_000)
  if (minutes < 60) return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`
}

/** The milliseconds between two ISO instants, or `null`. */
export function between(start: string | null | undefined, end: string | null | undefined): number | null {
  if (!start || !end) return null
  const ms = Date.parse(end) - Date.parse(start)
  return Number.isFinite(ms) ? Math.max(0, ms) : null
}

/** An ISO instant as local date and time, to the second. */
export function formatInstant(iso: string | null | undefined): string {
  if (!iso) return '–'
  const date = new Date(iso)
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' })
}

/** A stage output for display: JSON pretty-printed, anything else as the text it is. */
export function formatOutput(output: string): { kind: 'json' | 'text'; text: string } {
  const trimmed = output.trim()
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return { kind: 'json', text: JSON.stringify(JSON.parse(trimmed), null, 2) }
    } catch {
      // Not JSON after all.
    }
  }
  return { kind: 'text', text: output }
}
