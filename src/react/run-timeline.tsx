/**
 * `RunTimeline`: one run's stages as people read them (docs/components.md). Every stored string
 * (ids, names, errors, outputs) is rendered as React text or through {@link SafeMarkdown}, never
 * as HTML: runner data is hostile.
 */
import { memo, type ReactNode, useEffect, useRef } from 'react'
import type { CatalogueEntry, PipelineRunRecord, RunStatusResponse, StageOutputRecord } from '../contract/records.js'
import { isFinalStatus, type StageStatus } from '../contract/status.js'
import type { RunConnectionState } from '../live/subscribe-to-run.js'
import { StoredOutput } from './markdown.js'
import { StreamedOutput } from './streamed-output.js'
import { useRunStatus, type UseRunStatusOptions } from './run-status.js'
import {
  describeAttempt,
  describeProgress,
  elapsedMs,
  formatDuration,
  formatTook,
  formatTime,
  isoDuration,
  progressFraction,
  stageTiming,
} from './stage-timing.js'
import { useNow } from './use-now.js'
import { showBidiControls } from './bidi.js'

/** The parts of a {@link RunTimeline} an app may add its own class to (besides the `ps-…` classes). */
export type RunTimelineSlot = 'root' | 'header' | 'summary' | 'stage' | 'output' | 'error'

/** Props of {@link RunTimeline} shared by its two forms: what it shows and how. */
export interface RunTimelineDisplayProps {
  /**
   * The run's stage catalogue, so stages that have not reported yet are listed too.
   * @default the `catalogue` of `status` (or `initial`), as the status route sends it; without
   * one, only the stages that reported are listed
   */
  catalogue?: readonly CatalogueEntry[] | undefined
  /**
   * The time the clocks read, in epoch milliseconds. Given, the clocks show it and do not tick.
   * @default the browser's clock, re-read each second while a stage runs (`renderedAt` before hydration)
   */
  now?: number | undefined
  /**
   * The time the server rendered the page (epoch ms): what the clocks read in the server HTML and
   * until hydration, so both agree. Pass `Date.now()` from a server component.
   * @default the run's `updatedAt`
   */
  renderedAt?: number | undefined
  /**
   * Renders a stage's output (the text so far while it streams). Return stored text as React text
   * or through `SafeMarkdown`, never as HTML.
   * @default a FAILED stage's output (its error) as plain text with its line breaks; JSON
   * formatted in a `<pre>`; anything else as Markdown with raw HTML shown as text
   */
  renderOutput?: ((stage: StageOutputRecord) => ReactNode) | undefined
  /** Extra classes per part, for apps that restyle it. */
  classNames?: Partial<Record<RunTimelineSlot, string>> | undefined
  /**
   * The level of the run's heading (`<h1>`…`<h6>`).
   * @default 2
   */
  headingLevel?: 1 | 2 | 3 | 4 | 5 | 6 | undefined
}

/** Props of the data form of {@link RunTimeline}: the run as the app already has it. */
export interface RunTimelineDataProps extends RunTimelineDisplayProps {
  /** The run and its stages (`GET {base}/{runId}/status`, or `useRunStatus`). */
  status: RunStatusResponse
  /** How the app follows the run, shown under the stages; omit when it does not follow it. */
  connection?: RunConnectionState | undefined
  /** Why the connection failed, with `connection: 'error'`. */
  connectionError?: Error | undefined
}

/** Props of the live form of {@link RunTimeline}: it follows the run itself with `useRunStatus`. */
export interface RunTimelineLiveProps extends RunTimelineDisplayProps, Pick<UseRunStatusOptions, 'url' | 'token' | 'initial'> {
  /** The run to show and follow. */
  runId: string
  /** Further options of `useRunStatus` (`fetch`, `headers`, reconnection delays…). */
  options?: Omit<UseRunStatusOptions, 'url' | 'token' | 'initial'> | undefined
}

