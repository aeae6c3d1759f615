import type { Logger } from 'pipeline-status-sdk/server'

/** A logger that keeps every line, to assert what the client reported. */
export function recordingLogger(): Logger & { lines: Array<{ level: string; message: string; details?: Record<string, unknown> }> } {
  const lines: Array<{ level: string; message: string; details?: Record<string, unknown> }> = []
  const record = (level: string) => (message: string, details?: Record<string, unknown>) =>
    void lines.push(details ? { level, message, details } : { level, message })
  return { lines, debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') }
}

/** A logger that drops everything, for tests that assert on answers rather than on logs. */
export const quiet: Required<Logger> = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} }
