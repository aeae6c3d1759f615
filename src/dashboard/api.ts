/**
 * The dashboard page's requests: where the routes are (the shell's `<meta>`), the credential the
 * person signed in with (kept in `sessionStorage`, never in a URL, sent as a header), and the
 * mark that asks the app's `authorize` with `action: 'dashboard'`. The page reads the same
 * routes as everyone (lists, counts, stats, status) and never writes.
 */
import type { RunCounts, RunListPage, RunStatusResponse, RunStatsResponse } from '../index.js'

/** What the shell tells the page: no data, only where and how (server: `DashboardConfig`). */
export interface DashboardConfig {
  readonly apiBase: string
  readonly title: string
  readonly refreshIntervalMs: number
}

/** Reads the shell's configuration; defaults when the `<meta>` is absent or broken. */
export function readConfig(): DashboardConfig {
  const fallback: DashboardConfig = { apiBase: '/api/pipeline', title: 'Pipeline runs', refreshIntervalMs: 3000 }
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
  const headers: Record<string, string> = { Accept: 'application/json', 'X-Pipeline-Status-Dashboard': '1', ...credentialHeaders(credential) }
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

/** The filters of the list, as the page holds them. */
export interface Filters {
  readonly status: string
  readonly pipeline: string
  readonly tag: string
}

/** The query of the filters (empty ones left out). */
export function filterQuery(filters: Filters): URLSearchParams {
  const query = new URLSearchParams()
  if (filters.status !== '') query.set('status', filters.status)
  if (filters.pipeline !== '') query.set('pipeline', filters.pipeline)
  for (const tag of filters.tag.split(',').map((t) => t.trim()).filter((t) => t !== '')) query.append('tag', tag)
  return query
}

/** The routes the page reads, with one credential. */
export function createApi(config: DashboardConfig, credential: () => string | null) {
  return {
    listRuns: (filters: Filters, cursor?: string) => {
      const query = filterQuery(filters)
      query.set('limit', '50')
      if (cursor !== undefined) query.set('cursor', cursor)
      return get<RunListPage>(config, credential(), `/runs?${query}`).then((r) => r.body as RunListPage)
    },
    counts: (filters: Filters, groupBy: 'status' | 'pipeline') => {
      const query = filterQuery(groupBy === 'status' ? { ...filters, status: '' } : { status: '', pipeline: '', tag: filters.tag })
      query.set('groupBy', groupBy)
      return get<RunCounts>(config, credential(), `/runs/counts?${query}`).then((r) => (r.body as RunCounts).counts)
    },
    stats: (pipeline: string, days: number) => {
      const query = new URLSearchParams({ days: String(days) })
      if (pipeline !== '') query.set('pipeline', pipeline)
      return get<RunStatsResponse>(config, credential(), `/runs/stats?${query}`).then((r) => (r.body as RunStatsResponse).stages)
    },
    status: (runId: string, etag?: string) => get<RunStatusResponse>(config, credential(), `/${encodeURIComponent(runId)}/status`, etag),
  }
}

/** The page's API. */
export type DashboardApi = ReturnType<typeof createApi>
