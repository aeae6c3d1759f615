import { z } from 'zod'
import { FinalStatus } from './status.js'
import { Timestamp } from './timestamp.js'

/**
 * Body of `POST {basePath}/{runId}/complete`: the explicit end of a run. Any other fields
 * (the original sends `opportunities`, `fullReportMarkdown`, `stageOutputs`) are kept as
 * JSON and handed to the app's `onRunCompleted` hook.
 */
export const CompleteRun = z.looseObject({
  status: FinalStatus,
  completedAt: Timestamp.nullish(),
  /** Duration of the run in seconds. */
  duration: z.number().nonnegative().finite().nullish(),
  error: z.string().nullish(),
})
/** Body of an explicit completion. */
export type CompleteRun = z.infer<typeof CompleteRun>

/** Body of `POST {basePath}/runs`. Without `id` the server picks one. */
export const CreateRun = z.object({
  id: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9._:~-]+$/, {
      message: 'id may contain only letters, digits and . _ : ~ -',
    })
    .optional(),
})
/** Body of a run creation. */
export type CreateRun = z.infer<typeof CreateRun>
