/**
 * `RunList`: a filterable list of runs (docs/components.md). Ids, tags, pipelines and errors are
 * runner or app data, rendered as React text only.
 */
import { Fragment, type ReactNode, useEffect, useId, useMemo, useRef, useState } from 'react'
import { dayStart, type RunListFilters, runListFilter, runListQuery } from '../contract/run-filter.js'
import type { RunSummary } from '../contract/run-list.js'
import { isFinalStatus, RunStatus } from '../contract/status.js'
import { useRuns } from './runs.js'
import { cx, StatusBadge } from './run-timeline.js'
import { elapsedMs, formatDateTime, formatDuration, formatTook } from './stage-timing.js'
import { useNow } from './use-now.js'
import { useSettled } from './use-settled.js'
import { showBidiControls } from './bidi.js'

// Moved to the contract (pure, callable from a server component); re-exported here for compatibility.
export { type RunListFilters, runListQuery }

/** The parts of a {@link RunList} an app may add its own class to (besides the `ps-…` classes). */
export type RunListSlot = 'root' | 'filters' | 'table' | 'row'

/** What {@link RunListDisplayProps.renderLink} receives. */
export interface RunLinkProps {
  /** The run the link leads to. */
  run: RunSummary
  /** The link's content (the run's id, as text). */
  children: ReactNode
  /** The class to give the link: `ps-run-link`. */
  className: string
}

/** Props of {@link RunList} shared by its two forms. */
export interface RunListDisplayProps {
  /**
   * The filters shown. Given, the list is controlled: a change calls `onFilterChange` and shows
   * only when the app passes the new filters back.
   * @default the list keeps its own, starting from `defaultFilters`
   */
  filters?: RunListFilters | undefined
  /** The filters an uncontrolled list starts with. @default none: every run */
  defaultFilters?: RunListFilters | undefined
  /** Called with the new filters when a person changes one. */
  onFilterChange?: ((filters: RunListFilters) => void) | undefined
  /**
   * The pipelines the pipeline filter offers.
   * @default the pipelines of the runs shown (and the one filtered on)
   */
  pipelines?: readonly string[] | undefined
  /**
   * Renders the link to a run (the app's router link, `<a>`, …). Its `children` are the run's id as text.
   * @default the id as text, without a link
   */
  renderLink?: ((props: RunLinkProps) => ReactNode) | undefined
  /**
   * A plain `<a href>` to each run from a template: `{runId}` becomes the URL-encoded id, e.g.
   * `/runs/{runId}`. A string, so a Next.js server component can pass it (a `renderLink` function
   * cannot cross into a client component). `renderLink` wins when both are given.
   * @default no link (unless `renderLink`)
   */
  runHref?: string | undefined
  /**
   * The time the durations of running runs are measured to (epoch ms); given, they do not tick.
   * @default the browser's clock, re-read each second while a run shown is running
   */
  now?: number | undefined
  /** The server's time when it rendered the page (epoch ms), what the durations read before hydration. @default the newest run's `createdAt` */
  renderedAt?: number | undefined
  /** The table's caption (read by screen readers, shown). @default 'Pipeline runs' */
  caption?: ReactNode | undefined
  /** Extra classes per part, for apps that restyle it. */
  classNames?: Partial<Record<RunListSlot, string>> | undefined
}

/** Props of the data form of {@link RunList}: the runs as the app already has them. */
export interface RunListDataProps extends RunListDisplayProps {
  /**
   * The runs (`GET {base}/runs`, `useRuns`); the filters (`appliedFilters` when given, else those
   * shown) also apply to them here, so a run that stops matching leaves the list.
   */
  runs: readonly RunSummary[]
  /**
   * The filters the given `runs` were read with, when not those the form shows: the rows are
   * filtered by these, while the form shows `filters` (or its own). For an app that reads the runs
   * itself and follows a typed tag only once typing pauses ({@link useAppliedFilters}), as the live
   * form does: while a person types, the rows stay those of the last applied tag instead of being
   * filtered by each prefix typed (which names no run's tag: the rows would vanish, then come back).
   * @default the filters the form shows
   */
  appliedFilters?: RunListFilters | undefined
  /** Not for the data form: the live form's base path. Given with `runs`, a type error instead of ignored. */
  url?: never
  /** Not for the data form (the live form's stream reads the runs; here the app does). A type error with `runs`. */
  tagDelayMs?: never
  /** Not for the data form (the live form's first runs; here `runs` are). A type error with `runs`. */
  initialRuns?: never
  /** Not for the data form (the live form's list length). A type error with `runs`. */
  limit?: never
}

