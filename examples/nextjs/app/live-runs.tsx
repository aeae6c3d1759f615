'use client'

import Link from 'next/link'
import type { RunSummary } from 'pipeline-status-sdk'
import { useRuns } from 'pipeline-status-sdk/react'

/** Props of {@link LiveRuns}. */
export interface LiveRunsProps {
  /** The routes' base path, e.g. `/api/pipeline`: the list's stream is `{url}/events`. */
  url: string
  /** How many of the newest runs the list shows (the stream's `limit`). */
  limit: number
  /** The newest runs as the server listed them (GET /runs), rendered first. */
  initial: RunSummary[]
}

const time = (iso: string) => `${iso.replace('T', ' ').slice(0, 19)} UTC`

/**
 * The newest runs, rendered as the server listed them, then kept live on one connection
 * (`useRuns`: the set stream `GET /api/pipeline/events?limit=…&view=summary`, read with fetch): a
 * run the runner creates shows up at the top, statuses change as runs progress, and the oldest
 * run leaves when a new one pushes it out of the newest `limit`. The page reads with the app's
 * own rule for lists (lib/pipeline-routes.ts, `authorize`), so no token is handed out here.
 */
export function LiveRuns({ url, limit, initial }: LiveRunsProps) {
  const { runs, state } = useRuns({ url, limit, initial })
  return (
    <section className="card" data-testid="runs-view" data-live={state}>
      {state === 'error' ? (
        <p className="notice" data-testid="runs-live-error">
          The list is no longer live. Reload the page to try again.
        </p>
      ) : null}
      {runs.length === 0 ? (
        <p className="muted" style={{ margin: 0 }}>
          No runs yet. Point a runner at this app (see examples/nextjs/README.md) and its run shows up here.
        </p>
      ) : (
        <table className="runs-table" data-testid="runs">
          <thead>
            <tr>
              <th>Run</th>
              <th>Status</th>
              <th>Pipeline</th>
              <th>Tags</th>
              <th>Created</th>
              <th>Finished</th>
            </tr>
          </thead>
          <tbody>
            {runs.map((run) => (
              <tr key={run.id} data-testid="run-row" data-run-id={run.id} data-status={run.status}>
                <td>
                  <Link href={`/runs/${encodeURIComponent(run.id)}`}>
                    <code>{run.id}</code>
                  </Link>
                </td>
                <td>
                  <span className={`badge badge-${run.status}`}>{run.status}</span>
                </td>
                <td data-testid="run-pipeline">{run.pipeline}</td>
                <td data-testid="run-tags">
                  {run.tags.map((tag) => (
                    <span key={tag} className="tag">
                      {tag}
                    </span>
                  ))}
                </td>
                <td className="muted">{time(run.createdAt)}</td>
                <td className="muted">{run.completedAt ? time(run.completedAt) : '–'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  )
}
