/**
 * The Next.js example end to end, as a person would run it: builds the package into the app,
 * builds the app (`next build`), starts it (`next start`, through the example's own start
 * script) on a database, lets a runner report a five-stage run to it, and watches
 * `/runs/<id>` in headless Chromium until the page shows every stage COMPLETED: it goes live on
 * the events stream (useRunStatus) and never polls `GET /status`. Screenshots are kept in test/.artifacts: nextjs-run-midway.png while the runner
 * works, nextjs-run.png once the run is finished, nextjs-run-streaming-*.png while a stage streams its text.
 *
 * Database: a throwaway database on the server in DATABASE_URL, or else an embedded PGlite that
 * the start script serves over a socket. On PostgreSQL the app also gets it as DIRECT_DATABASE_URL,
 * so its live streams use LISTEN, and a second instance (polls ten minutes apart) shows a run
 * written through the first: only a notification can bring it there. On PGlite the app polls. Browser: Debian's Chromium (`CHROMIUM_PATH` to use
 * another); without it the tests are skipped and `npm test` says so in one line, unless
 * PIPELINE_STATUS_REQUIRE_ALL is set (CI), which makes them fail instead
 * (test/support/optional-tools.ts).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { DEFAULT_STAGES } from 'pipeline-status-sdk'
import { PrismaAPIClient } from 'pipeline-status-sdk/client'
import pg from 'pg'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runExamplePipeline } from '../../examples/runner/runner.js'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'
import { chromiumTool, toolForTests } from '../support/optional-tools.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const app = join(root, 'examples', 'nextjs')
const artifacts = join(root, 'test', '.artifacts')
const screenshot = join(artifacts, 'nextjs-run.png')
const midRunScreenshot = join(artifacts, 'nextjs-run-midway.png')
/** Screenshots of a run with progress, then FAILED with a multi-line error, at two widths. */
const shots = {
  progress1280: join(artifacts, 'nextjs-run-progress-1280.png'),
  progress390: join(artifacts, 'nextjs-run-progress-390.png'),
  failed1280: join(artifacts, 'nextjs-run-failed-1280.png'),
  failed390: join(artifacts, 'nextjs-run-failed-390.png'),
  retry1280: join(artifacts, 'nextjs-run-retry-1280.png'),
  retry390: join(artifacts, 'nextjs-run-retry-390.png'),
  streaming1280: join(artifacts, 'nextjs-run-streaming-1280.png'),
  streaming390: join(artifacts, 'nextjs-run-streaming-390.png'),
}
const require = createRequire(import.meta.url)

// Chromium: CHROMIUM_PATH, else Debian's. Without it the tests are skipped, unless
// PIPELINE_STATUS_REQUIRE_ALL is set (CI), which makes them fail and say how to install it.
const CHROMIUM = toolForTests(chromiumTool())
// Without the background-networking flags Chromium keeps dialling Google's hosts, which this
// closed network refuses; as root it needs --no-sandbox.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** How long each of the runner's stages works, in milliseconds: long enough to see the page mid-run. */
const STAGE_WORK_MS = 1500
/** How long the page is watched after the run finished, to see that it sends nothing more. */
const QUIET_PERIOD_MS = 3000
/** Ten minutes: no version poll (nor safety poll) runs within a test's wait. */
const NEVER_MS = 600_000

const secret = randomBytes(18).toString('base64url')
let server: ChildProcess | undefined
let serverOutput = ''
/** What `next build` printed. */
let buildOutput = ''
let database: TestDatabase | undefined
let browser: Browser | undefined
let origin = ''

const execFileAsync = promisify(execFile)

/** Runs a build step with the Node.js running the tests; returns its output (stdout, then stderr), which a failure shows. */
async function step(label: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, args, { cwd: app, env, maxBuffer: 64 * 1024 * 1024 })
    return `${stdout}\n${stderr}`
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string }
    throw new Error(`${label} failed:\n${stdout}\n${stderr}`, { cause: error })
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('No port'))))
    })
  })
}

/** Resolves once the app answers the status route with the contract's 404 for an unknown run. */
async function waitUntilServing(child: ChildProcess, at = () => origin, output = () => serverOutput): Promise<void> {
  const deadline = Date.now() + 90_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`The example app exited before it served requests:\n${output()}`)
    }
    try {
      const response = await fetch(`${at()}/api/pipeline/readiness-probe/status`, {
        headers: { 'X-Webhook-Secret': secret },
      })
      if (response.status === 404) return
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`The example app did not answer within 90 s:\n${output()}`)
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  // The whole process group: the start script, `next start` and anything it spawned.
  process.kill(-child.pid, 'SIGTERM')
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }, 5000)
  await exited
  clearTimeout(timer)
}

