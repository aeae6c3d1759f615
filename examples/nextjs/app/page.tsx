import { connection } from 'next/server'
import { Suspense } from 'react'
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

/** The newest runs through GET /api/pipeline/runs (lib/list-runs.ts), rendered on the server. */
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
  const { runs } = listed.page

  // The package's RunList, rendered on the server with the runs as read (its data form): the
  // filters then work in the browser over these runs. `runHref` is a string, so this server
  // component can pass it (a `renderLink` function could not cross into a client component).
  return runs.length === 0 ? (
    <section className="card">
      <p className="muted" style={{ margin: 0 }}>
        No runs yet. Point a runner at this app (see examples/nextjs/README.md) and its run shows up here.
      </p>
    </section>
  ) : (
    <RunList runs={runs} runHref="/runs/{runId}" renderedAt={Date.now()} caption={`Newest ${RECENT_RUNS} runs`} />
  )
}
