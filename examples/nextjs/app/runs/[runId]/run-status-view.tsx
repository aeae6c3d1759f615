'use client'

import {
  isFinalStatus,
  type RunStatus,
  type RunStatusResponse,
  type StageDefinition,
  type StageOutputRecord,
  type StageProgress,
  type StageStatus,
} from 'pipeline-status-sdk'
import { useRunStatus } from 'pipeline-status-sdk/react'

/** Characters and lines of a stage's output shown on the page. */
const OUTPUT_PREVIEW_CHARS = 320
const OUTPUT_PREVIEW_LINES = 6

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
}

/**
 * Renders the run as the server read it, then follows it live over the events stream
 * (`useRunStatus`: Server-Sent Events read with fetch, resumed with Last-Event-ID after a drop)
 * until the run is finished. No polling: each change arrives as it is stored. A run that was
 * already finished when the page was rendered opens no stream at all.
 */
export function RunStatusView({ runId, url, readToken, initial, stages }: RunStatusViewProps) {
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
            Started {formatTime(snapshot.run.createdAt)}
            {snapshot.run.completedAt ? ` · Finished ${formatTime(snapshot.run.completedAt)}` : null}
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
        {stages.map((definition) => {
          const stage = stored.get(definition.number)
          const status: StageStatus = stage?.status ?? 'PENDING'
          // A stage without a row on a run that ended FAILED or CANCELLED never ran, and never will.
          const neverRan = stage === undefined && (runStatus === 'FAILED' || runStatus === 'CANCELLED')
          // A stage keeps its last progress when it ends: "Stopped at" says where a failed one stood.
          const described = stage?.progress ? describeProgress(stage.progress) : undefined
          const progress =
            described === undefined || stage === undefined || stage.status === 'COMPLETED'
              ? undefined
              : stage.status === 'PROCESSING'
                ? described
                : `Stopped at ${described}`
          return (
            <li
              key={definition.number}
              className={`card stage stage-${status}`}
              data-testid="stage"
              data-stage-number={definition.number}
              data-status={status}
              data-never-ran={neverRan ? 'true' : undefined}
            >
              <span className="stage-number">{definition.number}</span>
              <div className="stage-body">
                <div className="stage-name">{definition.name}</div>
                <div className="stage-meta">
                  {neverRan
                    ? `Never ran: the run ${runStatus === 'FAILED' ? 'failed' : 'was cancelled'} before this stage started`
                    : stage?.completedAt
                      ? `Finished ${formatTime(stage.completedAt)}`
                      : stage
                        ? `Updated ${formatTime(stage.updatedAt)}`
                        : 'Waiting'}
                </div>
                {progress ? (
                  <div className="stage-progress" data-testid="stage-progress">
                    {progress}
                  </div>
                ) : null}
              </div>
              <span className={`badge badge-${neverRan ? 'NOT_RUN' : status}`}>{neverRan ? 'NOT RUN' : status}</span>
              {stage?.output ? <pre className="stage-output">{previewOutput(stage.output)}</pre> : null}
            </li>
          )
        })}
      </ol>

      <div className={`live ${live.state === 'live' ? 'live-on' : ''}`} data-testid="live-indicator">
        <span className="live-dot" />
        {following ? (live.state === 'live' ? 'Live: updates appear as they are stored' : 'Connecting…') : 'Updates stopped'}
        {!following && isFinalStatus(runStatus) ? ' (the run is finished)' : null}
      </div>
    </div>
  )
}

/**
 * A stage's progress as one line: `37 of 40 · batch 37 of 40` (current of total, then the
 * runner's message), or the percent when only that was sent (`62% · …`).
 */
function describeProgress(progress: StageProgress): string | undefined {
  const parts: string[] = []
  if (progress.current !== undefined && progress.total !== undefined) parts.push(`${progress.current} of ${progress.total}`)
  else if (progress.current !== undefined) parts.push(`${progress.current} done`)
  if (progress.percent !== undefined && progress.total === undefined) parts.push(`${Math.round(progress.percent)}%`)
  if (progress.message) parts.push(progress.message)
  return parts.length > 0 ? parts.join(' · ') : undefined
}

/** Stage outputs are JSON strings or markdown; JSON is shown indented, both are cut short. */
function previewOutput(output: string): string {
  let text = output.trim()
  try {
    text = JSON.stringify(JSON.parse(text), null, 2)
  } catch {
    // Markdown or plain text: shown as sent.
  }
  const lines = text.split('\n')
  if (lines.length > OUTPUT_PREVIEW_LINES) text = `${lines.slice(0, OUTPUT_PREVIEW_LINES).join('\n')}\n…`
  return text.length > OUTPUT_PREVIEW_CHARS ? `${text.slice(0, OUTPUT_PREVIEW_CHARS)}…` : text
}

/** `HH:MM:SS UTC`: the same text on the server and in the browser, whatever their time zones. */
function formatTime(iso: string): string {
  return `${new Date(iso).toISOString().slice(11, 19)} UTC`
}
