import { z } from 'zod'
import { stageNumberChecks } from './field-messages.js'

/**
 * The largest whole number a request may carry into a stored `integer` column (PostgreSQL's
 * `integer`, 32 bits: 2,147,483,647): stage numbers, attempts, output chunk numbers. Above it the
 * database refuses the statement (SQLSTATE 22003), so the contract refuses it first, as a 400
 * naming the field.
 */
export const MAX_STORED_INTEGER = 2_147_483_647

const anyStage = stageNumberChecks(MAX_STORED_INTEGER)

/**
 * A stage's number in a request: a whole number from 1 to {@link MAX_STORED_INTEGER} (the run's
 * catalogue narrows it further), refused in the one wording of the rule (`stageNumberReason`):
 * the server words it again with the run's own last stage.
 */
export const StageNumber = z.number(anyStage).int(anyStage).min(1, anyStage).max(MAX_STORED_INTEGER, anyStage)
