/**
 * Turning a request's input into what a route works with, or into the problem that says why not:
 * schema validation, text a database can store, and the store's refusals. Internal.
 */
import type { z } from 'zod'
import { fieldMessage, safeParseContract } from '../../contract/field-messages.js'
import { describeFieldErrors, toFieldErrors } from '../../contract/parse.js'
import type { FieldError } from '../../contract/problem.js'
import type { ConflictCode } from '../../core/state-machine.js'
import { HttpProblemError } from './problem-response.js'
import { unstorableFields } from './storable-text.js'

/**
 * The input as the schema parses it, or 400 `validation_failed` naming each field and why, in the
 * contract's words (`stageNumber must be a whole number from 1 to 5`; src/contract/field-messages.ts).
 */
export function validate<T>(schema: z.ZodType<T>, input: unknown): T {
  const result = safeParseContract(schema, input)
  if (result.success) return result.data
  throw validationFailed(toFieldErrors(result.error.issues))
}

/**
 * {@link validate} for a body with a `stageNumber` (a stage update, a heartbeat): a number the
 * schema refused is worded by the run's own rule, `stageRule()` (`must be a whole number from 1
 * to 5` for a five-stage run, read only then), so that every value outside 1..N (0, 6, 1.5, `"2"`,
 * 2^53) reads alike, as a number the run's catalogue refuses does. An absent one keeps its own
 * rule (`is required`); the other fields' problems stay as they are, in order.
 */
export async function validateStageNumbered<T>(schema: z.ZodType<T>, input: unknown, stageRule: () => Promise<string>): Promise<T> {
  const result = safeParseContract(schema, input)
  if (result.success) return result.data
  const errors = toFieldErrors(result.error.issues)
  const sent = typeof input === 'object' && input !== null && !Array.isArray(input) && (input as Record<string, unknown>)['stageNumber'] !== undefined
  if (!sent || !errors.some((error) => error.field === 'stageNumber')) throw validationFailed(errors)
  const rule = { field: 'stageNumber', message: fieldMessage('stageNumber', await stageRule()) }
  let said = false
  throw validationFailed(
    errors.flatMap((error) => {
      if (error.field !== 'stageNumber') return [error]
      if (said) return []
      said = true
      return [rule]
    }),
  )
}

/** 400 `validation_failed` naming each field of `errors`, its detail their messages joined. */
export function validationFailed(errors: readonly FieldError[]): HttpProblemError {
  return new HttpProblemError('validation_failed', { detail: describeFieldErrors(errors), errors: [...errors] })
}

/** 400 `validation_failed` for a text the database cannot store (a NUL, a lone surrogate). */
export function assertStorable(values: Record<string, string | null | undefined>): void {
  const errors = unstorableFields(values)
  if (errors.length > 0) {
    throw new HttpProblemError('validation_failed', {
      detail: describeFieldErrors(errors),
      errors,
    })
  }
}

/**
 * A store result that was not refused: an unknown run is a 404, a refusal (`conflict` with a
 * `code`) a 409 with its reason. A `conflict` without a code (a final stage repeated with another
 * output) is an answer, 200.
 */
export function accepted<R extends { outcome: string }>(
  result: R | { outcome: 'not_found' } | { outcome: 'conflict'; code: ConflictCode; detail: string } | InvalidResult,
): Exclude<R, { outcome: 'not_found' } | { code: ConflictCode } | InvalidResult> {
  if (result.outcome === 'not_found') throw runNotFound()
  if (result.outcome === 'conflict' && 'code' in result) throw new HttpProblemError(result.code, { detail: result.detail })
  if (result.outcome === 'invalid' && 'field' in result) {
    const errors = [{ field: result.field, message: fieldMessage(result.field, result.message) }]
    throw new HttpProblemError('validation_failed', { detail: describeFieldErrors(errors), errors })
  }
  return result as Exclude<R, { outcome: 'not_found' } | { code: ConflictCode } | InvalidResult>
}

/** A store result refused by a rule only the stored run can check (a stage outside its catalogue, too many tags): 400 naming `field`. */
export interface InvalidResult {
  readonly outcome: 'invalid'
  readonly field: string
  /** Why, as a reason after the field (`must be a whole number from 1 to 5`). */
  readonly message: string
}

/** 404 `run_not_found`. */
export function runNotFound(): HttpProblemError {
  return new HttpProblemError('run_not_found', { detail: 'No pipeline run has this id' })
}

/** 415 for a body that is not JSON. */
export function unsupportedMediaType(): HttpProblemError {
  return new HttpProblemError('unsupported_media_type', {
    detail: 'Send the body as JSON with Content-Type: application/json',
  })
}