/** Props of the live form of {@link RunList}: it follows the runs itself with `useRuns`. */
export interface RunListLiveProps extends RunListDisplayProps {
  /** Not for the live form: its rows are the runs it reads. Given, this is the data form. */
  runs?: undefined
  /** Not for the live form (it applies a typed tag itself after `tagDelayMs`). A type error without `runs`. */
  appliedFilters?: never
  /** The routes' base path; the list follows the set stream `{url}/events` (summary view). @default '/api/pipeline' */
  url?: string | undefined
  /** Sent as `Authorization: Bearer <token>` (a tag read token, or what the app's `authorize` accepts). @default none (same-origin cookies go along) */
  token?: string | undefined
  /** More request headers. @default none */
  headers?: Record<string, string> | undefined
  /** fetch's `credentials` mode: `include` sends the app's cookies to another origin too. @default fetch's own (`same-origin`) */
  credentials?: RequestCredentials | undefined
  /**
   * The runs as the server already read them (`GET {base}/runs` with the starting filters and
   * `limit`), rendered first (also in server-side rendering) until the stream has sent its set.
   * @default none: the list reads "loading…" until then
   */
  initialRuns?: readonly RunSummary[] | undefined
  /** How many of the newest matching runs are listed, 1–200. @default 50 */
  limit?: number | undefined
  /**
   * How long typing in the tag field must pause (ms) before the list follows the new tag (a new
   * stream); the field shows each key at once. 0 follows every key.
   * @default 300
   */
  tagDelayMs?: number | undefined
}

/** Props of {@link RunList}: `runs` to show runs the app holds, or none of it to have the list read them. */
export type RunListProps = RunListDataProps | RunListLiveProps

/**
 * A filterable list of runs: a filter form (pipeline, status, tag, created from/to), then a table
 * of runs with a status badge, the current stage, tags, creation time and duration, each id a link
 * the app renders. Where the list is narrower than 64em (its own width, a container query) the rows
 * become cards, in two columns from 42em; a browser without container queries goes by the
 * viewport's width instead and logs that once (docs/components.md). With `runs` it shows what it is given (filtered by the same rules,
 * by `appliedFilters` when the app gives the filters its runs were read with); without, it
 * follows the newest `limit` runs matching the filters on one connection (`useRuns`, the set stream
 * `{url}/events`): a run created or starting to match joins, a run that changes is redrawn, a run
 * that stops matching leaves. A filter change opens a new stream; the runs already shown that still
 * match stay until its set is in. Typing in the tag field opens one stream once typing pauses
 * (`tagDelayMs`, 300 ms by default), not one per key: the field shows each key at once, the rows
 * and the stream follow the tag after the pause. A pipeline, status or date change and "Clear
 * filters" (an emptied tag field too) apply at once, a tag typed just before with them.
 *
 * @example
 * ```tsx
 * 'use client'
 * import { RunList } from 'pipeline-status-sdk/react'
 *
 * export function Runs() {
 *   return <RunList url="/api/pipeline" renderLink={({ run, children, className }) => <a className={className} href={`/runs/${encodeURIComponent(run.id)}`}>{children}</a>} />
 * }
 * ```
 */
export function RunList(props: RunListProps): ReactNode {
  return props.runs !== undefined ? <RunListView {...props} /> : <LiveRunList {...props} />
}

