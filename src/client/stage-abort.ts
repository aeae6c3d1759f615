/** How `runPipeline` stops waiting for an aborted stage, and how the abort reads in its summary. Internal. */

/** Rejects as soon as `signal` aborts, even if the stage ignores its signal. */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    if (signal.aborted) return onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/** The summary's `error` for a pipeline cancelled by `options.signal`: `Cancelled`, with its reason's message when it has one. */
export function abortMessage(signal: AbortSignal): string {
  const reason: unknown = signal.reason
  return reason instanceof Error && reason.name !== 'AbortError' ? `Cancelled: ${reason.message}` : 'Cancelled'
}
