/**
 * The page test/react/components.test.ts opens in Chromium: RunTimeline and RunList as an app
 * mounts them, live against the real handlers. Bundled with esbuild by the test. Query: `run`
 * (a run to follow), `list=1` (the list), `secret` (sent as X-Webhook-Secret: a test page only;
 * a real page uses a read token or the app's session), `list=data` (the list's data form, its
 * filters controlled and its runs read by the page's own `useRuns` with `useAppliedFilters`, as
 * docs/components.md shows), `fixture=runs` (the list's data form with
 * fixed runs and clock, inside the Next.js example's layout, for the layout test), `fixture=long-text`
 * (the timeline's data form: a running run whose runner sent long unbroken text).
 */
import { StrictMode, useRef, useState } from 'react'
import { createRoot } from 'react-dom/client'
import type { RunSummary } from '../../src/contract/run-list.js'
import type { RunStatusResponse, StageOutputRecord } from '../../src/contract/records.js'
import { RunList, type RunListFilters, runListQuery, RunTimeline, useAppliedFilters, useRuns } from '../../src/react/index.js'

const params = new URLSearchParams(location.search)
const secret = params.get('secret') ?? ''
const headers = { 'X-Webhook-Secret': secret }
const runId = params.get('run')

const NOW = Date.parse('2026-12-07T14:05:00Z')
const counts = (counts: Partial<RunSummary['stageCounts']>): RunSummary['stageCounts'] => ({ PENDING: 0, PROCESSING: 0, COMPLETED: 0, FAILED: 0, CANCELLED: 0, ...counts })
const summary = (run: Partial<RunSummary> & Pick<RunSummary, 'id' | 'status'>): RunSummary => ({
  pipeline: 'report',
  tags: [],
  metadata: {},
  createdAt: '2026-12-07T14:00:00Z',
  startedAt: null,
  completedAt: null,
  error: null,
  version: 1,
  currentStage: null,
  stageCounts: counts({ PENDING: 5 }),
  ...run,
})

/** Runs as a real app lists them: long generated ids, one not started, one running, finished ones. */
const FIXTURE_RUNS: readonly RunSummary[] = [
  summary({ id: 'report-2026-12-07-8f3a9c1e-4b2d-4e1f-9a7c-3d5e6f7a8b9c', status: 'PENDING', tags: ['nightly'], createdAt: '2026-12-07T14:04:10Z' }),
  summary({
    id: 'report-2026-12-07-2c7d41b0-9e3f-4a6b-8d1c-5f0e2a7b6c3d',
    status: 'PROCESSING',
    tags: ['nightly', 'eu-west'],
    createdAt: '2026-12-07T14:02:00Z',
    startedAt: '2026-12-07T14:02:03Z',
    currentStage: 2,
    stageCounts: counts({ COMPLETED: 1, PROCESSING: 1, PENDING: 3 }),
  }),
  summary({
    id: 'report-2026-12-07-a91e0f57-3c2b-4d8e-b6f1-7e4d9c2a0b15',
    status: 'COMPLETED',
    // Longer than --ps-word-max: it wraps (at its hyphens) in the table's chip, fits a phone's card on one line.
    tags: ['nightly', 'customer-onboarding-eu'],
    createdAt: '2026-12-07T13:40:00Z',
    startedAt: '2026-12-07T13:40:02Z',
    completedAt: '2026-12-07T13:52:45Z',
    stageCounts: counts({ COMPLETED: 5 }),
  }),
  summary({
    id: 'report-2026-12-06-5b8c2e91-0d4f-4c7a-9e3b-1a6f8d2c4e70',
    status: 'FAILED',
    pipeline: 'summarise-contracts',
    // Ordinary words, under --ps-word-max (8em) as text but not with the chip's padding: never cut.
    tags: ['infrastructure', 'reconciliation'],
    createdAt: '2026-12-06T22:10:00Z',
    startedAt: '2026-12-06T22:10:01Z',
    completedAt: '2026-12-06T22:11:30Z',
    // Longer than the row's three lines: clamped there, with an ellipsis and the whole error in its title.
    error:
      'Stage 2 (Summarise) failed: model timed out after 120 s on batch 38 of 40 (3 attempts)\n  TimeoutError: no answer from the model in 120 s\n  at summarise (runner.ts:42)\n  at runStage (pipeline.ts:118)',
    stageCounts: counts({ COMPLETED: 1, FAILED: 1, PENDING: 3 }),
  }),
  summary({ id: 'done-1', status: 'COMPLETED', createdAt: '2026-12-06T09:00:00Z', startedAt: '2026-12-06T09:00:01Z', completedAt: '2026-12-06T09:00:05Z', stageCounts: counts({ COMPLETED: 5 }) }),
]

