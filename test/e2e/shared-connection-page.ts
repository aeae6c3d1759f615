/**
 * The page of test/e2e/shared-connection.test.ts, bundled by esbuild: one `useRunStatus` per run
 * id the HTML lists (`<script id="runs" type="application/json">`), each rendering its run's
 * status, its completed stages, its connection state and its error (`status code`) as data attributes.
 */
import { createElement } from 'react'
import { createRoot } from 'react-dom/client'
import { useRunStatus } from '../../src/react/index.js'

function Run({ runId }: { runId: string }) {
  const { run, stages, state, error } = useRunStatus(runId, { url: '/api/pipeline' })
  return createElement(
    'li',
    {
      'data-testid': 'run',
      'data-run-id': runId,
      'data-state': state,
      'data-status': run?.status ?? '',
      'data-completed': String(stages.filter((stage) => stage.status === 'COMPLETED').length),
      'data-error': error === undefined ? '' : `${String((error as { status?: number }).status)} ${String((error as { problem?: { code?: string } }).problem?.code)}`,
    },
    `${runId}: ${run?.status ?? '…'} (${state})`,
  )
}

const runIds = JSON.parse(document.getElementById('runs')?.textContent ?? '[]') as string[]
createRoot(document.getElementById('root') as HTMLElement).render(
  createElement('ul', null, ...runIds.map((runId) => createElement(Run, { key: runId, runId }))),
)
