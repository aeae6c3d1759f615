import { z } from 'zod'

// RFC 3986's unreserved characters plus `:`, all of which a path segment carries unchanged; a
// segment of dots only (`.`, `..`) is removed or climbs up by URL normalization (RFC 3986 §5.2.4).
const RUN_ID = /^(?!\.+$)[A-Za-z0-9._~:-]{1,128}$/

/**
 * A run id (`PipelineRun.id`): 1 to 128 characters of `A–Z a–z 0–9 . _ ~ : -`, not made of dots
 * only, so that a URL path segment carries it unchanged. `POST /runs` refuses any other id with
 * 400 `validation_failed` naming `id`; the other routes answer an id outside the rule as an unknown
 * run (404 `run_not_found`); the client refuses it before sending (`parseRunId`).
 *
 * @example
 * ```ts
 * import { RunId } from 'pipeline-status-sdk'
 * RunId.safeParse('run_2025-10-25:a~1').success // true
 * RunId.safeParse('..').success // false
 * ```
 */
export const RunId = z.string().check((ctx) => {
  if (RUN_ID.test(ctx.value)) return
  ctx.issues.push({
    code: 'custom',
    input: ctx.value,
    message: 'must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ : - and not only dots',
  })
  // The same rule in the JSON Schema and OpenAPI output (ECMA-262 regex, as JSON Schema reads it).
}).meta({ pattern: RUN_ID.source })
/** A run id; see {@link RunId}. */
export type RunId = z.infer<typeof RunId>

/**
 * Whether a value is a valid run id (see {@link RunId}).
 *
 * @example
 * ```ts
 * import { isRunId } from 'pipeline-status-sdk'
 * isRunId('run_1') // true
 * isRunId('has space') // false
 * ```
 */
export function isRunId(value: unknown): value is RunId {
  return typeof value === 'string' && RUN_ID.test(value)
}
