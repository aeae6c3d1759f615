import { z } from 'zod'
import { CompleteRun, CreateRun } from './complete.js'
import { fieldMessage, safeParseContract } from './field-messages.js'
import { type FieldError } from './problem.js'
import { isRunId, RunId } from './run-id.js'
import { CancelRun, Heartbeat, heartbeatSchemaFor } from './runner-control.js'
import { StageUpdate, stageUpdateSchemaFor } from './stage-update.js'
import type { StageCatalogue } from './stages.js'
import { isErrorNamed } from '../internal/is-error-named.js'

/**
 * Thrown by the `parseX` helpers when a payload does not match the contract.
 *
 * @example
 * ```ts
 * import { isPayloadValidationError, parseCompleteRun } from 'pipeline-status-sdk'
 * try {
 *   parseCompleteRun({ status: 'DONE' })
 * } catch (error) {
 *   if (isPayloadValidationError(error)) console.error(error.fieldErrors) // [{ field: 'status', message: 'status must be one of COMPLETED, FAILED, CANCELLED; got "DONE"' }]
 * }
 * ```
 */
export class PayloadValidationError extends Error {
  /** Always `'PayloadValidationError'`; check it with {@link isPayloadValidationError}. */
  override readonly name = 'PayloadValidationError' as const
  /** zod's issues, unchanged (their `message` is the reason alone, e.g. `is required`). */
  readonly issues: z.core.$ZodIssue[]
  /** The issues as `{ field, message }`, the shape of a 400 problem's `errors` (`stageName is required`). */
  readonly fieldErrors: FieldError[]

  constructor(what: string, issues: z.core.$ZodIssue[]) {
    const fieldErrors = toFieldErrors(issues)
    super(
      `Invalid ${what}: ${describeFieldErrors(fieldErrors)}`,
    )
    this.issues = issues
    this.fieldErrors = fieldErrors
  }
}

/** Whether a value is a {@link PayloadValidationError}, also across realms and dual builds. */
export function isPayloadValidationError(error: unknown): error is PayloadValidationError {
  return isErrorNamed(error, 'PayloadValidationError')
}

/**
 * Converts zod issues to `{ field, message }` pairs with dotted field paths, each message naming
 * its field and saying why (`stageName is required`; `the body must be a JSON object` for
 * the body itself). It expects issues parsed by this package (the `parseX`/`safeParseX`
 * helpers), whose messages are reasons (`is required`); another parse's issues keep zod's
 * own wording after the field.
 */
export function toFieldErrors(issues: readonly z.core.$ZodIssue[]): FieldError[] {
  return issues.flatMap((issue) =>
    // An unknown key of a strict object is named itself, not the object around it.
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => fieldError([...issue.path, key].map(String).join('.'), issue.message))
      : [fieldError(issue.path.map(String).join('.'), issue.message)],
  )
}

function fieldError(field: string, reason: string): FieldError {
  return { field, message: fieldMessage(field, reason) }
}

/**
 * Field errors as one line, their messages (each names its field) joined by `; `: the message of
 * a {@link PayloadValidationError} and the `detail` of a 400 problem. Internal.
 */
export function describeFieldErrors(errors: readonly FieldError[]): string {
  return errors.map((error) => error.message).join('; ')
}

function parser<T>(what: string, schema: z.ZodType<T>) {
  return (input: unknown): T => {
    const result = safeParseContract(schema, input)
    if (!result.success) throw new PayloadValidationError(what, result.error.issues)
    return result.data
  }
}

/**
 * Parses a stage-update body; with `stages`, also checks `stageNumber` against the catalogue.
 * Throws {@link PayloadValidationError}.
 *
 * @example
 * ```ts
 * import { parseStageUpdate } from 'pipeline-status-sdk'
 * const update = parseStageUpdate({ stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING' })
 * ```
 */
export function parseStageUpdate(input: unknown, stages?: StageCatalogue): StageUpdate {
  return parser('stage update', stages ? stageUpdateSchemaFor(stages) : StageUpdate)(input)
}

/**
 * Like {@link parseStageUpdate}, returning zod's `{ success, data | error }` instead of throwing.
 *
 * @example
 * ```ts
 * import { DEFAULT_STAGES, safeParseStageUpdate } from 'pipeline-status-sdk'
 * const body = '{"stageNumber":2,"stageName":"Translation","status":"PROCESSING"}' // a request's text
 * const result = safeParseStageUpdate(JSON.parse(body), DEFAULT_STAGES)
 * if (!result.success) console.error(result.error.issues)
 * ```
 */
export function safeParseStageUpdate(input: unknown, stages?: StageCatalogue) {
  return safeParseContract(stages ? stageUpdateSchemaFor(stages) : StageUpdate, input)
}

/** Parses a `/complete` body, keeping app-specific fields. Throws {@link PayloadValidationError}. */
export const parseCompleteRun: (input: unknown) => CompleteRun = parser('completion', CompleteRun)

/** Like {@link parseCompleteRun}, returning zod's `{ success, data | error }`. */
export function safeParseCompleteRun(input: unknown) {
  return safeParseContract(CompleteRun, input)
}

/** Parses a create-run body. Throws {@link PayloadValidationError}. */
export const parseCreateRun: (input: unknown) => CreateRun = parser('run creation', CreateRun)

/** Like {@link parseCreateRun}, returning zod's `{ success, data | error }`. */
export function safeParseCreateRun(input: unknown) {
  return safeParseContract(CreateRun, input)
}

/** Built once: zod compiles an object schema on its first parse, which per call would dominate the cost. */
const RunIdField = z.object({ runId: RunId })

/**
 * Returns the run id unchanged, or throws {@link PayloadValidationError} (field `runId`) when it
 * breaks the run-id rule (see {@link RunId}). The client calls it before it sends anything.
 *
 * @example
 * ```ts
 * import { parseRunId } from 'pipeline-status-sdk'
 * parseRunId('run_1') // 'run_1'
 * parseRunId('.') // throws PayloadValidationError
 * ```
 */
export function parseRunId(value: unknown): RunId {
  // The client checks every update's run id: the plain test first, zod only to explain a refusal.
  if (isRunId(value)) return value
  const result = safeParseContract(RunIdField, { runId: value })
  if (!result.success) throw new PayloadValidationError('run id', result.error.issues)
  return result.data.runId
}

/**
 * Parses a heartbeat body (`undefined` for an empty body is `{}`); with `stages`, also checks
 * `stageNumber` against the catalogue. Throws {@link PayloadValidationError}.
 *
 * @example
 * ```ts
 * import { parseHeartbeat } from 'pipeline-status-sdk'
 * parseHeartbeat({ stageNumber: 2, progress: { seq: 1, percent: 40 } })
 * ```
 */
export function parseHeartbeat(input: unknown, stages?: StageCatalogue): Heartbeat {
  return parser('heartbeat', stages ? heartbeatSchemaFor(stages) : Heartbeat)(input ?? {})
}

/** Like {@link parseHeartbeat}, returning zod's `{ success, data | error }`. */
export function safeParseHeartbeat(input: unknown, stages?: StageCatalogue) {
  return safeParseContract(stages ? heartbeatSchemaFor(stages) : Heartbeat, input ?? {})
}

/** Parses a cancellation body. Throws {@link PayloadValidationError}. */
export const parseCancelRun: (input: unknown) => CancelRun = parser('cancellation', CancelRun)

/** Like {@link parseCancelRun}, returning zod's `{ success, data | error }`. */
export function safeParseCancelRun(input: unknown) {
  return safeParseContract(CancelRun, input)
}
