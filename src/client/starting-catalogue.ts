/**
 * How `runPipeline` starts: the run to execute (created in its pipeline when one is asked for)
 * and the catalogue its stage functions are checked against, the run's own (docs/design.md,
 * "Runs as a collection"). Internal: not exported from the package.
 */
import type { CreateRunResponse } from '../contract/records.js'
import { DEFAULT_PIPELINE, type StageCatalogue } from '../contract/stages.js'
import type { ClientInternals, InheritedRunEnd, RunCatalogue } from './client-internals.js'
import { CatalogueMismatchError, ConfigurationError } from './errors.js'
import { failureReason } from './failure-reason.js'
import type { CompletedStage } from './restart-attempts.js'

/** What `runPipeline` was asked to start. */
export interface RunStart {
  runId: string | undefined
  /** The pipeline to create the run in; `undefined`: the run exists. */
  pipeline: string | undefined
  /** How many stage functions the runner has. */
  stageCount: number
  /** Creates (or takes) the run in `pipeline`: `client.createRun` with the run's tags and metadata. */
  create(pipeline: string): Promise<CreateRunResponse>
}

/**
 * The run to execute and the catalogue its stages are checked against: with `pipeline` the run
 * is created (or taken) in it; the run's own catalogue comes from that answer or `GET /status`.
 * `runCatalogue` is set when that catalogue, not the client's, names the stages (a run of a
 * pipeline other than `default`). Throws {@link CatalogueMismatchError} for a run of another
 * pipeline or another number of stages (saying whether the run's catalogue is the handlers' as
 * configured now, or a snapshot from when it was created earlier).
 */
export async function startingCatalogue(internals: ClientInternals, start: RunStart): Promise<{
  runId: string
  runCatalogue: StageCatalogue | undefined
  /** Stage number → stored attempt of the stages an earlier process left PROCESSING (see `RunCatalogue.processing`). */
  processing: ReadonlyMap<number, number>
  /** Stage number → the stages an earlier process completed, with their output (see `RunCatalogue.completed`). */
  completed: ReadonlyMap<number, CompletedStage>
  /** The run as an earlier process's pending updates end it (see `RunCatalogue.ended`); `undefined` when they do not. */
  ended: InheritedRunEnd | undefined
  warnings: string[]
}> {
  const { pipeline, stageCount } = start
  let runId = start.runId
  // Created by this call: its catalogue is the handlers' as configured now, not an older snapshot.
  let created = false
  if (pipeline !== undefined) {
    const answer = await start.create(pipeline)
    const { run } = answer
    runId = run.id
    created = answer.created
    if (run.pipeline !== pipeline) throw new CatalogueMismatchError(runId, stageCount, undefined, { pipeline: run.pipeline, expectedPipeline: pipeline })
  }
  if (runId === undefined) throw new ConfigurationError('runPipeline needs a `runId` (or a `pipeline` to create the run in)')
  const warnings: string[] = []
  let known: RunCatalogue | undefined
  try {
    known = await internals.serverCatalogue(runId, stageCount)
  } catch (thrown) {
    warnings.push(`The server's stage catalogue could not be read, so the number of stages was not checked: ${failureReason(thrown)}`)
  }
  // The run unread: what an earlier process left is known from its updates still in the outbox alone.
  const resumed = known ?? internals.inheritedRun(runId)
  const entries = known?.catalogue
  // A pipeline is named when one was asked for or the run is not in `default`.
  const named = known !== undefined && (pipeline !== undefined || known.pipeline !== DEFAULT_PIPELINE) ? known.pipeline : undefined
  if (entries !== undefined && entries.length !== stageCount) {
    throw new CatalogueMismatchError(runId, stageCount, entries.length, { pipeline: named, created })
  }
  const own = entries !== undefined && entries.length > 0 && named !== undefined
  return {
    runId,
    runCatalogue: own ? entries.map((entry) => ({ number: entry.stageNumber, name: entry.stageName })) : undefined,
    processing: resumed.processing ?? new Map(),
    completed: resumed.completed ?? new Map(),
    ended: resumed.ended,
    warnings,
  }
}
