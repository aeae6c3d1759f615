/**
 * The dashboard's views: sign-in, counts by status, the run list (the package's `RunList`, its data
 * form fed by `useRuns`: the set stream's summary view, no polling), a run's
 * detail (the package's `RunTimeline`, fed by `useRunStatus`: the run's stream, streamed output
 * growing) and the stage-duration chart. The counts are read again after each change of the live
 * list (at most once a second) and, with the chart, every `refreshIntervalMs` as a backstop for
 * runs outside the list's window. The credential stays in `sessionStorage`, the selected run in
 * the URL's fragment.
 */
import { type FormEvent, type MouseEvent, type ReactNode, useCallback, useEffect, useMemo, useRef, useState } from 'react'
import type { RunSummary, StageStats } from '../index.js'
import { RunList, type RunListFilters, runListQuery, RunTimeline, useAppliedFilters, useRunStatus, useRuns } from '../react/index.js'
import { createApi, type DashboardApi, type DashboardConfig, DashboardRequestError, liveConnection, storeCredential, storedCredential } from './api.js'
import { StatsChart } from './stats-chart.js'

const STATUSES = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const
const STATS_DAYS = 7
/** The newest runs the live list follows (the set stream's window). */
const LIST_LIMIT = 50
/** The counts are read again at most this often while the live list changes. */
const COUNTS_AFTER_CHANGE_MS = 1000
/**
 * A change of the tag text alone opens a new stream once typing pauses this long; any other change
 * (an emptied tag field, "Clear filters") at once (`useAppliedFilters`, the rule RunList's live
 * form follows too).
 */
const TAG_SETTLE_MS = 400

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

/** Whether a failure asks the person to sign in: a 401, or a 403 while no credential is stored. */
function refused(error: unknown, credential: string | null): boolean {
  const status = (error as { status?: unknown } | undefined)?.status
  return status === 401 || (status === 403 && credential === null)
}

export function App({ config }: { config: DashboardConfig }) {
  const [credential, setCredential] = useState<string | null>(() => storedCredential())
  const credentialRef = useRef(credential)
  credentialRef.current = credential
  const api = useMemo(() => createApi(config, () => credentialRef.current), [config])
  const connection = useMemo(() => liveConnection(config, credential), [config, credential])
  const [needsSignIn, setNeedsSignIn] = useState(false)
  const [runId, setRunId] = useState<string | null>(() => runFromHash())
  // A run opened from the page (not the URL it was loaded with) takes the keyboard's focus.
  const navigated = useRef(false)
  // Where the keyboard's focus goes when the list shows again: the link of the run just left (or
  // the list's heading); after signing in, the first heading. Never left on <body>.
  const [listFocus, setListFocus] = useState<ListFocus | null>(null)
  const shownRun = useRef(runId)

  // Follows the URL: a run's link (a fragment), Back and Forward, and the links to the list.
  const followUrl = useCallback(() => {
    navigated.current = true
    const next = runFromHash()
    if (next === null && shownRun.current !== null) setListFocus({ runId: shownRun.current })
    shownRun.current = next
    setRunId(next)
  }, [])
  useEffect(() => {
    // Traversing to an entry pushed by a ListLink may fire popstate alone; following twice is harmless.
    window.addEventListener('hashchange', followUrl)
    window.addEventListener('popstate', followUrl)
    return () => {
      window.removeEventListener('hashchange', followUrl)
      window.removeEventListener('popstate', followUrl)
    }
  }, [followUrl])

  /** A refusal asks the person to sign in; returns the message to show otherwise. */
  const onError = useCallback((error: unknown): string => {
    if (refused(error, credentialRef.current)) setNeedsSignIn(true)
    return error instanceof Error ? error.message : String(error)
  }, [])

  const signIn = (value: string) => {
    storeCredential(value)
    setCredential(value)
    setNeedsSignIn(false)
    setListFocus({ runId: null })
  }
  const signOut = () => {
    storeCredential(null)
    setCredential(null)
    setNeedsSignIn(true)
  }

  return (
    <div className="psd-app">
      <header className="psd-header">
        <h1>
          <ListLink onNavigate={followUrl}>{config.title}</ListLink>
        </h1>
        {credential !== null && !needsSignIn && (
          <button type="button" className="psd-link-button" onClick={signOut}>
            Sign out
          </button>
        )}
      </header>
      <main>
        {needsSignIn ? (
          <SignIn onSignIn={signIn} rejected={credential !== null} />
        ) : runId !== null ? (
          <RunDetail key={`${runId}:${credential ?? ''}`} connection={connection} runId={runId} onError={onError} takeFocus={navigated.current} onList={followUrl} />
        ) : (
          <Overview key={credential ?? ''} api={api} connection={connection} config={config} onError={onError} focus={listFocus} />
        )}
      </main>
    </div>
  )
}