/** Props of {@link RunTimeline}: `status` to show a run the app holds, or `runId` to follow one. */
export type RunTimelineProps = RunTimelineDataProps | RunTimelineLiveProps

/**
 * A run's stages with their status, progress (`37 of 40 · message`), attempt and last error,
 * start and duration on one time axis, and output (growing while it streams); stages that
 * never ran are marked. With `runId` it follows the run live (`useRunStatus`, rendering `initial`
 * first, also on the server); with `status` it shows what it is given.
 *
 * @example
 * ```tsx
 * 'use client'
 * import type { RunStatusResponse } from 'pipeline-status-sdk'
 * import { RunTimeline } from 'pipeline-status-sdk/react'
 *
 * export function RunPage({ runId, token, initial }: { runId: string; token: string; initial: RunStatusResponse }) {
 *   return <RunTimeline runId={runId} url="/api/pipeline" token={token} initial={initial} />
 * }
 * ```
 */
export function RunTimeline(props: RunTimelineProps): ReactNode {
  return 'runId' in props ? <LiveRunTimeline {...props} /> : <RunTimelineView {...props} />
}

function LiveRunTimeline({ runId, url, token, initial, options, catalogue, ...display }: RunTimelineLiveProps): ReactNode {
  const live = useRunStatus(runId, { ...options, url, token, initial })
  if (live.run === undefined) {
    return (
      <section className="ps-timeline" data-testid="run-view" data-live={live.state} aria-label={`Pipeline run ${runId}`} aria-busy="true">
        <p className="ps-live" role="status">
          {live.state === 'error' ? `Cannot show the run: ${live.error?.message ?? 'the connection failed'}` : 'Loading the run…'}
        </p>
      </section>
    )
  }
  return (
    <RunTimelineView
      {...display}
      status={{ run: live.run, stages: live.stages }}
      catalogue={catalogue ?? live.catalogue}
      connection={live.state}
      connectionError={live.error}
    />
  )
}

const LIVE_TEXT: Record<RunConnectionState, string> = {
  connecting: 'Connecting…',
  live: 'Live: updates appear as they are stored',
  reconnecting: 'The live connection dropped. Reconnecting…',
  finished: 'Updates stopped',
  error: 'Updates stopped',
}