/** The page's view of the run: its status and each stage's status, as the DOM shows them. */
async function readPage(page: Page) {
  return page.evaluate(() => ({
    run: document.querySelector('[data-testid="run-status"]')?.getAttribute('data-status') ?? null,
    live: document.querySelector('[data-testid="run-view"]')?.getAttribute('data-live') ?? null,
    stages: [...document.querySelectorAll('[data-testid="stage"]')].map((element) => ({
      status: element.getAttribute('data-status'),
      neverRan: element.getAttribute('data-never-ran') === 'true',
      text: element.textContent ?? '',
      // As rendered: innerText follows the CSS, so it shows what a reader sees.
      progress: (element.querySelector('[data-testid="stage-progress"]') as HTMLElement | null)?.innerText ?? null,
      output: element.querySelector('[data-testid="stage-output"]')?.textContent ?? '',
      // The start and duration line, the clock as it reads, the attempt line and the last error as rendered.
      meta: (element.querySelector('.ps-stage-meta') as HTMLElement | null)?.innerText ?? null,
      clock: element.querySelector('[data-testid="stage-duration"]')?.textContent ?? null,
      attempt: element.querySelector('[data-testid="stage-attempt"]')?.textContent ?? null,
      lastError: (element.querySelector('[data-testid="stage-last-error"]') as HTMLElement | null)?.innerText ?? null,
      elements: element.querySelectorAll('img, b, script').length,
    })),
    // innerText keeps a line break only where the page shows one (white-space: pre-wrap).
    error: (document.querySelector('[data-testid="run-error"]') as HTMLElement | null)?.innerText ?? null,
  }))
}

/**
 * How the page lays out at its current width: the page's own width against the viewport's, and
 * each card's left and right edges (CSS pixels), which all line up when no card runs past the others.
 */
async function readLayout(page: Page) {
  return page.evaluate(() => ({
    viewport: window.innerWidth,
    pageWidth: document.documentElement.scrollWidth,
    cards: [...document.querySelectorAll('.ps-card')].map((card) => {
      const box = card.getBoundingClientRect()
      return { left: Math.round(box.left), right: Math.round(box.right), overflows: card.scrollWidth > card.clientWidth + 1 }
    }),
  }))
}

/** Every card within the viewport, with the same left and right edges, and nothing scrolled sideways. */
function expectCardsAligned(layout: Awaited<ReturnType<typeof readLayout>>): void {
  expect(layout.pageWidth).toBeLessThanOrEqual(layout.viewport)
  expect(layout.cards.length).toBeGreaterThanOrEqual(6)
  const [first] = layout.cards
  for (const card of layout.cards) {
    expect(card).toEqual({ left: first!.left, right: first!.right, overflows: false })
  }
  expect(first!.right).toBeLessThanOrEqual(layout.viewport)
}

