/**
 * The live {@link RunList}'s interim source: `GET {url}/runs` read again every few seconds.
 * (When `useRuns` — one shared set stream per page — lands, the live list uses it instead.)
 */
import { useEffect, useState } from 'react'
import { RunListPage, type RunSummary } from '../contract/run-list.js'
import { DEFAULT_BASE_PATH, normalizeBasePath } from '../contract/routes.js'

/** What the poll shows: the last page read, its state, and why the last read failed. */
export interface RunListPollState {
  runs: RunSummary[] | undefined
  state: 'connecting' | 'live' | 'error'
  error: Error | undefined
}

/** Options of {@link useRunListPoll}. */
export interface RunListPollOptions {
  url?: string | undefined
  token?: string | undefined
  headers?: Record<string, string> | undefined
  intervalMs?: number | undefined
  limit?: number | undefined
  fetch?: typeof globalThis.fetch | undefined
  initial?: RunSummary[] | undefined
}

/** Each read has this long before it is aborted (and retried on the next tick). */
const READ_TIMEOUT_MS = 10_000

/**
 * Reads `GET {url}/runs?{query}` now and then every `intervalMs` (default 2 s) after each answer,
 * while mounted; a new query aborts the read in flight and starts again. Failures keep the last
 * page and show `error`; the next tick tries again.
 */
export function useRunListPoll(query: string, options: RunListPollOptions): RunListPollState {
  const { url = DEFAULT_BASE_PATH, token, intervalMs = 2000, limit = 50, initial } = options
  const [result, setResult] = useState<RunListPollState>({ runs: initial, state: 'connecting', error: undefined })
  const headersKey = JSON.stringify(options.headers ?? {})
  const fetchImpl = options.fetch

  useEffect(() => {
    const controller = new AbortController()
    let timer: ReturnType<typeof setTimeout> | undefined
    const target = `${normalizeBasePath(url)}/runs?${query}${query ? '&' : ''}limit=${limit}`
    const headers: Record<string, string> = { accept: 'application/json', ...(JSON.parse(headersKey) as Record<string, string>) }
    if (token) headers['authorization'] = `Bearer ${token}`

    async function read(): Promise<void> {
      const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(READ_TIMEOUT_MS)])
      try {
        const response = await (fetchImpl ?? globalThis.fetch)(target, { headers, signal, credentials: 'same-origin' })
        if (!response.ok) throw new Error(`Listing runs failed with HTTP ${response.status}`)
        const page = RunListPage.parse(await response.json())
        if (!controller.signal.aborted) setResult({ runs: page.runs, state: 'live', error: undefined })
      } catch (error) {
        if (controller.signal.aborted) return
        setResult((previous) => ({ ...previous, state: 'error', error: error instanceof Error ? error : new Error(String(error)) }))
      }
      if (!controller.signal.aborted) timer = setTimeout(() => void read(), intervalMs)
    }
    void read()
    return () => {
      controller.abort()
      clearTimeout(timer)
    }
  }, [url, token, headersKey, query, intervalMs, limit, fetchImpl])

  return result
}
