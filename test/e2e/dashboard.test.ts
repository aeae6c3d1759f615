/**
 * The dashboard in Chromium, as a person uses it (docs/dashboard.md): the Express router with the
 * `dashboard` option on a real port, then the mock server's page at `/`. Sign in through the
 * page's prompt (the credential kept in sessionStorage, never in the URL), filter, open a run by
 * keyboard, watch a stage change and streamed text grow without reloading (the list and the run
 * follow their streams: no list or status polling), hostile runner text (Markdown outputs too)
 * rendered as text with the CSP in force and no violation, axe-core without serious or critical
 * findings, screenshots at 1280 and 390 px (test/.artifacts/dashboard-*.png) and no horizontal
 * scroll at 390 px; the stage-duration tables inside their card at 390 and 320 px
 * (dashboard-stats-*.png); a stage name of one long word inside its box in the chart, the table and
 * the run at 390 to 1280 px (dashboard-long-stage-*.png); the tag field followed once typing pauses
 * and "Clear filters" at once, on Playwright's fake clock; no axe-core finding at all in dark mode
 * (dashboard-dark-*.png).
 */
import { readFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import express from 'express'
import { defineStages } from 'pipeline-status-sdk'
import { createExpressRouter } from 'pipeline-status-sdk/express'
import { type MockServer, startMockServer } from 'pipeline-status-sdk/msw'
import { MemoryStore } from 'pipeline-status-sdk/server'
import { type Browser, type BrowserContext, chromium, type ConsoleMessage, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chromiumTool, toolForTests } from '../support/optional-tools.js'

const CHROMIUM = toolForTests(chromiumTool('test/e2e/dashboard.test.ts', 'the dashboard in Chromium'))
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
const root = fileURLToPath(new URL('../..', import.meta.url))
const artifacts = join(root, 'test', '.artifacts')
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

const SECRET = 'dashboard-e2e-secret-5b1c'
const CSP = "default-src 'self'; script-src 'self'; frame-ancestors 'none'"
const REPORT = defineStages(['Fetch', 'Summarise', 'Publish'])
/** A pipeline whose stages take about an hour, with long stage names: the widest stage-duration table rows. */
const ETL = defineStages(['Extract', 'Deduplication', 'Reconciliation'])
// Legal, unbroken and as long as allowed: each must wrap inside its box, never widen the page.
const LONG_TAG = 'B'.repeat(128)
const LONG_PIPELINE = 'P'.repeat(128)
/** A stage name of one word as long as a name may be (200 characters) but for its prefix: it must break inside its letters. */
const LONG_WORD = 'W'.repeat(192)
const LONG_STAGE = `Publish ${LONG_WORD}`
/** The dashboard's typing pause for the tag field (TAG_SETTLE_MS, src/dashboard/app.tsx). */
const TAG_SETTLE_MS = 400
const HOSTILE_OUTPUT = '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> [click](javascript:window.__pwned=3) <a href="javascript:window.__pwned=4">link</a>'
const HOSTILE_ERROR = '<script>window.__pwned=5</script><b onmouseover="window.__pwned=6">bold</b>'
/** Markdown with the same tricks: raw HTML blocks, an image, javascript: and data: links, beside a safe link. */
const HOSTILE_MARKDOWN = [
  '# Report',
  '',
  '<img src=x onerror="window.__pwned=7">',
  '',
  '<script>window.__pwned=8</script>',
  '',
  '![pixel](https://tracker.example/p.png?q=secret) [run me](javascript:window.__pwned=9) [data](data:text/html,<script>window.__pwned=10</script>) [docs](https://example.com/docs)',
  '',
  '<div onclick="window.__pwned=11">raw block</div>',
].join('\n')

let browser: Browser | undefined
/** The handlers' clock runs ahead by this much, so the seeded stages take time (the stats chart has something to show). */
let clockOffsetMs = 0
let server: Server | undefined
let origin = ''
/** What the server was asked for, in order: the list's streams (`GET …/events` without `run=`) and its counts by status, each with its tag filter ('' for none). */
const asked: { route: 'events' | 'counts'; tag: string }[] = []
const api = (path: string, init: { method?: string; json?: unknown } = {}) =>
  fetch(`${origin}/api/pipeline${path}`, {
    method: init.method ?? (init.json === undefined ? 'GET' : 'POST'),
    headers: { 'X-Webhook-Secret': SECRET, ...(init.json === undefined ? {} : { 'Content-Type': 'application/json' }) },
    ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
  })

async function stage(runId: string, stageNumber: number, status: string, output?: string, tookMs?: number, stages = REPORT): Promise<void> {
  if (tookMs !== undefined) {
    await stage(runId, stageNumber, 'PROCESSING', undefined, undefined, stages)
    clockOffsetMs += tookMs
  }
  const response = await api(`/${runId}/stage-update`, { json: { stageNumber, stageName: stages[stageNumber - 1]?.name, status, ...(output === undefined ? {} : { output }) } })
  expect(response.status).toBe(200)
}

/** Appends one chunk of a running stage's streamed text, as a runner does. */
async function chunk(runId: string, stageNumber: number, seq: number, text: string, post: typeof api = api): Promise<void> {
  const response = await post(`/${runId}/stages/${stageNumber}/output`, { json: { seq, text } })
  expect(response.status).toBe(200)
  expect(await response.json()).toMatchObject({ outcome: 'applied' })
}

/** An element's text with its whitespace runs as one space (Markdown puts line breaks between blocks). */
const words = async (locator: { textContent(): Promise<string | null> }) => ((await locator.textContent()) ?? '').replace(/\s+/g, ' ').trim()

/** The page's requests to the JSON list and status routes: none while the page follows its streams. */
function polls(page: Page): string[] {
  const seen: string[] = []
  page.on('request', (request) => {
    const path = new URL(request.url()).pathname
    if (/\/runs$/.test(path) || /\/status$/.test(path)) seen.push(`${request.method()} ${path}`)
  })
  return seen
}

async function createRun(id: string, pipeline = 'report', tags: string[] = []): Promise<void> {
  expect((await api('/runs', { json: { id, pipeline, tags } })).status).toBe(201)
}

/** Console messages and CSP violations a page reports. */
function watch(page: Page): { console: string[]; violations: string[] } {
  const seen = { console: [] as string[], violations: [] as string[] }
  page.on('console', (message: ConsoleMessage) => seen.console.push(`${message.type()}: ${message.text()}`))
  page.on('pageerror', (error) => seen.console.push(`pageerror: ${error.message}`))
  return seen
}

/** Records the page's `securitypolicyviolation` events from its first script on. */
async function recordViolations(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    const list: string[] = []
    ;(window as unknown as { __violations: string[] }).__violations = list
    document.addEventListener('securitypolicyviolation', (event) => list.push(`${event.violatedDirective} ${event.blockedURI}`))
  })
}

