/**
 * From the web app's cancel to the running stage's abort (issue 26 item 4), on real PostgreSQL
 * through the Express example (examples/express, poll mode, one instance, in this process). Each
 * run: `runPipeline` starts a stage that waits on its `signal`; once the runner's run stream is
 * open, `POST /cancel` is sent, and the time from just before that request to the stage's abort
 * listener is taken. Two ways of learning it, interleaved: the run stream (`followRunStream`,
 * the default) and heartbeats alone (`followRunStream: false`, the default 10 s interval, what
 * the issue measured at 8.5 s). Prints the median and p95 of each, with the machine's load.
 *
 * Needs DATABASE_URL; without it, it says so and skips. Knobs: BENCH_CANCEL_RUNS (stream runs,
 * default 40), BENCH_CANCEL_HEARTBEAT_RUNS (heartbeat runs, default 6).
 *
 * Run: npx tsx bench/cancel-latency.bench.ts
 */
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import { prepareBench } from './prepare.js'
import { requireDatabaseUrl, withAdmin } from './servers/database.js'

const serverUrl = requireDatabaseUrl('cancel latency benchmark')
const STREAM_RUNS = Number(process.env['BENCH_CANCEL_RUNS'] ?? 40)
const HEARTBEAT_RUNS = Number(process.env['BENCH_CANCEL_HEARTBEAT_RUNS'] ?? 6)
const SECRET = 'bench-cancel-secret'

prepareBench()
// Loaded only now: the example imports the Prisma client that prepareBench() generates.
const { startExpressExample } = await import('../examples/express/app.js')
const { PrismaAPIClient, runPipeline } = await import('../src/client/index.js')

const dbName = `pss_bench_cancel_${randomBytes(5).toString('hex')}`
await withAdmin(serverUrl, (client) => client.query(`CREATE DATABASE ${dbName}`))
const databaseUrl = Object.assign(new URL(serverUrl), { pathname: `/${dbName}` }).href
const quiet = { info: () => {}, warn: () => {}, error: () => {} }
const example = await startExpressExample({ port: 0, secret: SECRET, databaseUrl, log: quiet })

/** One run: the milliseconds from just before `POST /cancel` to the stage's abort, and how the runner learned it. */
async function oneRun(followRunStream: boolean): Promise<{ ms: number; learnedFrom: string | undefined }> {
  let streamOpen = false
  const client = new PrismaAPIClient({
    baseUrl: example.url,
    secret: SECRET,
    logger: quiet,
    followRunStream,
    fetch: async (url, init) => {
      const response = await fetch(url, init)
      if (url.endsWith('/events') && response.ok) streamOpen = true
      return response
    },
  })
  try {
    const { run } = await client.createRun()
    let running = false
    let abortedAt = 0
    const pipeline = runPipeline({
      runId: run.id,
      client,
      complete: false,
      stages: [
        ({ signal }) =>
          new Promise((_, reject) => {
            running = true
            signal.addEventListener('abort', () => {
              abortedAt = performance.now()
              reject(signal.reason as Error)
            })
          }),
        () => 2,
        () => 3,
        () => 4,
        () => 5,
      ],
    })
    while (!running || (followRunStream && !streamOpen)) await new Promise((resolve) => setTimeout(resolve, 5))
    // Heartbeat runs: cancel at a random point of the interval, as a user would.
    if (!followRunStream) await new Promise((resolve) => setTimeout(resolve, Math.random() * 10_000))
    const sentAt = performance.now()
    const response = await fetch(`${example.url}/${run.id}/cancel`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-webhook-secret': SECRET },
      body: JSON.stringify({ reason: 'bench' }),
    })
    if (response.status !== 200) throw new Error(`cancel answered ${response.status}`)
    const summary = await pipeline
    return { ms: abortedAt - sentAt, learnedFrom: summary.finishedElsewhere?.learnedFrom }
  } finally {
    await client.close({ timeoutMs: 1000 })
  }
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN
}

try {
  const load = loadavg()[0]?.toFixed(1)
  const stream: number[] = []
  const heartbeat: number[] = []
  const learned = new Set<string>()
  const every = Math.max(1, Math.floor(STREAM_RUNS / Math.max(1, HEARTBEAT_RUNS)))
  for (let i = 0; i < STREAM_RUNS; i++) {
    const one = await oneRun(true)
    stream.push(one.ms)
    learned.add(`stream run: ${one.learnedFrom}`)
    if (i % every === 0 && heartbeat.length < HEARTBEAT_RUNS) {
      const beat = await oneRun(false)
      heartbeat.push(beat.ms)
      learned.add(`heartbeat run: ${beat.learnedFrom}`)
    }
  }
  const show = (name: string, values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b)
    console.log(
      `${name.padEnd(32)} runs ${String(values.length).padStart(3)}  median ${quantile(sorted, 0.5).toFixed(1).padStart(8)} ms  p95 ${quantile(sorted, 0.95).toFixed(1).padStart(8)} ms  max ${(sorted.at(-1) ?? Number.NaN).toFixed(1).padStart(8)} ms`,
    )
  }
  console.log(`cancel → stage abort, Express example on PostgreSQL, load average ${load} on ${(await import('node:os')).cpus().length} cores`)
  show('run stream (followRunStream)', stream)
  show('heartbeats only (10 s interval)', heartbeat)
  console.log(`learned from: ${[...learned].join(', ')}`)
  const p95 = quantile([...stream].sort((a, b) => a - b), 0.95)
  console.log(`target: p95 under 1000 ms through the stream: ${p95 < 1000 ? 'met' : 'NOT met'}`)
} finally {
  await example.close()
  await withAdmin(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`))
}
