'use client'

import {
  isFinalStatus,
  type RunStatus,
  type RunStatusResponse,
  type StageDefinition,
  type StageOutputRecord,
  type StageStatus,
} from 'pipeline-status-sdk'
import { useEffect, useState } from 'react'

/** Time between the end of one status request and the start of the next, in milliseconds. */
const POLL_INTERVAL_MS = 1000

/** Characters and lines of a stage's output shown on the page. */
const OUTPUT_PREVIEW_CHARS = 320
const OUTPUT_PREVIEW_LINES = 6

/** Answers after which polling again cannot help: the token is wrong or expired, or the run is gone. */
const FATAL_STATUSES = new Set([401, 403, 404])

/** Props of {@link RunStatusView}. */
export interface RunStatusViewProps {
  runId: string
  /** The status route of this run, e.g. `/api/pipeline/run_1/status`. */
  statusUrl: string
  /** This run's read token (see lib/run-read-token.ts), sent as a bearer token. */
  readToken: string
  /** The run as stored when the page was rendered on the server. */
  initial: RunStatusResponse
  /** The catalogue, so stages that have not reported yet are listed too. */
  stages: readonly StageDefinition[]
}

interface ViewState {
  snapshot: RunStatusResponse
  /** Whether another status request will follow. */
  polling: boolean
  problem: string | undefined
}

/**
 * Renders the run as the server read it, then polls the run's status route every second; stops
 * for good once the run is finished (COMPLETED, FAILED or CANCELLED), since a finished run never
 * changes its status again. A run that was already finished when the page was rendered is never
 * polled.
 */
export function RunStatusView({ runId, statusUrl, readToken, initial, stages }: RunStatusViewProps) {
  const finishedWhenRendered = isFinalStatus(initial.run.status)
  const [state, setState] = useState<ViewState>({ snapshot: initial, polling: !finishedWhenRendered, problem: undefined })

  useEffect(() => {
    if (finishedWhenRendered) return
    const controller = new AbortController()
    let timer: ReturnType<typeof setTimeout> | undefined

    // The next request is scheduled when this one has been answered, so a slow server never
    // gets overlapping requests from one page.
    const poll = async (): Promise<void> => {
      let next = true
      try {
        const response = await fetch(statusUrl, {
          headers: { accept: 'application/json', authorization: `Bearer ${readToken}` },
          cache: 'no-store',
          signal: controller.signal,
        })
        if (response.ok) {
          const snapshot = (await response.json()) as RunStatusResponse
          next = !isFinalStatus(snapshot.run.status)
          setState({ snapshot, polling: next, problem: undefined })
        } else {
          next = !FATAL_STATUSES.has(response.status)
          const detail = await problemDetail(response)
          const problem = next ? `${detail} Retrying…` : `${detail} Reload the page to try again.`
          setState((previous) => ({ ...previous, polling: next, problem }))
        }
      } catch {
        if (controller.signal.aborted) return
        setState((previous) => ({ ...previous, problem: 'The server cannot be reached. Retrying…' }))
      }
      if (next && !controller.signal.aborted) timer = setTimeout(() => void poll(), POLL_INTERVAL_MS)
    }
    void poll()

    return () => {
      controller.abort()
      clearTimeout(timer)
    }
  }, [statusUrl, readToken, finishedWhenRendered])

  const { snapshot, polling, problem } = state
  const stored = new Map<number, StageOutputRecord>(snapshot.stages.map((stage) => [stage.stageNumber, stage]))
  const completed = stages.filter((stage) => stored.get(stage.number)?.status === 'COMPLETED').length
  const runStatus: RunStatus = snapshot.run.status

  return (
    <div data-testid="run-view" data-polling={polling ? 'on' : 'off'}>
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
        {snapshot.run.error ? <div className="run-error">{snapshot.run.error}</div> : null}
      </section>

      <ol className="stages">
        {stages.map((definition) => {
          const stage = stored.get(definition.number)
          const status: StageStatus = stage?.status ?? 'PENDING'
          return (
            <li
              key={definition.number}
              className={`card stage stage-${status}`}
              data-testid="stage"
              data-stage-number={definition.number}
              data-status={status}
            >
              <span className="stage-number">{definition.number}</span>
              <div>
                <div className="stage-name">{definition.name}</div>
                <div className="stage-meta">
                  {stage?.completedAt
                    ? `Finished ${formatTime(stage.completedAt)}`
                    : stage
                      ? `Updated ${formatTime(stage.updatedAt)}`
                      : 'Waiting'}
                </div>
              </div>
              <span className={`badge badge-${status}`}>{status}</span>
              {stage?.output ? <pre className="stage-output">{previewOutput(stage.output)}</pre> : null}
            </li>
          )
        })}
      </ol>

      <div className={`live ${polling ? 'live-on' : ''}`} data-testid="live-indicator">
        <span className="live-dot" />
        {polling ? 'Live: checking for updates every second' : 'Updates stopped'}
        {!polling && isFinalStatus(runStatus) ? ' (the run is finished)' : null}
      </div>
    </div>
  )
}

async function problemDetail(response: Response): Promise<string> {
  try {
    // Errors are application/problem+json (RFC 9457) with a human-readable detail.
    const problem = (await response.json()) as { detail?: unknown; title?: unknown }
    const text = typeof problem.detail === 'string' ? problem.detail : problem.title
    if (typeof text === 'string') return `${text} (HTTP ${response.status}).`
  } catch {
    // Not JSON (a proxy's error page, say): the status code is all there is.
  }
  return `The status request failed with HTTP ${response.status}.`
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
