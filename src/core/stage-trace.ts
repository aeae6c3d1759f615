/**
 * The trace context a stage keeps (DESIGN.md "Observability"): the W3C `traceparent` of its first
 * report, the parent of the stage's span, and those of the reports that started a later attempt,
 * its links. Pure; the state machine applies it, so the in-memory store and PostgreSQL agree.
 */
import type { StageState } from './state.js'

/**
 * The most links a stage keeps: one per attempt after the first. Attempts past it add none (a
 * span's links are bounded too: 128 by default in the OpenTelemetry SDK).
 */
export const MAX_TRACE_LINKS = 32

/** A W3C Trace Context `traceparent` of version 00 (https://www.w3.org/TR/trace-context/#traceparent-header). */
const TRACEPARENT = /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/

/**
 * A `traceparent` header as kept: trimmed and lower-cased when it is a valid version-00 value,
 * else `undefined` (an invalid one is ignored, as the W3C recommendation says a receiver does).
 */
export function parseTraceparent(header: string | null | undefined): string | undefined {
  if (header == null) return undefined
  const value = header.trim().toLowerCase()
  return TRACEPARENT.test(value) ? value : undefined
}

/** The trace fields of a stage. */
export interface StageTraceFields {
  traceparent: string | null
  traceLinks: string[]
}

/**
 * The trace fields a stage keeps after an applied update that carried `traceparent`:
 * - the stored parent stays; a stage without one takes this report's (its first report that had one);
 * - a report that starts a higher attempt (`higherAttempt`) adds its context to the links, unless
 *   it is the parent or already linked, up to {@link MAX_TRACE_LINKS}.
 */
export function nextTraceFields(stage: StageState | undefined, traceparent: string | undefined, higherAttempt: boolean): StageTraceFields {
  const parent = stage?.traceparent ?? null
  const links = [...(stage?.traceLinks ?? [])]
  if (traceparent === undefined) return { traceparent: parent, traceLinks: links }
  if (parent === null) return { traceparent, traceLinks: links }
  if (higherAttempt && traceparent !== parent && !links.includes(traceparent) && links.length < MAX_TRACE_LINKS) links.push(traceparent)
  return { traceparent: parent, traceLinks: links }
}
