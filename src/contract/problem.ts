import { z } from 'zod'

/**
 * Stable error codes of the contract, with the HTTP status each is sent with.
 * Clients switch on `code`; titles and details are for people.
 *
 * @example
 * ```ts
 * import { PROBLEM_CODES, Problem } from 'pipeline-status-sdk'
 * const response = await fetch('http://localhost:3000/api/pipeline/run_1/complete', { method: 'POST', body: '{}' })
 * const problem = Problem.parse(await response.json())
 * if (problem.code === 'run_finished') console.warn(problem.detail, PROBLEM_CODES.run_finished) // 409
 * ```
 */
export const PROBLEM_CODES = Object.freeze({
  /** The body is not valid JSON. */
  invalid_json: 400,
  /** The body is JSON but a field is wrong; `errors` lists each field and why. */
  validation_failed: 400,
  /** A query parameter of a list or count is wrong (`limit` out of range, an unknown `status`, no `groupBy`); `errors` names it. */
  invalid_query: 400,
  /** A list's `cursor` is malformed, or was made for other filters or another caller; start the list again without it. */
  invalid_cursor: 400,
  /** `X-Webhook-Secret` is missing or matches no configured secret. */
  unauthorized: 401,
  /** A Standard Webhooks signature is missing (when required), wrong, expired or replayed. */
  invalid_signature: 401,
  /** The app's `authorize` hook asks the caller to sign in (no session); nothing to do with the webhook secret. */
  authentication_required: 401,
  /**
   * The `Authorization: Bearer` run read token is malformed, expired, or not valid for this run
   * (another run's, or signed with another secret); `detail` says which.
   */
  invalid_read_token: 401,
  /** The app's `authorize` hook refused a read. */
  forbidden: 403,
  /** No run has this id. */
  run_not_found: 404,
  /** The path is none of the contract's routes. */
  route_not_found: 404,
  /** The route exists but not for this method; `Allow` names the right one. */
  method_not_allowed: 405,
  /** The run is finished and the update contradicts its outcome; nothing changed. */
  run_finished: 409,
  /**
   * The stage is finished with another final status; nothing changed. For a streamed output
   * chunk: the stage is already final and takes no more chunks.
   */
  stage_finished: 409,
  /** A streamed output chunk for a stage that has no stored update yet (send its PROCESSING first); nothing changed. */
  stage_not_started: 409,
  /**
   * A streamed output chunk whose `seq` is not the next one of its stage and attempt; nothing
   * changed. `expectedSeq` names the next `seq` the server applies.
   */
  output_out_of_order: 409,
  /**
   * The run has no stage catalogue of its own (a row from before pipelines, or one made with
   * Prisma directly) and its pipeline is not configured on this server; nothing changed.
   */
  unknown_pipeline: 409,
  /** The body is larger than the server's `maxBodyBytes`. */
  payload_too_large: 413,
  /**
   * A streamed output chunk would take its stage's streamed text past the server's limit
   * (1 MiB by default); nothing stored. `maxBytes` names the limit in UTF-8 bytes.
   */
  output_too_large: 413,
  /** The request target (path and query) is longer than 8192 characters (8 KiB). */
  uri_too_long: 414,
  /** The body is not sent as `application/json`, or with a `Content-Encoding` other than gzip or deflate. */
  unsupported_media_type: 415,
  /** An unexpected error; the details are in the server's log, never in the response. */
  internal_error: 500,
  /**
   * A server configuration error: something read the request body before the handlers (a body
   * parser mounted first), so it cannot be checked as sent. Fixed on the server; retry later.
   */
  body_already_consumed: 500,
  /**
   * The server cannot answer any request until its configuration is fixed; the server's log
   * names what is missing. Sent by the Next.js route handlers for options that cannot work (no
   * webhook secret, say), which are loaded per request rather than started, and by every
   * handler when the database refuses the connection's configuration (no user name because
   * `DATABASE_URL` is unset, a wrong password, an unknown role).
   */
  configuration_error: 500,
  /** The server's store does not implement what the route needs (a custom `Store` without `listRuns`, say); `detail` names the method. */
  not_implemented: 501,
  /** The database cannot be reached, or did not answer in time; retry after `Retry-After` seconds. */
  database_unavailable: 503,
  /**
   * The database, or a table or column the SDK needs, does not exist: its migrations were not
   * deployed (`prisma migrate deploy`). `detail` names what is missing; retry after `Retry-After`.
   */
  database_not_migrated: 503,
  /**
   * The server holds as many live streams as it allows (or is shutting down); retry after
   * `Retry-After` seconds, possibly on another instance.
   */
  too_many_streams: 503,
} as const)

