/**
 * One end-to-end scenario of a runner that stopped reporting, through the HTTP routes: it is
 * run against the in-memory handlers and against the Express router on PostgreSQL (or PGlite),
 * so both stores are held to the same behaviour.
 */
import type { RunStatusResponse } from 'pipeline-status-sdk'
import type { RunState } from 'pipeline-status-sdk/server'
import { expect } from 'vitest'

export const STALE_SECRET = 'stale-run-secret'
export const STALE_AFTER_MS = 15 * 60_000

/** What the scenario needs of its target. */
export interface StaleRunTarget {
  /** Sends a request to `base + path` as the runner or the front end would. */
  fetch(request: Request): Promise<Response>
  /** The routes' base URL, e.g. `http://127.0.0.1:1234/api/pipeline`. */
  base: string
  /** Moves the clock the handlers and the sweeper share. */
  advance(ms: number): void
  /** One sweep with `staleAfterMs: STALE_AFTER_MS` on the target's store; the runs it failed. */
  sweep(): Promise<Array<{ id: string }>>
  /** Every run `onRunCompleted` was called with, in order. */
  completions: Array<Pick<RunState, 'id' | 'status'>>
}

export async function runStaleRunScenario(target: StaleRunTarget, runId: string): Promise<void> {
  const send = (method: string, path: string, body?: unknown) =>
    target.fetch(
      new Request(`${target.base}${path}`, {
        method,
        headers: { 'X-Webhook-Secret': STALE_SECRET, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      }),
    )
  const status = async (): Promise<RunStatusResponse> => {
    const response = await send('GET', `/${runId}/status`)
    expect(response.status).toBe(200)
    return (await response.json()) as RunStatusResponse
  }

  expect((await send('POST', '/runs', { id: runId })).status).toBe(201)
  const started = await send('POST', `/${runId}/stage-update`, { stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING' })
  expect(started.status).toBe(200)

  // Still within the limit: nothing happens.
  target.advance(STALE_AFTER_MS)
  expect((await target.sweep()).map((run) => run.id)).not.toContain(runId)
  expect((await status()).run.status).toBe('PROCESSING')

  // Then the runner has been silent for longer than staleAfterMs.
  target.advance(60_000)
  const failed = await target.sweep()
  expect(failed.map((run) => run.id)).toContain(runId)

  const afterSweep = await status()
  expect(afterSweep.run).toMatchObject({
    status: 'FAILED',
    error: 'No update for more than 15 minutes: the runner stopped reporting',
    completionReceivedAt: null,
  })
  expect(afterSweep.run.completedAt).not.toBeNull()
  expect(afterSweep.stages.map((stage) => [stage.stageNumber, stage.status])).toEqual([[1, 'PROCESSING']])
  expect(target.completions).toEqual([])

  // The runner comes back late: PROCESSING is stale, COMPLETED for the run is refused...
  const late = await send('POST', `/${runId}/stage-update`, { stageNumber: 2, stageName: 'Signal Amplification', status: 'PROCESSING' })
  expect(await late.json()).toMatchObject({ outcome: 'stale', run: { status: 'FAILED' } })
  const completed = await send('POST', `/${runId}/complete`, { status: 'COMPLETED' })
  expect(completed.status).toBe(409)
  expect(await completed.json()).toMatchObject({ code: 'run_finished' })

  // ...and its own FAILED is accepted once, running onRunCompleted once.
  const failedByRunner = await send('POST', `/${runId}/complete`, { status: 'FAILED', error: 'killed by the OOM killer' })
  expect(failedByRunner.status).toBe(200)
  expect(await failedByRunner.json()).toMatchObject({ outcome: 'applied', run: { status: 'FAILED' } })
  const again = await send('POST', `/${runId}/complete`, { status: 'FAILED', error: 'killed by the OOM killer' })
  expect(await again.json()).toMatchObject({ outcome: 'duplicate' })
  expect(target.completions.map((run) => [run.id, run.status])).toEqual([[runId, 'FAILED']])

  const final = await status()
  expect(final.run.status).toBe('FAILED')
  expect(final.run.completionReceivedAt).not.toBeNull()
  expect(await target.sweep()).toEqual([])
}
