/**
 * The dashboard page (issue 29): what it loads and how fast it first shows a list of 1,000 runs.
 *
 * Bytes: the shell, the script and the stylesheet as served (`GET {base}/dashboard`, its two
 * files), raw and as gzip -9 would send them (the handlers do not compress; a proxy or the
 * framework usually does).
 *
 * First render: handlers on a MemoryStore holding BENCH_DASHBOARD_RUNS runs (default 1,000; each
 * with three stages, a third of them FAILED with an error), served by Node's HTTP server, the
 * page opened in Chromium with the secret already in sessionStorage. The list is the newest 50
 * (the set stream's window, `useRuns`); older runs are reached with the filters. Measured per
 * round, with a fresh browser context, from navigation start (so the shell, the script's
 * download and parse, and the requests are all inside): → the 50 rows of `RunList` in the DOM
 * (the set stream's snapshots and `ready` arrived and rendered), → the counts by status shown
 * (`GET /runs/counts` over all 1,000), → the stats chart drawn; then, from the click on the
 * newest run's link, → its `RunTimeline` stages in the DOM (the run's stream's snapshot).
 * Median and p90 over BENCH_ROUNDS rounds (default 10) after one warm-up, written to
 * bench/results/latest/dashboard.json (BENCH_OUTPUT to record). The script is measured as built:
 * `node scripts/build-dashboard.mjs` (Preact compat, shipped) or `… --react` (React DOM).
 *
 * Needs Chromium (CHROMIUM_PATH, else /usr/bin/chromium). No database.
 * Run: npx tsx bench/dashboard.bench.ts
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { loadavg } from 'node:os'
import { dirname } from 'node:path'
import { gzipSync } from 'node:zlib'
import { chromium } from 'playwright-core'
import { defaultOutput, prepareBench } from './prepare.js'

const RUNS = Number(process.env['BENCH_DASHBOARD_RUNS'] ?? 1000)
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 10)
const OUTPUT = process.env['BENCH_OUTPUT'] ?? defaultOutput('dashboard.json')
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'
const SECRET = 'bench-secret-dashboard'

if (!existsSync(CHROMIUM)) {
  console.log(`dashboard benchmark skipped: no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)`)
  process.exit(0)
}
prepareBench()
const { createPipelineStatusHandlers, MemoryStore } = await import('../src/server/index.js')
const { toWebRequest, writeWebResponse, readSmallBody } = await import('../src/server/http/node-bridge.js')

const store = new MemoryStore()
const handlers = createPipelineStatusHandlers({ store, secret: SECRET, dashboard: { refreshIntervalMs: 60_000 } })
const server = createServer((req, res) => {
  void (async () => {
    const request = toWebRequest(req, origin, { received: await readSmallBody(req) })
    await writeWebResponse(res, await handlers.fetch(request))
  })().catch(() => res.destroy())
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
const send = async (path: string, json: unknown) => {
  const response = await handlers.fetch(
    new Request(`${origin}/api/pipeline${path}`, { method: 'POST', headers: { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' }, body: JSON.stringify(json) }),
  )
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`)
}
const names = ['Input Processing', 'Signal Amplification', 'General Translation']
for (let i = 0; i < RUNS; i++) {
  const id = `bench-run-${String(i).padStart(5, '0')}`
  await send('/runs', { id, tags: [`shard-${i % 7}`] })
  for (const [index, stageName] of names.entries()) {
    const failed = index === 2 && i % 3 === 0
    await send(`/${id}/stage-update`, { stageNumber: index + 1, stageName, status: failed ? 'FAILED' : 'COMPLETED', output: failed ? `Error in run ${i}: timeout after 30 s` : `Output of stage ${index + 1}` })
  }
}

// Bytes as served.
const shell = await fetch(`${origin}/api/pipeline/dashboard`)
const html = await shell.text()
const files: Record<string, { bytes: number; gzipBytes: number }> = { 'dashboard (HTML shell)': { bytes: Buffer.byteLength(html), gzipBytes: gzipSync(html, { level: 9 }).length } }
for (const name of ['dashboard.js', 'dashboard.css']) {
  const text = await (await fetch(`${origin}/api/pipeline/dashboard/${name}`)).text()
  files[name] = { bytes: Buffer.byteLength(text), gzipBytes: gzipSync(text, { level: 9 }).length }
}
const total = Object.values(files).reduce((sum, f) => ({ bytes: sum.bytes + f.bytes, gzipBytes: sum.gzipBytes + f.gzipBytes }), { bytes: 0, gzipBytes: 0 })

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
})
const samples = { firstPage: [] as number[], counts: [] as number[], chart: [] as number[], openRun: [] as number[] }
for (let round = 0; round <= ROUNDS; round++) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  await context.addInitScript((secret) => sessionStorage.setItem('pipeline-status-dashboard:credential', secret), SECRET)
  const page = await context.newPage()
  await page.goto(`${origin}/api/pipeline/dashboard`, { waitUntil: 'commit' })
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="run-row"]').length >= 50, undefined, { timeout: 30_000, polling: 'raf' })
  const firstPage = await page.evaluate(() => performance.now())
  await page.getByRole('button', { name: new RegExp(`^All ${RUNS}$`) }).waitFor({ timeout: 30_000 })
  const counts = await page.evaluate(() => performance.now())
  await page.locator('.ps-chart').first().waitFor({ timeout: 30_000 })
  const chart = await page.evaluate(() => performance.now())
  const newest = `bench-run-${String(RUNS - 1).padStart(5, '0')}`
  const started = await page.evaluate(() => performance.now())
  await page.getByRole('link', { name: newest, exact: true }).click({ timeout: 30_000 })
  await page.getByTestId('stage').nth(2).waitFor({ timeout: 30_000 })
  const openRun = (await page.evaluate(() => performance.now())) - started
  if (round > 0) {
    samples.firstPage.push(firstPage)
    samples.counts.push(counts)
    samples.chart.push(chart)
    samples.openRun.push(openRun)
  }
  await context.close()
}
await browser.close()
server.close()
await handlers.close()

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN)
}
const summary = (values: number[]) => ({ medianMs: quantile(values, 0.5), p90Ms: quantile(values, 0.9) })
const result = {
  runs: RUNS,
  rounds: ROUNDS,
  loadavg: loadavg().map((n) => Number(n.toFixed(2))),
  bytes: { files, total },
  build: process.env['BENCH_DASHBOARD_BUILD'] ?? 'preact-compat',
  firstRender: { newest50Listed: summary(samples.firstPage), countsShown: summary(samples.counts), statsChart: summary(samples.chart), openRunFromClick: summary(samples.openRun) },
}
mkdirSync(dirname(OUTPUT), { recursive: true })
writeFileSync(OUTPUT, `${JSON.stringify(result, null, 2)}\n`)
console.log(`dashboard: ${total.bytes} bytes (${total.gzipBytes} gzipped) in 3 files`)
for (const [name, file] of Object.entries(files)) console.log(`  ${name}: ${file.bytes} bytes, ${file.gzipBytes} gzipped`)
const line = (s: { medianMs: number; p90Ms: number }) => `median ${s.medianMs} ms, p90 ${s.p90Ms} ms`
console.log(`first render with ${RUNS} runs, from navigation start: newest 50 listed ${line(result.firstRender.newest50Listed)}`)
console.log(`  counts shown ${line(result.firstRender.countsShown)}; stats chart ${line(result.firstRender.statsChart)}`)
console.log(`  a run opened (click → its stages shown) ${line(result.firstRender.openRunFromClick)}; load average ${result.loadavg.join(' ')}`)
console.log(`written to ${OUTPUT}`)