/** A stable error code of the contract. */
export const ProblemCode = z.enum(
  Object.keys(PROBLEM_CODES) as [keyof typeof PROBLEM_CODES, ...(keyof typeof PROBLEM_CODES)[]],
)
/**
 * A stable error code of the contract.
 * @useDeclaredType
 */
export type ProblemCode = z.infer<typeof ProblemCode>

/** Human-readable titles, one per code. */
export const PROBLEM_TITLES: Readonly<Record<ProblemCode, string>> = Object.freeze({
  invalid_json: 'Body is not valid JSON',
  validation_failed: 'Body failed validation',
  invalid_query: 'Query parameter failed validation',
  invalid_cursor: 'Invalid list cursor',
  unauthorized: 'Missing or wrong webhook secret',
  invalid_signature: 'Missing, wrong or expired webhook signature',
  authentication_required: 'Authentication required',
  invalid_read_token: 'Invalid or expired run read token',
  forbidden: 'Not allowed to read this run',
  run_not_found: 'Unknown pipeline run',
  route_not_found: 'No such route',
  method_not_allowed: 'Method not allowed on this route',
  run_finished: 'The run is finished and cannot take this update',
  stage_finished: 'The stage is finished and cannot take this update',
  stage_not_started: 'The stage has not started',
  output_out_of_order: 'Output chunk out of order',
  unknown_pipeline: "The run's pipeline is not configured",
  payload_too_large: 'Body is too large',
  output_too_large: "The stage's streamed output is too large",
  uri_too_long: 'URL is too long',
  unsupported_media_type: 'Body must be application/json',
  internal_error: 'Internal error',
  body_already_consumed: 'Request body already read by other middleware',
  configuration_error: 'Server misconfigured',
  not_implemented: 'Not implemented by this server',
  database_unavailable: 'Database unavailable',
  database_not_migrated: 'Database migrations not deployed',
  too_many_streams: 'Too many open streams',
})

/** The `type` URI of a problem code. */
export function problemType(code: ProblemCode): string {
  return `urn:pipeline-status-sdk:problem:${code.replaceAll('_', '-')}`
}

/** One failed field of a 400 `validation_failed` problem. */
export const FieldError = z.object({
  /** Dotted path of the field, `''` for the body itself. */
  field: z.string(),
  /** Why it failed, for people. */
  message: z.string(),
})
/**
 * One failed field of a 400 `validation_failed` problem.
 * @interface
 */
export type FieldError = z.infer<typeof FieldError>

/** An error body, `application/problem+json` (RFC 9457), never with a stack trace. */
export const Problem = z.looseObject({
  /** A URI per code, `urn:pipeline-status-sdk:problem:<code with dashes>`. */
  type: z.string(),
  /** A short human-readable summary of the code. */
  title: z.string(),
  /** The HTTP status code. */
  status: z.number().int(),
  /** What went wrong in this case, for people (never internals). */
  detail: z.string().optional(),
  /** The stable code clients switch on. */
  code: ProblemCode,
  /** A URI of this occurrence, when there is one. */
  instance: z.string().optional(),
  /** For `validation_failed`: which fields failed and why. */
  errors: z.array(FieldError).optional(),
})
/**
 * An error body, `application/problem+json` (RFC 9457).
 * @interface
 */
export type Problem = z.infer<typeof Problem>

/**
 * Builds a problem body for a code with its status, title and type filled in.
 *
 * @example
 * ```ts
 * import { createProblem } from 'pipeline-status-sdk'
 * createProblem('run_not_found', { detail: 'No pipeline run has this id' }).status // 404
 * ```
 */
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
