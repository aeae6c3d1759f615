/**
 * The client's one rule for a stage number passed to a method, checked before anything is sent:
 * the `markStage*` methods, `reportProgress`, `sendStageUpdate`, `appendStageOutput`,
 * `streamStageOutput` and `heartbeat` (and `runPipeline` through them). A stage number is an
 * integer (a `number`: plain JavaScript may pass the string `'2'` of a parsed query or form), 1 or
 * more, and, where the method checks the catalogue, one of its stages. Internal.
 */
import { PayloadValidationError } from '../contract/parse.js'
import type { StageCatalogue } from '../contract/stages.js'

/**
 * Why `stageNumber` is refused, as one sentence, or `undefined` when it is a stage number.
 * `stages`: the catalogue it must be in (`Stage 7 is not in the catalogue (1..5)`); without it,
 * any integer of 1 or more passes (the run's own catalogue may differ from the client's).
 *
 * @example
 * stageNumberProblem('2', DEFAULT_STAGES) // 'The stage number must be an integer (1..5 in the catalogue), got a string: "2" (pass the number 2)'
 */
export function stageNumberProblem(stageNumber: unknown, stages?: StageCatalogue): string | undefined {
  const range = stages === undefined ? 'of 1 or more' : `(1..${stages.length} in the catalogue)`
  if (typeof stageNumber !== 'number' || !Number.isInteger(stageNumber)) {
    return `The stage number must be an integer ${range}, got ${describeValue(stageNumber)}${numericStringHint(stageNumber)}`
  }
  if (stages === undefined) return stageNumber >= 1 ? undefined : `The stage number must be an integer ${range}, got ${stageNumber}`
  const stage = stages[stageNumber - 1]
  return stage !== undefined && stage.number === stageNumber ? undefined : `Stage ${stageNumber} is not in the catalogue (1..${stages.length})`
}

/**
 * The {@link PayloadValidationError} of a refused stage number, for the methods documented to
 * throw it (`appendStageOutput`, `streamStageOutput`, `heartbeat`, `sendStageUpdate`): the
 * field `stageNumber` with {@link stageNumberProblem}'s reason, without its subject, as field
 * errors word it (`stageNumber must be an integer of 1 or more, got 0`; `contract/field-messages.ts`).
 */
export function stageNumberError(what: string, problem: string, stageNumber: unknown): PayloadValidationError {
  const reason = problem.replace(/^The stage number /, '')
  return new PayloadValidationError(what, [{ code: 'custom', path: ['stageNumber'], message: reason, input: stageNumber }])
}

/** A value in a message, by its type: `a string: "2"`, `the number 1.5`, `NaN`, `undefined`, `an object`. */
function describeValue(value: unknown): string {
  if (typeof value === 'string') return `a string: ${JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value)}`
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : `the number ${value}`
  if (value === null || value === undefined) return String(value)
  if (typeof value === 'bigint') return `a bigint: ${value}n`
  if (typeof value === 'boolean') return `a boolean: ${value}`
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

/** ` (pass the number 2)` for a string holding a whole number, else nothing. */
function numericStringHint(value: unknown): string {
  return typeof value === 'string' && /^\s*\d{1,15}\s*$/.test(value) ? ` (pass the number ${Number(value)})` : ''
}