/** `/runs/<runId>` at 1280 px, once it is live on the stream, with the page's errors and console errors collected. */
async function openLiveRunPage(runId: string, at = origin): Promise<{ page: Page; problems: string[] }> {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } })
  const problems: string[] = []
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`)
  })
  await page.goto(`${at}/runs/${runId}`)
  await expect.poll(async () => (await readPage(page)).live, { timeout: 15_000 }).toBe('live')
  return { page, problems }
}

describe.skipIf(!CHROMIUM)('the Next.js example', () => {
  beforeAll(async () => {
    // The build never sees the secret: it belongs to the running server.
    const buildEnv: NodeJS.ProcessEnv = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' }
    delete buildEnv['WEBHOOK_SECRET']
    delete buildEnv['DATABASE_URL']
    delete buildEnv['DIRECT_DATABASE_URL']
    // The same three steps as the example's `npm run build`.
    await step('Installing the built package into the app', ['scripts/install-sdk.mjs'], buildEnv)
    await step('Generating the app\'s Prisma client', ['scripts/prisma-generate.mjs'], buildEnv)
    buildOutput = await step('next build', [require.resolve('next/dist/bin/next'), 'build'], buildEnv)

    const port = await freePort()
    origin = `http://127.0.0.1:${port}`
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), WEBHOOK_SECRET: secret }
    const args = [require.resolve('tsx/cli'), 'scripts/start.ts']
    if (process.env['DATABASE_URL']) {
      database = await createTestDatabase()
      if (!database.url) throw new Error('Expected a PostgreSQL test database with a URL')
      env['DATABASE_URL'] = database.url
      // The same database as the direct URL: the app's live streams use LISTEN (lib/prisma.ts).
      env['DIRECT_DATABASE_URL'] = database.url
    } else {
      delete env['DATABASE_URL']
      delete env['DIRECT_DATABASE_URL']
      args.push('--memory')
    }
    // Its own process group, so that afterAll can stop the start script and `next start` at once.
    server = spawn(process.execPath, args, { cwd: app, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    server.stdout?.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()))
    server.stderr?.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()))
    await waitUntilServing(server)

    browser = await chromium.launch({ executablePath: CHROMIUM!, args: CHROMIUM_ARGS })
  }, 300_000)

  afterAll(async () => {
    // Each step on its own: one failing must not leave the others running.
    await browser?.close().catch(() => {})
    if (server) await stopServer(server).catch(() => {})
    await database?.close().catch(() => {})
  }, 60_000)

  it('builds without a configuration warning: cacheComponents with partialPrefetching set', () => {
    expect(buildOutput).not.toContain('without a corresponding `partialPrefetching` option')
    expect(buildOutput).toContain('Cache Components enabled')
    expect(buildOutput).toContain('Partial Prefetching enabled')
  })

  it('goes live on the events stream while a runner reports it, without polling, and shows all five stages COMPLETED', async () => {
    // The run exists before the runner starts, so the page can be open from its first update.
    const runId = `e2e-${randomBytes(6).toString('hex')}`
    const client = new PrismaAPIClient({ baseUrl: origin, secret })
    await client.createRun(runId)
    await client.close()

    const page = await browser!.newPage({ viewport: { width: 1000, height: 900 } })
    const problems: string[] = []
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console error: ${message.text()}`)
    })
    const statusRequests: number[] = []
    const eventsRequests: number[] = []
    page.on('request', (request) => {
      const path = new URL(request.url()).pathname
      if (path === `/api/pipeline/${runId}/status`) statusRequests.push(Date.now())
      if (path === `/api/pipeline/${runId}/events`) eventsRequests.push(Date.now())
    })

    await page.goto(`${origin}/runs/${runId}`)
    await expect.poll(async () => (await readPage(page)).stages.map((stage) => stage.text)).toHaveLength(5)
    // Live before the runner starts: the snapshot arrived on the stream.
    await expect.poll(async () => (await readPage(page)).live, { timeout: 15_000 }).toBe('live')

    // The TypeScript example runner (examples/runner), with its outbox in a folder of its own.
    const outbox = await mkdtemp(join(tmpdir(), 'pss-nextjs-outbox-'))
    const runner = runExamplePipeline({
      runId,
      client: { baseUrl: origin, secret, outbox: { dir: outbox } },
      stageDelayMs: STAGE_WORK_MS,
    }).finally(() => rm(outbox, { recursive: true, force: true }))

    // Mid-run: the page has caught the run with some stages done and others not yet.
    await page.waitForFunction(
      () => {
        const statuses = [...document.querySelectorAll('[data-testid="stage"]')].map((el) => el.getAttribute('data-status'))
        const run = document.querySelector('[data-testid="run-status"]')?.getAttribute('data-status')
        return run === 'PROCESSING' && statuses.includes('PROCESSING') && statuses.some((status) => status !== 'COMPLETED')
      },
      undefined,
      { timeout: 30_000, polling: 100 },
    )
    const midRun = await readPage(page)
    expect(midRun.live).toBe('live')
    await mkdir(artifacts, { recursive: true })
    await page.screenshot({ path: midRunScreenshot, fullPage: true })

    const { summary } = await runner
    expect(summary.status).toBe('COMPLETED')

    await page.waitForFunction(
      () =>
        document.querySelector('[data-testid="run-status"]')?.getAttribute('data-status') === 'COMPLETED' &&
        [...document.querySelectorAll('[data-testid="stage"]')].every((el) => el.getAttribute('data-status') === 'COMPLETED'),
      undefined,
      { timeout: 30_000, polling: 100 },
    )
    const finished = await readPage(page)
    expect(finished.run).toBe('COMPLETED')
    await expect.poll(async () => (await readPage(page)).live).toBe('finished')
    expect(finished.stages.map((stage) => stage.status)).toEqual(Array(5).fill('COMPLETED'))
    DEFAULT_STAGES.forEach((stage, index) => {
      expect(finished.stages[index]?.text).toContain(stage.name)
      // Each stage shows a preview of the output the runner sent.
      expect(finished.stages[index]?.output.trim()).not.toBe('')
    })
    // Every change came over one stream: not a single status poll, and no request after `end`.
    const streamsAtCompletion = eventsRequests.length
    expect(streamsAtCompletion).toBeGreaterThanOrEqual(1)
    await page.waitForTimeout(QUIET_PERIOD_MS)
    expect(eventsRequests.length).toBe(streamsAtCompletion)
    expect(statusRequests).toEqual([])

    await page.screenshot({ path: screenshot, fullPage: true })

    // The browser holds a token for this run only; the webhook secret never reaches it.
    expect(await page.content()).not.toContain(secret)
    expect(problems).toEqual([])
    await page.close()
  })

  it('renders a finished run as stored in the server HTML, and opens no stream for it', async () => {
    const runId = `e2e-${randomBytes(6).toString('hex')}`
    const outbox = await mkdtemp(join(tmpdir(), 'pss-nextjs-outbox-'))
    try {
      const { summary } = await runExamplePipeline({
        runId,
        client: { baseUrl: origin, secret, outbox: { dir: outbox } },
        stageDelayMs: 0,
      })
      expect(summary.status).toBe('COMPLETED')
    } finally {
      await rm(outbox, { recursive: true, force: true })
    }

    // The HTML as the server sends it, before any client JavaScript runs.
    const response = await fetch(`${origin}/runs/${runId}`)
    expect(response.status).toBe(200)
    // React separates adjacent text nodes with empty comments; a reader sees the text joined.
    const html = (await response.text()).replaceAll('<!-- -->', '')
    expect(html).toMatch(/data-testid="run-status" data-status="COMPLETED"/)
    expect(html.match(/data-testid="stage" data-stage-number="\d" data-status="COMPLETED"/g)).toHaveLength(5)
    expect(html).toContain('data-live="finished"')
    expect(html).toContain('5 of 5 stages completed')
    expect(html).not.toContain('LOADING')
    expect(html).not.toContain('PENDING')

    // In the browser: the same state after hydration, and not one status request.
    const page = await browser!.newPage()
    const problems: string[] = []
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console error: ${message.text()}`)
    })
    const statusRequests: string[] = []
    page.on('request', (request) => {
      const path = new URL(request.url()).pathname
      if (path.endsWith('/status') || path.endsWith('/events')) statusRequests.push(request.url())
    })
    await page.goto(`${origin}/runs/${runId}`, { waitUntil: 'networkidle' })
    const shown = await readPage(page)
    expect(shown.run).toBe('COMPLETED')
    expect(shown.live).toBe('finished')
    expect(shown.stages.map((stage) => stage.status)).toEqual(Array(5).fill('COMPLETED'))
    await page.waitForTimeout(1500)
    expect(statusRequests).toEqual([])
    expect(problems).toEqual([])
    await page.close()
  })

  it('shows everything stored: progress on a PROCESSING stage, stages that never ran, the error\'s line breaks, at 1280 and 390 px', async () => {
    const runId = `e2e-${randomBytes(6).toString('hex')}`
    const client = new PrismaAPIClient({ baseUrl: origin, secret, throwOnError: true })
    await client.createRun(runId)
    // A long unbreakable token in the output and the error: what pushes a card wider on a phone.
    const longToken = `s3://pipeline-artifacts/${'very-long-segment-'.repeat(8)}result.json`
    await client.markStageComplete(runId, 1, { source: longToken, pages: 40 })
    await client.markStageProcessing(runId, 2)
    await client.reportProgress(runId, 2, { current: 37, total: 40, message: 'batch 37 of 40' })

    const { page, problems } = await openLiveRunPage(runId)
    const processing = await readPage(page)
    expect(processing.stages.map((stage) => stage.status)).toEqual(['COMPLETED', 'PROCESSING', 'PENDING', 'PENDING', 'PENDING'])
    expect(processing.stages[1]?.progress).toBe('37 of 40 · batch 37 of 40')
    // Stages still to come on a running run are waiting, not "never ran".
    expect(processing.stages.slice(2).map((stage) => [stage.neverRan, stage.text.includes('Waiting')])).toEqual(Array(3).fill([false, true]))
    // Progress that arrives while the page is open shows up live.
    await client.reportProgress(runId, 2, { current: 38, total: 40, message: 'batch 38 of 40' })
    await expect.poll(async () => (await readPage(page)).stages[1]?.progress, { timeout: 15_000 }).toBe('38 of 40 · batch 38 of 40')
    await mkdir(artifacts, { recursive: true })
    await page.screenshot({ path: shots.progress1280, fullPage: true })
    expectCardsAligned(await readLayout(page))
    await page.setViewportSize({ width: 390, height: 844 })
    expectCardsAligned(await readLayout(page))
    await page.screenshot({ path: shots.progress390, fullPage: true })

    // The stage fails at 38 of 40 with a multi-line error, which becomes the run's error.
    const error = `Stage 2 (Translation) failed at batch 38 of 40:\n  TimeoutError: the model did not answer in 120 s\n  while reading ${longToken}`
    await client.markStageFailed(runId, 2, error)
    await client.completeRun(runId, { status: 'FAILED', error })
    await client.close()
    await expect.poll(async () => (await readPage(page)).run, { timeout: 15_000 }).toBe('FAILED')
    const failed = await readPage(page)
    expect(failed.stages.map((stage) => stage.status)).toEqual(['COMPLETED', 'FAILED', 'PENDING', 'PENDING', 'PENDING'])
    expect(failed.stages.map((stage) => stage.neverRan)).toEqual([false, false, true, true, true])
    // The failed stage keeps the progress it had reached.
    expect(failed.stages[1]?.progress).toBe('Stopped at 38 of 40 · batch 38 of 40')
    for (const stage of failed.stages.slice(2)) {
      expect(stage.text).toContain('Never ran: the run failed before this stage started')
      expect(stage.text).toContain('NOT RUN')
      expect(stage.text).not.toContain('Waiting')
    }
    // Three lines, as stored (innerText folds a line break into a space without pre-wrap).
    expect(failed.error?.split('\n')).toEqual(error.split('\n'))
    expectCardsAligned(await readLayout(page))
    await page.screenshot({ path: shots.failed390, fullPage: true })
    await page.setViewportSize({ width: 1280, height: 900 })
    expectCardsAligned(await readLayout(page))
    await page.screenshot({ path: shots.failed1280, fullPage: true })
    expect(problems).toEqual([])
    await page.close()
  })

  it("ticks the running stage's clock, and shows a retry live: the attempt, the countdown and the last error as text", async () => {
    const runId = `e2e-${randomBytes(6).toString('hex')}`
    const client = new PrismaAPIClient({ baseUrl: origin, secret, throwOnError: true })
    await client.createRun(runId)
    await client.markStageComplete(runId, 1, { pages: 3 })
    await client.close()
    // Attempt fields through the handlers, as a runner's retry sends them.
    const stageName = DEFAULT_STAGES[1]!.name
    const update = async (fields: Record<string, unknown>) => {
      const response = await fetch(`${origin}/api/pipeline/${runId}/stage-update`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'X-Webhook-Secret': secret },
        body: JSON.stringify({ stageNumber: 2, stageName, status: 'PROCESSING', ...fields }),
      })
      expect(((await response.json()) as { outcome?: string }).outcome).toBe('applied')
    }
    await update({ attempt: 1, maxAttempts: 3 })

    const { page, problems } = await openLiveRunPage(runId)
    const first = await readPage(page)
    // The finished stage: its start and how long it took; the running one: a clock, no attempt line on attempt 1.
    expect(first.stages[0]?.meta).toMatch(/^Started \d\d:\d\d:\d\d UTC · took \d+ m?s$/)
    expect(first.stages[1]?.meta).toMatch(/^Started \d\d:\d\d:\d\d UTC · running \d+ s$/)
    expect(first.stages[1]?.attempt).toBeNull()
    // The clock ticks on its own: no new event, no reload.
    const clockSelector = '[data-stage-number="2"] [data-testid="stage-duration"]'
    await page.waitForFunction(
      ([selector, shown]) => document.querySelector(selector!)?.textContent !== shown,
      [clockSelector, first.stages[1]?.clock ?? ''],
      { timeout: 15_000, polling: 100 },
    )
    expect((await readPage(page)).stages[1]?.clock).toMatch(/^\d+ s$/)

    // Attempt 1 failed: the runner announces attempt 2 in 30 s, with attempt 1's error. Stored
    // text is hostile: markup in it is shown as text, its line break kept.
    const lastError = 'model timed out\n  after 120 s: <img src=x onerror="document.title=1"><b>no answer</b>'
    await update({ attempt: 2, maxAttempts: 3, lastError, nextRetryAt: new Date(Date.now() + 30_000).toISOString() })
    await expect.poll(async () => (await readPage(page)).stages[1]?.attempt, { timeout: 15_000 }).toMatch(/^attempt 2 of 3 · retrying in \d+ s$/)
    const retrying = await readPage(page)
    expect(retrying.stages[1]?.attempt).toContain('attempt 2 of 3 · retrying in')
    // Measured against the present, never a stale tick: at most the 30 s the runner announced.
    expect(Number(/in (\d+) s$/.exec(retrying.stages[1]?.attempt ?? '')?.[1])).toBeLessThanOrEqual(30)
    expect(retrying.stages[1]?.lastError?.split('\n')).toEqual(`Last error: ${lastError}`.split('\n'))
    expect(retrying.stages[1]?.elements).toBe(0)
    // The countdown runs down by itself too.
    await page.waitForFunction(
      ([selector, shown]) => document.querySelector(selector!)?.textContent !== shown,
      ['[data-stage-number="2"] [data-testid="stage-attempt"]', retrying.stages[1]?.attempt ?? ''],
      { timeout: 15_000, polling: 100 },
    )
    // The first HTML of a fresh load already shows the retry (server-rendered, escaped).
    const html = (await (await fetch(`${origin}/runs/${runId}`)).text()).replaceAll('<!-- -->', '')
    expect(html).toMatch(/attempt 2 of 3 · retrying in \d+ s/)
    expect(html).toContain('model timed out')
    expect(html).toContain('&lt;b&gt;no answer&lt;/b&gt;')
    await mkdir(artifacts, { recursive: true })
    expectCardsAligned(await readLayout(page))
    await page.screenshot({ path: shots.retry1280, fullPage: true })
    await page.setViewportSize({ width: 390, height: 844 })
    expectCardsAligned(await readLayout(page))
    await page.screenshot({ path: shots.retry390, fullPage: true })

    // Attempt 2 starts: the attempt, no countdown; then it succeeds, and the clock stops at its duration.
    await update({ attempt: 2, nextRetryAt: null })
    await expect.poll(async () => (await readPage(page)).stages[1]?.attempt, { timeout: 15_000 }).toBe('attempt 2 of 3')
    const done = new PrismaAPIClient({ baseUrl: origin, secret, throwOnError: true })
    await done.markStageComplete(runId, 2, { translated: true })
    await done.close()
    await expect.poll(async () => (await readPage(page)).stages[1]?.meta, { timeout: 15_000 }).toMatch(/^Started \d\d:\d\d:\d\d UTC · took \d+ m?s$/)
    expect((await readPage(page)).stages[1]?.attempt).toBeNull()
    expect(await page.title()).not.toBe('1')
    expect(problems).toEqual([])
    await page.close()
  })

  it("grows the running stage's streamed text on screen as a runner posts chunks, without a reload, then shows the final output", async () => {
    const runId = `e2e-${randomBytes(6).toString('hex')}`
    const client = new PrismaAPIClient({ baseUrl: origin, secret, throwOnError: true })
    await client.createRun(runId)
    await client.markStageComplete(runId, 1, { pages: 3 })
    await client.markStageProcessing(runId, 2)
    const { page, problems } = await openLiveRunPage(runId)

    // Chunks through the example's own route with its secret, as a runner's write() sends them.
    const chunks = ['## Summary', '\n\nThe contract covers', ' three sites.', '\n\nDeliveries start', ' in March.', '\n\n- Site A: ready\n- Site B: **late**']
    let seq = 0
    const send = async (count: number) => {
      for (const text of chunks.slice(seq, seq + count)) {
        const response = await fetch(`${origin}/api/pipeline/${runId}/stages/2/output`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'X-Webhook-Secret': secret },
          body: JSON.stringify({ seq, text }),
        })
        expect(`${response.status} ${((await response.json()) as { outcome?: string }).outcome}`).toBe('200 applied')
        seq += 1
      }
    }
    // The running stage's output as a reader sees it (innerText follows the rendering: a heading, paragraphs).
    const streamed = () => page.evaluate(() => (document.querySelector('[data-stage-number="2"] [data-testid="stage-output"]') as HTMLElement | null)?.innerText ?? null)

    await send(3)
    await expect.poll(streamed, { timeout: 15_000 }).toBe('Summary\n\nThe contract covers three sites.')
    await send(2)
    await expect.poll(streamed, { timeout: 15_000 }).toBe('Summary\n\nThe contract covers three sites.\n\nDeliveries start in March.')
    await send(1)
    await expect.poll(() => page.locator('[data-stage-number="2"] [data-testid="stage-output"] li').allInnerTexts(), { timeout: 15_000 }).toEqual(['Site A: ready', 'Site B: late'])
    const shown = await readPage(page)
    expect(shown.stages.map((stage) => stage.status)).toEqual(['COMPLETED', 'PROCESSING', 'PENDING', 'PENDING', 'PENDING'])
    expect(await page.locator('[data-stage-number="2"] [data-testid="stage-output"]').getAttribute('data-streaming')).toBe('true')
    await mkdir(artifacts, { recursive: true })
    expectCardsAligned(await readLayout(page))
    await page.screenshot({ path: shots.streaming1280, fullPage: true })
    await page.setViewportSize({ width: 390, height: 844 })
    expectCardsAligned(await readLayout(page))
    await page.screenshot({ path: shots.streaming390, fullPage: true })

    // The stage completes with its final output, which replaces the streamed text.
    await client.markStageComplete(runId, 2, '## Summary\n\nSigned.')
    await client.close()
    await expect.poll(async () => (await readPage(page)).stages[1]?.status, { timeout: 15_000 }).toBe('COMPLETED')
    expect(await streamed()).toBe('Summary\n\nSigned.')
    expect(problems).toEqual([])
    await page.close()
  })

  it('says so for the stages of a CANCELLED run that never ran, in the server HTML already', async () => {
    const runId = `e2e-${randomBytes(6).toString('hex')}`
    const client = new PrismaAPIClient({ baseUrl: origin, secret, throwOnError: true })
    await client.createRun(runId)
    await client.markStageComplete(runId, 1, { pages: 3 })
    await client.completeRun(runId, { status: 'CANCELLED', error: 'Cancelled by the operator' })
    await client.close()

    const html = (await (await fetch(`${origin}/runs/${runId}`)).text()).replaceAll('<!-- -->', '')
    expect(html).toMatch(/data-testid="run-status" data-status="CANCELLED"/)
    expect(html.match(/data-never-ran="true"/g)).toHaveLength(4)
    expect(html.match(/Never ran: the run was cancelled before this stage started/g)).toHaveLength(4)
    expect(html).not.toContain('Waiting')

    // An unknown run shows Next.js's not-found page. Under cacheComponents the page streams
    // from a prerendered shell, so the HTTP status is already sent (200) when the read finds
    // nothing; the API route itself answers 404.
    const unknown = await fetch(`${origin}/runs/e2e-no-such-run`)
    const unknownHtml = await unknown.text()
    expect(unknownHtml).toContain('This page could not be found.')
    expect(unknownHtml).toContain('<meta name="robots" content="noindex"/>')
    expect(unknownHtml).not.toContain('data-testid="run-view"')
  })

  it('lets a page read only its own run, and never without a credential', async () => {
    const client = new PrismaAPIClient({ baseUrl: origin, secret })
    const [shown, other] = [`e2e-${randomBytes(6).toString('hex')}`, `e2e-${randomBytes(6).toString('hex')}`]
    await client.createRun(shown)
    await client.createRun(other)
    await client.close()

    // The token the page hands its live component, as any visitor of the page sees it.
    const html = await (await fetch(`${origin}/runs/${shown}`)).text()
    const token = /psrt1\.\d+\.[\w-]{43}/.exec(html)?.[0]
    expect(token).toBeDefined()
    // The answer's status and, for a problem, its code.
    const read = async (runId: string, headers: Record<string, string> = {}) => {
      const response = await fetch(`${origin}/api/pipeline/${runId}/status`, { headers })
      const body = (await response.json()) as { code?: string }
      return `${response.status} ${body.code ?? 'ok'}`
    }

    expect(await read(shown, { authorization: `Bearer ${token}` })).toBe('200 ok')
    expect(await read(other, { authorization: `Bearer ${token}` })).toBe('401 invalid_read_token')
    // No credential: the example's authorize hook lets anyone list runs, and reads of a run it refuses.
    expect(await read(shown)).toBe('403 forbidden')
    const forged = `psrt1.${Math.floor(Date.now() / 1000) + 60}.${randomBytes(32).toString('base64url')}`
    expect(await read(shown, { authorization: `Bearer ${forged}` })).toBe('401 invalid_read_token')
  })

  // Needs the server side of issue 24 (tags on POST /runs, GET /runs).
  it('lists the newest runs on the home page through GET /runs: in the server HTML, then in Chromium with a link to each run', async () => {
    const client = new PrismaAPIClient({ baseUrl: origin, secret })
    const tag = `home-${randomBytes(4).toString('hex')}`
    const listed = `e2e-${randomBytes(6).toString('hex')}`
    await client.createRun({ id: listed, tags: [tag, '<b>not html</b>'], metadata: { by: 'e2e' } })
    await client.close()

    // The list as the server renders it, before any client JavaScript runs.
    const html = (await (await fetch(`${origin}/`)).text()).replaceAll('<!-- -->', '')
    expect(html).toContain(`data-testid="run-row" data-run-id="${listed}" data-status="PENDING"`)
    expect(html).not.toContain('data-testid="runs-error"')
    // Stored text is text: a tag that looks like HTML is escaped, never rendered.
    expect(html).toContain('&lt;b&gt;not html&lt;/b&gt;')

    const page = await browser!.newPage()
    const problems: string[] = []
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
    await page.goto(`${origin}/`)
    // The list goes live on its set stream (useRuns); the rows are the server's until then.
    await expect.poll(() => page.evaluate(() => document.querySelector('[data-testid="run-list"]')?.getAttribute('data-live')), { timeout: 15_000 }).toBe('live')
    const rows = await page.evaluate(() =>
      [...document.querySelectorAll('[data-testid="run-row"]')].map((row) => ({
        id: row.getAttribute('data-run-id'),
        status: row.querySelector('.ps-badge')?.textContent,
        pipeline: row.querySelector('[data-testid="run-pipeline"]')?.textContent,
        tags: [...row.querySelectorAll('.ps-tag')].map((tag) => tag.textContent),
        href: row.querySelector('a')?.getAttribute('href'),
      })),
    )
    // Newest first: the run just created heads the list.
    expect(rows[0]).toEqual({ id: listed, status: 'PENDING', pipeline: 'default', tags: [tag, '<b>not html</b>'], href: `/runs/${listed}` })
    expect(rows.length).toBeLessThanOrEqual(20)

    // A run created now joins the open page at the top, and its status changes live.
    const joined = `e2e-${randomBytes(6).toString('hex')}`
    const runner = new PrismaAPIClient({ baseUrl: origin, secret })
    await runner.createRun({ id: joined, tags: [tag] })
    const top = () => page.evaluate(() => document.querySelector('[data-testid="run-row"]')?.getAttribute('data-run-id') + ' ' + document.querySelector('[data-testid="run-row"]')?.getAttribute('data-status'))
    await expect.poll(top, { timeout: 15_000 }).toBe(`${joined} PENDING`)
    await runner.markStageProcessing(joined, 1)
    await expect.poll(top, { timeout: 15_000 }).toBe(`${joined} PROCESSING`)
    await runner.close()
    await mkdir(artifacts, { recursive: true })
    await page.screenshot({ path: join(artifacts, 'nextjs-home.png'), fullPage: true })
    await page.click(`a[href="/runs/${listed}"]`)
    await page.waitForURL(`${origin}/runs/${listed}`)
    expect(problems).toEqual([])
    await page.close()
  })

  it("keeps the home page's filters in its URL: written as a person picks them, Back and Forward step through them, a reload and the server's HTML keep them", async () => {
    const tag = `url-${randomBytes(4).toString('hex')}`
    const [pending, failed] = [`e2e-${randomBytes(6).toString('hex')}`, `e2e-${randomBytes(6).toString('hex')}`]
    const client = new PrismaAPIClient({ baseUrl: origin, secret, throwOnError: true })
    await client.createRun({ id: pending, tags: [tag] })
    await client.createRun({ id: failed, tags: [tag] })
    await client.completeRun(failed, { status: 'FAILED', error: 'failed for the filter test' })
    await client.close()

    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } })
    const problems: string[] = []
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
    const tagField = page.getByLabel('Tag', { exact: true })
    const statusField = page.getByLabel('Status', { exact: true })
    const rows = () => page.locator('[data-testid="run-row"]').evaluateAll((found) => found.map((row) => row.getAttribute('data-run-id')))
    /** The URL, the controls and the rows agree on `filters`. */
    const shows = async (query: string, filters: { tag: string; status: string }, expected: string[] | 'others too') => {
      await page.waitForURL(`${origin}/${query}`)
      await expect.poll(() => tagField.inputValue(), { timeout: 15_000 }).toBe(filters.tag)
      expect(await statusField.inputValue()).toBe(filters.status)
      if (expected === 'others too') await expect.poll(async () => (await rows()).some((id) => id !== pending && id !== failed), { timeout: 15_000 }).toBe(true)
      else await expect.poll(rows, { timeout: 15_000 }).toEqual(expected)
    }
    await page.goto(`${origin}/`)
    await expect.poll(() => page.evaluate(() => document.querySelector('[data-testid="run-list"]')?.getAttribute('data-live')), { timeout: 15_000 }).toBe('live')
    // Typed key by key: one history entry for the tag, not one per letter.
    await tagField.pressSequentially(tag)
    await shows(`?tag=${tag}`, { tag, status: '' }, [failed, pending])
    await statusField.selectOption('FAILED')
    await shows(`?tag=${tag}&status=FAILED`, { tag, status: 'FAILED' }, [failed])
    await page.goBack()
    await shows(`?tag=${tag}`, { tag, status: '' }, [failed, pending])
    await page.goBack()
    await shows('', { tag: '', status: '' }, 'others too')
    await page.goForward()
    await shows(`?tag=${tag}`, { tag, status: '' }, [failed, pending])
    await page.goForward()
    await shows(`?tag=${tag}&status=FAILED`, { tag, status: 'FAILED' }, [failed])
    // A reload (or the link shared) shows the same filtered list, live.
    await page.reload()
    await shows(`?tag=${tag}&status=FAILED`, { tag, status: 'FAILED' }, [failed])
    await expect.poll(() => page.evaluate(() => document.querySelector('[data-testid="run-list"]')?.getAttribute('data-live')), { timeout: 15_000 }).toBe('live')
    await mkdir(artifacts, { recursive: true })
    await page.screenshot({ path: join(artifacts, 'nextjs-home-filtered.png'), fullPage: true })
    // The server's HTML already: the filtered rows and the controls set, before any client JavaScript.
    const html = (await (await fetch(`${origin}/?tag=${tag}&status=FAILED`)).text()).replaceAll('<!-- -->', '')
    expect(html.match(/data-testid="run-row" data-run-id="[^"]+"/g)).toEqual([`data-testid="run-row" data-run-id="${failed}"`])
    expect(html).toMatch(new RegExp(`<input[^>]*type="search"[^>]*value="${tag}"`))
    expect(html).toMatch(/<option value="FAILED" selected="">/)
    expect(problems).toEqual([])
    await page.close()
  })
  it('says at its first request how live streams learn of other instances\' writes: LISTEN with DIRECT_DATABASE_URL, where a second instance shows a run written through the first by notification; polling without', async () => {
    const startLines = (output: string) => output.split('\n').filter((line) => line.startsWith('pipeline-status: live streams'))
    if (!database?.url) {
      // PGlite: DATABASE_URL only, so the rule says poll, and the line says how to turn LISTEN on.
      expect(startLines(serverOutput)).toEqual([expect.stringMatching(/^pipeline-status: live streams poll run versions every 250 ms: no direct URL is given .*set DIRECT_DATABASE_URL/)])
      return
    }
    const listenLine = /^pipeline-status: live streams use LISTEN on channel 'pipeline_status' \([^)]+\): a direct URL is given \(DIRECT_DATABASE_URL, directConnectionString\)\./
    // One line per process: one set of connections, however many modules use it.
    expect(startLines(serverOutput)).toEqual([expect.stringMatching(listenLine)])

    // A second instance of the same build on the same database, whose polls are ten minutes apart:
    // a change written through the first reaches its page by notification or not at all.
    const port = await freePort()
    const second = `http://127.0.0.1:${port}`
    let secondOutput = ''
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(port),
      WEBHOOK_SECRET: secret,
      DATABASE_URL: database.url,
      DIRECT_DATABASE_URL: database.url,
      LIVE_POLL_INTERVAL_MS: String(NEVER_MS),
      LIVE_SAFETY_POLL_INTERVAL_MS: String(NEVER_MS),
    }
    const child = spawn(process.execPath, [require.resolve('tsx/cli'), 'scripts/start.ts'], { cwd: app, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout?.on('data', (chunk: Buffer) => (secondOutput += chunk.toString()))
    child.stderr?.on('data', (chunk: Buffer) => (secondOutput += chunk.toString()))
    const admin = new pg.Client({ connectionString: database.url })
    try {
      await waitUntilServing(child, () => second, () => secondOutput)
      expect(startLines(secondOutput)).toEqual([expect.stringMatching(listenLine)])

      await admin.connect()
      const listeners = async () =>
        Number(
          (
            await admin.query<{ count: string }>(
              "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pipeline-status-listener'",
            )
          ).rows[0]?.count,
        )
      const before = await listeners()

      const runId = `e2e-listen-${randomBytes(6).toString('hex')}`
      const first = new PrismaAPIClient({ baseUrl: origin, secret, throwOnError: true })
      try {
        await first.createRun(runId)
        const { page, problems } = await openLiveRunPage(runId, second)
        // The second instance's stream opened its LISTEN connection (one per process, on the direct URL).
        await expect.poll(listeners, { timeout: 15_000 }).toBe(before + 1)

        await first.markStageProcessing(runId, 1)
        await expect.poll(async () => (await readPage(page)).stages[0]?.status, { timeout: 30_000 }).toBe('PROCESSING')
        await first.markStageComplete(runId, 1)
        await expect.poll(async () => (await readPage(page)).stages[0]?.status, { timeout: 30_000 }).toBe('COMPLETED')
        expect((await readPage(page)).live).toBe('live')
        expect(problems).toEqual([])
        await page.close()
      } finally {
        await first.close()
      }
    } finally {
      await admin.end().catch(() => {})
      await stopServer(child).catch(() => {})
    }
    for (const output of [serverOutput, secondOutput]) {
      expect(output).not.toMatch(/LISTEN is not delivering|notify connection|did not answer its liveness probe/)
    }
  }, 180_000)
})
