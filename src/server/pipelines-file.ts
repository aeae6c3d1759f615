/**
 * The pipelines file of `pipeline-status mock --pipelines FILE` and the Express example's
 * `PIPELINES_FILE` (docs/design.md, "Runs as a collection"): one JSON object of pipeline names to
 * stage names in order, `{ "report": ["Fetch", "Summarise"], "ingest": ["Load"] }`, read into the
 * handlers' `pipelines` option. Node only (it reads a file): exported from
 * `pipeline-status-sdk/express`, not from the Web-only `/server` entry.
 */
import { readFileSync } from 'node:fs'
import { StageDefinition, type StageCatalogue, defineStages } from '../contract/stages.js'
import { ServerConfigurationError } from './configuration-error.js'

/** The handlers' `pipelines` option: a stage catalogue per pipeline name. */
export type PipelineCatalogues = Record<string, StageCatalogue>

const EXAMPLE = '{ "report": ["Fetch", "Summarise"] }'
const MAX_NAME = StageDefinition.shape.name.maxLength ?? 200

/**
 * Checks a parsed pipelines file and builds its catalogues (numbered from 1). `source` names the
 * file in the errors. Throws {@link ServerConfigurationError} naming the file and the bad key:
 * not an object, no pipeline, an empty pipeline name, or a value that is not a non-empty list of
 * stage names (strings of 1–200 characters, not blank).
 */
export function parsePipelines(value: unknown, source: string): PipelineCatalogues {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ServerConfigurationError(`${source}: a pipelines file is one JSON object of pipeline names to stage names, e.g. ${EXAMPLE}`)
  }
  const entries = Object.entries(value)
  if (entries.length === 0) throw new ServerConfigurationError(`${source}: names no pipeline; give at least one, e.g. ${EXAMPLE}`)
  const pipelines: PipelineCatalogues = {}
  for (const [name, stages] of entries) {
    if (name.trim() === '') throw new ServerConfigurationError(`${source}: a pipeline name must not be empty`)
    if (!Array.isArray(stages) || stages.length === 0) {
      throw new ServerConfigurationError(`${source}: "${name}" must be a non-empty list of stage names, e.g. ["Fetch", "Summarise"], got ${JSON.stringify(stages)}`)
    }
    const bad = stages.findIndex((stage) => typeof stage !== 'string' || stage.trim() === '' || stage.length > MAX_NAME)
    if (bad >= 0) {
      throw new ServerConfigurationError(`${source}: "${name}" stage ${bad + 1} must be a name of 1 to ${MAX_NAME} characters, got ${JSON.stringify(stages[bad])}`)
    }
    pipelines[name] = defineStages(stages as string[])
  }
  return pipelines
}

/**
 * Reads a pipelines file (UTF-8 JSON, see {@link parsePipelines}) into the handlers'
 * `pipelines` option. Throws {@link ServerConfigurationError} naming the file: it cannot be
 * read, it is not JSON, or a key is bad.
 *
 * @example
 * ```ts
 * import { loadPipelinesFile } from 'pipeline-status-sdk/express'
 * // pipelines.json: { "report": ["Fetch", "Summarise"] }; pass the result as the handlers' `pipelines`
 * const pipelines = loadPipelinesFile('pipelines.json')
 * console.log(pipelines['report']?.map((stage) => stage.name)) // ['Fetch', 'Summarise']
 * ```
 */
export function loadPipelinesFile(path: string): PipelineCatalogues {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new ServerConfigurationError(`pipelines file ${path} cannot be read${code ? ` (${code})` : ''}`, { cause: error })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new ServerConfigurationError(`pipelines file ${path} is not JSON: ${(error as Error).message}`, { cause: error })
  }
  return parsePipelines(json, `pipelines file ${path}`)
}
