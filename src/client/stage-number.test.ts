import { describe, expect, it } from 'vitest'
import { isPayloadValidationError } from '../contract/parse.js'
import { DEFAULT_STAGES } from '../contract/stages.js'
import { stageNumberError, stageNumberProblem } from './stage-number.js'

describe('the stage number rule', () => {
  it('says the stage number must be an integer and names the type it got, before any catalogue check', () => {
    expect(stageNumberProblem('2', DEFAULT_STAGES)).toBe('The stage number must be an integer (1..5 in the catalogue), got a string: "2" (pass the number 2)')
    expect(stageNumberProblem('two', DEFAULT_STAGES)).toBe('The stage number must be an integer (1..5 in the catalogue), got a string: "two"')
    expect(stageNumberProblem(1.5)).toBe('The stage number must be an integer of 1 or more, got the number 1.5')
    expect(stageNumberProblem(Number.NaN)).toBe('The stage number must be an integer of 1 or more, got NaN')
    expect(stageNumberProblem(Number.POSITIVE_INFINITY)).toBe('The stage number must be an integer of 1 or more, got the number Infinity')
    expect(stageNumberProblem(undefined)).toBe('The stage number must be an integer of 1 or more, got undefined')
    expect(stageNumberProblem(null)).toBe('The stage number must be an integer of 1 or more, got null')
    expect(stageNumberProblem(2n)).toBe('The stage number must be an integer of 1 or more, got a bigint: 2n')
    expect(stageNumberProblem(true)).toBe('The stage number must be an integer of 1 or more, got a boolean: true')
    expect(stageNumberProblem([2])).toBe('The stage number must be an integer of 1 or more, got an array')
    expect(stageNumberProblem({ stageNumber: 2 })).toBe('The stage number must be an integer of 1 or more, got an object')
  })

  it('checks the range: the catalogue when given, else 1 or more', () => {
    expect(stageNumberProblem(2, DEFAULT_STAGES)).toBeUndefined()
    expect(stageNumberProblem(5, DEFAULT_STAGES)).toBeUndefined()
    expect(stageNumberProblem(6, DEFAULT_STAGES)).toBe('Stage 6 is not in the catalogue (1..5)')
    expect(stageNumberProblem(0, DEFAULT_STAGES)).toBe('Stage 0 is not in the catalogue (1..5)')
    expect(stageNumberProblem(9)).toBeUndefined()
    expect(stageNumberProblem(0)).toBe('The stage number must be an integer of 1 or more, got 0')
  })

  it('makes the PayloadValidationError of the methods that throw one, on the field stageNumber', () => {
    const error = stageNumberError('output chunk', 'The stage number must be an integer of 1 or more, got 0', 0)
    expect(isPayloadValidationError(error)).toBe(true)
    expect(error.message).toBe('Invalid output chunk: stageNumber must be an integer of 1 or more, got 0')
    expect(error.fieldErrors).toEqual([{ field: 'stageNumber', message: 'stageNumber must be an integer of 1 or more, got 0' }])
  })
})
