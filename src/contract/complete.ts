import { z } from 'zod'
import { RunId } from './run-id.js'
import { PipelineName, RunMetadata, Tags } from './run-labels.js'
import { FinalStatus } from './status.js'
import { Timestamp } from './timestamp.js'

/**
 * Body of `POST {basePath}/{runId}/complete`: the explicit end of a run. Any other fields
 * (the original sends `opportunities`, `fullReportMarkdown`, `stageOutputs`) are kept as
 * JSON and handed to the app's `onRunCompleted` hook.
 */
export const CompleteRun = z.looseObject({
  /** How the run ended. */
  status: FinalStatus,
  /**
   * When the run ended (ISO 8601); the server uses its own clock when absent. Stored clamped to
   * [the run's creation, the server's now + its clock-skew tolerance], never refused.
   */
  completedAt: Timestamp.nullish(),
  /** Duration of the run in seconds. */
  duration: z.number().nonnegative().finite().nullish(),
  /** Why the run failed or was cancelled; becomes the run's `error`. */
  error: z.string().nullish(),
})
/**
 * Body of an explicit completion, with any app-specific fields.
 * @interface
 */
export type CompleteRun = z.infer<typeof CompleteRun>

/**
 * Body of `POST {basePath}/runs`. Without `id` the server picks one; without `pipeline` the run
 * belongs to `default`; a `pipeline` the handlers are not configured with is a 400 naming it.
 * The rules of tags and metadata are in `run-labels.ts`.
 */
export const CreateRun = z.object({
  /** The run's id (see {@link RunId}: 1 to 128 of `A–Z a–z 0–9 . _ ~ : -`, not only dots); a random UUID when absent. */
  id: RunId.optional(),
  /** The pipeline the run belongs to: a key of the handlers' `pipelines` (`default` for the single `stages` option). @default 'default' */
  pipeline: PipelineName.optional(),
  /** The run's tags: at most 20 distinct, each 1 to 128 characters; repeats are stored once. @default [] */
  tags: Tags.optional(),
  /** The app's JSON object for the run, at most 16 KiB as UTF-8 JSON. @default {} */
  metadata: RunMetadata.optional(),
})
/**
 * Body of a run creation.
 * @interface
 */
export type CreateRun = z.infer<typeof CreateRun>
