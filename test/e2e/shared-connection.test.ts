/**
 * Issue 25 in a real browser: a page that follows 20 runs with `useRunStatus` over HTTP/1.1, where
 * Chromium keeps at most six connections per host. One run per connection left the seventh
 * `connecting` for good and every other request of the page hanging; the page's runs now share
 * one set stream (`GET /api/pipeline/events?run=…`). The test counts, on the server, the
 * event-stream responses open and ever opened, shows every one of the 20 runs updating live, and
 * has the page fetch something else meanwhile, which must answer.
 *
 * The server is node:http around the package's handlers (a MemoryStore; `authorize` lets the page
 * read, as an app's session would), serving the page and its script, bundled here with esbuild
 * from test/e2e/shared-connection-page.ts. Chromium as in test/e2e/nextjs.test.ts.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_STAGES } from '../../src/contract/stages.js'
import { MemoryStore } from '../../src/core/memory-store.js'
import { createPipelineStatusHandlers, type PipelineStatusHandlers } from '../../src/server/handlers.js'
import { readSmallBody, toWebRequest, writeWebResponse } from '../../src/server/http/node-bridge.js'
import { postOk } from '../support/handler-requests.js'
import { chromiumTool, toolForTests } from '../support/optional-tools.js'

const CHROMIUM = toolForTests(chromiumTool('test/e2e/shared-connection.test.ts', 'a page following 20 runs in Chromium'))
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const SECRET = 'shared-connection-test-secret'
const RUNS = 20
const UNKNOWN = 'does-not-exist'

let handlers: PipelineStatusHandlers | undefined
let server: Server | undefined
let browser: Browser | undefined
let origin = ''
let script = ''
/** The event-stream requests (single-run and set streams): how many are open now, and each one's URL. */
const events = { open: 0, urls: [] as string[] }

async function post(path: string, body: unknown): Promise<void> {
  await postOk(SECRET, `${origin}/api/pipeline`, path, body)
}

