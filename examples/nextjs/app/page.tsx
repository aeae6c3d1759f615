import { connection } from 'next/server'
import { Suspense } from 'react'
import { DEFAULT_BASE_PATH } from 'pipeline-status-sdk'
import { listRecentRuns } from '@/lib/list-runs'
import { LiveRuns } from './live-runs'

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

/** The newest runs through GET /api/pipeline/runs (lib/list-runs.ts), rendered on the server, then live (./live-runs.tsx). */
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
  // The first paint is this server's list; the browser then follows the same newest runs live.
  return <LiveRuns url={DEFAULT_BASE_PATH} limit={RECENT_RUNS} initial={listed.page.runs} />
}
