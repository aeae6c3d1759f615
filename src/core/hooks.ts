/**
 * The app's hooks and policies that the handlers and the stale-run sweeper take: public types of
 * `pipeline-status-sdk/server`. The operations that call them live in `src/core/operations.ts`.
 */
import type { CompleteRun } from '../contract/complete.js'
import type { RunEndReason } from '../contract/runner-control.js'
import type { FinalStatus } from '../contract/status.js'
import type { RunState } from './state.js'

/**
 * The app's hook that stores a run's results; runs inside the completing transaction, once per run.
 * `tx` is the store's transaction handle (your Prisma transaction client with `prisma`), `run`
 * the run as completed, `payload` the whole `/complete` body, your own fields included.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
 * const handlers = createPipelineStatusHandlers({
 *   prisma,
 *   // In the completion's transaction: write your own tables with `tx` (your models, e.g. tx.report).
 *   onRunCompleted: async (tx, run, payload) => {
 *     const done = await tx.stageOutput.count({ where: { runId: run.id, status: 'COMPLETED' } })
 *     console.log(`run ${run.id} ${run.status}: ${done} stages, report of ${String(payload.fullReportMarkdown ?? '').length} characters`)
 *   },
 * })
 * ```
 */
export type OnRunCompleted<Tx = unknown> = (tx: Tx, run: RunState, payload: CompleteRun) => Promise<void> | void

/** What {@link OnRunEnded} receives. */
export interface RunEndedInput<Tx = unknown> {
  /**
   * The store's transaction handle (your Prisma transaction client with `prisma`): the hook runs
   * inside the transaction of the write that ended the run, so its own writes commit or roll
   * back with it.
   */
  tx: Tx
  /** The run as it ended (`COMPLETED`, `FAILED` or `CANCELLED`). */
  run: RunState
  /** How it ended. */
  how: RunEndReason
}

/**
 * The app's hook for the end of a run, however it ended (last stage completed, a stage failed or
 * was cancelled, `POST /cancel`, the stale-run sweep, `POST /complete`): it runs exactly once per
 * run, inside the transaction of the write that ended it. When it throws, that write is rolled
 * back (the request answers 500 and can be retried; the sweep tries again next time).
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
 * const handlers = createPipelineStatusHandlers({
 *   prisma,
 *   // In the same transaction as the write that ended the run; `tx` writes your own tables too.
 *   onRunEnded: async ({ tx, run, how }) => {
 *     const stages = await tx.stageOutput.findMany({ where: { runId: run.id }, select: { stageNumber: true, status: true } })
 *     console.log(`Run ${run.id} ${run.status} (${how})`, stages)
 *   },
 * })
 * ```
 */
export type OnRunEnded<Tx = unknown> = (input: RunEndedInput<Tx>) => Promise<void> | void

/** How long to keep finished runs, per final status, in milliseconds; a status left out is kept forever. */
export type RetentionPolicy = Partial<Record<FinalStatus, number>>
