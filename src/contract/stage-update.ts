import { z } from 'zod'
import { StageUpdateStatus } from './status.js'
import { type StageCatalogue, lastStageNumber } from './stages.js'
import { Timestamp } from './timestamp.js'

/**
 * Body of `POST {basePath}/{runId}/stage-update`: exactly the fields the original Python
 * runner sends. `output` is a JSON string or markdown, stored as text; `null` means none.
 * Unknown fields are accepted and ignored so newer runners keep working against older servers.
 */
export const StageUpdate = z.object({
  stageNumber: z.number().int().min(1),
  stageName: z.string().min(1).max(200),
  status: StageUpdateStatus,
  output: z.string().nullish(),
  completedAt: Timestamp.nullish(),
})
/** Body of a stage update, as the runner sends it. */
export type StageUpdate = z.infer<typeof StageUpdate>

/**
 * The stage-update schema restricted to a catalogue: `stageNumber` must be 1..N.
 *
 * @example
 * ```ts
 * import { stageUpdateSchemaFor, DEFAULT_STAGES } from 'pipeline-status-sdk'
 * stageUpdateSchemaFor(DEFAULT_STAGES).safeParse({ stageNumber: 6, stageName: 'x', status: 'PROCESSING' }).success // false
 * ```
 */
export function stageUpdateSchemaFor(stages: StageCatalogue) {
  const last = lastStageNumber(stages)
  return StageUpdate.extend({
    stageNumber: z
      .number()
      .int()
      .min(1)
      .max(last, { message: `stageNumber must be between 1 and ${last}` }),
  })
}
