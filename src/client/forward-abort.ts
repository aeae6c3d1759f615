/**
 * Aborts `controller` when `signal` aborts (at once if it already has), with the signal's reason.
 * Returns the function that stops forwarding; a no-op without a signal.
 */
export function forwardAbort(signal: AbortSignal | undefined, controller: AbortController): () => void {
  if (!signal) return () => {}
  const onAbort = () => controller.abort(signal.reason)
  if (signal.aborted) onAbort()
  else signal.addEventListener('abort', onAbort, { once: true })
  return () => signal.removeEventListener('abort', onAbort)
}
