/**
 * The stage-duration chart: per pipeline and stage, its name and failures (HTML text, wrapping), then
 * a bar for p50 and one for p95 (plain SVG, one scale per pipeline). Names come from runs: React
 * text only.
 */
import type { StageStats } from '../index.js'
import { formatDuration } from './format.js'

/** The height of a stage's bars (px). */
const BAR = 10

export function StatsChart({ stages }: { stages: readonly StageStats[] }) {
  if (stages.length === 0) return <p className="ps-muted">No stage finished in this window.</p>
  const byPipeline = new Map<string, StageStats[]>()
  for (const stage of stages) byPipeline.set(stage.pipeline, [...(byPipeline.get(stage.pipeline) ?? []), stage])
  return (
    <div className="ps-stats">
      {[...byPipeline].map(([pipeline, rows]) => (
        <PipelineChart key={pipeline} pipeline={pipeline} rows={rows} />
      ))}
      <p className="ps-legend">
        <span className="ps-key ps-key-p50" aria-hidden="true" /> p50 <span className="ps-key ps-key-p95" aria-hidden="true" /> p95
      </p>
    </div>
  )
}

function PipelineChart({ pipeline, rows }: { pipeline: string; rows: readonly StageStats[] }) {
  const max = Math.max(1, ...rows.map((row) => row.p95Ms ?? 0))
  // Bar lengths in percent of the chart's width, so the text keeps its size at any width.
  const scale = (ms: number | null) => `${ms === null ? 0 : Math.max(0.5, (ms / max) * 100).toFixed(2)}%`
  return (
    <figure className="ps-chart">
      <figcaption>{pipeline}</figcaption>
      {/* Each stage's label is HTML above its bars, not SVG text: a stage name (runner text, up to
          200 characters, maybe one word) wraps inside the chart's width (SVG text never wraps: a
          long name ran past the chart and was cut off). */}
      <div className="ps-chart-bars" role="img" aria-label={`Stage durations of ${pipeline}: p50 and p95 bars per stage; the table below has the numbers`}>
        {rows.map((row) => (
          <div key={row.stageNumber} className="ps-chart-row">
            <div className="ps-chart-label">
              {`${row.stageNumber}. ${row.name}`}
              {row.failed > 0 && <span className="ps-chart-failed">{` · ${row.failed} failed`}</span>}
            </div>
            <svg width="100%" height={BAR} aria-hidden="true" focusable="false">
              <rect x={0} y={0} width={scale(row.p95Ms)} height={BAR} className="ps-bar-p95" />
              <rect x={0} y={0} width={scale(row.p50Ms)} height={BAR} className="ps-bar-p50" />
            </svg>
          </div>
        ))}
      </div>
      <table className="ps-stats-table">
        <caption className="ps-visually-hidden">Stage durations and failures of {pipeline}</caption>
        <thead>
          <tr>
            <th scope="col">Stage</th>
            <th scope="col">p50</th>
            <th scope="col">p95</th>
            <th scope="col">Done</th>
            <th scope="col">Failed</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.stageNumber}>
              <th scope="row">
                {row.stageNumber}. {row.name}
              </th>
              <td>{durationPieces(row.p50Ms)}</td>
              <td>{durationPieces(row.p95Ms)}</td>
              <td>{row.count}</td>
              <td>{row.failed}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  )
}

/** A duration as {@link formatDuration} writes it, each number kept with its unit by a no-break space (`59 min 59 s` breaks only before `59 s`). */
function durationPieces(ms: number | null): string {
  return formatDuration(ms).replace(/(\d) /g, '$1\u00a0')
}
