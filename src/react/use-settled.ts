/**
 * `useSettled`: a value that follows another once it stops changing (a debounce), the one rule
 * behind "a new stream once typing pauses" in `RunList` and the dashboard. Internal: not exported
 * from the entry.
 */
import { useEffect, useState } from 'react'

/**
 * `value`, once it has stayed the same for `delayMs` (compared with `Object.is`): each change
 * starts the wait again, and until it ends the value settled before is returned. A change is taken
 * at once, in the same render, when `delayMs` is not above 0 or `atOnce(value, settled)` says so
 * (the caller's rule, e.g. "anything but typing"). The first render returns `value`. Unmounting
 * clears the pending timer.
 */
export function useSettled<T>(value: T, delayMs: number, atOnce?: (value: T, settled: T) => boolean): T {
  const [settled, setSettled] = useState(value)
  const pending = !Object.is(value, settled)
  const now = pending && (!(delayMs > 0) || (atOnce?.(value, settled) ?? false))
  // Adjusting state while rendering (React re-renders before committing): no render, and so no
  // effect that opens a connection, ever pairs a change taken at once with a stale settled value.
  if (now) setSettled(value)
  useEffect(() => {
    if (!pending || now) return
    const timer = setTimeout(() => setSettled(value), delayMs)
    return () => clearTimeout(timer)
  }, [value, pending, now, delayMs])
  return now ? value : settled
}
