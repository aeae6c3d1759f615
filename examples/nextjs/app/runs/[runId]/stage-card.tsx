import type { PipelineRunRecord, StageDefinition, StageOutputRecord, StageProgress, StageStatus } from 'pipeline-status-sdk'
import { describeAttempt, formatDuration, formatTime, isoDuration, stageTiming } from '@/lib/stage-timing'

/** Characters and lines of a stage's output shown on the page. */
const OUTPUT_PREVIEW_CHARS = 320
const OUTPUT_PREVIEW_LINES = 6

/** Words before a stage's duration, by {@link StageTiming.kind}. */
const DURATION_LABEL = { running: 'running', took: 'took', stopped: 'stopped after' } as const

/** Props of {@link StageCard}. */
export interface StageCardProps {
  /** The stage as the catalogue names it. */
  definition: StageDefinition
  /** Its stored row; `undefined` while it has not reported. */
  stage: StageOutputRecord | undefined
  /** The run it belongs to. */
  run: PipelineRunRecord
  /** The time the clocks read (epoch ms), see use-now.ts. */
  now: number
}

/**
 * One stage of the run: its status, when it started and how long it took (or, while it runs, a
 * clock), a retry's attempt line and last error, its progress and a preview of its output. Every
 * stored string is rendered as React text, never as HTML: runner data is hostile.
 */
export function StageCard({ definition, stage, run, now }: StageCardProps) {
  const status: StageStatus = stage?.status ?? 'PENDING'
  // A stage without a row on a run that ended FAILED or CANCELLED never ran, and never will.
  const neverRan = stage === undefined && (run.status === 'FAILED' || run.status === 'CANCELLED')
  // A stage keeps its last progress when it ends: "Stopped at" says where a failed one stood.
  const described = stage?.progress ? describeProgress(stage.progress) : undefined
  const progress =
    described === undefined || stage === undefined || stage.status === 'COMPLETED'
      ? undefined
      : stage.status === 'PROCESSING'
        ? described
        : `Stopped at ${described}`
  const attempt = stage ? describeAttempt(stage, now) : undefined
  return (
    <li
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
          {neverRan ? (
            `Never ran: the run ${run.status === 'FAILED' ? 'failed' : 'was cancelled'} before this stage started`
          ) : stage ? (
            <StageTime stage={stage} run={run} now={now} />
          ) : (
            'Waiting'
          )}
        </div>
        {progress ? (
          <div className="stage-progress" data-testid="stage-progress">
            {progress}
          </div>
        ) : null}
      </div>
      <span className={`badge badge-${neverRan ? 'NOT_RUN' : status}`}>{neverRan ? 'NOT RUN' : status}</span>
      {/* Below the name and badge, across the card: room for the countdown and the error on a phone. */}
      {attempt ? (
        <div className="stage-retry">
          <div className="stage-attempt" data-testid="stage-attempt">
            {attempt}
          </div>
          {/* pre-wrap in the CSS keeps the error's line breaks (a stack trace, a list of causes). */}
          {stage?.lastError ? (
            <div className="stage-last-error" data-testid="stage-last-error">
              <span className="stage-last-error-label">Last error: </span>
              {stage.lastError}
            </div>
          ) : null}
        </div>
      ) : null}
      {stage?.output ? <pre className="stage-output">{previewOutput(stage.output)}</pre> : null}
    </li>
  )
}

/** `Started 12:00:01 UTC · running 2 min 05 s` (ticking), or `… · took 4 s` once finished. */
function StageTime({ stage, run, now }: { stage: StageOutputRecord; run: PipelineRunRecord; now: number }) {
  const timing = stageTiming(stage, run, now)
  return (
    <>
      {/* Each half kept whole, so a narrow card breaks the line at the dot. */}
      <span className="nowrap">
        Started <time dateTime={timing.startedAt}>{formatTime(timing.startedAt)}</time>
      </span>{' '}
      ·{' '}
      <span className="nowrap">
        {DURATION_LABEL[timing.kind]}{' '}
        <time className="stage-duration" dateTime={isoDuration(timing.durationMs)} data-testid="stage-duration" data-kind={timing.kind}>
          {formatDuration(timing.durationMs)}
        </time>
      </span>
    </>
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
