'use client'

import { isFinalStatus, type RunStatus, type RunStatusResponse, type StageDefinition, type StageOutputRecord } from 'pipeline-status-sdk'
import { useRunStatus } from 'pipeline-status-sdk/react'
import { elapsedMs, formatDuration, formatTime } from '@/lib/stage-timing'
import { StageCard } from './stage-card'
import { useNow } from './use-now'

/** Props of {@link RunStatusView}. */
export interface RunStatusViewProps {
  runId: string
  /** The routes' base path, e.g. `/api/pipeline`: the stream is `{url}/{runId}/events`. */
  url: string
  /** This run's read token (see lib/run-read-token.ts), sent as a bearer token. */
  readToken: string
  /** The run as stored when the page was rendered on the server. */
  initial: RunStatusResponse
  /** The catalogue, so stages that have not reported yet are listed too. */
  stages: readonly StageDefinition[]
  /** The server's time when it read the run (epoch ms): what the clocks read in the server HTML and at hydration. */
  renderedAt: number
}

/**
 * Renders the run as the server read it, then follows it live over the events stream
 * (`useRunStatus`: Server-Sent Events read with fetch, resumed with Last-Event-ID after a drop)
 * until the run is finished. No polling: each change arrives as it is stored. A run that was
 * already finished when the page was rendered opens no stream at all.
 */
export function RunStatusView({ runId, url, readToken, initial, stages, renderedAt }: RunStatusViewProps) {
  const live = useRunStatus(runId, { url, token: readToken, initial })
  const snapshot: RunStatusResponse = { run: live.run ?? initial.run, stages: live.stages }
  const following = live.state === 'connecting' || live.state === 'live' || live.state === 'reconnecting'
  const problem =
    live.state === 'error'
      ? `${live.error?.message ?? 'The live connection failed'}. Reload the page to try again.`
      : live.state === 'reconnecting'
        ? 'The live connection dropped. Reconnecting…'
        : undefined

  const stored = new Map<number, StageOutputRecord>(snapshot.stages.map((stage) => [stage.stageNumber, stage]))
  const completed = stages.filter((stage) => stored.get(stage.number)?.status === 'COMPLETED').length
  const runStatus: RunStatus = snapshot.run.status
  // The running stage's clock (and a retry's countdown) tick while the run goes on.
  const running = isFinalStatus(runStatus) ? undefined : snapshot.stages.find((stage) => stage.status === 'PROCESSING')
  const now = useNow(renderedAt, running ? Date.parse(running.startedAt ?? running.createdAt) : undefined)
  const { startedAt, completedAt } = snapshot.run

  return (
    <div data-testid="run-view" data-live={live.state}>
      <div className="run-header">
        <div>
          <h1>Pipeline run</h1>
          <div className="run-id">{runId}</div>
        </div>
        <span className={`badge badge-${runStatus}`} data-testid="run-status" data-status={runStatus}>
          {runStatus}
        </span>
      </div>

      {problem ? (
        <div className="notice" role="status">
          {problem}
        </div>
      ) : null}

      <section className="card summary">
        <div className="summary-line">
          <span>
            {completed} of {stages.length} stages completed
          </span>
          <span>
            {startedAt ? `Started ${formatTime(startedAt)}` : `Created ${formatTime(snapshot.run.createdAt)}`}
            {completedAt ? ` · Finished ${formatTime(completedAt)}` : null}
            {startedAt && completedAt ? ` · took ${formatDuration(elapsedMs(startedAt, Date.parse(completedAt)))}` : null}
          </span>
        </div>
        <div className="progress" aria-hidden="true">
          <div className="progress-bar" style={{ width: `${(completed / stages.length) * 100}%` }} />
        </div>
        {/* pre-wrap in the CSS keeps the error's line breaks (a stack trace, a list of causes). */}
        {snapshot.run.error ? (
          <div className="run-error" data-testid="run-error">
            {snapshot.run.error}
          </div>
        ) : null}
      </section>

      <ol className="stages">
        {stages.map((definition) => (
          <StageCard key={definition.number} definition={definition} stage={stored.get(definition.number)} run={snapshot.run} now={now} />
        ))}
      </ol>

      <div className={`live ${live.state === 'live' ? 'live-on' : ''}`} data-testid="live-indicator">
        <span className="live-dot" />
        {following ? (live.state === 'live' ? 'Live: updates appear as they are stored' : 'Connecting…') : 'Updates stopped'}
        {!following && isFinalStatus(runStatus) ? ' (the run is finished)' : null}
      </div>
    </div>
  )
}