function LiveRunList({ url, token, headers, credentials, initialRuns, limit, tagDelayMs, ...display }: RunListLiveProps): ReactNode {
  const [own, setOwn] = useState<RunListFilters>(display.defaultFilters ?? {})
  const filters = display.filters ?? own
  // `tagDelayMs` undefined: the hook's default, the 300 ms `tagDelayMs` documents.
  const applied = useAppliedFilters(filters, tagDelayMs)
  const filter = runListFilter(applied)
  const key = JSON.stringify(filter)
  // `initialRuns` were read with the starting filters; after a change the runs already shown
  // carry over (the view filters them again) until the new stream's set is in.
  const firstKey = useRef(key)
  const shownRuns = useRef<readonly RunSummary[] | undefined>(initialRuns)
  const fromServer = initialRuns !== undefined && key === firstKey.current
  const live = useRuns({ ...filter, limit, url, token, headers, credentials, initial: fromServer ? initialRuns : shownRuns.current })
  shownRuns.current = live.runs
  return (
    <RunListView
      {...display}
      filters={filters}
      appliedFilters={applied}
      onFilterChange={(next) => {
        setOwn(next)
        display.onFilterChange?.(next)
      }}
      runs={live.runs}
      loading={live.state === 'connecting' && !fromServer}
      live={live.state}
      problem={
        live.state === 'error'
          ? `${live.error?.message ?? 'Following the runs failed'}. Reload the page to try again.`
          : live.state === 'reconnecting'
            ? 'The live connection dropped. Reconnecting…'
            : undefined
      }
    />
  )
}

/**
 * The filters to read runs with and to filter a {@link RunList}'s rows by, given those its form
 * shows: the rule of the live form, for an app that reads the runs itself (`useRuns`) and gives
 * them to the data form with these as `appliedFilters`, the form's `filters` controlled.
 *
 * - A change of the tag text alone (the other filters as applied, the tag not empty) applies once
 *   it has stayed the same for `tagDelayMs`: each change starts the wait again, and until it ends
 *   the filters applied before are returned. So typing a tag opens one stream for the whole tag,
 *   not one per key, and the rows never go by a prefix typed on the way. A tag set another way
 *   (from the app's URL) waits too.
 * - Every other change applies at once, in the same render, and takes a tag typed just before
 *   along: a pipeline, status or date change, "Clear filters", an emptied tag field. So does every
 *   change when `tagDelayMs` is 0 (or less).
 *
 * The first render applies `filters` as given. Unmounting clears a pending wait.
 *
 * @param filters The filters the form shows (`RunList`'s `filters`, as `onFilterChange` gave them).
 * @param tagDelayMs How long, in milliseconds, typing in the tag field must pause before the tag
 *   applies; 300 by default, as the live form's `tagDelayMs`.
 * @returns The applied filters, without empty fields (an empty string is no filter): the same
 *   object from render to render until they change, so they can be an effect's dependency.
 *
 * @example
 * ```tsx
 * const [filters, setFilters] = useState<RunListFilters>({})
 * const applied = useAppliedFilters(filters)
 * const { runs } = useRuns({ url: '/api/pipeline', status: applied.status, pipeline: applied.pipeline, tag: applied.tag })
 * return <RunList runs={runs} filters={filters} appliedFilters={applied} onFilterChange={setFilters} />
 * ```
 */
export function useAppliedFilters(filters: RunListFilters, tagDelayMs: number = 300): RunListFilters {
  const appliedKey = useSettled(filtersKey(filters), tagDelayMs, appliesAtOnce)
  return useMemo(() => filtersFromKey(appliedKey), [appliedKey])
}

const FILTER_FIELDS = ['pipeline', 'status', 'tag', 'createdFrom', 'createdTo'] as const satisfies readonly (keyof RunListFilters)[]

/** The filters as a string, the same for the same filters (an empty field is no filter). */
function filtersKey(filters: RunListFilters): string {
  return JSON.stringify(FILTER_FIELDS.map((field) => filters[field] || null))
}

/** The filters of a {@link filtersKey}. */
function filtersFromKey(key: string): RunListFilters {
  const values = JSON.parse(key) as (string | null)[]
  const filters: Record<string, string> = {}
  FILTER_FIELDS.forEach((field, index) => {
    const value = values[index]
    if (value) filters[field] = value
  })
  return filters as RunListFilters
}

