import 'server-only'
import { type RunListFilters, runListQuery } from 'pipeline-status-sdk'
import type { RunListPage } from 'pipeline-status-sdk/client'
import { pipelineRoutes } from '@/lib/pipeline-routes'

/** What the home page shows: a page of runs, or why the list could not be read. */
export type RecentRuns = { ok: true; page: RunListPage } | { ok: false; status: number; problem: string }

/**
 * The newest runs matching `filters` (the list's, from the page's URL), read through the package's list route (`GET /api/pipeline/runs`), in-process
 * and on the server only: the page authenticates with the app's own webhook secret, which sees
 * every run and never reaches the browser. A real app with users would instead let `authorize`
 * (`action: 'list'`) and `listScope` check its session, so that each user lists only their runs
 * (docs/listing-runs.md), or mint a tag read token for the page.
 */
export async function listRecentRuns(limit: number, filters: RunListFilters = {}): Promise<RecentRuns> {
  const secret = process.env['WEBHOOK_SECRET']?.split(',')[0]?.trim() ?? ''
  const query = runListQuery(filters)
  query.set('limit', String(limit))
  const url = new URL(`/api/pipeline/runs?${query}`, 'http://localhost')
  const response = await pipelineRoutes().GET(new Request(url, { headers: { 'x-webhook-secret': secret } }))
  if (!response.ok) {
    const problem = (await response.json().catch(() => ({}))) as { code?: string; detail?: string; title?: string }
    return { ok: false, status: response.status, problem: [problem.code, problem.detail ?? problem.title].filter(Boolean).join(': ') }
  }
  return { ok: true, page: (await response.json()) as RunListPage }
}