function RunTimelineView({
  status,
  catalogue,
  now: fixedNow,
  renderedAt,
  renderOutput,
  classNames = {},
  headingLevel = 2,
  connection,
  connectionError,
}: RunTimelineDataProps): ReactNode {
  const { run } = status
  const rows = new Map(status.stages.map((stage) => [stage.stageNumber, stage]))
  const entries = listStages(catalogue ?? status.catalogue, status.stages)
  const running = !isFinalStatus(run.status) && status.stages.some((stage) => stage.status === 'PROCESSING')
  const clock = useNow(renderedAt ?? safeTime(run.updatedAt), fixedNow === undefined && running)
  const now = fixedNow ?? clock
  const completed = entries.filter((entry) => rows.get(entry.stageNumber)?.status === 'COMPLETED').length
  const axis = timeAxis(run, status.stages, now)
  const Heading = `h${headingLevel}` as const
  const following = connection === 'connecting' || connection === 'live' || connection === 'reconnecting'

  return (
    <section
      className={cx('ps-timeline', classNames.root)}
      data-testid="run-view"
      data-live={connection}
      aria-labelledby={undefined}
      aria-label={`Pipeline run ${run.id}`}
    >
      <header className={cx('ps-timeline-header', classNames.header)}>
        <div className="ps-timeline-title">
          <Heading className="ps-heading">Pipeline run</Heading>
          <div className="ps-run-id ps-runner-text">{showBidiControls(run.id)}</div>
        </div>
        {/* A live region: a reader hears the run's status change. */}
        <span role="status" className="ps-run-status">
          <StatusBadge status={run.status} testId="run-status" />
        </span>
      </header>

      {connection === 'error' || connection === 'reconnecting' ? (
        <p className="ps-notice" role="alert">
          {connection === 'error'
            ? `${connectionError?.message ?? 'The live connection failed'}. Reload the page to try again.`
            : LIVE_TEXT.reconnecting}
        </p>
      ) : null}

      <div className={cx('ps-card ps-summary', classNames.summary)}>
        <div className="ps-summary-line">
          <span>
            {completed} of {entries.length} stages completed
          </span>
          <span>
            {run.startedAt ? `Started ${formatTime(run.startedAt)}` : `Created ${formatTime(run.createdAt)}`}
            {run.completedAt ? ` · Finished ${formatTime(run.completedAt)}` : null}
            {run.startedAt && run.completedAt ? ` · took ${formatTook(elapsedMs(run.startedAt, Date.parse(run.completedAt)))}` : null}
          </span>
        </div>
        <div
          className="ps-meter"
          role="progressbar"
          aria-label="Stages completed"
          aria-valuemin={0}
          aria-valuemax={entries.length}
          aria-valuenow={completed}
        >
          <div className="ps-meter-fill" style={{ width: `${entries.length > 0 ? (completed / entries.length) * 100 : 0}%` }} />
        </div>
        {/* pre-wrap in the stylesheet keeps the error's line breaks (a stack trace, a list of causes). */}
        {run.error ? (
          // A long error scrolls in its own box (as outputs do): focusable, named, so a keyboard can scroll it.
          <div className={cx('ps-run-error ps-runner-text ps-scroll-box', classNames.error)} data-testid="run-error" role="region" aria-label="Run error" tabIndex={0}>
            {run.error}
          </div>
        ) : null}
      </div>

      <ol className="ps-stages" aria-label="Stages">
        {entries.map((entry) => (
          <StageItem
            key={entry.stageNumber}
            entry={entry}
            stage={rows.get(entry.stageNumber)}
            run={run}
            now={now}
            axis={axis}
            renderOutput={renderOutput}
            classNames={classNames}
          />
        ))}
      </ol>

      {connection === undefined ? null : (
        <p className={cx('ps-live', connection === 'live' ? 'ps-live-on' : undefined)} data-testid="live-indicator">
          <span className="ps-live-dot" aria-hidden="true" />
          {following ? LIVE_TEXT[connection] : LIVE_TEXT.finished}
          {!following && isFinalStatus(run.status) ? ' (the run is finished)' : null}
        </p>
      )}
    </section>
  )
}

/** Words before a stage's duration, by its timing kind. */
const DURATION_LABEL = { running: 'running', took: 'took', stopped: 'stopped after' } as const

interface StageItemProps {
  entry: CatalogueEntry
  stage: StageOutputRecord | undefined
  run: PipelineRunRecord
  now: number
  axis: TimeAxis
  renderOutput: ((stage: StageOutputRecord) => ReactNode) | undefined
  classNames: Partial<Record<RunTimelineSlot, string>>
}