/** The page's URL without its fragment: the list's own. */
function listUrl(): string {
  return window.location.pathname + window.location.search
}

/**
 * A link to the list at the list's own URL, not `#` (which left the URL ending in `#`). A plain
 * click stays on the page: a new history entry, so Back returns to the run, then `onNavigate`
 * shows the list; on the list it goes to the top, as `#` did. A click with a modifier (a new tab)
 * is the browser's.
 */
function ListLink({ onNavigate, children }: { onNavigate: () => void; children: ReactNode }) {
  const click = (event: MouseEvent<HTMLAnchorElement>) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
    event.preventDefault()
    if (window.location.hash === '') {
      window.scrollTo(0, 0)
      return
    }
    window.history.pushState(null, '', listUrl())
    onNavigate()
  }
  return (
    <a href={listUrl()} onClick={click}>
      {children}
    </a>
  )
}

function SignIn({ onSignIn, rejected }: { onSignIn: (value: string) => void; rejected: boolean }) {
  const [value, setValue] = useState('')
  const submit = (event: FormEvent) => {
    event.preventDefault()
    if (value.trim() !== '') onSignIn(value.trim())
  }
  return (
    <form className="ps-card psd-sign-in" onSubmit={submit} aria-labelledby="psd-sign-in-title">
      <h2 id="psd-sign-in-title">Sign in</h2>
      <p>
        This dashboard reads runs with a credential: the webhook secret, or a tag read token (<code>psrt1.…</code>). It is kept in this tab's
        session storage only and sent as a request header.
      </p>
      {rejected && (
        <p className="psd-error" role="alert">
          The server refused the credential. Check it and try again.
        </p>
      )}
      <label htmlFor="psd-credential">Secret or read token</label>
      <input id="psd-credential" type="password" autoComplete="off" autoFocus value={value} onChange={(event) => setValue(event.target.value)} />
      <button type="submit">Sign in</button>
    </form>
  )
}

type Connection = ReturnType<typeof liveConnection>

/** Where the list puts the keyboard's focus once it shows: the link of run `runId` when listed, else the runs' heading (`runId` null: the first heading). */
interface ListFocus {
  runId: string | null
}

