/**
 * The dashboard page's requests: where the routes are (the shell's `<meta>`), the credential the
 * person signed in with (kept in `sessionStorage`, never in a URL, sent as a header), and the
 * mark that asks the app's `authorize` with `action: 'dashboard'`. The page reads the same
 * routes as everyone (lists, counts, stats, status) and never writes.
 */
import type { RunCounts, RunStatsResponse } from '../index.js'
import { type RunListFilters, runListQuery } from '../react/index.js'

/** What the shell tells the page: no data, only where and how (server: `DashboardConfig`). */
export interface DashboardConfig {
  readonly apiBase: string
  readonly title: string
  readonly refreshIntervalMs: number
}

/** Reads the shell's configuration; defaults when the `<meta>` is absent or broken. */
export function readConfig(): DashboardConfig {
  const fallback: DashboardConfig = { apiBase: '/api/pipeline', title: 'Pipeline runs', refreshIntervalMs: 30_000 }
  const text = document.querySelector('meta[name="pipeline-status-dashboard"]')?.getAttribute('content')
  if (!text) return fallback
  try {
    const value = JSON.parse(text) as Partial<DashboardConfig>
    return {
      apiBase: typeof value.apiBase === 'string' ? value.apiBase.replace(/\/+$/, '') : fallback.apiBase,
      title: typeof value.title === 'string' ? value.title : fallback.title,
      refreshIntervalMs: typeof value.refreshIntervalMs === 'number' ? value.refreshIntervalMs : fallback.refreshIntervalMs,
    }
  } catch {
    return fallback
  }
}

/** The `sessionStorage` key of the credential: gone when the tab closes, never sent in a URL. */
export const CREDENTIAL_KEY = 'pipeline-status-dashboard:credential'

/** The credential the person entered, if any. */
export function storedCredential(): string | null {
  try {
    return sessionStorage.getItem(CREDENTIAL_KEY)
  } catch {
    return null
  }
}

/** Keeps (or, with `null`, forgets) the credential for this tab. */
export function storeCredential(value: string | null): void {
  try {
    if (value === null) sessionStorage.removeItem(CREDENTIAL_KEY)
    else sessionStorage.setItem(CREDENTIAL_KEY, value)
  } catch {
    // Storage refused (private mode): the credential lives in memory for this page only.
  }
}

/** A read token looks like `psrt1.…`; anything else is taken for the webhook secret. */
function credentialHeaders(credential: string | null): Record<string, string> {
  if (credential === null || credential === '') return {}
  return credential.startsWith('psrt1.') ? { Authorization: `Bearer ${credential}` } : { 'X-Webhook-Secret': credential }
}

/** The mark that asks the app's `authorize` with `action: 'dashboard'` (it grants nothing by itself). */
const DASHBOARD_MARK = { 'X-Pipeline-Status-Dashboard': '1' } as const

/**
 * How the page's live streams (`useRuns`, `useRunStatus`) connect: the routes' base, a read token
 * as `token` (sent as `Authorization: Bearer`), the secret and the page's mark as headers, the
 * app's cookies by fetch's `same-origin` default. The same credential and mark as the JSON reads,
 * so the set stream and the run streams are authorized exactly like the lists.
 */
export function liveConnection(config: DashboardConfig, credential: string | null): { url: string; token: string | undefined; headers: Record<string, string> } {
  const token = credential !== null && credential.startsWith('psrt1.') ? credential : undefined
  const headers: Record<string, string> = { ...DASHBOARD_MARK }
  if (credential !== null && credential !== '' && token === undefined) headers['X-Webhook-Secret'] = credential
  return { url: config.apiBase, token, headers }
}

/** A refused or failed request, with its status (0: no answer) and the problem's `detail`. */
export class DashboardRequestError extends Error {
  override readonly name = 'DashboardRequestError'
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

/** A GET of a route under the API base; `etag` makes it conditional (`null` back for 304). */
async function get<T>(config: DashboardConfig, credential: string | null, path: string, etag?: string): Promise<{ body: T | null; etag: string | null }> {
  const headers: Record<string, string> = { Accept: 'application/json', ...DASHBOARD_MARK, ...credentialHeaders(credential) }
  if (etag !== undefined) headers['If-None-Match'] = etag
  let response: Response
  try {
    response = await fetch(`${config.apiBase}${path}`, { headers, credentials: 'same-origin', cache: 'no-store', signal: AbortSignal.timeout(15_000) })
  } catch (error) {
    throw new DashboardRequestError(0, `The server did not answer (${error instanceof Error ? error.message : String(error)})`)
  }
  if (response.status === 304) return { body: null, etag: etag ?? null }
  if (!response.ok) {
    let detail = response.statusText
    try {
      const problem = (await response.json()) as { detail?: unknown; title?: unknown }
      detail = String(problem.detail ?? problem.title ?? detail)
    } catch {
      // Not a problem document: keep the status text.
    }
    throw new DashboardRequestError(response.status, detail)
  }
  return { body: (await response.json()) as T, etag: response.headers.get('etag') }
}

/**
 * The routes the page reads as JSON, with one credential: counts and stats (the list and the open
 * run come over live streams instead, `liveConnection`). `filters` are the list's (`RunList`'s
 * controls); the counts by status leave its status out, so each status button shows its number.
 */
export function createApi(config: DashboardConfig, credential: () => string | null) {
  return {
    counts: (filters: RunListFilters, groupBy: 'status' | 'pipeline') => {
      const query = runListQuery(groupBy === 'status' ? { ...filters, status: undefined } : {})
      query.set('groupBy', groupBy)
      return get<RunCounts>(config, credential(), `/runs/counts?${query}`).then((r) => (r.body as RunCounts).counts)
    },
    stats: (pipeline: string | undefined, days: number) => {
      const query = new URLSearchParams({ days: String(days) })
      if (pipeline) query.set('pipeline', pipeline)
      return get<RunStatsResponse>(config, credential(), `/runs/stats?${query}`).then((r) => (r.body as RunStatsResponse).stages)
    },
  }
}

/** The page's API. */
export type DashboardApi = ReturnType<typeof createApi>
