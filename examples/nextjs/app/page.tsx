import Link from 'next/link'
import { connection } from 'next/server'
import { Suspense } from 'react'
import { prisma } from '@/lib/prisma'

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

async function RecentRuns() {
  await connection()
  const runs = await prisma.pipelineRun.findMany({
    orderBy: { createdAt: 'desc' },
    take: RECENT_RUNS,
    select: { id: true, status: true, createdAt: true, completedAt: true },
  })

  return (
    <section className="card">
        {runs.length === 0 ? (
          <p className="muted" style={{ margin: 0 }}>
            No runs yet. Point a runner at this app (see examples/nextjs/README.md) and its run shows up here.
          </p>
        ) : (
          <table className="runs-table">
            <thead>
              <tr>
                <th>Run</th>
                <th>Status</th>
                <th>Started</th>
                <th>Finished</th>
              </tr>
            </thead>
            <tbody>
              {runs.map((run) => (
                <tr key={run.id}>
                  <td>
                    <Link href={`/runs/${encodeURIComponent(run.id)}`}>
                      <code>{run.id}</code>
                    </Link>
                  </td>
                  <td>
                    <span className={`badge badge-${run.status}`}>{run.status}</span>
                  </td>
                  <td className="muted">{run.createdAt.toISOString().replace('T', ' ').slice(0, 19)} UTC</td>
                  <td className="muted">
                    {run.completedAt ? `${run.completedAt.toISOString().replace('T', ' ').slice(0, 19)} UTC` : '–'}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
    </section>
  )
}
