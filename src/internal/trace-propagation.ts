/**
 * The seam through which `pipeline-status-sdk/otel` gives the client its trace headers. Without
 * that entry nothing is registered and nothing changes: no header, no cost beyond one lookup.
 *
 * Kept on `globalThis` under a registered symbol, not in module state, so the ESM and CommonJS
 * builds (and two copies of the package in one process) see the one registration.
 */

/** Returns the W3C Trace Context headers (`traceparent`, `tracestate`) of the caller's active context. */
export type TraceHeaders = () => Record<string, string>

const KEY = Symbol.for('pipeline-status-sdk.trace-headers')

type Holder = { [KEY]?: TraceHeaders | undefined }

/** Registers (or, with `undefined`, removes) the function the client asks for trace headers. */
export function setTraceHeaders(headers: TraceHeaders | undefined): void {
  ;(globalThis as Holder)[KEY] = headers
}

/** Adds the registered trace headers, if any, to `headers`. */
export function addTraceHeaders(headers: Record<string, string>): void {
  const traceHeaders = (globalThis as Holder)[KEY]
  if (traceHeaders === undefined) return
  Object.assign(headers, traceHeaders())
}
