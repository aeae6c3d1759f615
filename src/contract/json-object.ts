/**
 * A JSON object (not an array, not `null`) passed on as it is, not rebuilt key by key: a member
 * named `__proto__` (an own member, as `JSON.parse` makes it) stays a member, where `z.record`
 * and `z.object` would drop it. Run metadata (requests and answers) uses it, so the key survives
 * end to end.
 */
import { z } from 'zod'

/** Whether a value is a JSON object: an object, not an array, not `null`. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A new schema of a JSON object, kept as sent (see the module's comment). */
export function jsonObjectSchema(): z.ZodType<Record<string, unknown>> {
  const schema = z
    .unknown()
    .check((ctx) => {
      if (!isJsonObject(ctx.value)) ctx.issues.push({ code: 'custom', input: ctx.value, message: 'must be a JSON object', abort: true })
    })
    // What the OpenAPI document shows, as a `z.record` would.
    .meta({ type: 'object', additionalProperties: {} })
  return schema as unknown as z.ZodType<Record<string, unknown>>
}
