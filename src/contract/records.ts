import { z } from 'zod'
import { jsonObjectSchema } from './json-object.js'
import { HeartbeatOutcome, StageProgress } from './runner-control.js'
import type { StageCatalogue } from './stages.js'
import { RunStatus, StageStatus } from './status.js'

/** A run as stored and returned by the server. Timestamps are ISO 8601 strings. */
export const PipelineRunRecord = z.object({
  /** The run's id (`PipelineRun.id`). */
  id: z.string(),
  /** The run's status, derived from its stages or set by `/complete`. */
  status: RunStatus,
  /**
   * Why the run failed or was cancelled: the failed stage's output, the `/complete` error, the
   * `/cancel` reason, or the stale-run sweeper's reason ("no heartbeat for 45 s"); `null` otherwise.
   */
  error: z.string().nullable(),
  /** When the run finished; `null` while it is not finished. */
  completedAt: z.string().nullable(),
  /** When the first accepted `/complete` call was stored; `null` until then. */
  completionReceivedAt: z.string().nullable(),
  /** When the run was created. */
  createdAt: z.string(),
  /** When the run last changed. */
  updatedAt: z.string(),
  /**
   * When the last heartbeat arrived; `null` before the first (applied updates are activity too,
   * see `updatedAt`). A heartbeat does not raise the run version, so this (with
   * `heartbeatIntervalMs`) is the one field a `304 Not Modified` may show older than stored.
   */
  lastActivityAt: z.string().nullable(),
  /** The heartbeat interval the runner announced, in milliseconds; `null` when it never did. */
  heartbeatIntervalMs: z.number().int().nullable(),
  // The four below are always sent by this package's handlers; the defaults are what a client
  // reads from a server older than them (0.1), so that it keeps working against one.
  /** The pipeline the run belongs to (a key of the handlers' `pipelines`; `default` for the single `stages` option). */
  pipeline: z.string().default('default'),
  /** The run's tags (at most 20, each 1–128 characters), in the order they were added. */
  tags: z.array(z.string()).default([]),
  /** The app's JSON object for the run (at most 16 KiB as JSON; `{}` when none). */
  metadata: jsonObjectSchema().default({}),
  /** When the run's first stage started (the server's receipt of its first applied update); `null` before. */
  startedAt: z.string().nullable().default(null),
})
/**
 * A run as stored and returned by the server.
 * @interface
 */
export type PipelineRunRecord = z.infer<typeof PipelineRunRecord>

/** A stage as stored and returned by the server. */
export const StageOutputRecord = z.object({
  /** 1-based number of the stage. */
  stageNumber: z.number().int(),
  /** The name the last applied update sent. */
  stageName: z.string(),
  /** The stage's status; a stage without a row is `PENDING` and is not listed. */
  status: StageStatus,
  /** The stage's output as sent (a JSON string or markdown); `null` when none. */
  output: z.string().nullable(),
  /** When the stage finished; `null` while it is `PROCESSING`. */
  completedAt: z.string().nullable(),
  /**
   * The stage's progress with the highest `seq` so far; `null` when none was sent. A final
   * status keeps it as it was (the last progress seen), so a page can still show "37 of 40" for
   * a stage that failed there.
   */
  progress: StageProgress.nullable(),
  /** When the first update of the stage was stored. */
  createdAt: z.string(),
  /** When the stage last changed. */
  updatedAt: z.string(),
  // The five below are always sent by this package's handlers; the defaults are what a client
  // reads from a server older than them (0.1), so that it keeps working against one.
  /**
   * When the stage started: the server's receipt of its first applied update, or its
   * `completedAt` when that first update was final. Never moved by a retry, so
   * `completedAt - startedAt` is the stage's whole time, all attempts included, never negative.
   * `null` only from an older server.
   */
  startedAt: z.string().nullable().default(null),
  /** The number of the attempt running or about to run (1 for the first); `null` when the runner never sent one. */
  attempt: z.number().int().nullable().default(null),
  /** How many attempts the runner will make in all; `null` when it never said. */
  maxAttempts: z.number().int().nullable().default(null),
  /** Why the previous attempt failed (at most 2,000 characters); `null` when none. */
  lastError: z.string().nullable().default(null),
  /**
   * When the next attempt (`attempt`) will start, within 24 hours of the report; `null` while an
   * attempt runs or when none is planned. A final status keeps all five attempt fields as they were.
   */
  nextRetryAt: z.string().nullable().default(null),
  /**
   * The `seq` of the last streamed output chunk applied to the stage's current attempt
   * (`POST {base}/{runId}/stages/{stageNumber}/output`); `null` when none. While the stage has no
   * final output, `output` is the streamed text so far (chunks 0..`outputSeq`, in order); a final
   * output replaces the text and keeps `outputSeq`. A subscriber appends an `output` event's text
   * only when its `seq` is `outputSeq + 1`.
   */
  outputSeq: z.number().int().nullable().default(null),
})
/**
 * A stage as stored and returned by the server.
 * @interface
 */
export type StageOutputRecord = z.infer<typeof StageOutputRecord>

/** What an update did: stored it, or recognised it as a retry, a late arrival or a conflicting repeat. */
export const UpdateOutcome = z.enum(['applied', 'duplicate', 'stale', 'conflict'])
/**
 * What an update did: stored it (`applied`), or recognised it as a retry (`duplicate`), a
 * late arrival (`stale`) or, for a stage update, a final status repeated with a different output
 * (`conflict`: the stored output stays); the last three change nothing.
 * @useDeclaredType
 */
export type UpdateOutcome = z.infer<typeof UpdateOutcome>

