import { z } from 'zod'
import { RunStatus, StageStatus } from './status.js'

/** A run as stored and returned by the server. Timestamps are ISO 8601 strings. */
export const PipelineRunRecord = z.object({
  id: z.string(),
  status: RunStatus,
  error: z.string().nullable(),
  completedAt: z.string().nullable(),
  /** When the first accepted `/complete` call was stored; `null` until then. */
  completionReceivedAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
})
/** A run as stored and returned by the server. */
export type PipelineRunRecord = z.infer<typeof PipelineRunRecord>

/** A stage as stored and returned by the server. */
export const StageOutputRecord = z.object({
  stageNumber: z.number().int(),
  stageName: z.string(),
  status: StageStatus,
  output: z.string().nullable(),
  completedAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
})
/** A stage as stored and returned by the server. */
export type StageOutputRecord = z.infer<typeof StageOutputRecord>

/** What an update did: stored it, or recognised it as a retry or a late arrival. */
export const UpdateOutcome = z.enum(['applied', 'duplicate', 'stale'])
/** What an update did: stored it, or recognised it as a retry or a late arrival. */
export type UpdateOutcome = z.infer<typeof UpdateOutcome>

/** Response of `GET {basePath}/{runId}/status`: the run and its stored stages in order. */
export const RunStatusResponse = z.object({
  run: PipelineRunRecord,
  stages: z.array(StageOutputRecord),
})
/** Response of `GET {basePath}/{runId}/status`. */
export type RunStatusResponse = z.infer<typeof RunStatusResponse>

/**
 * Response of a stage update: the outcome, the stage as stored and the run as stored.
 * `stage` is `null` only for a stale update of a stage that has no stored row.
 */
export const StageUpdateResponse = z.object({
  outcome: UpdateOutcome,
  stage: StageOutputRecord.nullable(),
  run: PipelineRunRecord,
})
/** Response of a stage update. */
export type StageUpdateResponse = z.infer<typeof StageUpdateResponse>

/** Response of `POST /complete`: the outcome and the run as stored. */
export const CompleteRunResponse = z.object({
  outcome: UpdateOutcome,
  run: PipelineRunRecord,
})
/** Response of `POST /complete`. */
export type CompleteRunResponse = z.infer<typeof CompleteRunResponse>

/** Response of `POST {basePath}/runs`: 201 for a new run, 200 when the id already existed. */
export const CreateRunResponse = z.object({
  created: z.boolean(),
  run: PipelineRunRecord,
})
/** Response of `POST {basePath}/runs`. */
export type CreateRunResponse = z.infer<typeof CreateRunResponse>