async function axeFindings(page: Page): Promise<{ id: string; impact: string | null; nodes: number; help: string; targets: string[] }[]> {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern (an injected <script> would be blocked, rightly).
  await page.evaluate(AXE)
  return page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (context: Document) => Promise<{ violations: { id: string; impact: string | null; nodes: { target: string[]; failureSummary?: string }[]; help: string }[] }> } }).axe
    const result = await axe.run(document)
    // The targets (and why each fails) name what to fix.
    const targets = (nodes: { target: string[]; failureSummary?: string }[]) => nodes.slice(0, 12).map((node) => `${node.target.join(' ')}: ${(node.failureSummary ?? '').replace(/\s+/g, ' ').slice(0, 200)}`)
    return result.violations.map((violation) => ({ id: violation.id, impact: violation.impact, nodes: violation.nodes.length, help: violation.help, targets: targets(violation.nodes) }))
  })
}

const noHorizontalScroll = (page: Page) => page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }))

describe.skipIf(!CHROMIUM)('the dashboard in Chromium', () => {
  beforeAll(async () => {
    await mkdir(artifacts, { recursive: true })
    const app = express()
    // Before the router: the requests the page makes for the list, as the server sees them.
    app.use('/api/pipeline', (request, _response, next) => {
      const query = new URL(request.originalUrl, 'http://localhost').searchParams
      const route = request.path === '/events' && !query.has('run') ? 'events' : request.path === '/runs/counts' && query.get('groupBy') === 'status' ? 'counts' : undefined
      if (route !== undefined) asked.push({ route, tag: query.getAll('tag').join(',') })
      next()
    })
    app.use(
      '/api/pipeline',
      createExpressRouter({
        store: new MemoryStore(),
        secret: SECRET,
        pipelines: { report: REPORT, [LONG_PIPELINE]: REPORT, etl: ETL },
        dashboard: { title: 'Pipeline runs', refreshIntervalMs: 500 },
        clock: () => new Date(Date.now() + clockOffsetMs),
      }),
    )
    server = await new Promise<Server>((resolve) => {
      const listening = app.listen(0, '127.0.0.1', () => resolve(listening))
    })
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    // Runs to look at: two completed, one failed with hostile text, one running.
    for (const [i, id] of ['done-1', 'done-2'].entries()) {
      await createRun(id, 'report', ['nightly'])
      for (const n of [1, 2, 3]) await stage(id, n, 'COMPLETED', n === 2 ? '{"summary":"ok","items":[1,2]}' : `# Stage ${n}\n\nAll good.`, n * 4000 + i * 1500)
    }
    // Stages of about an hour (before the running run is created, so its stage is not an hour old).
    for (const [i, id] of ['slow-1', 'slow-2'].entries()) {
      await createRun(id, 'etl', ['slow'])
      for (const n of [1, 2, 3]) await stage(id, n, 'COMPLETED', 'done', (59 * 60 + 58 - n * 7 - i) * 1000, ETL)
    }
    await createRun('failed-1', 'report', ['adhoc'])
    await stage('failed-1', 1, 'COMPLETED', HOSTILE_OUTPUT, 9000)
    await stage('failed-1', 2, 'COMPLETED', HOSTILE_MARKDOWN, 1000)
    await stage('failed-1', 3, 'FAILED', HOSTILE_ERROR, 2000)
    await createRun('running-1', 'report', ['nightly'])
    await stage('running-1', 1, 'COMPLETED', 'fetched', 3000)
    await stage('running-1', 2, 'PROCESSING')
    await createRun('default-1', 'default')
    await createRun('long-words', LONG_PIPELINE, [LONG_TAG])
    // A retrying stage with progress: its attempt line, progress line and last-error box (dark mode's contrast).
    await createRun('retrying-1', 'etl', ['slow'])
    await stage('retrying-1', 1, 'COMPLETED', 'extracted', 2000, ETL)
    const retry = { stageNumber: 2, stageName: 'Deduplication', status: 'PROCESSING', attempt: 2, maxAttempts: 3, lastError: 'connection reset by peer', nextRetryAt: null }
    expect((await api('/retrying-1/stage-update', { json: { ...retry, progress: { seq: 1, current: 37, total: 40, message: 'batch 37' } } })).status).toBe(200)
    await createRun('cancelled-1', 'report', ['slow'])
    await stage('cancelled-1', 1, 'PROCESSING')
    expect((await api('/cancelled-1/cancel', { json: { reason: 'stopped by an operator' } })).status).toBe(200)
    browser = await chromium.launch({ executablePath: CHROMIUM!, args: CHROMIUM_ARGS })
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
  })

  it('serves the shell and its files with the CSP, nosniff, content types and ETags; no data in the shell', async () => {
    const shell = await fetch(`${origin}/api/pipeline/dashboard`)
    expect(shell.status).toBe(200)
    expect(shell.headers.get('content-security-policy')).toBe(CSP)
    expect(shell.headers.get('x-content-type-options')).toBe('nosniff')
    expect(shell.headers.get('content-type')).toBe('text/html; charset=utf-8')
    const html = await shell.text()
    expect(html).not.toMatch(/done-1|failed-1|running-1/)
    const script = /src="([^"]+)"/.exec(html)?.[1] ?? expect.unreachable('a script')
    const js = await fetch(`${origin}${script.replaceAll('&#38;', '&')}`)
    expect(js.status).toBe(200)
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    expect(js.headers.get('content-security-policy')).toBe(CSP)
    const etag = js.headers.get('etag') ?? expect.unreachable('an ETag')
    expect((await fetch(`${origin}/api/pipeline/dashboard/dashboard.js`, { headers: { 'If-None-Match': etag } })).status).toBe(304)
    expect((await fetch(`${origin}/api/pipeline/dashboard/dashboard.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8')
    expect((await fetch(`${origin}/api/pipeline/dashboard/nothing.js`)).status).toBe(404)
    // A run called `dashboard` keeps its routes: an asset name has a dot, a run route's last segment none.
    await createRun('dashboard', 'default')
    expect((await api('/dashboard/status')).status).toBe(200)
  })

  it('signs in through the prompt, lists, filters, opens a run by keyboard and watches a stage change and streamed text grow', async () => {
    const context = await browser!.newContext({ viewport: { width: 1280, height: 900 } })
    await recordViolations(context)
    const page = await context.newPage()
    const seen = watch(page)
    const polled = polls(page)
    const streams: string[] = []
    page.on('request', (request) => {
      if (new URL(request.url()).pathname.endsWith('/events')) streams.push(JSON.stringify(request.headers()))
    })
    await page.goto(`${origin}/api/pipeline/dashboard`)
    // No session: the data requests are refused and the page asks for a credential.
    await page.getByLabel('Secret or read token').waitFor({ timeout: 10_000 })
    await page.getByLabel('Secret or read token').fill('wrong-secret')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByText('The server refused the credential').waitFor({ timeout: 10_000 })
    // Not signed in: no "Sign out" in the header.
    expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(0)
    await page.getByLabel('Secret or read token').fill(SECRET)
    await page.keyboard.press('Enter')
    await page.getByRole('link', { name: 'done-1' }).waitFor({ timeout: 10_000 })
    expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(1)
    // The form is gone: the keyboard's focus is on the page's first heading, not left on <body>.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('psd-counts-title')
    // A monospace id keeps its underscores visible: the underline sits below them, not skipping ink.
    expect(await page.getByRole('link', { name: 'done-1' }).evaluate((link) => getComputedStyle(link).textDecorationSkipInk)).toBe('none')
    // The page's icon is its own file (no /favicon.ico 404).
    const icon = (await page.locator('link[rel="icon"]').getAttribute('href')) ?? expect.unreachable('an icon link')
    expect((await fetch(`${origin}${icon}`)).headers.get('content-type')).toBe('image/svg+xml')
    await page.locator('[data-testid="list-state"][data-state="live"]').waitFor({ timeout: 10_000 })
    expect(page.url()).not.toContain(SECRET)
    expect(await page.evaluate(() => sessionStorage.getItem('pipeline-status-dashboard:credential'))).toBe(SECRET)
    // The set stream carries the credential and the page's mark as headers, never in its URL.
    expect(streams.some((headers) => headers.includes(`"x-webhook-secret":"${SECRET}"`) && headers.includes('"x-pipeline-status-dashboard":"1"'))).toBe(true)
    // Counts by status, then a filter by status.
    await expect.poll(() => page.getByRole('button', { name: /^FAILED 1$/ }).count(), { timeout: 10_000 }).toBe(1)
    await page.locator('.ps-chart').first().waitFor({ timeout: 10_000 })
    await page.screenshot({ path: join(artifacts, 'dashboard-list-1280.png'), fullPage: true })
    // The 128-character tag and pipeline name wrap: the runs table stays inside its card.
    const wide = await noHorizontalScroll(page)
    expect(wide.scrollWidth).toBeLessThanOrEqual(wide.innerWidth)
    expect(await page.evaluate(() => document.querySelector('.ps-table')!.getBoundingClientRect().right <= document.querySelector('.psd-app')!.getBoundingClientRect().right + 1)).toBe(true)
    await page.getByRole('button', { name: /^FAILED 1$/ }).click()
    await expect.poll(() => page.getByTestId('run-row').count(), { timeout: 10_000 }).toBe(1)
    await expect.poll(() => page.getByRole('link', { name: 'failed-1' }).count()).toBe(1)
    // The pipeline filter, then the tag filter.
    await page.getByRole('button', { name: /^All \d+$/ }).click()
    await page.getByLabel('Pipeline', { exact: true }).selectOption('default')
    await expect.poll(async () => (await page.locator('[data-testid="run-row"] .ps-run-link').allTextContents()).sort(), { timeout: 10_000 }).toEqual(['dashboard', 'default-1'])
    await page.getByLabel('Pipeline', { exact: true }).selectOption('')
    await page.getByLabel('Tag', { exact: true }).fill('adhoc')
    await expect.poll(async () => page.locator('[data-testid="run-row"] .ps-run-link').allTextContents(), { timeout: 10_000 }).toEqual(['failed-1'])
    await page.getByRole('button', { name: 'Clear filters' }).click()

    // The list is live: a run created now appears, and its status changes, without a reload.
    await page.evaluate(() => ((window as unknown as { __marker: number }).__marker = 42))
    await createRun('fresh-1', 'report', ['nightly'])
    await page.getByRole('link', { name: 'fresh-1' }).waitFor({ timeout: 10_000 })
    await expect.poll(() => page.getByRole('button', { name: /^PENDING \d+$/ }).textContent(), { timeout: 10_000 }).toMatch(/PENDING [1-9]/)
    await stage('fresh-1', 1, 'PROCESSING')
    await expect.poll(() => page.locator('[data-run-id="fresh-1"]').getAttribute('data-status'), { timeout: 10_000 }).toBe('PROCESSING')

    // Open the running run by keyboard: focus its link, Enter; the run's section takes the focus.
    await page.getByRole('link', { name: 'running-1' }).focus()
    await page.keyboard.press('Enter')
    await page.getByTestId('run-view').waitFor({ timeout: 10_000 })
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute('aria-label')), { timeout: 10_000 }).toBe('Pipeline run running-1')
    const stages = page.getByTestId('stage')
    await expect.poll(() => stages.nth(1).getAttribute('data-status'), { timeout: 10_000 }).toBe('PROCESSING')
    await page.locator('[data-testid="run-view"][data-live="live"]').waitFor({ timeout: 10_000 })
    // The runner reports: the page follows without a reload.
    await stage('running-1', 2, 'COMPLETED', '## Summary\n\n- **three** findings')
    await expect.poll(() => stages.nth(1).getAttribute('data-status'), { timeout: 10_000 }).toBe('COMPLETED')
    await expect.poll(() => stages.nth(1).locator('.ps-markdown strong').textContent(), { timeout: 10_000 }).toBe('three')
    await stage('running-1', 3, 'PROCESSING')
    await expect.poll(() => stages.nth(2).getAttribute('data-status'), { timeout: 10_000 }).toBe('PROCESSING')
    // Streamed text grows chunk by chunk, posted over HTTP as a runner does.
    const output = stages.nth(2).getByTestId('stage-output')
    // As shown (innerText): a streaming stage renders each Markdown block on its own, with no
    // whitespace text between the blocks' elements, so textContent would read "DraftThe first".
    const shown = async () => (await output.innerText()).replace(/\s+/g, ' ').trim()
    await chunk('running-1', 3, 0, '# Draft\n\nThe first')
    await expect.poll(shown, { timeout: 10_000 }).toBe('Draft The first')
    expect(await output.getAttribute('data-streaming')).toBe('true')
    await chunk('running-1', 3, 1, ' sentence, then a second.')
    await expect.poll(shown, { timeout: 10_000 }).toBe('Draft The first sentence, then a second.')
    expect(await stages.nth(2).locator('.ps-markdown h1').textContent()).toBe('Draft')
    expect(await page.evaluate(() => (window as unknown as { __marker?: number }).__marker)).toBe(42)
    await page.screenshot({ path: join(artifacts, 'dashboard-run-1280.png'), fullPage: true })
    await stage('running-1', 3, 'COMPLETED', '# Draft\n\nThe first sentence, then a second.')
    await expect.poll(() => page.getByTestId('run-status').getAttribute('data-status'), { timeout: 10_000 }).toBe('COMPLETED')
    // Back with the keyboard: the "All runs" link.
    await page.getByRole('link', { name: '← All runs' }).focus()
    await page.keyboard.press('Enter')
    await page.getByRole('heading', { name: 'Runs', exact: true }).waitFor({ timeout: 10_000 })
    // The list's own URL, no stray "#".
    expect(page.url()).toBe(`${origin}/api/pipeline/dashboard`)
    await expect.poll(() => page.locator('[data-run-id="running-1"]').getAttribute('data-status'), { timeout: 10_000 }).toBe('COMPLETED')
    // The focus is back on the link of the run just left (Tab goes on from there), not on <body>.
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent), { timeout: 10_000 }).toBe('running-1')
    expect(await page.evaluate(() => document.activeElement?.getAttribute('href'))).toBe('#run=running-1')
    expect(await page.evaluate(() => (window as unknown as { __marker?: number }).__marker)).toBe(42)

    // Everything came over the streams: the page never read the list or a status as JSON.
    expect(polled).toEqual([])
    expect(seen.console.filter((line) => /Content Security Policy|pageerror/i.test(line))).toEqual([])
    expect(await page.evaluate(() => (window as unknown as { __violations: string[] }).__violations)).toEqual([])
    await context.close()
  })

  it('goes back to the list at its own URL (no "#"), by "← All runs" and by the title; Back and Forward move between the run and the list', async () => {
    const context = await browser!.newContext({ viewport: { width: 1280, height: 900 } })
    await context.addInitScript((secret) => sessionStorage.setItem('pipeline-status-dashboard:credential', secret), SECRET)
    const page = await context.newPage()
    const seen = watch(page)
    const list = `${origin}/api/pipeline/dashboard`
    await page.goto(list)
    const shows = async (what: 'list' | 'done-1', url: string) => {
      if (what === 'list') await page.getByRole('heading', { name: 'Runs', exact: true }).waitFor({ timeout: 10_000 })
      else await page.locator('[data-testid="run-view"][aria-label="Pipeline run done-1"]').waitFor({ timeout: 10_000 })
      expect(await page.getByTestId('run-view').count()).toBe(what === 'list' ? 0 : 1)
      expect(page.url()).toBe(url)
    }
    await page.getByRole('link', { name: 'done-1' }).click()
    await shows('done-1', `${list}#run=done-1`)
    expect(await page.getByRole('link', { name: '← All runs' }).getAttribute('href')).toBe('/api/pipeline/dashboard')
    await page.getByRole('link', { name: '← All runs' }).click()
    await shows('list', list)
    await page.goBack()
    await shows('done-1', `${list}#run=done-1`)
    await page.goBack()
    await shows('list', list)
    await page.goForward()
    await shows('done-1', `${list}#run=done-1`)
    await page.goForward()
    await shows('list', list)
    // The page's title is a link to the list too.
    await page.getByRole('link', { name: 'done-1' }).click()
    await shows('done-1', `${list}#run=done-1`)
    await page.getByRole('link', { name: 'Pipeline runs' }).click()
    await shows('list', list)
    await page.goBack()
    await shows('done-1', `${list}#run=done-1`)
    expect(seen.console.filter((line) => /pageerror/i.test(line))).toEqual([])
    await context.close()
  })

  it('follows the tag field only once typing pauses (the rows and the list stream, never a prefix); "Clear filters" applies at once', async () => {
    const context = await browser!.newContext({ viewport: { width: 1280, height: 900 } })
    await context.addInitScript((secret) => sessionStorage.setItem('pipeline-status-dashboard:credential', secret), SECRET)
    const page = await context.newPage()
    const seen = watch(page)
    // Playwright's clock, running as the real one until paused below; from then on the page's
    // timers (the typing pause, and the frame after which the page's effects run) fire only when
    // the test moves its time: each step below is exact, nothing rests on how fast the machine is.
    await page.clock.install()
    await page.goto(`${origin}/api/pipeline/dashboard`)
    await page.locator('[data-testid="list-state"][data-state="live"]').waitFor({ timeout: 10_000 })
    const ids = async () => (await page.locator('[data-testid="run-row"] .ps-run-link').allTextContents()).sort()
    const everyRun = await ids()
    expect(everyRun).toEqual(expect.arrayContaining(['done-1', 'failed-1', 'running-1']))
    await page.clock.pauseAt((await page.evaluate(() => Date.now())) + 1000)
    const streams = (from: number) => asked.slice(from).filter((request) => request.route === 'events').map((request) => request.tag)
    const tags = (from: number) => [...new Set(asked.slice(from).map((request) => `${request.route} ${request.tag}`))].filter((request) => !request.endsWith(' ')).sort()
    const field = page.getByLabel('Tag', { exact: true })

    // Typed key by key: the field shows each key; the rows stay those of the open stream, none
    // hidden for a prefix ("a", "ad", … name no run's tag).
    const typed = asked.length
    for (const [index, key] of [...'adhoc'].entries()) {
      await field.press(key)
      const text = 'adhoc'.slice(0, index + 1)
      expect(await field.inputValue()).toBe(text)
      expect(await ids(), `the rows after typing "${text}"`).toEqual(everyRun)
    }
    // 1 ms short of the pause: still the same rows, and no stream or count asked for any tag.
    await page.clock.runFor(TAG_SETTLE_MS - 1)
    expect(await ids()).toEqual(everyRun)
    expect(tags(typed)).toEqual([])
    // The pause over: one stream for the whole tag, then the rows and the counts follow it (the
    // 2 s let the page's effects run after their frame, and the counts' at most 1 s wait pass).
    await page.clock.runFor(1)
    await page.clock.runFor(2000)
    await expect.poll(ids, { timeout: 10_000 }).toEqual(['failed-1'])
    await expect.poll(() => tags(typed), { timeout: 10_000 }).toEqual(['counts adhoc', 'events adhoc'])
    expect(streams(typed)).toEqual(['adhoc'])

    // "Clear filters": the tag leaves the list stream and the rows at once, long before the page's
    // clock reaches the typing pause (the clock stops 1 ms short of it).
    const cleared = asked.length
    await page.getByRole('button', { name: 'Clear filters' }).click()
    expect(await field.inputValue()).toBe('')
    await page.clock.runFor(TAG_SETTLE_MS - 1)
    await expect.poll(() => streams(cleared), { timeout: 10_000 }).toEqual([''])
    await expect.poll(ids, { timeout: 10_000 }).toEqual(everyRun)
    expect(seen.console.filter((line) => /pageerror/i.test(line))).toEqual([])
    await context.close()
  })

  it('renders hostile runner text as text: no element from it, no script runs, no CSP violation', async () => {
    const context = await browser!.newContext({ viewport: { width: 1280, height: 900 } })
    await recordViolations(context)
    await context.addInitScript((secret) => sessionStorage.setItem('pipeline-status-dashboard:credential', secret), SECRET)
    const page = await context.newPage()
    const seen = watch(page)
    await page.goto(`${origin}/api/pipeline/dashboard#run=failed-1`)
    await page.getByTestId('run-view').waitFor({ timeout: 10_000 })
    await page.getByText('window.__pwned=1', { exact: false }).first().waitFor({ timeout: 10_000 })
    const text = (await page.locator('main').textContent()) ?? ''
    // Raw HTML in Markdown shows as the characters it is; the failed stage's error as plain text.
    for (const raw of ['<img src=x onerror="window.__pwned=1">', '<script>window.__pwned=2</script>', '<a href="javascript:window.__pwned=4">', HOSTILE_ERROR]) expect(text).toContain(raw)
    for (const raw of ['<img src=x onerror="window.__pwned=7">', '<script>window.__pwned=8</script>', '<div onclick="window.__pwned=11">raw block</div>']) expect(text).toContain(raw)
    // Markdown still renders: the heading, and the one safe link; the image is a link, not loaded.
    expect(await page.locator('main .ps-markdown h1').allTextContents()).toContain('Report')
    expect(await page.locator('main .ps-markdown a[href="https://example.com/docs"]').count()).toBe(1)
    expect(await page.getByText('Image: pixel').count()).toBe(1)
    expect(await page.locator('main img, main script, main b, main div[onclick], main [onerror], main a[href^="javascript"], main a[href^="data"]').count()).toBe(0)
    for (const element of await page.locator('main pre, main .ps-markdown').all()) await element.hover()
    for (const name of ['run me', 'data']) await page.getByText(name, { exact: true }).click()
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined()
    expect(page.url()).toContain('#run=failed-1')
    expect(seen.console.filter((line) => /Content Security Policy|pageerror/i.test(line))).toEqual([])
    expect(await page.evaluate(() => (window as unknown as { __violations: string[] }).__violations)).toEqual([])
    await page.screenshot({ path: join(artifacts, 'dashboard-failed-1280.png'), fullPage: true })
    await context.close()
  })

  it('has no serious or critical axe-core findings on the list and a run', async () => {
    const context = await browser!.newContext({ viewport: { width: 1280, height: 900 } })
    await context.addInitScript((secret) => sessionStorage.setItem('pipeline-status-dashboard:credential', secret), SECRET)
    const page = await context.newPage()
    await page.goto(`${origin}/api/pipeline/dashboard`)
    await page.getByRole('link', { name: 'done-1' }).waitFor({ timeout: 10_000 })
    await page.getByRole('heading', { name: /Stage durations/ }).waitFor()
    await page.locator('.ps-chart').first().waitFor({ timeout: 10_000 })
    const serious = (findings: Awaited<ReturnType<typeof axeFindings>>) => findings.filter((f) => f.impact === 'serious' || f.impact === 'critical')
    expect(serious(await axeFindings(page))).toEqual([])
    await page.goto(`${origin}/api/pipeline/dashboard#run=done-1`)
    await page.getByTestId('stage').first().waitFor({ timeout: 10_000 })
    expect(serious(await axeFindings(page))).toEqual([])
    await page.goto(`${origin}/api/pipeline/dashboard#run=failed-1`)
    await page.getByTestId('stage-output').first().waitFor({ timeout: 10_000 })
    expect(serious(await axeFindings(page))).toEqual([])
    const signIn = await browser!.newPage()
    await signIn.goto(`${origin}/api/pipeline/dashboard`)
    await signIn.getByLabel('Secret or read token').waitFor({ timeout: 10_000 })
    expect(serious(await axeFindings(signIn))).toEqual([])
    await signIn.close()
    await context.close()
  })

  it('fits 390 px without horizontal scroll, list and run', async () => {
    const context = await browser!.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true })
    await context.addInitScript((secret) => sessionStorage.setItem('pipeline-status-dashboard:credential', secret), SECRET)
    const page = await context.newPage()
    await page.goto(`${origin}/api/pipeline/dashboard`)
    await page.getByRole('link', { name: 'done-1' }).waitFor({ timeout: 10_000 })
    await page.locator('.ps-chart').first().waitFor({ timeout: 10_000 })
    await page.getByRole('button', { name: /^All [1-9]\d*$/ }).waitFor({ timeout: 10_000 })
    await page.getByText(LONG_TAG).waitFor({ timeout: 10_000 })
    await page.getByTestId('run-pipeline').getByText(LONG_PIPELINE).waitFor({ timeout: 10_000 })
    const list = await noHorizontalScroll(page)
    expect(list.scrollWidth).toBeLessThanOrEqual(list.innerWidth)
    await page.screenshot({ path: join(artifacts, 'dashboard-list-390.png'), fullPage: true })
    await page.goto(`${origin}/api/pipeline/dashboard#run=failed-1`)
    await page.getByTestId('stage-output').first().waitFor({ timeout: 10_000 })
    const run = await noHorizontalScroll(page)
    expect(run.scrollWidth).toBeLessThanOrEqual(run.innerWidth)
    await page.screenshot({ path: join(artifacts, 'dashboard-run-390.png'), fullPage: true })
    await context.close()
  })

  it('fits the stage-duration tables at 390 and 320 px: hour-long durations and long stage names wrap inside their card (names between words), no horizontal scroll', async () => {
    for (const width of [390, 320]) {
      const context = await browser!.newContext({ viewport: { width, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true })
      await context.addInitScript((secret) => sessionStorage.setItem('pipeline-status-dashboard:credential', secret), SECRET)
      const page = await context.newPage()
      await page.goto(`${origin}/api/pipeline/dashboard`)
      await page.getByRole('link', { name: 'done-1' }).waitFor({ timeout: 10_000 })
      const etl = page.locator('.ps-chart').filter({ has: page.locator('figcaption', { hasText: /^etl$/ }) })
      await etl.locator('.ps-stats-table tbody tr').nth(2).waitFor({ timeout: 10_000 })
      const seen = await page.evaluate(() => {
        const tables = [...document.querySelectorAll('.ps-stats-table')].map((table) => {
          const card = table.closest('.ps-card')!
          const box = card.getBoundingClientRect()
          const padding = getComputedStyle(card)
          const rect = table.getBoundingClientRect()
          return {
            inside: rect.left >= box.left + parseFloat(padding.paddingLeft) - 0.5 && rect.right <= box.right - parseFloat(padding.paddingRight) + 0.5,
            // No cell's text sticks out of its cell.
            cellsFit: [...table.querySelectorAll('th, td')].every((cell) => cell.scrollWidth <= cell.clientWidth + 1),
          }
        })
        /** A duration's pieces ("59 min", "51 s") each on one line: the cell breaks between them, never inside one. */
        const piecesWhole = [...document.querySelectorAll('.ps-stats-table td')].every((cell) => {
          const text = cell.firstChild
          if (!(text instanceof Text)) return true
          return [...text.data.matchAll(/\d[\d.]*\s+[a-z]+/g)].every((match) => {
            const range = document.createRange()
            range.setStart(text, match.index)
            range.setEnd(text, match.index + match[0].length)
            return new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top))).size === 1
          })
        })
        /** The stage names' words, each on one line ("Reconciliation", never "Reconci" / "liation"): a name wraps between its words. */
        const brokenWords = [...document.querySelectorAll('.ps-stats-table tbody th')].flatMap((cell) =>
          [...cell.childNodes].flatMap((text) => {
            if (!(text instanceof Text)) return []
            return [...text.data.matchAll(/\S+/g)]
              .filter((match) => {
                const range = document.createRange()
                range.setStart(text, match.index)
                range.setEnd(text, match.index + match[0].length)
                return new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top))).size !== 1
              })
              .map((match) => match[0])
          }),
        )
        return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, tables, piecesWhole, brokenWords }
      })
      expect(seen.scrollWidth, `page at ${width}`).toBe(seen.innerWidth)
      expect(seen.tables.length).toBeGreaterThanOrEqual(2)
      expect(seen.tables, `tables at ${width}`).toEqual(seen.tables.map(() => ({ inside: true, cellsFit: true })))
      expect(seen.piecesWhole, `duration pieces at ${width}`).toBe(true)
      expect(seen.brokenWords, `stage names at ${width}`).toEqual([])
      // The durations read whole, as formatted: minutes and seconds of the hour-long stages (and retrying-1's 2 s).
      expect((await etl.locator('.ps-stats-table tbody tr').first().locator('td').allInnerTexts()).map((text) => text.replace(/\s+/g, ' '))).toEqual(['59 min 50 s', '59 min 51 s', '3', '0'])
      // The stats card alone (the whole page at 320 px is a long strip).
      await page.locator('section[aria-labelledby="psd-stats-title"]').screenshot({ path: join(artifacts, `dashboard-stats-${width}.png`) })
      await context.close()
    }
  })

  it('wraps a stage name of one long word inside its box at 390, 480, 768 and 1280 px (the chart, the table, the run): nothing wider than the page', async () => {
    // A server of its own: this name must break inside its word, which the test above rules out
    // for the names of the shared runs.
    const WORDY = defineStages(['Fetch', LONG_STAGE, 'Summarise'])
    let offsetMs = 0
    const app = express()
    app.use(
      '/api/pipeline',
      createExpressRouter({
        store: new MemoryStore(),
        secret: SECRET,
        pipelines: { wordy: WORDY },
        dashboard: { title: 'Pipeline runs', refreshIntervalMs: 500 },
        clock: () => new Date(Date.now() + offsetMs),
      }),
    )
    const wordy = await new Promise<Server>((resolve) => {
      const listening = app.listen(0, '127.0.0.1', () => resolve(listening))
    })
    const base = `http://127.0.0.1:${(wordy.address() as AddressInfo).port}/api/pipeline`
    const post = async (path: string, json: unknown) => {
      const response = await fetch(`${base}${path}`, { method: 'POST', headers: { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' }, body: JSON.stringify(json) })
      expect(response.ok, `${path}: ${response.status}`).toBe(true)
    }
    try {
      await post('/runs', { id: 'wordy-1', pipeline: 'wordy' })
      for (const [index, { name }] of WORDY.entries()) {
        await post('/wordy-1/stage-update', { stageNumber: index + 1, stageName: name, status: 'PROCESSING' })
        offsetMs += 4000
        await post('/wordy-1/stage-update', { stageNumber: index + 1, stageName: name, status: 'COMPLETED', output: 'done' })
      }
      for (const width of [390, 480, 768, 1280]) {
        const context = await browser!.newContext({ viewport: { width, height: 900 } })
        await context.addInitScript((secret) => sessionStorage.setItem('pipeline-status-dashboard:credential', secret), SECRET)
        const page = await context.newPage()
        const views = [
          { view: 'list', hash: '', ready: '.ps-stats-table tbody tr', holders: ['chart', 'table'] },
          { view: 'run', hash: '#run=wordy-1', ready: '[data-testid="stage"]', holders: ['stage'] },
        ]
        for (const { view, hash, ready, holders } of views) {
          await page.goto(`${base}/dashboard${hash}`)
          await page.locator(ready).nth(2).waitFor({ timeout: 10_000 })
          const seen = await page.evaluate((word) => {
            // Each text that holds the long word, as laid out (a range: a word running out of its
            // element does not widen the element's own box), against the box it belongs in.
            const names: { in: string; inside: boolean }[] = []
            const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT)
            for (let node = walker.nextNode(); node !== null; node = walker.nextNode()) {
              if (!(node as Text).data.includes(word)) continue
              const box = node.parentElement!.closest('.ps-chart, .ps-stats-table th, [data-testid="stage"]')!
              const range = document.createRange()
              range.selectNodeContents(node)
              const text = range.getBoundingClientRect()
              const outer = box.getBoundingClientRect()
              names.push({
                in: box.matches('.ps-chart') ? 'chart' : box.matches('th') ? 'table' : 'stage',
                inside: text.width > 0 && text.left >= outer.left - 0.5 && text.right <= outer.right + 0.5,
              })
            }
            // No element reaches past either side of the viewport.
            const outside = [...document.querySelectorAll('body *')]
              .filter((element) => {
                const rect = element.getBoundingClientRect()
                return rect.width > 0 && (rect.left < -0.5 || rect.right > window.innerWidth + 0.5)
              })
              .map((element) => `${element.tagName.toLowerCase()}.${element.getAttribute('class') ?? ''}`)
            return { scrollWidth: document.scrollingElement!.scrollWidth, innerWidth: window.innerWidth, names, outside }
          }, LONG_WORD)
          expect(seen.scrollWidth, `${view} at ${width}: the page's width`).toBeLessThanOrEqual(seen.innerWidth)
          expect(seen.outside, `${view} at ${width}: elements past the viewport`).toEqual([])
          expect(seen.names, `${view} at ${width}: the long stage name`).toEqual(holders.map((holder) => ({ in: holder, inside: true })))
          await page.screenshot({ path: join(artifacts, `dashboard-long-stage-${view}-${width}.png`), fullPage: true })
        }
        await context.close()
      }
    } finally {
      wordy.closeAllConnections()
      await new Promise<void>((resolve) => wordy.close(() => resolve()))
    }
  })

  it('has no axe-core findings in dark mode (prefers-color-scheme: dark): every status badge, the list and a run', async () => {
    const context = await browser!.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'dark' })
    await context.addInitScript((secret) => sessionStorage.setItem('pipeline-status-dashboard:credential', secret), SECRET)
    const page = await context.newPage()
    await page.goto(`${origin}/api/pipeline/dashboard`)
    await page.getByRole('link', { name: 'cancelled-1' }).waitFor({ timeout: 10_000 })
    await page.locator('.ps-chart').first().waitFor({ timeout: 10_000 })
    expect(await page.evaluate(() => matchMedia('(prefers-color-scheme: dark)').matches)).toBe(true)
    // Every status's badge is on the page.
    const badges = async () => (await page.locator('.ps-badge').allTextContents()).filter((text, index, all) => all.indexOf(text) === index).sort()
    await expect.poll(badges, { timeout: 10_000 }).toEqual(['CANCELLED', 'COMPLETED', 'FAILED', 'PENDING', 'PROCESSING'])
    expect(await axeFindings(page)).toEqual([])
    await page.screenshot({ path: join(artifacts, 'dashboard-dark-list-1280.png'), fullPage: true })
    // Runs: a retrying stage (attempt, progress, last error), a failed one with outputs, a cancelled one.
    for (const runId of ['retrying-1', 'failed-1', 'cancelled-1']) {
      await page.goto(`${origin}/api/pipeline/dashboard#run=${runId}`)
      await page.locator(`[data-testid="run-view"][aria-label="Pipeline run ${runId}"] [data-testid="stage"]`).first().waitFor({ timeout: 10_000 })
      expect(await axeFindings(page), runId).toEqual([])
      await page.screenshot({ path: join(artifacts, `dashboard-dark-${runId}-1280.png`), fullPage: true })
    }
    await context.close()
  })

  describe('the mock server', () => {
    let mock: MockServer | undefined
    beforeAll(async () => {
      mock = await startMockServer({ secret: 'mock-secret', dashboard: { open: true, refreshIntervalMs: 500 } })
    })
    afterAll(async () => mock?.close())

    it('serves the page at / open (no sign-in) and shows a run as the runner reports it', async () => {
      const base = `${mock!.url}/api/pipeline`
      const post = (path: string, json: unknown) =>
        fetch(`${base}${path}`, { method: 'POST', headers: { 'X-Webhook-Secret': 'mock-secret', 'Content-Type': 'application/json' }, body: JSON.stringify(json) })
      expect((await post('/runs', { id: 'mock-run' })).status).toBe(201)
      const root = await fetch(`${mock!.url}/`)
      expect(root.headers.get('content-security-policy')).toBe(CSP)
      // Open only for the page's own reads: a plain read still needs the secret.
      expect((await fetch(`${base}/runs`)).status).toBe(401)
      const context = await browser!.newContext({ viewport: { width: 1280, height: 900 } })
      await recordViolations(context)
      const page = await context.newPage()
      const polled = polls(page)
      await page.goto(`${mock!.url}/`)
      await page.getByRole('link', { name: 'mock-run' }).waitFor({ timeout: 10_000 })
      // The list follows the set stream here too: a run created now appears without a reload.
      expect((await post('/runs', { id: 'mock-run-2' })).status).toBe(201)
      await page.getByRole('link', { name: 'mock-run-2' }).waitFor({ timeout: 10_000 })
      await page.getByRole('link', { name: 'mock-run', exact: true }).focus()
      await page.keyboard.press('Enter')
      await page.locator('[data-testid="run-view"][data-live="live"]').waitFor({ timeout: 10_000 })
      expect((await post('/mock-run/stage-update', { stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING' })).status).toBe(200)
      const first = page.getByTestId('stage').first()
      await expect.poll(() => first.getAttribute('data-status'), { timeout: 10_000 }).toBe('PROCESSING')
      const mockApi = (path: string, init: { json?: unknown } = {}) => post(path, init.json)
      await chunk('mock-run', 1, 0, 'Reading **input**', mockApi)
      await expect.poll(() => words(first.getByTestId('stage-output')), { timeout: 10_000 }).toBe('Reading input')
      await chunk('mock-run', 1, 1, ', done.', mockApi)
      await expect.poll(() => words(first.getByTestId('stage-output')), { timeout: 10_000 }).toBe('Reading input, done.')
      expect(polled).toEqual([])
      expect(await page.evaluate(() => (window as unknown as { __violations: string[] }).__violations)).toEqual([])
      await page.screenshot({ path: join(artifacts, 'dashboard-mock-1280.png'), fullPage: true })
      await context.close()
    })
  })
})
