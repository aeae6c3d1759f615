import { z } from 'zod'

/**
 * Stable error codes of the contract, with the HTTP status each is sent with.
 * Clients switch on `code`; titles and details are for people.
 */
export const PROBLEM_CODES = Object.freeze({
  invalid_json: 400,
  validation_failed: 400,
  unauthorized: 401,
  invalid_signature: 401,
  forbidden: 403,
  run_not_found: 404,
  route_not_found: 404,
  method_not_allowed: 405,
  run_finished: 409,
  stage_finished: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  internal_error: 500,
  database_unavailable: 503,
} as const)

/** A stable error code of the contract. */
export const ProblemCode = z.enum(
  Object.keys(PROBLEM_CODES) as [keyof typeof PROBLEM_CODES, ...(keyof typeof PROBLEM_CODES)[]],
)
/** A stable error code of the contract. */
export type ProblemCode = z.infer<typeof ProblemCode>

/** Human-readable titles, one per code. */
export const PROBLEM_TITLES: Readonly<Record<ProblemCode, string>> = Object.freeze({
  invalid_json: 'Body is not valid JSON',
  validation_failed: 'Body failed validation',
  unauthorized: 'Missing or wrong webhook secret',
  invalid_signature: 'Missing, wrong or expired webhook signature',
  forbidden: 'Not allowed to read this run',
  run_not_found: 'Unknown pipeline run',
  route_not_found: 'No such route',
  method_not_allowed: 'Method not allowed on this route',
  run_finished: 'The run is finished and cannot take this update',
  stage_finished: 'The stage is finished and cannot take this update',
  payload_too_large: 'Body is too large',
  unsupported_media_type: 'Body must be application/json',
  internal_error: 'Internal error',
  database_unavailable: 'Database unavailable',
})

/** The `type` URI of a problem code. */
export function problemType(code: ProblemCode): string {
  return `urn:pipeline-status-sdk:problem:${code.replaceAll('_', '-')}`
}

/** One failed field of a 400 `validation_failed` problem. */
export const FieldError = z.object({
  /** Dotted path of the field, `''` for the body itself. */
  field: z.string(),
  message: z.string(),
})
/** One failed field of a 400 `validation_failed` problem. */
export type FieldError = z.infer<typeof FieldError>

/** An error body, `application/problem+json` (RFC 9457), never with a stack trace. */
export const Problem = z.looseObject({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  code: ProblemCode,
  instance: z.string().optional(),
  /** For `validation_failed`: which fields failed and why. */
  errors: z.array(FieldError).optional(),
})
/** An error body, `application/problem+json` (RFC 9457). */
export type Problem = z.infer<typeof Problem>

/** Builds a problem body for a code with its status, title and type filled in. */
export function createProblem(
  code: ProblemCode,
  extra: { detail?: string; instance?: string; errors?: FieldError[]; [key: string]: unknown } = {},
): Problem {
  return {
    type: problemType(code),
    title: PROBLEM_TITLES[code],
    status: PROBLEM_CODES[code],
    code,
    ...extra,
  }
}
