import { z } from 'zod'
import { StageProgress } from './runner-control.js'
import { StageUpdateStatus } from './status.js'
import { type StageCatalogue, stageNumberIn } from './stages.js'
import { StageNumber, MAX_STORED_INTEGER } from './stored-integer.js'
import { Timestamp } from './timestamp.js'

/** The largest `attempt` and `maxAttempts`: the INTEGER column's maximum. */
const MAX_ATTEMPT = MAX_STORED_INTEGER
/**
 * The longest `lastError`, in characters (UTF-16 code units, as JavaScript's `length`); a runner
 * cuts a longer error to it before sending (a longer one is 400).
 */
export const MAX_LAST_ERROR_LENGTH = 2_000

/**
 * Body of `POST {basePath}/{runId}/stage-update`: exactly the fields the original Python
 * runner sends. `output` is a JSON string or markdown, stored as text; `null` means none.
 * Unknown fields are accepted and ignored so newer runners keep working against older servers.
 */
const StageUpdateFields = z.object({
  /** 1-based number of the stage in the catalogue; the server refuses numbers outside 1..N. */
  stageNumber: StageNumber,
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
  /**
   * The number of the attempt running or about to run (1 for the first; at most 2,147,483,647);
   * only with `PROCESSING`. A higher one than stored wins and resets the stage's progress; a
   * lower one is stale (200, nothing changes); absent leaves the stored attempt as it is. See
   * docs/contract.md "Attempts".
   */
  attempt: z.number().int().min(1).max(MAX_ATTEMPT).optional(),
  /** How many attempts the runner will make in all (≥ `attempt`); only with `attempt`. */
  maxAttempts: z.number().int().min(1).max(MAX_ATTEMPT).optional(),
  /**
   * Why the previous attempt failed (at most 2,000 characters), sent with the `attempt` that
   * retries it; only with `attempt`. `null` clears it; absent keeps the stored one.
   */
  lastError: z.string().max(MAX_LAST_ERROR_LENGTH).nullish(),
  /**
   * When the attempt `attempt` will start (ISO 8601), stored clamped to [the server's now, now +
   * 24 hours]; `null` when it has started. Only with `attempt`; absent keeps the stored one.
   */
  nextRetryAt: Timestamp.nullish(),
})

/** The attempt fields of a stage update; valid only with `PROCESSING`, the last three only with `attempt`. */
const ATTEMPT_FIELDS = ['attempt', 'maxAttempts', 'lastError', 'nextRetryAt'] as const

type CheckedFields = {
  status: string
  progress?: unknown
  attempt?: number | undefined
  maxAttempts?: number | undefined
  lastError?: unknown
  nextRetryAt?: unknown
}

function processingOnlyFields(ctx: z.core.ParsePayload<CheckedFields>): void {
  const value = ctx.value
  const issue = (field: string, message: string): void => {
    ctx.issues.push({ code: 'custom', input: value[field as keyof CheckedFields], path: [field], message })
  }
  if (value.status !== 'PROCESSING') {
    for (const field of ['progress', ...ATTEMPT_FIELDS] as const) {
      if (value[field] !== undefined) issue(field, 'is sent only with status PROCESSING')
    }
    return
  }
  if (value.attempt === undefined) {
    for (const field of ATTEMPT_FIELDS.slice(1)) {
      if (value[field] !== undefined) issue(field, 'is sent only with attempt')
    }
  } else if (value.maxAttempts !== undefined && value.maxAttempts < value.attempt) {
    issue('maxAttempts', `must be at least attempt (${value.attempt}), got ${value.maxAttempts}`)
  }
}

/**
 * Body of `POST {basePath}/{runId}/stage-update`: exactly the fields the original Python
 * runner sends, plus the optional `progress` and attempt fields (`attempt`, `maxAttempts`,
 * `lastError`, `nextRetryAt`), all only with `PROCESSING` (400 naming the field otherwise).
 * Unknown fields are accepted and ignored.
 */
export const StageUpdate = StageUpdateFields.check(processingOnlyFields)
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
  return StageUpdateFields.extend({ stageNumber: stageNumberIn(stages) }).check(processingOnlyFields)
}
type StageUpdateSchema = ReturnType<typeof buildStageUpdateSchema>
const stageUpdateSchemas = new WeakMap<StageCatalogue, StageUpdateSchema>()
