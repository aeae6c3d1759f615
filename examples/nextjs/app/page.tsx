import Link from 'next/link'
import { connection } from 'next/server'
import { Suspense } from 'react'
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

const time = (iso: string) => `${iso.replace('T', ' ').slice(0, 19)} UTC`

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

  return (
    <section className="card">
      {runs.length === 0 ? (
        <p className="muted" style={{ margin: 0 }}>
          No runs yet. Point a runner at this app (see examples/nextjs/README.md) and its run shows up here.
        </p>
      ) : (
        <table className="runs-table" data-testid="runs">
          <thead>
            <tr>
              <th>Run</th>
              <th>Status</th>
              <th>Pipeline</th>
              <th>Tags</th>
              <th>Created</th>
              <th>Finished</th>
            </tr>
          </thead>
          <tbody>
            {runs.map((run) => (
              <tr key={run.id} data-testid="run-row" data-run-id={run.id} data-status={run.status}>
                <td>
                  <Link href={`/runs/${encodeURIComponent(run.id)}`}>
                    <code>{run.id}</code>
                  </Link>
                </td>
                <td>
                  <span className={`badge badge-${run.status}`}>{run.status}</span>
                </td>
                <td data-testid="run-pipeline">{run.pipeline}</td>
                <td data-testid="run-tags">
                  {run.tags.map((tag) => (
                    <span key={tag} className="tag">
                      {tag}
                    </span>
                  ))}
                </td>
                <td className="muted">{time(run.createdAt)}</td>
                <td className="muted">{run.completedAt ? time(run.completedAt) : '–'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  )
}
