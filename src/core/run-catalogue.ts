/**
 * Which stage catalogue a run follows: its own snapshot, taken when it was created, so that
 * changing a pipeline's stages never rewrites old runs; a run without one (`catalogue` null: an
 * old row, or a run made with Prisma directly) follows the current catalogue of its own pipeline,
 * and its first applied update writes that into the run (docs/design.md, "Runs as a collection").
 */
import { stageNumberReason } from '../contract/field-messages.js'
import { DEFAULT_PIPELINE, DEFAULT_STAGES, type StageCatalogue } from '../contract/stages.js'
import { MAX_STORED_INTEGER } from '../contract/stored-integer.js'
import type { RunState } from './state.js'

/** The configured pipelines by name (the handlers' `pipelines`, with `stages` as `default`). */
export type Pipelines = ReadonlyMap<string, StageCatalogue>

/**
 * The pipelines an operation works with: `pipelines` when given, else `stages` (or the default
 * five stages) as the one pipeline `default`, as the handlers' single `stages` option means.
 */
export function pipelinesOf(options: { pipelines?: Pipelines | undefined; stages?: StageCatalogue | undefined }): Pipelines {
  return options.pipelines ?? new Map([[DEFAULT_PIPELINE, options.stages ?? DEFAULT_STAGES]])
}

/** The run's pipeline: its own, `default` for a run created without one. */
export function pipelineOfRun(run: RunState): string {
  return run.pipeline ?? DEFAULT_PIPELINE
}

/**
 * The catalogue every rule about `run` uses: its own snapshot, else the current catalogue of its
 * pipeline in `pipelines`; `undefined` when it has none and its pipeline is not configured.
 */
export function catalogueOfRun(run: RunState, pipelines: Pipelines): StageCatalogue | undefined {
  return run.catalogue ?? pipelines.get(pipelineOfRun(run))
}

/** The run with `catalogue` as its own, when it had none (what its first applied update writes). */
export function withCatalogue(run: RunState, catalogue: StageCatalogue): RunState {
  return run.catalogue ? run : { ...run, catalogue }
}

/** The refusal of a write that needs the catalogue of a run whose pipeline is no longer configured (409). */
export function unknownPipeline(run: RunState, pipelines: Pipelines): { outcome: 'conflict'; code: 'unknown_pipeline'; detail: string } {
  return {
    outcome: 'conflict',
    code: 'unknown_pipeline',
    detail:
      `Run ${run.id} belongs to pipeline "${pipelineOfRun(run)}", which this server is not configured with ` +
      `(configured: ${[...pipelines.keys()].map((name) => `"${name}"`).join(', ')}), and it has no catalogue of its own`,
  }
}

/**
 * Why `stageNumber` is outside the run's catalogue, as a reason after the field (`must be a whole
 * number from 1 to 5`, `stageNumberReason`: the 400 naming `stageNumber`), or `undefined` when it
 * is inside it.
 */
export function stageNumberOutside(stageNumber: number, catalogue: StageCatalogue): string | undefined {
  return Number.isInteger(stageNumber) && stageNumber >= 1 && stageNumber <= catalogue.length ? undefined : stageNumberReason(catalogue.length)
}

/**
 * The reason of the stage-number rule for the run whose catalogue is `catalogue`, as
 * {@link stageNumberOutside} words it; where no catalogue is known (no such run, or one whose
 * pipeline is not configured: any stored number is taken there) its bound is the largest stored
 * integer.
 */
export function stageNumberRuleOf(catalogue: StageCatalogue | undefined): string {
  return stageNumberReason(catalogue ? catalogue.length : MAX_STORED_INTEGER)
}
