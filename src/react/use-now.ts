import { useEffect, useReducer, useState } from 'react'

/**
 * The time (epoch ms) the clocks read at this render. Until hydration it is `renderedAt`, so
 * the server HTML and the first browser render agree (no hydration mismatch); after that, the
 * browser's clock read at each render. While `ticking` it also re-renders once a second; otherwise
 * nothing ticks.
 */
export function useNow(renderedAt: number, ticking: boolean): number {
  const [hydrated, setHydrated] = useState(false)
  const [, tick] = useReducer((count: number) => count + 1, 0)
  useEffect(() => setHydrated(true), [])
  useEffect(() => {
    if (!ticking) return
    const timer = setInterval(tick, 1000)
    return () => clearInterval(timer)
  }, [ticking])
  return hydrated ? Date.now() : renderedAt
}
