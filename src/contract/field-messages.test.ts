/** The words of validation problems: each zod issue kind worded in one place, the field in front. */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { contractIssueReason, fieldMessage, safeParseContract } from './field-messages.js'
import { describeFieldErrors, toFieldErrors } from './parse.js'

/** The field messages a value gets from a schema parsed the contract's way. */
function messagesOf(schema: z.ZodType, input: unknown): string[] {
  const result = safeParseContract(schema, input)
  if (result.success) throw new Error('expected a refusal')
  return toFieldErrors(result.error.issues).map((error) => error.message)
}

describe('field messages', () => {
  it('put the field in front of the reason; the body itself is "the body"', () => {
    expect(fieldMessage('stageName', 'is required')).toBe('stageName is required')
    expect(fieldMessage('progress.seq', 'must be at least 0')).toBe('progress.seq must be at least 0')
    expect(fieldMessage('', 'must be a JSON object')).toBe('the body must be a JSON object')
  })

  it("word each of zod's issue kinds in the contract's words, never zod's defaults", () => {
    const body = z.object({
      n: z.number().int().min(1).max(9).optional(),
      p: z.number().positive().lt(10).optional(),
      s: z.string().min(1).max(3).optional(),
      l: z.string().min(2).optional(),
      x: z.string().length(2).optional(),
      a: z.array(z.string()).min(1).max(2).optional(),
      e: z.enum(['A', 'B']).optional(),
      one: z.literal('only').optional(),
      b: z.boolean().optional(),
      o: z.object({}).optional(),
      m: z.number().multipleOf(5).optional(),
      u: z.union([z.string(), z.number()]).optional(),
      f: z.email().optional(),
    })
    const cases: Array<[unknown, string[]]> = [
      [{ n: 0 }, ['n must be at least 1']],
      [{ n: 10 }, ['n must be at most 9']],
      [{ n: 1.5 }, ['n must be an integer']],
      [{ n: '1' }, ['n must be a number']],
      [{ n: Number.NaN }, ['n must be a finite number']],
      [{ p: 0 }, ['p must be greater than 0']],
      [{ p: 10 }, ['p must be less than 10']],
      [{ s: '' }, ['s must not be empty']],
      [{ s: 'abcd' }, ['s must be at most 3 characters']],
      [{ l: 'a' }, ['l must be at least 2 characters']],
      [{ x: 'a' }, ['x must be exactly 2 characters']],
      [{ a: [] }, ['a must not be empty']],
      [{ a: ['1', '2', '3'] }, ['a must have at most 2 items']],
      [{ a: [1] }, ['a.0 must be a string']],
      [{ e: 'C' }, ['e must be one of A, B; got "C"']],
      [{ e: 3 }, ['e must be one of A, B']],
      [{ one: 'other' }, ['one must be only; got "other"']],
      [{ b: 'yes' }, ['b must be true or false']],
      [{ o: [] }, ['o must be a JSON object']],
      [{ m: 7 }, ['m must be a multiple of 5']],
      [{ u: true }, ['u matches none of the forms it may take']],
      [{ f: 'nope' }, ['f must be a valid email']],
      [[], ['the body must be a JSON object']],
    ]
    for (const [input, messages] of cases) expect(messagesOf(body, input), JSON.stringify(input)).toEqual(messages)

    const required = z.object({ name: z.string(), status: z.enum(['A', 'B']) })
    expect(messagesOf(required, {})).toEqual(['name is required', 'status is required: one of A, B'])
    expect(messagesOf(z.strictObject({ a: z.string() }), { a: 'x', b: 1, c: 2 })).toEqual(['b is not a known field', 'c is not a known field'])
  })

  it("leave a schema's own reason as it is, and put the field in front of it", () => {
    const schema = z.object({ stageNumber: z.number().max(5, { message: 'must be between 1 and 5' }) })
    expect(messagesOf(schema, { stageNumber: 6 })).toEqual(['stageNumber must be between 1 and 5'])
  })

  it('make the detail of a problem: the messages joined', () => {
    const result = safeParseContract(z.object({ a: z.string(), b: z.number() }), {})
    if (result.success) throw new Error('expected a refusal')
    expect(describeFieldErrors(toFieldErrors(result.error.issues))).toBe('a is required; b is required')
  })

  it('a reason for every issue kind, even one zod adds later', () => {
    expect(contractIssueReason({ code: 'custom', input: 1, path: [] })).toBe('is not valid')
  })
})
