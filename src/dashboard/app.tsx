/**
 * The dashboard's views: sign-in, counts by status, filters, the run list, a run's detail (its
 * stages, outputs and errors, followed live) and the stage-duration chart. Lists, counts and stats
 * are read again every `refreshIntervalMs`; an open run every second with its ETag (a 304 costs
 * nothing). The credential stays in `sessionStorage`, the selected run in the URL's fragment.
 */
import { type FormEvent, useCallback, useEffect, useMemo, useRef, useState } from 'react'
import type { RunStatusResponse, RunSummary, StageStats } from '../index.js'
import { createApi, type DashboardApi, type DashboardConfig, DashboardRequestError, type Filters, storeCredential, storedCredential } from './api.js'
import { between, formatDuration, formatInstant, formatOutput } from './format.js'
import { StatsChart } from './stats-chart.js'

const STATUSES = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const
const RUN_POLL_MS = 1000
const STATS_DAYS = 7

/** The run the URL's fragment names (`#run=<id>`), if any. */
function runFromHash(): string | null {
  const match = /^#run=(.+)$/.exec(window.location.hash)
  if (!match) return null
  try {
    return decodeURIComponent(match[1] as string)
  } catch {
    return null
  }
}

/** Calls `tick` now and every `ms` until unmounted or the deps change; a tick in flight is not repeated. */
function usePolling(tick: () => Promise<void>, ms: number, deps: readonly unknown[]): void {
  useEffect(() => {
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const loop = async () => {
      try {
        await tick()
      } finally {
        if (!stopped) timer = setTimeout(loop, ms)
      }
    }
    void loop()
    return () => {
      stopped = true
      if (timer !== undefined) clearTimeout(timer)
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps)
}

export function App({ config }: { config: DashboardConfig }) {
  const [credential, setCredential] = useState<string | null>(() => storedCredential())
  const credentialRef = useRef(credential)
  credentialRef.current = credential
  const api = useMemo(() => createApi(config, () => credentialRef.current), [config])
  const [needsSignIn, setNeedsSignIn] = useState(false)
  const [runId, setRunId] = useState<string | null>(() => runFromHash())

  useEffect(() => {
    const onHash = () => setRunId(runFromHash())
    window.addEventListener('hashchange', onHash)
    return () => window.removeEventListener('hashchange', onHash)
  }, [])

  /** A 401 (or a 403 without a stored credential) asks the person to sign in. */
  const onError = useCallback((error: unknown): string => {
    if (error instanceof DashboardRequestError && (error.status === 401 || (error.status === 403 && credentialRef.current === null))) setNeedsSignIn(true)
    return error instanceof Error ? error.message : String(error)
  }, [])

  const signIn = (value: string) => {
    storeCredential(value)
    setCredential(value)
    setNeedsSignIn(false)
  }
  const signOut = () => {
    storeCredential(null)
    setCredential(null)
    setNeedsSignIn(true)
  }

  return (
    <div className="ps-app">
      <header className="ps-header">
        <h1>
          <a href="#">{config.title}</a>
        </h1>
        {credential !== null && (
          <button type="button" className="ps-link-button" onClick={signOut}>
            Sign out
          </button>
        )}
      </header>
      <main>
        {needsSignIn ? (
          <SignIn onSignIn={signIn} rejected={credential !== null} />
        ) : runId !== null ? (
          <RunDetail key={`${runId}:${credential ?? ''}`} api={api} runId={runId} onError={onError} />
        ) : (
          <Overview key={credential ?? ''} api={api} config={config} onError={onError} />
        )}
      </main>
    </div>
  )
}

function SignIn({ onSignIn, rejected }: { onSignIn: (value: string) => void; rejected: boolean }) {
  const [value, setValue] = useState('')
  const submit = (event: FormEvent) => {
    event.preventDefault()
    if (value.trim() !== '') onSignIn(value.trim())
  }
  return (
    <form className="ps-card ps-sign-in" onSubmit={submit} aria-labelledby="ps-sign-in-title">
      <h2 id="ps-sign-in-title">Sign in</h2>
      <p>
        This dashboard reads runs with a credential: the webhook secret, or a tag read token (<code>psrt1.…</code>). It is kept in this tab's
        session storage only and sent as a request header.
      </p>
      {rejected && (
        <p className="ps-error" role="alert">
          The server refused the credential. Check it and try again.
        </p>
      )}
      <label htmlFor="ps-credential">Secret or read token</label>
      <input id="ps-credential" type="password" autoComplete="off" autoFocus value={value} onChange={(event) => setValue(event.target.value)} />
      <button type="submit">Sign in</button>
    </form>
  )
}

function Overview({ api, config, onError }: { api: DashboardApi; config: DashboardConfig; onError: (error: unknown) => string }) {
  const [filters, setFilters] = useState<Filters>({ status: '', pipeline: '', tag: '' })
  const [runs, setRuns] = useState<RunSummary[] | null>(null)
  const [more, setMore] = useState<{ runs: RunSummary[]; cursor: string | null }>({ runs: [], cursor: null })
  const [statusCounts, setStatusCounts] = useState<Record<string, number>>({})
  const [pipelines, setPipelines] = useState<string[]>([])
  const [stats, setStats] = useState<StageStats[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [updatedAt, setUpdatedAt] = useState<Date | null>(null)

  usePolling(
    async () => {
      try {
        const [page, counts, byPipeline, stageStats] = await Promise.all([
          api.listRuns(filters),
          api.counts(filters, 'status'),
          api.counts(filters, 'pipeline'),
          api.stats(filters.pipeline, STATS_DAYS),
        ])
        setRuns(page.runs)
        setMore((current) => (current.runs.length === 0 ? { runs: [], cursor: page.nextCursor } : current))
        setStatusCounts(counts)
        setPipelines(Object.keys(byPipeline).sort())
        setStats(stageStats)
        setError(null)
        setUpdatedAt(new Date())
      } catch (caught) {
        setError(onError(caught))
      }
    },
    config.refreshIntervalMs,
    [api, filters],
  )

  const loadMore = async () => {
    if (more.cursor === null) return
    try {
      const page = await api.listRuns(filters, more.cursor)
      setMore((current) => ({ runs: [...current.runs, ...page.runs], cursor: page.nextCursor }))
    } catch (caught) {
      setError(onError(caught))
    }
  }

  const change = (next: Partial<Filters>) => {
    setFilters((current) => ({ ...current, ...next }))
    setMore({ runs: [], cursor: null })
    setRuns(null)
  }
  const total = Object.values(statusCounts).reduce((sum, n) => sum + n, 0)
  const shown = runs === null ? null : [...runs, ...more.runs.filter((run) => !runs.some((r) => r.id === run.id))]

  return (
    <>
      {error !== null && (
        <p className="ps-error" role="alert">
          {error}
        </p>
      )}
      <section aria-labelledby="ps-counts-title" className="ps-card">
        <h2 id="ps-counts-title">Runs by status</h2>
        <ul className="ps-counts">
          <li>
            <button type="button" aria-pressed={filters.status === ''} onClick={() => change({ status: '' })}>
              <span className="ps-count-label">All</span> <span className="ps-count">{total}</span>
            </button>
          </li>
          {STATUSES.map((status) => (
            <li key={status}>
              <button type="button" aria-pressed={filters.status === status} onClick={() => change({ status })} data-status={status}>
                <span className="ps-count-label">{status}</span> <span className="ps-count">{statusCounts[status] ?? 0}</span>
              </button>
            </li>
          ))}
        </ul>
      </section>

      <section aria-labelledby="ps-runs-title" className="ps-card">
        <h2 id="ps-runs-title">Runs</h2>
        <form className="ps-filters" onSubmit={(event) => event.preventDefault()} aria-label="Filters">
          <label>
            Status
            <select value={filters.status} onChange={(event) => change({ status: event.target.value })}>
              <option value="">Any</option>
              {STATUSES.map((status) => (
                <option key={status} value={status}>
                  {status}
                </option>
              ))}
            </select>
          </label>
          <label>
            Pipeline
            <select value={filters.pipeline} onChange={(event) => change({ pipeline: event.target.value })}>
              <option value="">Any</option>
              {[...new Set([...pipelines, ...(filters.pipeline === '' ? [] : [filters.pipeline])])].map((pipeline) => (
                <option key={pipeline} value={pipeline}>
                  {pipeline}
                </option>
              ))}
            </select>
          </label>
          <TagFilter value={filters.tag} onChange={(tag) => change({ tag })} />
        </form>
        {shown === null ? (
          <p className="ps-muted">Loading…</p>
        ) : shown.length === 0 ? (
          <p className="ps-muted">No runs match.</p>
        ) : (
          <ul className="ps-runs" aria-label="Runs, newest first">
            {shown.map((run) => (
              <RunRow key={run.id} run={run} />
            ))}
          </ul>
        )}
        {more.cursor !== null && (
          <button type="button" onClick={() => void loadMore()}>
            Load more
          </button>
        )}
        {updatedAt && <p className="ps-muted ps-small">Updated {updatedAt.toLocaleTimeString()}</p>}
      </section>

      <section aria-labelledby="ps-stats-title" className="ps-card">
        <h2 id="ps-stats-title">Stage durations, last {STATS_DAYS} days</h2>
        {stats === null ? <p className="ps-muted">Loading…</p> : <StatsChart stages={stats} />}
      </section>
    </>
  )
}

/** The tag filter: applied on Enter or when the field is left, not on every key. */
function TagFilter({ value, onChange }: { value: string; onChange: (tag: string) => void }) {
  const [draft, setDraft] = useState(value)
  useEffect(() => setDraft(value), [value])
  return (
    <label>
      Tags
      <input
        type="search"
        value={draft}
        placeholder="tag, another"
        onChange={(event) => setDraft(event.target.value)}
        onBlur={() => draft !== value && onChange(draft)}
        onKeyDown={(event) => {
          if (event.key === 'Enter') {
            event.preventDefault()
            onChange(draft)
          }
        }}
      />
    </label>
  )
}

function StatusBadge({ status }: { status: string }) {
  return (
    <span className="ps-badge" data-status={status}>
      {status}
    </span>
  )
}

function RunRow({ run }: { run: RunSummary }) {
  const done = run.stageCounts['COMPLETED'] ?? 0
  const all = Object.values(run.stageCounts).reduce((sum, n) => sum + n, 0)
  return (
    <li className="ps-run">
      <a className="ps-run-link" href={`#run=${encodeURIComponent(run.id)}`}>
        <span className="ps-run-id">{run.id}</span>
        <StatusBadge status={run.status} />
      </a>
      <span className="ps-run-meta">
        <span>{run.pipeline}</span>
        <span>
          {done}/{all} stages{run.currentStage !== null ? `, stage ${run.currentStage} running` : ''}
        </span>
        <span>{formatInstant(run.createdAt)}</span>
        {run.tags.map((tag) => (
          <span key={tag} className="ps-tag">
            {tag}
          </span>
        ))}
      </span>
      {run.error !== null && <span className="ps-run-error">{run.error}</span>}
    </li>
  )
}

function RunDetail({ api, runId, onError }: { api: DashboardApi; runId: string; onError: (error: unknown) => string }) {
  const [document, setDocument] = useState<RunStatusResponse | null>(null)
  const [error, setError] = useState<string | null>(null)
  const etag = useRef<string | undefined>(undefined)
  const heading = useRef<HTMLHeadingElement>(null)

  useEffect(() => heading.current?.focus(), [])

  usePolling(
    async () => {
      try {
        const answer = await api.status(runId, etag.current)
        if (answer.body !== null) {
          setDocument(answer.body)
          etag.current = answer.etag ?? undefined
        }
        setError(null)
      } catch (caught) {
        setError(onError(caught))
      }
    },
    RUN_POLL_MS,
    [api, runId],
  )

  const catalogue = document?.catalogue ?? []
  const stages = document
    ? [
        ...document.stages,
        ...catalogue
          .filter((entry) => !document.stages.some((stage) => stage.stageNumber === entry.stageNumber))
          .map((entry) => ({ stageNumber: entry.stageNumber, stageName: entry.stageName, status: 'PENDING' as const })),
      ].sort((a, b) => a.stageNumber - b.stageNumber)
    : []

  return (
    <section aria-labelledby="ps-run-title" className="ps-card">
      <p>
        <a href="#">← All runs</a>
      </p>
      <h2 id="ps-run-title" tabIndex={-1} ref={heading} className="ps-run-title">
        {runId}
      </h2>
      {error !== null && (
        <p className="ps-error" role="alert">
          {error}
        </p>
      )}
      {document === null ? (
        error === null && <p className="ps-muted">Loading…</p>
      ) : (
        <>
          <dl className="ps-facts">
            <dt>Status</dt>
            <dd>
              <StatusBadge status={document.run.status} />
            </dd>
            <dt>Pipeline</dt>
            <dd>{document.run.pipeline}</dd>
            <dt>Created</dt>
            <dd>{formatInstant(document.run.createdAt)}</dd>
            <dt>Duration</dt>
            <dd>{formatDuration(between(document.run.startedAt ?? document.run.createdAt, document.run.completedAt))}</dd>
            {document.run.tags.length > 0 && (
              <>
                <dt>Tags</dt>
                <dd>
                  {document.run.tags.map((tag) => (
                    <span key={tag} className="ps-tag">
                      {tag}
                    </span>
                  ))}
                </dd>
              </>
            )}
          </dl>
          {document.run.error !== null && (
            <div className="ps-run-error-block">
              <h3>Error</h3>
              <pre className="ps-output">{document.run.error}</pre>
            </div>
          )}
          <h3>Stages</h3>
          <ol className="ps-stages" aria-live="polite">
            {stages.map((stage) => (
              <li key={stage.stageNumber} className="ps-stage" data-status={stage.status}>
                <div className="ps-stage-head">
                  <span className="ps-stage-name">
                    {stage.stageNumber}. {stage.stageName}
                  </span>
                  <StatusBadge status={stage.status} />
                  {'startedAt' in stage && <span className="ps-muted">{formatDuration(between(stage.startedAt, stage.completedAt))}</span>}
                </div>
                {'progress' in stage && stage.progress?.message && <p className="ps-progress">{stage.progress.message}</p>}
                {'lastError' in stage && stage.lastError && (
                  <p className="ps-run-error">
                    Attempt {(stage.attempt ?? 2) - 1} failed: {stage.lastError}
                  </p>
                )}
                {'output' in stage && stage.output !== null && stage.output !== '' && <Output output={stage.output} />}
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  )
}

/** A stage output as text (JSON pretty-printed); Markdown rendering comes with the shared components. */
function Output({ output }: { output: string }) {
  const formatted = formatOutput(output)
  return (
    <details className="ps-output-block" open={output.length < 2000}>
      <summary>Output{formatted.kind === 'json' ? ' (JSON)' : ''}</summary>
      <pre className="ps-output">{formatted.text}</pre>
    </details>
  )
}
