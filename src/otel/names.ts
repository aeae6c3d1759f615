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
  /** The route of a client's dead letter: `stageUpdate` or `complete`. */
  route: 'pipeline_status.route',
  /** A client's dead letter's kind: `dead_letter` (refused for good or expired) or `superseded` (its run ended elsewhere). */
  deadLetterKind: 'pipeline_status.dead_letter.kind',
  /** With a read replica: what a read served (`status`, `snapshot`, `list`, `count`). */
  readKind: 'pipeline_status.read.kind',
  /** With a read replica: who answered a read, `replica` or `primary`. */
  readSource: 'pipeline_status.read.source',
  /** With a read replica: why a read went to the primary (`behind`, `missing`, `replica_error`). */
  readFallbackReason: 'pipeline_status.read.fallback_reason',
  /** A live stream the server ended: why (`not-admitted`, `update-unavailable`, `credential-expired`, `deleted`, `membership-failed`). */
  streamClosedCause: 'pipeline_status.stream.closed_cause',
  /** A live stream's kind: `run` (a run's own stream) or `set` (a set stream). */
  streamKind: 'pipeline_status.stream.kind',
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
  /** Counter: live status streams the server ended before their run's end (`: closed <cause>`), by cause and stream kind. */
  streamsClosed: 'pipeline_status.streams.closed',
  /** Counter, with a read replica: reads served, by kind, source (replica or primary) and fallback reason. */
  reads: 'pipeline_status.reads',
  /** Counter, in the runner: updates the client's outbox kept as dead letters, by route and kind. */
  clientDeadLetters: 'pipeline_status.client.dead_letters',
  /** Gauge, in the runner: updates waiting in the process's outboxes. */
  clientOutboxDepth: 'pipeline_status.client.outbox.depth',
} as const)
