import { z } from 'zod'
import { stageNumberChecks } from './field-messages.js'

/** One entry of a stage catalogue: its 1-based number and its display name. */
export const StageDefinition = z.object({
  /** 1-based position of the stage; a catalogue is numbered 1..N without gaps. */
  number: z.number().int().min(1),
  /** Display name (1 to 200 characters), sent as `stageName`. */
  name: z.string().min(1).max(200),
})
/**
 * One entry of a stage catalogue: its 1-based number and its display name.
 * @interface
 */
export type StageDefinition = z.infer<typeof StageDefinition>

/** The ordered stages of a pipeline, numbered 1..N without gaps. */
export type StageCatalogue = readonly StageDefinition[]

/**
 * The name of the pipeline of the handlers' single `stages` option, and of every run created
 * without a pipeline (docs/design.md, "Runs as a collection").
 */
export const DEFAULT_PIPELINE = 'default'

/**
 * The original five-stage pipeline, used when no catalogue is configured.
 *
 * @example
 * ```ts
 * import { DEFAULT_STAGES } from 'pipeline-status-sdk'
 * DEFAULT_STAGES[4]?.name // 'Opportunity Generation'
 * ```
 */
export const DEFAULT_STAGES: StageCatalogue = Object.freeze([
  { number: 1, name: 'Input Processing' },
  { number: 2, name: 'Signal Amplification' },
  { number: 3, name: 'General Translation' },
  { number: 4, name: 'Brand Contextualization' },
  { number: 5, name: 'Opportunity Generation' },
])

/**
 * Builds a stage catalogue from names in order, numbering them from 1.
 * Throws a `TypeError` for an empty list or an empty name.
 *
 * @example
 * ```ts
 * import { defineStages } from 'pipeline-status-sdk'
 * const stages = defineStages(['Fetch', 'Transform', 'Load'])
 * stages[2] // { number: 3, name: 'Load' }
 * ```
 */
export function defineStages(names: readonly string[]): StageCatalogue {
  if (names.length === 0) throw new TypeError('A stage catalogue needs at least one stage')
  return Object.freeze(
    names.map((name, index) => {
      if (typeof name !== 'string' || name.trim() === '') {
        throw new TypeError(`Stage ${index + 1} needs a non-empty name`)
      }
      return Object.freeze({ number: index + 1, name })
    }),
  )
}

/**
 * Checks that a catalogue is numbered 1..N without gaps and returns it.
 * Throws a `TypeError` that names the first wrong entry.
 */
export function assertStageCatalogue(stages: StageCatalogue): StageCatalogue {
  if (stages.length === 0) throw new TypeError('A stage catalogue needs at least one stage')
  stages.forEach((stage, index) => {
    const parsed = StageDefinition.safeParse(stage)
    if (!parsed.success || stage.number !== index + 1) {
      throw new TypeError(
        `Stage catalogue entry ${index} must be { number: ${index + 1}, name: <non-empty string> }`,
      )
    }
  })
  return stages
}

/** The number of the last stage; completing it completes the run. */
export function lastStageNumber(stages: StageCatalogue): number {
  return stages.length
}

/**
 * The `stageNumber` field of a body checked against a catalogue: a whole number from 1 to the
 * last stage, with one message for every way a value misses it (`stageNumberReason`), in both
 * the stage-update and the heartbeat schemas. Internal.
 */
export function stageNumberIn(stages: StageCatalogue) {
  const checks = stageNumberChecks(lastStageNumber(stages))
  return z.number(checks).int(checks).min(1, checks).max(lastStageNumber(stages), checks)
}
