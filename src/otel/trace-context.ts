/**
 * A stored W3C `traceparent` as an OpenTelemetry span context (remote), for a span's parent and links.
 */
import { type SpanContext, TraceFlags } from '@opentelemetry/api'

/** The span context a stored `traceparent` names (`00-<trace id>-<span id>-<flags>`), or `undefined`. */
export function spanContextOf(traceparent: string | null | undefined): SpanContext | undefined {
  if (!traceparent) return undefined
  const [version, traceId, spanId, flags] = traceparent.split('-')
  if (version !== '00' || !traceId || !spanId || !flags) return undefined
  return { traceId, spanId, traceFlags: Number.parseInt(flags, 16) & TraceFlags.SAMPLED, isRemote: true }
}
