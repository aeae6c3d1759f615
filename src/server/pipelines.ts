/**
 * The handlers' pipelines, resolved once: the `pipelines` option and the single `stages` option
 * (the pipeline `default`), each catalogue checked, and what the answers derive from a catalogue
 * (its wire form and that as JSON text), cached per catalogue object. Internal.
 */
import { catalogueOf, type CatalogueEntry, type RunStatusResponse } from '../contract/records.js'
import { PipelineName } from '../contract/run-labels.js'
import { assertStageCatalogue, DEFAULT_PIPELINE, DEFAULT_STAGES, type StageCatalogue } from '../contract/stages.js'
import { catalogueOfRun, type Pipelines } from '../core/run-catalogue.js'
import type { RunSnapshot, RunState } from '../core/state.js'
import { toStatusResponse } from '../core/state-to-records.js'
import { ServerConfigurationError } from './configuration-error.js'

/**
 * The configured pipelines by name. `default` is always there: `stages`, else `pipelines.default`,
 * else the original five stages, so runs created without a pipeline (the original Python runner's)
 * keep working. Throws {@link ServerConfigurationError} for an invalid catalogue or name, and for
 * `stages` given together with `pipelines.default` (which of the two would be `default`?).
 */
export function resolvePipelines(options: {
  stages?: StageCatalogue | undefined
  pipelines?: Readonly<Record<string, StageCatalogue>> | undefined
}): Pipelines {
  const { stages, pipelines = {} } = options
  if (stages !== undefined && Object.hasOwn(pipelines, DEFAULT_PIPELINE)) {
    throw new ServerConfigurationError(
      `Both stages and pipelines.${DEFAULT_PIPELINE} are given: the stages option is the pipeline "${DEFAULT_PIPELINE}"; pass only one of them`,
    )
  }
  const resolved = new Map<string, StageCatalogue>([[DEFAULT_PIPELINE, checked('stages', stages ?? DEFAULT_STAGES)]])
  for (const [name, catalogue] of Object.entries(pipelines)) {
    const parsed = PipelineName.safeParse(name)
    if (!parsed.success) throw new ServerConfigurationError(`Invalid pipeline name "${name}": ${parsed.error.issues[0]?.message}`)
    resolved.set(name, checked(`pipelines.${name}`, catalogue))
  }
  return resolved
}

function checked(option: string, stages: StageCatalogue): StageCatalogue {
  try {
    return assertStageCatalogue(stages)
  } catch (error) {
    throw new ServerConfigurationError(`Invalid ${option}: ${(error as Error).message}`)
  }
}

/** A catalogue as the answers send it, and that as JSON text. */
interface CatalogueForms {
  readonly entries: CatalogueEntry[]
  readonly json: string
}

/** The answers' views of the runs' catalogues, each built once per catalogue object. */
export interface RunCatalogues {
  /** The catalogue of a run as the answers send it; `undefined` when it has none (its pipeline is not configured). */
  entriesOf(run: RunState): CatalogueEntry[] | undefined
  /** The status document, as `GET /status` answers it and the stream's `snapshot` sends it: with the run's own catalogue. */
  statusDocument(snapshot: RunSnapshot): RunStatusResponse
  /** `statusDocument(snapshot)` as JSON text, members in the same order. */
  statusJson(snapshot: RunSnapshot): string
}

/** The answers' views of the catalogues of runs under `pipelines`. */
export function runCatalogues(pipelines: Pipelines): RunCatalogues {
  // By object: configured catalogues and the stores' stored ones (interned by text) repeat.
  const forms = new WeakMap<StageCatalogue, CatalogueForms>()
  const formsOf = (run: RunState): CatalogueForms | undefined => {
    const catalogue = catalogueOfRun(run, pipelines)
    if (!catalogue) return undefined
    let form = forms.get(catalogue)
    if (!form) {
      const entries = catalogueOf(catalogue)
      form = { entries, json: JSON.stringify(entries) }
      forms.set(catalogue, form)
    }
    return form
  }
  return {
    entriesOf: (run) => formsOf(run)?.entries,
    statusDocument(snapshot) {
      const entries = formsOf(snapshot.run)?.entries
      return entries ? { ...toStatusResponse(snapshot), catalogue: entries } : toStatusResponse(snapshot)
    },
    statusJson(snapshot) {
      const json = formsOf(snapshot.run)?.json
      const document = JSON.stringify(toStatusResponse(snapshot))
      return json === undefined ? document : `${document.slice(0, -1)},"catalogue":${json}}`
    },
  }
}
