import { connection } from 'next/server'
import { Suspense } from 'react'
import { DEFAULT_BASE_PATH } from 'pipeline-status-sdk'
import { RunList } from 'pipeline-status-sdk/react'
import { listRecentRuns } from '@/lib/list-runs'

const RECENT_RUNS = 20

// The heading is prerendered; the list is read at request time (`connection()` says so, under
// `cacheComponents`, in place of the old `dynamic = 'force-dynamic'`).
export default function HomePage() {
  return (
    <>
      <h1 style={{ marginBottom: 16 }}>Recent runs</h1>
      <Suspense fallback={<section className="card muted">Loading runs…</section>}>
        <RecentRuns />
      </Suspense>
    </>
  )
}

/**
 * The newest runs through GET /api/pipeline/runs (lib/list-runs.ts), rendered on the server, then
 * live in the browser: the package's RunList follows the same newest runs with useRuns on one
 * connection (the set stream `GET /api/pipeline/events?limit=20&view=summary`).
 */
async function RecentRuns() {
  await connection()
  const listed = await listRecentRuns(RECENT_RUNS)
  if (!listed.ok) {
    return (
      <section className="card" data-testid="runs-error">
        <p style={{ margin: 0 }}>
          The runs could not be listed (HTTP {listed.status}
          {listed.problem ? ` ${listed.problem}` : ''}).
        </p>
      </section>
    )
  }
  return (
    // RunList is a client component (the package's React entry is marked 'use client'): the
    // server renders `initialRuns` into the first HTML; the browser then follows the newest runs
    // matching the filters a visitor picks. The page reads with the app's own rule for lists
    // (lib/pipeline-routes.ts, `authorize` with action 'list'), so no token is handed out here.
    // `runHref` is a string: a function (`renderLink`) cannot cross into a client component.
    <RunList
      url={DEFAULT_BASE_PATH}
      limit={RECENT_RUNS}
      initialRuns={listed.page.runs}
      runHref="/runs/{runId}"
      renderedAt={Date.now()}
      caption="Recent runs, newest first"
    />
  )
}
