/**
 * The page test/react/use-settled.test.ts opens in Chromium: one component around `useSettled`,
 * driven from the test through `window.probe`. It logs what each render returned and each settled
 * value committed, and keeps the page's pending timers (setTimeout, by delay) so the test can see
 * a timer cleared. Bundled with esbuild by the test.
 */
import { useEffect, useState } from 'react'
import { flushSync } from 'react-dom'
import { createRoot, type Root } from 'react-dom/client'
import { useSettled } from '../../src/react/use-settled.js'

/** The page's timers not yet run nor cleared: id → delay. */
const pending = new Map<number, number>()
const setTimer = window.setTimeout.bind(window)
const clearTimer = window.clearTimeout.bind(window)
window.setTimeout = ((callback: (...args: unknown[]) => void, delay?: number, ...args: unknown[]) => {
  const id = setTimer(() => {
    pending.delete(id)
    callback(...args)
  }, delay)
  pending.set(id, delay ?? 0)
  return id
}) as typeof window.setTimeout
window.clearTimeout = ((id: number | undefined) => {
  if (id !== undefined) pending.delete(id)
  clearTimer(id)
}) as typeof window.clearTimeout

interface Options {
  delayMs: number
  /** Take an emptied value at once. */
  emptyAtOnce: boolean
}

const probe = {
  /** `[value, what useSettled returned]` of each render. */
  renders: [] as [string, string][],
  /** Each settled value committed (an effect on it). */
  settled: [] as string[],
  set: (_value: string): void => {
    throw new Error('not mounted')
  },
  timers: (): number[] => [...pending.values()],
  root: undefined as Root | undefined,
  mount(options: Options): void {
    probe.renders = []
    probe.settled = []
    probe.root = createRoot(document.getElementById('root')!)
    flushSync(() => probe.root!.render(<Probe {...options} />))
  },
  unmount(): void {
    probe.root?.unmount()
    probe.root = undefined
  },
}
;(window as unknown as { probe: typeof probe }).probe = probe

function Probe({ delayMs, emptyAtOnce }: Options) {
  const [value, setValue] = useState('')
  const settled = useSettled(value, delayMs, emptyAtOnce ? (next) => next === '' : undefined)
  probe.renders.push([value, settled])
  probe.set = (next) => flushSync(() => setValue(next))
  useEffect(() => {
    probe.settled.push(settled)
  }, [settled])
  return <output data-value={value}>{settled}</output>
}
