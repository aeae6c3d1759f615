/**
 * `useSettled` (src/react/use-settled.ts), the one rule behind "a new stream once typing pauses"
 * in RunList and the dashboard, mounted by React in Chromium (use-settled-page.tsx) under
 * Playwright's fake clock: time moves only when the test says so (`runFor`), so every step below
 * is exact and nothing rests on how fast the machine is.
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bundleTestPage } from '../support/browser-page.js'
import { chromiumTool, toolForTests } from '../support/optional-tools.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const CHROMIUM = toolForTests(chromiumTool('test/react/use-settled.test.ts', "useSettled (RunList's typing pause) in Chromium"))
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const PAGE = 'http://use-settled.test/'

let browser: Browser | undefined
let script = ''

interface Probe {
  renders: [string, string][]
  settled: string[]
  set(value: string): void
  timers(): number[]
  mount(options: { delayMs: number; emptyAtOnce: boolean }): void
  unmount(): void
}

/** A page with the probe loaded and its clock stopped; `errors` collects the page's errors. */
async function openProbe(errors: string[]): Promise<Page> {
  const page = await browser!.newPage()
  page.on('pageerror', (error) => errors.push(error.message))
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text())
  })
  await page.route(`${PAGE}**`, (route) =>
    route.request().url().endsWith('/probe.js')
      ? route.fulfill({ contentType: 'text/javascript', body: script })
      : route.fulfill({ contentType: 'text/html', body: '<!doctype html><div id="root"></div><script type="module" src="/probe.js"></script>' }),
  )
  await page.clock.install({ time: 0 })
  await page.clock.pauseAt(1000)
  await page.goto(PAGE)
  await page.waitForFunction(() => 'probe' in window)
  return page
}

const mount = (page: Page, options: { delayMs: number; emptyAtOnce: boolean }) => page.evaluate((options) => (window as unknown as { probe: Probe }).probe.mount(options), options)
const unmount = (page: Page) => page.evaluate(() => (window as unknown as { probe: Probe }).probe.unmount())
const set = (page: Page, value: string) => page.evaluate((value) => (window as unknown as { probe: Probe }).probe.set(value), value)
/** The settled values committed so far, the last render's `[value, settled]`, the delays of the page's pending timers. */
const shown = (page: Page) =>
  page.evaluate(() => {
    const probe = (window as unknown as { probe: Probe }).probe
    return { settled: probe.settled, last: probe.renders.at(-1), timers: probe.timers() }
  })

describe.skipIf(!CHROMIUM)('useSettled in Chromium, on a fake clock', () => {
  beforeAll(async () => {
    script = await bundleTestPage(join(root, 'test/react/use-settled-page.tsx'))
    browser = await chromium.launch({ executablePath: CHROMIUM!, args: CHROMIUM_ARGS })
  }, 120_000)

  afterAll(async () => {
    await browser?.close().catch(() => {})
  })

  it('returns a value once it has stayed the same for the delay; each change starts the wait again; one timer at a time', async () => {
    const errors: string[] = []
    const page = await openProbe(errors)
    await mount(page, { delayMs: 300, emptyAtOnce: false })
    expect(await shown(page)).toEqual({ settled: [''], last: ['', ''], timers: [] })

    // Typed key by key, the clock stopped: the value shows, the settled one stays, one timer waits.
    // (A set renders synchronously; what a timer sets renders in a later task: waited for.)
    for (const value of ['n', 'ni', 'nig']) await set(page, value)
    expect(await shown(page)).toEqual({ settled: [''], last: ['nig', ''], timers: [300] })
    // The timer still pending after 299 ms: nothing can have settled.
    await page.clock.runFor(299)
    expect(await shown(page)).toEqual({ settled: [''], last: ['nig', ''], timers: [300] })
    await page.clock.runFor(1)
    await expect.poll(() => shown(page)).toEqual({ settled: ['', 'nig'], last: ['nig', 'nig'], timers: [] })

    // A change within the wait starts it again.
    await set(page, 'nigh')
    await page.clock.runFor(200)
    await set(page, 'night')
    await page.clock.runFor(200)
    expect(await shown(page)).toEqual({ settled: ['', 'nig'], last: ['night', 'nig'], timers: [300] })
    await page.clock.runFor(100)
    await expect.poll(() => shown(page)).toEqual({ settled: ['', 'nig', 'night'], last: ['night', 'night'], timers: [] })

    // Back to the settled value before the wait ends: nothing to wait for, nothing settles again.
    await set(page, 'nightl')
    await set(page, 'night')
    expect((await shown(page)).timers).toEqual([])
    await page.clock.runFor(1000)
    expect(await shown(page)).toEqual({ settled: ['', 'nig', 'night'], last: ['night', 'night'], timers: [] })
    expect(errors).toEqual([])
    await page.close()
  })

  it("takes a change at once, in the same render, when the caller's rule says so; and every change with a delay of 0", async () => {
    const errors: string[] = []
    const page = await openProbe(errors)
    await mount(page, { delayMs: 300, emptyAtOnce: true })
    await set(page, 'nightly')
    await page.clock.runFor(300)
    await expect.poll(() => shown(page)).toEqual({ settled: ['', 'nightly'], last: ['nightly', 'nightly'], timers: [] })
    await set(page, 'nightly-eu')
    expect(await shown(page)).toEqual({ settled: ['', 'nightly'], last: ['nightly-eu', 'nightly'], timers: [300] })
    // Emptied: settled at once (the clock still stopped), the pending wait cleared, and no render
    // paired the empty value with the settled 'nightly'.
    await set(page, '')
    expect(await shown(page)).toEqual({ settled: ['', 'nightly', ''], last: ['', ''], timers: [] })
    const renders = await page.evaluate(() => (window as unknown as { probe: Probe }).probe.renders)
    expect(renders.filter(([value, settled]) => value === '' && settled !== '')).toEqual([])
    await unmount(page)

    await mount(page, { delayMs: 0, emptyAtOnce: false })
    await set(page, 'n')
    await set(page, 'ni')
    expect(await shown(page)).toEqual({ settled: ['', 'n', 'ni'], last: ['ni', 'ni'], timers: [] })
    expect(errors).toEqual([])
    await page.close()
  })

  it('clears the pending timer when the component unmounts', async () => {
    const errors: string[] = []
    const page = await openProbe(errors)
    await mount(page, { delayMs: 300, emptyAtOnce: false })
    await set(page, 'nightly')
    expect((await shown(page)).timers).toEqual([300])
    await unmount(page)
    expect((await shown(page)).timers).toEqual([])
    await page.clock.runFor(1000)
    expect((await shown(page)).settled).toEqual([''])
    expect(errors).toEqual([])
    await page.close()
  })
})
