/** Waiting on a condition the test cannot await directly. */

/**
 * Resolves once `read()` holds, checking every 10 ms on the real clock; fails past `ceilingMs`,
 * naming `what` it waited for.
 */
export async function until(what: string, read: () => boolean, ceilingMs = 10_000): Promise<void> {
  const deadline = Date.now() + ceilingMs
  while (!read()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ceilingMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
