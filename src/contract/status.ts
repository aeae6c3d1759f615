import { z } from 'zod'

/**
 * Status of one stage. `PENDING` means no update has been stored for the stage yet.
 * Stages share the `RunStatus` enum in the database.
 */
export const StageStatus = z.enum(['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'])
/**
 * Status of one stage. `PENDING` means no update has been stored for the stage yet.
 * @useDeclaredType
 */
export type StageStatus = z.infer<typeof StageStatus>

/** Status of a whole pipeline run. */
export const RunStatus = z.enum(['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'])
/**
 * Status of a whole pipeline run.
 * @useDeclaredType
 */
export type RunStatus = z.infer<typeof RunStatus>

/** The statuses a runner may send in a stage update (`PENDING` is never sent). */
export const StageUpdateStatus = z.enum(['PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'])
/**
 * The statuses a runner may send in a stage update (`PENDING` is never sent).
 * @useDeclaredType
 */
export type StageUpdateStatus = z.infer<typeof StageUpdateStatus>

/** The statuses that end a run, as sent to `POST /complete`. */
export const FinalStatus = z.enum(['COMPLETED', 'FAILED', 'CANCELLED'])
/**
 * The statuses that end a run, as sent to `POST /complete`.
 * @useDeclaredType
 */
export type FinalStatus = z.infer<typeof FinalStatus>

/**
 * Whether a status is final: `COMPLETED`, `FAILED` or `CANCELLED`.
 * A stage or run in a final status never changes its own status again.
 *
 * @example
 * ```ts
 * import { isFinalStatus } from 'pipeline-status-sdk'
 * isFinalStatus('FAILED') // true
 * ```
 */
export function isFinalStatus(status: StageStatus | RunStatus): status is FinalStatus {
  return status === 'COMPLETED' || status === 'FAILED' || status === 'CANCELLED'
}
