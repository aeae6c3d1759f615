/**
 * Reads a 2xx answer's text as one of the contract's answers. Internal: not exported from the
 * package.
 */
import { PipelineStatusError } from './errors.js'

/** A zod schema, as far as this needs one. */
export interface ResponseSchema<T> {
  safeParse(input: unknown): { success: true; data: T } | { success: false }
}

/**
 * The answer `text` parsed as JSON and checked against `schema`; throws a
 * {@link PipelineStatusError} naming `what` when it is not JSON or does not match the contract.
 */
export function parseResponse<T>(schema: ResponseSchema<T>, text: string, what: string): T {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new PipelineStatusError(`The ${what} response is not JSON`)
  }
  const parsed = schema.safeParse(json)
  if (!parsed.success) throw new PipelineStatusError(`The ${what} response does not match the contract`)
  return parsed.data
}
