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

/**
 * A W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header):
 * version, trace id, parent id and flags in lowercase hex; version `ff` is invalid; a later version
 * than `00` is read by its first 55 characters and may carry further `-…` fields (W3C "Versioning
 * of traceparent"); all-zero ids are invalid.
 */
const TRACEPARENT = /^(?!ff)([0-9a-f]{2})-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-([0-9a-f]{2})(-[\x20-\x7e]*)?$/

/**
 * A `traceparent` header as kept, or `undefined` for an invalid one (the W3C recommendation says a
 * receiver ignores it; uppercase hex is invalid). Trimmed; a later version is kept as the version-00
 * value of its first 55 characters (`00-<trace id>-<parent id>-<flags>`), the version this
 * implementation knows and continues the trace with.
 */
export function parseTraceparent(header: string | null | undefined): string | undefined {
  if (header == null) return undefined
  const match = TRACEPARENT.exec(header.trim())
  if (!match) return undefined
  const [, version, traceId, parentId, flags, rest] = match
  if (version === '00' && rest !== undefined) return undefined
  return `00-${traceId}-${parentId}-${flags}`
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
