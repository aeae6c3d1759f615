import { useEffect, useReducer, useState } from 'react'

/**
 * The time (epoch ms) the page's clocks read at this render. Until hydration it is
 * `renderedAt`, the server's time when it rendered the page, so the server HTML and the first
 * browser render agree (no hydration mismatch); after that, the browser's clock read at each
 * render, so a change that arrives between two ticks (a retry's `nextRetryAt`) is measured
 * against the present, not against the last tick. While `anchor` is set it also re-renders once
 * a second, on the whole seconds counted from `anchor` (the running stage's start), so that
 * clock never skips or repeats a second; without it (nothing running) nothing ticks.
 */
export function useNow(renderedAt: number, anchor: number | undefined): number {
  const [hydrated, setHydrated] = useState(false)
  const [, tick] = useReducer((count: number) => count + 1, 0)
  useEffect(() => setHydrated(true), [])
  useEffect(() => {
    if (anchor === undefined) return
    let timer: ReturnType<typeof setTimeout> | undefined
    const schedule = () => {
      const intoSecond = (((Date.now() - anchor) % 1000) + 1000) % 1000
      // A few milliseconds past the boundary, so a timer that fires early still lands after it.
      timer = setTimeout(() => {
        tick()
        schedule()
      }, 1000 - intoSecond + 5)
    }
    schedule()
    return () => clearTimeout(timer)
  }, [anchor])
  return hydrated ? Date.now() : renderedAt
}