/** One stage of the server's catalogue, as sent in the status and create-run answers. */
export const CatalogueEntry = z.object({
  /** 1-based number of the stage. */
  stageNumber: z.number().int().min(1),
  /** The stage's configured name. */
  stageName: z.string(),
})
/**
 * One stage of the server's catalogue.
 * @interface
 */
export type CatalogueEntry = z.infer<typeof CatalogueEntry>

/**
 * A stage catalogue as the status and create-run answers send it, e.g. `defineStages(['Fetch',
 * 'Load'])` → `[{ stageNumber: 1, stageName: 'Fetch' }, { stageNumber: 2, stageName: 'Load' }]`.
 * Internal: the handlers and the mock build the answers' `catalogue` with it.
 */
export function catalogueOf(stages: StageCatalogue): CatalogueEntry[] {
  return stages.map((stage) => ({ stageNumber: stage.number, stageName: stage.name }))
}

/**
 * The run's own stage catalogue (the snapshot of its pipeline's taken when it was created),
 * numbered 1..N. A runner checks at start that its own number of stages is N. Always sent by
 * this package's handlers, except for a run without a snapshot whose pipeline is no longer
 * configured; absent from older servers.
 */
export const CatalogueField = z.array(CatalogueEntry).optional()

/** The member every answer about one run carries, so that a runner learns when the run ended elsewhere. */
const runMember = {
  /** The run as stored after the call: its `status` and `error` say whether and how it ended. */
  run: PipelineRunRecord,
}

/** The member of the answers a runner reads at its start (status, create run). */
const catalogueMember = {
  /** The run's own stage catalogue, numbered 1..N (a runner checks at start that it has N stages); absent from older servers. */
  catalogue: CatalogueField,
}

/**
 * Response of `GET {basePath}/{runId}/status`: the run and its stored stages in order.
 *
 * @example
 * ```ts
 * import { RunStatusResponse, routePath } from 'pipeline-status-sdk'
 * const token = process.env.RUN_READ_TOKEN // a run read token, or send X-Webhook-Secret
 * const response = await fetch(new URL(routePath('status', 'run_1'), 'http://localhost:3000'), { headers: { authorization: `Bearer ${token}` } })
 * const { run, stages } = RunStatusResponse.parse(await response.json())
 * ```
 */
export const RunStatusResponse = z.object({
  ...runMember,
  /** The stages that have a row, ordered by stage number; stages never reported are absent (`PENDING`). */
  stages: z.array(StageOutputRecord),
  ...catalogueMember,
})
/**
 * Response of `GET {basePath}/{runId}/status`.
 * @interface
 */
export type RunStatusResponse = z.infer<typeof RunStatusResponse>

/**
 * Response of a stage update: the outcome, the stage as stored and the run as stored.
 * `stage` is `null` only for a stale update of a stage that has no stored row. The stage is as
 * `GET /status` shows it: while it has no final output of its own, a stage with streamed output
 * has the streamed text so far as its `output`.
 */
export const StageUpdateResponse = z.object({
  /** What the update did. */
  outcome: UpdateOutcome,
  /** The stage as stored after the update, as `GET /status` shows it (its streamed text as `output` while it has no final one); `null` only for a stale update of a stage that has no row. */
  stage: StageOutputRecord.nullable(),
  ...runMember,
})
/**
 * Response of a stage update.
 * @interface
 */
export type StageUpdateResponse = z.infer<typeof StageUpdateResponse>

/** Response of `POST /complete`: the outcome and the run as stored. */
export const CompleteRunResponse = z.object({
  /** `applied` for the first accepted completion (the one that ran `onRunCompleted`), `duplicate` after it. */
  outcome: UpdateOutcome,
  ...runMember,
})
/**
 * Response of `POST /complete`.
 * @interface
 */
export type CompleteRunResponse = z.infer<typeof CompleteRunResponse>

/** Response of `POST {basePath}/runs`: 201 for a new run, 200 when the id already existed. */
export const CreateRunResponse = z.object({
  /** `true` when this call created the run (201), `false` when the id already existed (200). */
  created: z.boolean(),
  ...runMember,
  ...catalogueMember,
})
/**
 * Response of `POST {basePath}/runs`.
 * @interface
 */
export type CreateRunResponse = z.infer<typeof CreateRunResponse>

/** Response of `POST {basePath}/{runId}/tags` and `POST {basePath}/{runId}/metadata`: the run as stored afterwards. */
export const RunLabelsResponse = z.object({
  ...runMember,
})
/**
 * Response of a tag or metadata change.
 * @interface
 */
export type RunLabelsResponse = z.infer<typeof RunLabelsResponse>

/**
 * Response of `POST {basePath}/{runId}/heartbeat`: what it did, the stage as stored (when the
 * heartbeat named one that has a row) and the run as stored, whose `status` and `error` tell the
 * runner whether the run was finished elsewhere (cancelled, swept, completed).
 */
export const HeartbeatResponse = z.object({
  /** What the heartbeat did. */
  outcome: HeartbeatOutcome,
  /** The named stage as stored, as `GET /status` shows it (its streamed text as `output` while it has no final one); `null` without `stageNumber` or for a stage without a row. */
  stage: StageOutputRecord.nullable(),
  ...runMember,
})
/**
 * Response of a heartbeat.
 * @interface
 */
export type HeartbeatResponse = z.infer<typeof HeartbeatResponse>

/**
 * Response of `POST {basePath}/{runId}/cancel`: `applied` for the cancel that ended the run,
 * `duplicate` for a run already `CANCELLED`; the run as stored, `CANCELLED`.
 */
export const CancelRunResponse = z.object({
  /** `applied` when this call cancelled the run, `duplicate` when it already was. */
  outcome: z.enum(['applied', 'duplicate']),
  ...runMember,
})
/**
 * Response of a cancellation.
 * @interface
 */
export type CancelRunResponse = z.infer<typeof CancelRunResponse>