/** Whether the filters `typed` (a {@link filtersKey}) replace `applied` at once: anything but typing in the tag field (only the tag differs, and it is not empty). */
function appliesAtOnce(typed: string, applied: string): boolean {
  const [next, last] = [JSON.parse(typed) as (string | null)[], JSON.parse(applied) as (string | null)[]]
  const tag = FILTER_FIELDS.indexOf('tag')
  return next[tag] === null || next.some((value, index) => index !== tag && value !== last[index])
}

const ALL_STATUSES = RunStatus.options

/** Props of {@link RunListView}: the data form's, and the live form's state. */
type RunListViewProps = RunListDataProps & {
  loading?: boolean
  live?: string | undefined
  problem?: string | undefined
}

/** The list as shown: the data form of {@link RunList}, plus the live form's state. */
function RunListView({
  runs,
  filters: given,
  defaultFilters,
  onFilterChange,
  pipelines,
  renderLink,
  runHref,
  now: fixedNow,
  renderedAt,
  caption = 'Pipeline runs',
  classNames = {},
  loading = false,
  live,
  problem,
  appliedFilters,
}: RunListViewProps): ReactNode {
  const [own, setOwn] = useState<RunListFilters>(defaultFilters ?? {})
  const filters = given ?? own
  const rowFilters = appliedFilters ?? filters
  const id = useId()
  const shown = runs.filter((run) => matches(run, rowFilters))
  const running = shown.some((run) => !isFinalStatus(run.status) && run.startedAt !== null)
  const clock = useNow(renderedAt ?? newest(runs), fixedNow === undefined && running)
  const now = fixedNow ?? clock
  const pipelineOptions = [...new Set([...(pipelines ?? runs.map((run) => run.pipeline)), ...(filters.pipeline ? [filters.pipeline] : [])])].sort()
  const active = isActive(filters)
  useEffect(warnWithoutContainerQueries, [])

  function change(patch: Partial<RunListFilters>): void {
    const next: RunListFilters = { ...filters }
    for (const [key, value] of Object.entries(patch) as [keyof RunListFilters, string | undefined][]) {
      if (value === undefined || value === '') delete next[key]
      else (next as Record<string, string>)[key] = value
    }
    if (given === undefined) setOwn(next)
    onFilterChange?.(next)
  }

  return (
    <div className={cx('ps-run-list', classNames.root)} data-testid="run-list" data-live={live}>
      <form className={cx('ps-filters', classNames.filters)} role="search" aria-label="Filter runs" onSubmit={(event) => event.preventDefault()}>
        <div className="ps-field">
          <label htmlFor={`${id}-pipeline`}>Pipeline</label>
          <select id={`${id}-pipeline`} value={filters.pipeline ?? ''} onChange={(event) => change({ pipeline: event.target.value })}>
            <option value="">All pipelines</option>
            {pipelineOptions.map((pipeline) => (
              <option key={pipeline} value={pipeline}>
                {pipeline}
              </option>
            ))}
          </select>
        </div>
        <div className="ps-field">
          <label htmlFor={`${id}-status`}>Status</label>
          <select
            id={`${id}-status`}
            value={filters.status ?? ''}
            onChange={(event) => change({ status: event.target.value === '' ? undefined : (event.target.value as RunStatus) })}
          >
            <option value="">All statuses</option>
            {ALL_STATUSES.map((status) => (
              <option key={status} value={status}>
                {status.charAt(0) + status.slice(1).toLowerCase()}
              </option>
            ))}
          </select>
        </div>
        <div className="ps-field">
          <label htmlFor={`${id}-tag`}>Tag</label>
          <input id={`${id}-tag`} type="search" value={filters.tag ?? ''} placeholder="any tag" onChange={(event) => change({ tag: event.target.value })} />
        </div>
        <div className="ps-field">
          <label htmlFor={`${id}-from`}>Created from</label>
          <input id={`${id}-from`} type="date" value={filters.createdFrom ?? ''} onChange={(event) => change({ createdFrom: event.target.value })} />
        </div>
        <div className="ps-field">
          <label htmlFor={`${id}-to`}>Created to</label>
          <input id={`${id}-to`} type="date" value={filters.createdTo ?? ''} onChange={(event) => change({ createdTo: event.target.value })} />
        </div>
        {/* Never `disabled`: clearing would disable the focused button and drop focus to <body>.
            aria-disabled keeps focus where the person acted (a screen reader then says "Clear
            filters, dimmed" and the count's status line announces the result); a click does nothing. */}
        <button
          type="button"
          className="ps-button"
          aria-disabled={!active}
          onClick={() => {
            if (active) change({ pipeline: undefined, status: undefined, tag: undefined, createdFrom: undefined, createdTo: undefined })
          }}
        >
          Clear filters
        </button>
      </form>

      {problem ? (
        <p className="ps-notice" role={live === 'error' ? 'alert' : 'status'}>
          {problem}
        </p>
      ) : null}

      <table className={cx('ps-table', classNames.table)} aria-busy={loading || undefined}>
        <caption className="ps-caption">
          {caption}
          <span className="ps-count" role="status">
            {loading ? ' · loading…' : ` · ${shown.length} ${shown.length === 1 ? 'run' : 'runs'}`}
          </span>
        </caption>
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Status</th>
            <th scope="col">Pipeline</th>
            <th scope="col">Stage</th>
            <th scope="col">Tags</th>
            <th scope="col">Created</th>
            <th scope="col">Duration</th>
          </tr>
        </thead>
        <tbody>
          {shown.length === 0 && !loading ? (
            <tr className="ps-empty">
              <td colSpan={7}>{isActive(rowFilters) ? 'No run matches these filters.' : 'No runs yet.'}</td>
            </tr>
          ) : null}
          {shown.map((run) => (
            <tr key={run.id} className={cx('ps-row', classNames.row)} data-testid="run-row" data-run-id={run.id} data-status={run.status}>
              <th scope="row" data-label="Run" className="ps-cell-run">
                {/* One line: the whole id where the column has room, else cut with an ellipsis. The
                    link's text stays the whole id (its accessible name, what find-in-page and copy
                    see); the title shows it on hover, also around an app's own link. */}
                <span className="ps-run-id-line" title={showBidiControls(run.id)}>
                  {renderLink ? (
                    renderLink({ run, children: showBidiControls(run.id), className: 'ps-run-link ps-runner-text' })
                  ) : runHref ? (
                    <a className="ps-run-link ps-runner-text" href={runHref.replaceAll('{runId}', encodeURIComponent(run.id))}>
                      {showBidiControls(run.id)}
                    </a>
                  ) : (
                    <span className="ps-run-link ps-runner-text">{showBidiControls(run.id)}</span>
                  )}
                </span>
              </th>
              <td data-label="Status" className="ps-cell-status">
                <div>
                  <StatusBadge status={run.status} />
                  {run.error ? (
                    // Clamped to a few lines (styles.css): the title holds the whole error for hover.
                    <div className="ps-row-error ps-runner-text" title={run.error + (run.errorTruncated ? '…' : '')}>
                      {run.error}
                      {run.errorTruncated ? '…' : null}
                    </div>
                  ) : null}
                </div>
              </td>
              <td data-label="Pipeline" data-testid="run-pipeline" className="ps-cell-text ps-cell-pipeline">
                <span className="ps-runner-text">{run.pipeline}</span>
              </td>
              <td data-label="Stage" className="ps-cell-stage">
                <Phrases parts={describeStage(run)} />
              </td>
              <td data-label="Tags" className="ps-cell-text ps-cell-tags">
                {run.tags.length === 0 ? (
                  <span className="ps-muted">none</span>
                ) : (
                  <ul className="ps-tags" aria-label="Tags">
                    {run.tags.map((tag) => (
                      <li key={tag} className="ps-tag ps-runner-text">
                        {showBidiControls(tag)}
                      </li>
                    ))}
                  </ul>
                )}
              </td>
              <td data-label="Created" className="ps-cell-created">
                {/* The day and the time each stay whole; a narrow column breaks between them. */}
                <time dateTime={run.createdAt}>
                  <Phrases parts={formatDateTime(run.createdAt).split(/ (?=\d\d:)/)} />
                </time>
              </td>
              <td data-label="Duration" className="ps-duration">
                <Phrases parts={describeDuration(run, now)} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

let containerQueriesChecked = false

/**
 * Logs once per page, in a browser without CSS container queries, that the stylesheet's fallback
 * lets the viewport's width pick table or cards (styles.css), so a list narrower than its page may
 * show a table that scrolls sideways.
 */
function warnWithoutContainerQueries(): void {
  if (containerQueriesChecked || typeof CSS === 'undefined' || typeof CSS.supports !== 'function') return
  containerQueriesChecked = true
  if (CSS.supports('container-type', 'inline-size')) return
  console.warn(
    'pipeline-status-sdk RunList: this browser has no CSS container queries, so the viewport\'s width picks table or cards ' +
      '(cards below 64em), not the list\'s own: a list narrower than the page (a sidebar) shows a table that may scroll sideways. ' +
      'Fix: a browser with container queries (Chrome 105, Safari 16, Firefox 110 or newer), or give the list the page\'s width.',
  )
}

/** `stage 2 of 5`, `5 of 5 done`, `not started`: from `currentStage` and `stageCounts`, in the pieces a narrow column may break between. */
function describeStage(run: RunSummary): string[] {
  const counts = run.stageCounts
  const total = Object.values(counts).reduce((sum, count) => sum + count, 0)
  const done = counts['COMPLETED'] ?? 0
  if (run.currentStage !== null) return [`stage ${run.currentStage}`, `of ${total}`]
  if (run.startedAt === null && !isFinalStatus(run.status)) return ['not started']
  return [`${done} of ${total}`, 'done']
}

/** `took 4 s` once finished, `running 12 s` while it runs, `—` before it started: the verb, then each number with its unit. */
function describeDuration(run: RunSummary, now: number): string[] {
  if (run.startedAt === null) return ['—']
  const pieces = (text: string) => text.split(/ (?=\d)/)
  if (run.completedAt !== null) return ['took', ...pieces(formatTook(elapsedMs(run.startedAt, Date.parse(run.completedAt))))]
  return isFinalStatus(run.status) ? ['—'] : ['running', ...pieces(formatDuration(elapsedMs(run.startedAt, now)))]
}

/** Words that break only between `parts` (`57 s` never splits from its number, nor `not started`), separated by spaces. */
function Phrases({ parts }: { parts: readonly string[] }): ReactNode {
  // One element: on a phone a cell is a grid (its label, then its content), where bare pieces would each take a cell.
  return (
    <span>
      {parts.map((part, index) => (
        <Fragment key={index}>
          {index > 0 ? ' ' : null}
          <span className="ps-nowrap">{part}</span>
        </Fragment>
      ))}
    </span>
  )
}

/** Whether a run passes the filters, by the server's rules (tag exact, days in UTC). */
function matches(run: RunSummary, filters: RunListFilters): boolean {
  if (filters.status && run.status !== filters.status) return false
  if (filters.pipeline && run.pipeline !== filters.pipeline) return false
  if (filters.tag && !run.tags.includes(filters.tag)) return false
  const created = Date.parse(run.createdAt)
  const from = dayStart(filters.createdFrom, 0)
  if (from && created < Date.parse(from)) return false
  const to = dayStart(filters.createdTo, 1)
  if (to && created >= Date.parse(to)) return false
  return true
}

function isActive(filters: RunListFilters): boolean {
  return Object.values(filters).some((value) => value !== undefined && value !== '')
}

function newest(runs: readonly RunSummary[]): number {
  return runs.reduce((latest, run) => Math.max(latest, Date.parse(run.createdAt) || 0), 0)
}
