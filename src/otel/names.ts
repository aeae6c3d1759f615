/** The attribute and metric names of DESIGN.md "Observability", in one place. */

/** The attributes of the stage spans and the metrics. */
export const ATTRIBUTES = Object.freeze({
  runId: 'pipeline_status.run.id',
  pipeline: 'pipeline_status.pipeline',
  stageNumber: 'pipeline_status.stage.number',
  stageName: 'pipeline_status.stage.name',
  stageAttempt: 'pipeline_status.stage.attempt',
  stageStatus: 'pipeline_status.stage.status',
  runStatus: 'pipeline_status.run.status',
  updateOutcome: 'pipeline_status.update.outcome',
} as const)

/** The metrics' names. */
export const METRICS = Object.freeze({
  /** Histogram, seconds: a stage's `completedAt - startedAt`, by pipeline, stage name and status. */
  stageDuration: 'pipeline_status.stage.duration',
  /** Counter: run transitions, by pipeline and the status moved to. */
  runs: 'pipeline_status.runs',
  /** Counter: stage updates answered, by pipeline and outcome (applied, duplicate, stale, conflict). */
  updates: 'pipeline_status.updates',
  /** UpDownCounter: live status streams open. */
  streams: 'pipeline_status.streams',
} as const)