function StageItem({ entry, stage, run, now, axis, renderOutput, classNames }: StageItemProps): ReactNode {
  const status: StageStatus = stage?.status ?? 'PENDING'
  // A stage without a row on a run that ended FAILED or CANCELLED never ran, and never will.
  const neverRan = stage === undefined && (run.status === 'FAILED' || run.status === 'CANCELLED')
  const described = stage?.progress ? describeProgress(stage.progress) : undefined
  const progress =
    described === undefined || stage === undefined || stage.status === 'COMPLETED'
      ? undefined
      : stage.status === 'PROCESSING'
        ? described
        : `Stopped at ${described}`
  const fraction = stage?.status === 'PROCESSING' && stage.progress ? progressFraction(stage.progress) : undefined
  const attempt = stage ? describeAttempt(stage, now) : undefined
  const timing = stage ? stageTiming(stage, run, now) : undefined
  const name = stage?.stageName ?? entry.stageName
  const labelId = `ps-stage-${entry.stageNumber}-name`

  return (
    <li
      className={cx(`ps-card ps-stage ps-stage-${neverRan ? 'NOT_RUN' : status}`, classNames.stage)}
      data-testid="stage"
      data-stage-number={entry.stageNumber}
      data-status={status}
      data-never-ran={neverRan ? 'true' : undefined}
      aria-labelledby={labelId}
    >
      <span className="ps-stage-number" aria-hidden="true">
        {entry.stageNumber}
      </span>
      <div className="ps-stage-body">
        <div className="ps-stage-name ps-runner-text" id={labelId}>
          <span className="ps-visually-hidden">Stage {entry.stageNumber}: </span>
          {name}
        </div>
        <div className="ps-stage-meta">
          {neverRan ? (
            `Never ran: the run ${run.status === 'FAILED' ? 'failed' : 'was cancelled'} before this stage started`
          ) : timing ? (
            <>
              {/* Each half kept whole, so a narrow card breaks the line at the dot. */}
              <span className="ps-nowrap">
                Started <time dateTime={timing.startedAt}>{formatTime(timing.startedAt)}</time>
              </span>{' '}
              ·{' '}
              <span className="ps-nowrap">
                {DURATION_LABEL[timing.kind]}{' '}
                <time className="ps-stage-duration" dateTime={isoDuration(timing.durationMs)} data-testid="stage-duration" data-kind={timing.kind}>
                  {timing.kind === 'running' ? formatDuration(timing.durationMs) : formatTook(timing.durationMs)}
                </time>
              </span>
            </>
          ) : (
            'Waiting'
          )}
        </div>
        {progress ? (
          // Runner text: the message (up to 500 characters, maybe without a space) is isolated and wraps.
          <div className="ps-stage-progress ps-runner-text" data-testid="stage-progress">
            {progress}
          </div>
        ) : null}
      </div>
      <StatusBadge status={status} neverRan={neverRan} />
      {timing ? <AxisBar axis={axis} startedAt={timing.startedAt} durationMs={timing.durationMs} status={status} /> : null}
      {fraction !== undefined ? (
        <div
          className="ps-meter ps-stage-meter"
          role="progressbar"
          aria-label={`Progress of ${name}`}
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={Math.round(fraction * 100)}
        >
          <div className="ps-meter-fill" style={{ width: `${fraction * 100}%` }} />
        </div>
      ) : null}
      {attempt ? (
        <div className="ps-stage-retry">
          <div className="ps-stage-attempt" data-testid="stage-attempt">
            {attempt}
          </div>
          {stage?.lastError ? (
            <div
              className={cx('ps-stage-last-error ps-scroll-box', classNames.error)}
              data-testid="stage-last-error"
              role="region"
              aria-label={`Last error of ${name}`}
              tabIndex={0}
            >
              <span className="ps-stage-last-error-label">Last error: </span>
              <span className="ps-runner-text">{stage.lastError}</span>
            </div>
          ) : null}
        </div>
      ) : null}
      {stage?.output ? (
        <OutputRegion name={name} streaming={stage.status === 'PROCESSING'} className={classNames.output}>
          {renderOutput ? (
            renderOutput(stage)
          ) : stage.status === 'FAILED' ? (
            // A failed stage's output is its error: plain text, every line break kept.
            <pre className="ps-plain-text">{stage.output}</pre>
          ) : stage.status === 'PROCESSING' ? (
            <StreamedOutput text={stage.output} />
          ) : (
            <FinishedOutput text={stage.output} />
          )}
        </OutputRegion>
      ) : null}
    </li>
  )
}

/** A finished output, parsed again only when its text changes (not on each tick of the clocks). */
const FinishedOutput = memo(StoredOutput)

/** How close to its bottom (CSS px) a scrolled output counts as at the bottom. */
const BOTTOM_SLACK_PX = 8

/**
 * A stage's output box: focusable, so a keyboard can scroll a long output, and named for screen
 * readers. While the stage streams, a box scrolled to its bottom stays there as the text grows; a
 * reader who scrolled up to read stays where they are.
 */