function Overview({
  api,
  connection,
  config,
  onError,
  focus,
}: {
  api: DashboardApi
  connection: Connection
  config: DashboardConfig
  onError: (error: unknown) => string
  focus: ListFocus | null
}) {
  // What the form shows, and what the list, its stream and the counts follow: the same, but for
  // the tag text while it is being typed. The rows go by `applied` too (RunList's `appliedFilters`),
  // so typing filters neither the stream nor the rows by each prefix.
  const [filters, setFilters] = useState<RunListFilters>({})
  const applied = useAppliedFilters(filters, TAG_SETTLE_MS)
  const days = runListQuery({ createdFrom: applied.createdFrom, createdTo: applied.createdTo })
  // The runs shown so far seed the next stream, so a filter change does not blank the list
  // (RunList applies the filters to them at once; the new set replaces them when it is ready).
  const shownRef = useRef<readonly RunSummary[] | undefined>(undefined)
  const live = useRuns({
    ...connection,
    status: applied.status,
    pipeline: applied.pipeline,
    tag: applied.tag,
    createdAfter: days.get('createdAfter') ?? undefined,
    createdBefore: days.get('createdBefore') ?? undefined,
    limit: LIST_LIMIT,
    initial: shownRef.current,
  })
  const ready = live.state === 'live' || live.state === 'closed' || shownRef.current !== undefined
  if (live.state === 'live') shownRef.current = live.runs

  const [statusCounts, setStatusCounts] = useState<Record<string, number> | null>(null)
  const [pipelines, setPipelines] = useState<string[]>([])
  const [stats, setStats] = useState<StageStats[] | null>(null)
  const [error, setError] = useState<string | null>(null)

  useEffect(() => {
    if (live.state === 'error') setError(onError(live.error))
    else if (live.state === 'live') setError(null)
  }, [live.state, live.error, onError])

  // Counts: after each change of the live list (at most once a second, the last change always
  // read), on a filter change, and every refreshIntervalMs for runs outside the list's window.
  // A read in flight is kept when only the list changed, dropped when the filters changed.
  const countsKey = runListQuery({ ...applied, status: undefined }).toString()
  const currentCountsKey = useRef(countsKey)
  currentCountsKey.current = countsKey
  const lastCounts = useRef(0)
  useEffect(() => {
    const read = async () => {
      lastCounts.current = Date.now()
      try {
        const [counts, byPipeline] = await Promise.all([api.counts(applied, 'status'), api.counts({}, 'pipeline')])
        if (currentCountsKey.current !== countsKey) return
        setStatusCounts(counts)
        setPipelines(Object.keys(byPipeline).sort())
      } catch (caught) {
        setError(onError(caught))
      }
    }
    const wait = Math.max(0, lastCounts.current + COUNTS_AFTER_CHANGE_MS - Date.now())
    const soon = setTimeout(() => void read(), wait)
    const backstop = setInterval(() => void read(), config.refreshIntervalMs)
    return () => {
      clearTimeout(soon)
      clearInterval(backstop)
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, countsKey, live.runs, config.refreshIntervalMs])

  // The chart: on a pipeline change and every refreshIntervalMs (stage durations move slowly).
  useEffect(() => {
    let stopped = false
    const read = async () => {
      try {
        const stages = await api.stats(filters.pipeline, STATS_DAYS)
        if (!stopped) setStats(stages)
      } catch (caught) {
        if (!stopped) setError(onError(caught))
      }
    }
    void read()
    const timer = setInterval(() => void read(), config.refreshIntervalMs)
    return () => {
      stopped = true
      clearInterval(timer)
    }
  }, [api, filters.pipeline, config.refreshIntervalMs, onError])

  // The focus asked for, once (each request is a new object): the run's link as soon as the
  // list shows it; once the list is live without it, the runs' heading.
  const root = useRef<HTMLDivElement>(null)
  const focusDone = useRef<ListFocus | null>(null)
  useEffect(() => {
    if (focus === null || focusDone.current === focus || root.current === null) return
    const at = root.current
    const heading = (id: string) => at.querySelector<HTMLElement>(`#${id}`)
    let target: HTMLElement | null = null
    if (focus.runId === null) target = heading('psd-counts-title')
    else {
      target = at.querySelector<HTMLElement>(`a[href="#run=${CSS.escape(encodeURIComponent(focus.runId))}"]`)
      if (target === null && live.state === 'live') target = heading('psd-runs-title')
    }
    if (target === null) return
    focusDone.current = focus
    if (target.tagName === 'H2') target.tabIndex = -1
    target.focus()
  }, [focus, live.state, live.runs, ready])

  const total = statusCounts === null ? null : Object.values(statusCounts).reduce((sum, n) => sum + n, 0)
  const count = (n: number | null | undefined) => (statusCounts === null ? '…' : String(n ?? 0))
  const change = (next: RunListFilters) => setFilters(next)

  return (
    <div ref={root}>
      {error !== null && (
        <p className="psd-error" role="alert">
          {error}
        </p>
      )}
      <section aria-labelledby="psd-counts-title" className="ps-card psd-section">
        <h2 id="psd-counts-title">Runs by status</h2>
        <ul className="psd-counts">
          <li>
            <button type="button" aria-pressed={filters.status === undefined} onClick={() => change({ ...filters, status: undefined })}>
              <span>All</span> <span className="psd-count">{count(total)}</span>
            </button>
          </li>
          {STATUSES.map((status) => (
            <li key={status}>
              <button type="button" aria-pressed={filters.status === status} onClick={() => change({ ...filters, status })} data-status={status}>
                <span>{status}</span> <span className="psd-count">{count(statusCounts?.[status])}</span>
              </button>
            </li>
          ))}
        </ul>
      </section>

      <section aria-labelledby="psd-runs-title" className="ps-card psd-section">
        <h2 id="psd-runs-title">Runs</h2>
        {live.state === 'reconnecting' && (
          <p className="psd-muted" role="status">
            The live connection dropped. Reconnecting…
          </p>
        )}
        {ready ? (
          <RunList
            runs={live.runs}
            filters={filters}
            appliedFilters={applied}
            onFilterChange={change}
            pipelines={pipelines}
            caption={`Newest ${LIST_LIMIT} runs${live.state === 'live' ? ', live' : ''}`}
            renderLink={({ run, children, className }) => (
              <a className={className} href={`#run=${encodeURIComponent(run.id)}`}>
                {children}
              </a>
            )}
          />
        ) : (
          live.state !== 'error' && <p className="psd-muted">Loading…</p>
        )}
        <p className="psd-muted psd-small" data-testid="list-state" data-state={live.state}>
          {live.state === 'live' ? 'Live: runs appear and change as they are stored.' : live.state === 'connecting' ? 'Connecting…' : null}
        </p>
      </section>

      <section aria-labelledby="psd-stats-title" className="ps-card psd-section">
        <h2 id="psd-stats-title">Stage durations, last {STATS_DAYS} days</h2>
        {stats === null ? <p className="psd-muted">Loading…</p> : <StatsChart stages={stats} />}
      </section>
    </div>
  )
}

function RunDetail({
  connection,
  runId,
  onError,
  takeFocus,
  onList,
}: {
  connection: Connection
  runId: string
  onError: (error: unknown) => string
  takeFocus: boolean
  onList: () => void
}) {
  const live = useRunStatus(runId, connection)
  const holder = useRef<HTMLDivElement>(null)
  const focused = useRef(false)
  const loaded = live.run !== undefined
  const failed = live.state === 'error' && !loaded

  // Once the run shows, the keyboard's focus moves to it (the timeline's section, named by its run).
  useEffect(() => {
    if (!takeFocus || !loaded || focused.current) return
    focused.current = true
    const section = holder.current?.querySelector<HTMLElement>('[data-testid="run-view"]')
    if (section) {
      section.tabIndex = -1
      section.focus()
    }
  }, [loaded, takeFocus])

  useEffect(() => {
    if (failed) onError(live.error)
  }, [failed, live.error, onError])

  return (
    <div className="psd-detail" ref={holder}>
      <p>
        <ListLink onNavigate={onList}>← All runs</ListLink>
      </p>
      {live.run !== undefined ? (
        <RunTimeline
          status={{ run: live.run, stages: live.stages }}
          catalogue={live.catalogue}
          connection={live.state}
          connectionError={live.error}
          headingLevel={2}
        />
      ) : failed ? (
        <p className="psd-error" role="alert">
          Cannot show the run {runId}: {live.error?.message ?? 'the connection failed'}
        </p>
      ) : (
        <p className="psd-muted" role="status">
          Loading the run…
        </p>
      )}
    </div>
  )
}