function page(runIds: string[]): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>20 runs</title></head><body><div id="root"></div><script id="runs" type="application/json">${JSON.stringify(runIds)}</script><script src="/app.js"></script></body></html>`
}

async function readRuns(tab: Page) {
  return tab.evaluate(() =>
    [...document.querySelectorAll('[data-testid="run"]')].map((row) => ({
      state: row.getAttribute('data-state'),
      status: row.getAttribute('data-status'),
      completed: Number(row.getAttribute('data-completed')),
      runId: row.getAttribute('data-run-id'),
      error: row.getAttribute('data-error'),
    })),
  )
}

describe.skipIf(!CHROMIUM)('a page following 20 runs in Chromium over HTTP/1.1', () => {
  beforeAll(async () => {
    const bundled = await build({
      entryPoints: [fileURLToPath(new URL('./shared-connection-page.ts', import.meta.url))],
      bundle: true,
      write: false,
      format: 'iife',
      platform: 'browser',
      define: { 'process.env.NODE_ENV': '"production"' },
      logLevel: 'silent',
    })
    script = bundled.outputFiles[0]!.text
    handlers = createPipelineStatusHandlers({
      store: new MemoryStore(),
      secret: SECRET,
      // The page reads as an app's signed-in session would: one credential for all its runs.
      authorize: () => true,
      live: { pollIntervalMs: 50 },
      logger: { info: () => {}, warn: () => {}, error: () => {} },
    })
    const served = handlers
    let runIds: string[] = []
    // 19 runs that exist and one that does not, for the second page.
    let withUnknown: string[] = []
    server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!
      if (path === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page(runIds))
        return
      }
      if (path === '/with-unknown') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page(withUnknown))
        return
      }
      if (path === '/app.js') {
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(script)
        return
      }
      if (path === '/ping') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('pong')
        return
      }
      if (path.endsWith('/events')) {
        events.open += 1
        events.urls.push(req.url ?? '')
        res.once('close', () => (events.open -= 1))
      }
      void (async () => {
        const gone = new AbortController()
        res.once('close', () => gone.abort())
        const request = toWebRequest(req, origin, { received: await readSmallBody(req), signal: gone.signal })
        await writeWebResponse(res, await served.fetch(request))
      })().catch(() => res.destroy())
    })
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const prefix = `page-${randomBytes(3).toString('hex')}`
    runIds = Array.from({ length: RUNS }, (_, index) => `${prefix}-${String(index).padStart(2, '0')}`)
    for (const id of runIds) await post('/runs', { id })
    withUnknown = Array.from({ length: RUNS - 1 }, (_, index) => `${prefix}-known-${String(index).padStart(2, '0')}`)
    for (const id of withUnknown) await post('/runs', { id })
    withUnknown.push(UNKNOWN)
    browser = await chromium.launch({ executablePath: CHROMIUM as string, args: CHROMIUM_ARGS })
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await handlers?.close()
    server?.closeAllConnections()
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
  })

  it('shows all 20 updating live over one connection, while another request of the page still answers', async () => {
    const tab = await browser!.newPage()
    const problems: string[] = []
    tab.on('pageerror', (error) => problems.push(error.message))
    await tab.goto(`${origin}/`)
    await expect.poll(async () => (await readRuns(tab)).filter((run) => run.state === 'live' && run.status === 'PENDING').length, { timeout: 20_000 }).toBe(RUNS)
    // One event stream for the page, naming all 20 runs.
    expect(events.open).toBe(1)
    expect(events.urls).toHaveLength(1)
    expect(new URL(events.urls[0]!, origin).searchParams.getAll('run')).toHaveLength(RUNS)

    const runIds = await tab.evaluate(() => [...document.querySelectorAll('[data-testid="run"]')].map((row) => row.getAttribute('data-run-id') as string))
    const [first, second] = DEFAULT_STAGES
    for (const runId of runIds) {
      await post(`/${runId}/stage-update`, { stageNumber: 1, stageName: first!.name, status: 'PROCESSING' })
      await post(`/${runId}/stage-update`, { stageNumber: 1, stageName: first!.name, status: 'COMPLETED', output: 'done' })
      await post(`/${runId}/stage-update`, { stageNumber: 2, stageName: second!.name, status: 'PROCESSING' })
    }
    await expect.poll(async () => (await readRuns(tab)).filter((run) => run.status === 'PROCESSING' && run.completed === 1).length, { timeout: 20_000 }).toBe(RUNS)

    // Another request of the page, while the stream is open: it answers (a page holding six
    // streams would leave it queued for good; the evaluation's own deadline is 10 s).
    const answer = await tab.evaluate(() => fetch('/ping', { signal: AbortSignal.timeout(10_000) }).then((response) => response.text(), (error: Error) => `no answer: ${error.name}`))
    expect(answer).toBe('pong')
    expect(events.open).toBe(1)
    expect(events.urls).toHaveLength(1)

    // The runs end: each row finishes, and the server closes the stream once every run ended.
    for (const runId of runIds) await post(`/${runId}/complete`, { status: 'COMPLETED' })
    await expect.poll(async () => (await readRuns(tab)).filter((run) => run.state === 'finished' && run.status === 'COMPLETED').length, { timeout: 20_000 }).toBe(RUNS)
    await expect.poll(() => events.open, { timeout: 10_000 }).toBe(0)
    expect(events.urls).toHaveLength(1)
    expect(problems).toEqual([])
    await tab.close()
  }, 120_000)

  it('with one unknown run among 20: the 19 others live over one shared connection, the unknown one in its own error state', async () => {
    const before = events.urls.length
    const tab = await browser!.newPage()
    const problems: string[] = []
    tab.on('pageerror', (error) => problems.push(error.message))
    await tab.goto(`${origin}/with-unknown`)
    await expect.poll(async () => (await readRuns(tab)).filter((run) => run.state === 'live' && run.status === 'PENDING').length, { timeout: 20_000 }).toBe(RUNS - 1)
    await expect.poll(async () => (await readRuns(tab)).find((run) => run.runId === UNKNOWN), { timeout: 20_000 }).toMatchObject({ state: 'error', error: '404 run_not_found', status: '' })
    // The refused set of 20, then one set stream of the 19: no run on a stream of its own.
    const urls = events.urls.slice(before).map((url) => new URL(url, origin))
    expect(urls.map((url) => url.pathname)).toEqual(['/api/pipeline/events', '/api/pipeline/events'])
    expect(urls.map((url) => url.searchParams.getAll('run').length)).toEqual([RUNS, RUNS - 1])
    expect(urls[1]!.searchParams.getAll('run')).not.toContain(UNKNOWN)
    expect(events.open).toBe(1)

    // Still live: a run that finishes shows it.
    const known = (await readRuns(tab)).find((run) => run.runId !== UNKNOWN)!.runId!
    await post(`/${known}/complete`, { status: 'COMPLETED' })
    await expect.poll(async () => (await readRuns(tab)).find((run) => run.runId === known)?.state, { timeout: 20_000 }).toBe('finished')
    expect(problems).toEqual([])
    await tab.close()
  }, 120_000)
})
