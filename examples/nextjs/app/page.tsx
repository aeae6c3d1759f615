import { connection } from 'next/server'
import { Suspense } from 'react'
import { DEFAULT_BASE_PATH } from 'pipeline-status-sdk'
import { listRecentRuns } from '@/lib/list-runs'
import { filtersFromQuery, queryOf } from '@/lib/run-list-url'
import { RunListInUrl } from './run-list-in-url'

const RECENT_RUNS = 20

interface HomePageProps {
  /** The list's filters (lib/run-list-url.ts): `/?status=FAILED&tag=nightly`. */
  searchParams: Promise<Record<string, string | string[] | undefined>>
}

// The heading is prerendered; the list is read at request time (`connection()` says so, under
// `cacheComponents`, in place of the old `dynamic = 'force-dynamic'`), with the URL's filters,
// which are read inside <Suspense> too.
export default function HomePage({ searchParams }: HomePageProps) {
  return (
    <>
      <h1 style={{ marginBottom: 16 }}>Recent runs</h1>
      <Suspense fallback={<section className="card muted">Loading runs…</section>}>
        <RecentRuns searchParams={searchParams} />
      </Suspense>
    </>
  )
}

/**
 * The newest runs matching the URL's filters through GET /api/pipeline/runs (lib/list-runs.ts),
 * rendered on the server, then live in the browser: the package's RunList follows the same newest
 * runs with useRuns on one connection (the set stream `GET /api/pipeline/events?limit=20&view=summary`
 * and the filters), and keeps the filters a visitor picks in the URL (app/run-list-in-url.tsx).
 */
async function RecentRuns({ searchParams }: HomePageProps) {
  await connection()
  const filters = filtersFromQuery(queryOf(await searchParams))
  const listed = await listRecentRuns(RECENT_RUNS, filters)
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
    // RunListInUrl is a client component around the package's RunList: the server renders
    // `initialRuns` into the first HTML; the browser then follows the newest runs matching the
    // filters a visitor picks. The page reads with the app's own rule for lists
    // (lib/pipeline-routes.ts, `authorize` with action 'list'), so no token is handed out here.
    // `runHref` is a string: a function (`renderLink`) cannot cross into a client component.
    <RunListInUrl
      url={DEFAULT_BASE_PATH}
      limit={RECENT_RUNS}
      initialRuns={listed.page.runs}
      runHref="/runs/{runId}"
      renderedAt={Date.now()}
      caption="Recent runs, newest first"
    />
  )
}
