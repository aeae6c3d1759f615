/**
 * The words of every validation problem, in one place. Each `{ field, message }` of a 400
 * `validation_failed` (and each field of a `PayloadValidationError`) names its field and says why
 * in the contract's own words: `stageNumber must be a whole number from 1 to 5`, `stageName is
 * required`, `status must be one of …`, `the body must be a JSON object`.
 *
 * A message is built from two parts: the field (a dotted path, `the body` for the body itself)
 * and a reason that starts with a verb (`must be at most 200 characters`, `is required`). The
 * schemas give the reasons of the contract's own rules (`must be at most 2147483647 (a stored
 * integer)`); zod's issue kinds (a missing field, a wrong type, a bound) get theirs from
 * {@link contractIssueReason}, which every parse of a request or option passes to zod as its
 * error map ({@link safeParseContract}), so zod's default English (`Too small: expected number to
 * be >=1`) never reaches a response. The field is put in front by {@link fieldMessage}, where the
 * path is known (an issue raised inside a nested object learns its full path only as it leaves).
 * Only human text is made here: fields, codes and types are the contract's and never change.
 * Internal.
 */
import type { z } from 'zod'

/**
 * A field's message: the field, then why (`stageName` + `is required` → `stageName is required`);
 * `''` (the body itself) is `the body`.
 */
export function fieldMessage(field: string, reason: string): string {
  return `${field === '' ? 'the body' : field} ${reason}`
}

/**
 * The one reason of the stage-number rule, whatever way a value misses it (0, -1, N + 1, 1.5,
 * `"2"`, `null`, 2^53): `must be a whole number from 1 to N`, N the run's last stage (or, where
 * no catalogue is known, the largest stored integer). An absent `stageNumber` is another rule
 * (`is required`). Every check of the rule words it by this: the schemas (`stageNumberIn`,
 * `StageNumber`), the run's catalogue (`stageNumberOutside`) and the server's refusals of a body
 * or path whose number the schema refused (worded with the run's own N).
 */
export function stageNumberReason(lastStage: number): string {
  return `must be a whole number from 1 to ${lastStage}`
}

/**
 * The parameters of each check of a stage-number schema whose last stage is `lastStage`: its
 * reason for any value present, zod's kinds (`is required`) for an absent one; the first failed
 * check ends the field's checks, so that one value gets one message.
 */
export function stageNumberChecks(lastStage: number): { error: (issue: z.core.$ZodRawIssue) => string | undefined; abort: true } {
  const reason = stageNumberReason(lastStage)
  return { error: (issue) => (issue.input === undefined ? undefined : reason), abort: true }
}

/** What a value of each type zod expects is called in a reason (`must be an integer`). */
const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  bigint: 'an integer',
  boolean: 'true or false',
  object: 'a JSON object',
  record: 'a JSON object',
  array: 'an array',
  tuple: 'an array',
  null: 'null',
  date: 'a date',
}

/** A value a field must take, as a reason shows it: strings bare (`PROCESSING`), others as JSON. */
function showValue(value: unknown): string {
  return typeof value === 'string' ? value : String(JSON.stringify(value))
}

/** `; got "DONE"` for a string that is not one of the values (cut to 64 characters), else nothing. */
function gotText(input: unknown): string {
  return typeof input === 'string' ? `; got ${JSON.stringify(input.slice(0, 64))}` : ''
}

/** A length bound's unit: characters of a string, items of an array or a set, nothing for a number. */
function unitOf(origin: string, count: number | bigint): string {
  if (origin === 'string') return count === 1 ? ' character' : ' characters'
  if (origin === 'array' || origin === 'set') return count === 1 ? ' item' : ' items'
  return ''
}

/**
 * The reason of a zod issue, in the contract's words, for each of zod's issue kinds (the error
 * map every parse passes; a schema's own message wins over it):
 * - `invalid_type`: `is required` when the field is absent, else `must be <a type>`
 *   (`must be an integer`, `must be a string`, `must be a JSON object`; `must be a finite
 *   number` for NaN or ±Infinity);
 * - `invalid_value` (an enum or literal): `is required: one of A, B` when absent, else
 *   `must be one of A, B; got "X"`;
 * - `too_small` / `too_big`: `must be at least N` / `must be at most N` (`greater than` / `less
 *   than` for an exclusive bound), with the unit of a length (`characters`, `items`); a string or
 *   array that must not be empty says so;
 * - `invalid_format`, `not_multiple_of`, `unrecognized_keys` (per key: `is not a known field`),
 *   `invalid_union`, `invalid_key`, `invalid_element`, `custom`: a plain reason each.
 */
export function contractIssueReason(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required'
      // NaN and ±Infinity: numbers to JavaScript, not to JSON or the contract.
      if (issue.expected === 'number' && typeof issue.input === 'number') return 'must be a finite number'
      return `must be ${TYPE_NAMES[issue.expected] ?? `of type ${issue.expected}`}`
    case 'invalid_value': {
      const values = issue.values.map(showValue)
      const choice = values.length === 1 ? `${values[0]}` : `one of ${values.join(', ')}`
      if (issue.input === undefined) return `is required: ${choice}`
      return `must be ${choice}${gotText(issue.input)}`
    }
    case 'too_small': {
      const { minimum, origin } = issue
      if ((origin === 'string' || origin === 'array' || origin === 'set') && minimum === 1 && issue.inclusive !== false) {
        return 'must not be empty'
      }
      const bound = issue.exact ? 'exactly' : issue.inclusive === false ? 'more than' : 'at least'
      if (unitOf(origin, minimum) !== '') return `must ${origin === 'string' ? 'be' : 'have'} ${bound} ${minimum}${unitOf(origin, minimum)}`
      return `must be ${issue.inclusive === false ? 'greater than' : 'at least'} ${minimum}`
    }
    case 'too_big': {
      const { maximum, origin } = issue
      const bound = issue.exact ? 'exactly' : issue.inclusive === false ? 'fewer than' : 'at most'
      if (unitOf(origin, maximum) !== '') return `must ${origin === 'string' ? 'be' : 'have'} ${bound} ${maximum}${unitOf(origin, maximum)}`
      return `must be ${issue.inclusive === false ? 'less than' : 'at most'} ${maximum}`
    }
    case 'invalid_format':
      return issue.format === 'regex' && typeof issue['pattern'] === 'string'
        ? `must match the pattern ${issue['pattern']}`
        : `must be a valid ${issue.format}`
    case 'not_multiple_of':
      return `must be a multiple of ${issue.divisor}`
    case 'unrecognized_keys':
      return 'is not a known field'
    case 'invalid_union':
      return 'matches none of the forms it may take'
    case 'invalid_key':
      return 'has a key that is not valid'
    case 'invalid_element':
      return 'has an element that is not valid'
    default:
      return 'is not valid'
  }
}

/** The parse options of every contract parse: zod's issue kinds worded by {@link contractIssueReason}. */
const CONTRACT_PARSE: z.core.ParseContext<z.core.$ZodIssue> = Object.freeze({ error: contractIssueReason })

/**
 * `schema.safeParse(input)` with the contract's reasons for zod's issue kinds: what every parse
 * of a request body or of options whose issues become field errors uses. Internal.
 */
export function safeParseContract<S extends z.ZodType>(schema: S, input: unknown): z.ZodSafeParseResult<z.output<S>> {
  return schema.safeParse(input, CONTRACT_PARSE) as z.ZodSafeParseResult<z.output<S>>
}
