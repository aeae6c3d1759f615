import { z } from 'zod'
import { StageProgress } from './runner-control.js'
import { StageUpdateStatus } from './status.js'
import { type StageCatalogue, stageNumberIn } from './stages.js'
import { Timestamp } from './timestamp.js'

/**
 * Body of `POST {basePath}/{runId}/stage-update`: exactly the fields the original Python
 * runner sends. `output` is a JSON string or markdown, stored as text; `null` means none.
 * Unknown fields are accepted and ignored so newer runners keep working against older servers.
 */
const StageUpdateFields = z.object({
  /** 1-based number of the stage in the catalogue; the server refuses numbers outside 1..N. */
  stageNumber: z.number().int().min(1),
  /** Display name of the stage (1 to 200 characters), stored as sent. */
  stageName: z.string().min(1).max(200),
  /** The stage's new status; `PENDING` is never sent. */
  status: StageUpdateStatus,
  /** The stage's output: a JSON string or markdown, stored as text; `null` or absent means none. */
  output: z.string().nullish(),
  /**
   * When the stage finished (ISO 8601), for a final status; the server uses its own clock when
   * absent. Ignored for `PROCESSING`. Stored clamped to [the run's creation, the server's now +
   * its clock-skew tolerance] (5 minutes by default), never refused.
   */
  completedAt: Timestamp.nullish(),
  /**
   * Progress within the stage (see {@link StageProgress}); only with `PROCESSING` (400 naming
   * `progress` otherwise). An update that changes only the progress is applied, not a duplicate.
   */
  progress: StageProgress.optional(),
})

function progressOnlyWhileProcessing(ctx: z.core.ParsePayload<{ status: string; progress?: unknown }>): void {
  if (ctx.value.progress !== undefined && ctx.value.status !== 'PROCESSING') {
    ctx.issues.push({
      code: 'custom',
      input: ctx.value.progress,
      path: ['progress'],
      message: 'progress is sent only with status PROCESSING',
    })
  }
}

/**
 * Body of `POST {basePath}/{runId}/stage-update`: exactly the fields the original Python
 * runner sends, plus the optional `progress`. Unknown fields are accepted and ignored.
 */
export const StageUpdate = StageUpdateFields.check(progressOnlyWhileProcessing)
/**
 * Body of a stage update, as the runner sends it.
 * @interface
 */
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
export function stageUpdateSchemaFor(stages: StageCatalogue): StageUpdateSchema {
  // One schema per catalogue: zod compiles an object schema on its first parse, so a schema
  // built per call would pay that on every update.
  let schema = stageUpdateSchemas.get(stages)
  if (!schema) {
    schema = buildStageUpdateSchema(stages)
    stageUpdateSchemas.set(stages, schema)
  }
  return schema
}

function buildStageUpdateSchema(stages: StageCatalogue) {
  return StageUpdateFields.extend({ stageNumber: stageNumberIn(stages) }).check(progressOnlyWhileProcessing)
}
type StageUpdateSchema = ReturnType<typeof buildStageUpdateSchema>
const stageUpdateSchemas = new WeakMap<StageCatalogue, StageUpdateSchema>()