function OutputRegion({ name, streaming, className, children }: { name: string; streaming: boolean; className: string | undefined; children: ReactNode }): ReactNode {
  const box = useRef<HTMLDivElement>(null)
  const atBottom = useRef(true)
  useEffect(() => {
    const element = box.current
    if (!streaming || !element || typeof MutationObserver === 'undefined') return
    // The text is redrawn by the output's own renders (once per frame), so the box watches its content.
    const stick = () => {
      if (atBottom.current) element.scrollTop = element.scrollHeight
    }
    stick()
    const observer = new MutationObserver(stick)
    observer.observe(element, { childList: true, subtree: true, characterData: true })
    return () => observer.disconnect()
  }, [streaming])
  return (
    <div
      ref={box}
      className={cx('ps-stage-output ps-runner-text', className)}
      data-testid="stage-output"
      data-streaming={streaming ? 'true' : undefined}
      role="region"
      aria-label={`Output of ${name}`}
      tabIndex={0}
      onScroll={(event) => {
        const element = event.currentTarget
        atBottom.current = element.scrollHeight - element.scrollTop - element.clientHeight <= BOTTOM_SLACK_PX
      }}
    >
      {children}
    </div>
  )
}

/** A run's or stage's status as a badge; `neverRan` reads NOT RUN. */
export function StatusBadge({ status, neverRan = false, testId }: { status: StageStatus; neverRan?: boolean; testId?: string }): ReactNode {
  return (
    <span className={`ps-badge ps-badge-${neverRan ? 'NOT_RUN' : status}`} data-testid={testId} data-status={testId ? status : undefined}>
      {neverRan ? 'NOT RUN' : status}
    </span>
  )
}

/** The run's span in epoch ms: from its start to its end, or to now while it runs. */
interface TimeAxis {
  start: number
  span: number
}

function timeAxis(run: PipelineRunRecord, stages: readonly StageOutputRecord[], now: number): TimeAxis {
  const starts = stages.map((stage) => safeTime(stage.startedAt ?? stage.createdAt))
  const start = Math.min(safeTime(run.startedAt ?? run.createdAt), ...starts)
  const ends = stages.map((stage) => safeTime(stage.completedAt ?? stage.updatedAt))
  const end = isFinalStatus(run.status) ? Math.max(safeTime(run.completedAt ?? run.updatedAt), ...ends) : Math.max(now, ...ends)
  return { start, span: Math.max(1000, end - start) }
}

/** A stage's start and duration as a bar on the run's time axis (decorative: the text says the same). */
function AxisBar({ axis, startedAt, durationMs, status }: { axis: TimeAxis; startedAt: string; durationMs: number; status: StageStatus }): ReactNode {
  const left = clamp(((safeTime(startedAt) - axis.start) / axis.span) * 100, 0, 100)
  const width = clamp((durationMs / axis.span) * 100, 0.75, 100 - left)
  return (
    <div className="ps-axis" aria-hidden="true">
      <div className={`ps-axis-bar ps-axis-${status}`} style={{ left: `${left}%`, width: `${width}%` }} />
    </div>
  )
}

/** The catalogue's stages, plus any stored stage it lacks (so nothing stored is hidden), in order. */
function listStages(catalogue: readonly CatalogueEntry[] | undefined, stages: readonly StageOutputRecord[]): CatalogueEntry[] {
  const entries = new Map<number, CatalogueEntry>((catalogue ?? []).map((entry) => [entry.stageNumber, entry]))
  for (const stage of stages) {
    if (!entries.has(stage.stageNumber)) entries.set(stage.stageNumber, { stageNumber: stage.stageNumber, stageName: stage.stageName })
  }
  return [...entries.values()].sort((a, b) => a.stageNumber - b.stageNumber)
}

function safeTime(iso: string): number {
  const time = Date.parse(iso)
  return Number.isFinite(time) ? time : 0
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value))
}

/** Class names joined, the empty ones left out. */
export function cx(...names: (string | undefined)[]): string {
  return names.filter(Boolean).join(' ')
}
