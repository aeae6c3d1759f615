/**
 * The seam through which `pipeline-status-sdk/otel` counts the client's dead letters and reads its
 * outboxes' depth. Without that entry a dead letter costs one lookup, and an outbox is one entry
 * in a set. Kept on `globalThis` under a registered symbol, like `trace-propagation.ts`, so both
 * builds share it.
 */

interface ClientTelemetry {
  /** The dead-letter hook, when registered. */
  deadLettered: ((letter: { route: string; kind: 'dead_letter' | 'superseded' }) => void) | undefined
  /** The open outboxes' depth readers. */
  readonly outboxes: Set<() => number>
}

const KEY = Symbol.for('pipeline-status-sdk.client-telemetry')

/** The process's one client telemetry state. */
export function clientTelemetry(): ClientTelemetry {
  const holder = globalThis as { [KEY]?: ClientTelemetry }
  holder[KEY] ??= { deadLettered: undefined, outboxes: new Set() }
  return holder[KEY]
}

/** Tells the registered hook, if any, of a dead letter. */
export function reportDeadLetter(route: string, kind: 'dead_letter' | 'superseded'): void {
  clientTelemetry().deadLettered?.({ route, kind })
}

/** Tracks an open outbox's depth (updates waiting); returns the function that stops it. */
export function trackOutbox(depth: () => number): () => void {
  const { outboxes } = clientTelemetry()
  outboxes.add(depth)
  return () => void outboxes.delete(depth)
}