/** Runner text as long as allowed and without a space: it must wrap inside its card, never widen the page. */
const LONG_PROGRESS = 'M'.repeat(400)
const LONG_LAST_ERROR = 'E'.repeat(600)
const LONG_STAGE_NAME = 'S'.repeat(200)
const at = (minute: number) => `2026-12-07T14:0${minute}:00Z`
const stageRecord = (stage: Partial<StageOutputRecord> & Pick<StageOutputRecord, 'stageNumber' | 'stageName' | 'status'>): StageOutputRecord => ({
  output: null,
  completedAt: null,
  progress: null,
  createdAt: at(1),
  updatedAt: at(4),
  startedAt: at(1),
  attempt: null,
  maxAttempts: null,
  lastError: null,
  nextRetryAt: null,
  outputSeq: null,
  ...stage,
})
/** A running run whose runner sent long unbroken text: a progress message, a last error, a stage name, an output. */
const LONG_TEXT_RUN: RunStatusResponse = {
  run: {
    id: 'long-text-run',
    status: 'PROCESSING',
    error: null,
    completedAt: null,
    completionReceivedAt: null,
    createdAt: at(0),
    updatedAt: at(4),
    lastActivityAt: at(4),
    heartbeatIntervalMs: null,
    pipeline: 'report',
    tags: [],
    metadata: {},
    startedAt: at(1),
  },
  stages: [
    stageRecord({ stageNumber: 1, stageName: 'Fetch', status: 'COMPLETED', completedAt: at(2), output: 'O'.repeat(400) }),
    stageRecord({
      stageNumber: 2,
      stageName: LONG_STAGE_NAME,
      status: 'PROCESSING',
      startedAt: at(2),
      progress: { seq: 3, current: 37, total: 40, message: LONG_PROGRESS },
      attempt: 2,
      maxAttempts: 3,
      lastError: LONG_LAST_ERROR,
    }),
  ],
  catalogue: [
    { stageNumber: 1, stageName: 'Fetch' },
    { stageNumber: 2, stageName: LONG_STAGE_NAME },
    { stageNumber: 3, stageName: 'Publish' },
  ],
}

/**
 * The data form as an app uses it with runs it reads itself: the filters controlled, the runs read
 * with the filters `useAppliedFilters` gives (a typed tag once typing pauses, 300 ms) and given
 * with them as `appliedFilters`; the runs shown so far seed the next stream.
 */
function DataList() {
  const [filters, setFilters] = useState<RunListFilters>({})
  const applied = useAppliedFilters(filters)
  const days = runListQuery(applied)
  const shown = useRef<readonly RunSummary[] | undefined>(undefined)
  const { runs, state } = useRuns({
    url: '/api/pipeline',
    headers,
    status: applied.status,
    pipeline: applied.pipeline,
    tag: applied.tag,
    createdAfter: days.get('createdAfter') ?? undefined,
    createdBefore: days.get('createdBefore') ?? undefined,
    initial: shown.current,
  })
  shown.current = runs
  return (
    <section aria-label="Runs" className="page-list" data-testid="data-list" data-state={state}>
      <RunList runs={runs} filters={filters} appliedFilters={applied} onFilterChange={setFilters} />
    </section>
  )
}

function App() {
  if (params.get('fixture') === 'long-text') {
    return (
      <main className="page">
        <h1 className="page-title">Pipeline components</h1>
        <RunTimeline status={LONG_TEXT_RUN} now={NOW} renderedAt={NOW} />
      </main>
    )
  }
  if (params.get('fixture') === 'runs') {
    // The Next.js example's home page: its layout (examples/nextjs/app/layout.tsx, globals.css), a list with links.
    return (
      <>
        <header className="site-header">
          <a href="/" className="brand">
            Pipeline status
          </a>
          <span className="tagline">pipeline-status-sdk · Next.js example</span>
        </header>
        <main className="container">
          <h1 style={{ marginBottom: 16 }}>Recent runs</h1>
          <RunList runs={FIXTURE_RUNS} now={NOW} renderedAt={NOW} runHref="/runs/{runId}" caption="Recent runs, newest first" />
        </main>
      </>
    )
  }
  return (
    <main className="page">
      <h1 className="page-title">Pipeline components</h1>
      {runId ? <RunTimeline runId={runId} url="/api/pipeline" options={{ headers }} /> : null}
      {params.get('list') === 'data' ? (
        <DataList />
      ) : params.get('list') ? (
        <section aria-label="Runs" className="page-list">
          <RunList
            url="/api/pipeline"
            headers={headers}
            renderLink={({ run, children, className }) => (
              <a className={className} href={`?run=${encodeURIComponent(run.id)}&secret=${encodeURIComponent(secret)}`}>
                {children}
              </a>
            )}
          />
        </section>
      ) : null}
    </main>
  )
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
)
