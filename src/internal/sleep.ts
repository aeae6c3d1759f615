/**
 * Waits `ms` milliseconds, or less: resolves at once when `signal` aborts (never rejects). The
 * reconnect waits of both live stream subscribers (`subscribeToRun`, the runner's run-end watch).
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}
