/**
 * Client overhead: 2,000 sequential `markStageComplete` calls against a local node:http server,
 * as a ratio to plain `fetch` sending the same requests (same URL, headers and body shape) in
 * the same run. Target: at most 1.25×.
 *
 * The server runs in a child process so its work does not share the measured event loop. Both
 * sides are warmed up first, then measured in rounds that interleave blocks of 100 calls of
 * each side, so drift and load from other processes hit both alike; the ratio is taken over
 * the totals and per round.
 *
 * Run: npm run bench (or npx tsx bench/client-overhead.bench.ts)
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { DEFAULT_STAGES, PrismaAPIClient, silentLogger } from 'pipeline-status-sdk/client'

const CALLS = 2_000
const ROUNDS = 6
const WARMUP = 1_000
const TARGET = 1.25
const SECRET = 'bench-secret'
const RUN_ID = 'run_bench'

// A minimal stage-update receiver: read the body, answer a small JSON document.
const SERVER = `
const http = require('node:http')
const server = http.createServer((req, res) => {
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{"outcome":"applied"}')
  })
})
server.keepAliveTimeout = 60000
server.listen(0, '127.0.0.1', () => console.log(server.address().port))
`

const child = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] })
const [portLine] = (await once(child.stdout, 'data')) as [Buffer]
const origin = `http://127.0.0.1:${portLine.toString().trim()}`
const url = `${origin}/api/pipeline/${RUN_ID}/stage-update`
const output = { signals: [{ id: 1, text: 'Gen Z wants éclairs' }], count: 1 }
const stageName = DEFAULT_STAGES[0]?.name ?? ''

/** What a hand-written reporter would do: build the body, POST it, read the answer. */
async function plainFetch(): Promise<void> {
  const body = JSON.stringify({
    stageNumber: 1,
    stageName,
    status: 'COMPLETED',
    output: JSON.stringify(output),
    completedAt: new Date().toISOString(),
  })
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'X-Webhook-Secret': SECRET,
      'Idempotency-Key': crypto.randomUUID(),
    },
    body,
  })
  await response.text()
  if (!response.ok) throw new Error(`HTTP ${response.status}`)
}

// Production defaults: 5 retries, 30 s per-attempt timeout, no outbox.
const client = new PrismaAPIClient({ baseUrl: origin, secret: SECRET, logger: silentLogger, throwOnError: true })
const viaClient = async (): Promise<void> => {
  await client.markStageComplete(RUN_ID, 1, output)
}

async function measure(call: () => Promise<void>, calls: number): Promise<number> {
  const started = performance.now()
  for (let i = 0; i < calls; i++) await call()
  return performance.now() - started
}

await measure(plainFetch, WARMUP)
await measure(viaClient, WARMUP)

// Each round runs 2,000 calls of each side, interleaved in blocks of BLOCK calls (ABBA order),
// so load from other processes and drift over time hit both sides alike. Each adjacent pair of
// blocks gives one ratio; their median is robust to a load spike in a single block.
const BLOCK = 50
let fetchTotal = 0
let clientTotal = 0
const pairRatios: number[] = []
for (let round = 0; round < ROUNDS; round++) {
  let fetchMs = 0
  let clientMs = 0
  for (let block = 0; block < CALLS / BLOCK; block++) {
    let f: number
    let c: number
    if (block % 2 === 0) {
      f = await measure(plainFetch, BLOCK)
      c = await measure(viaClient, BLOCK)
    } else {
      c = await measure(viaClient, BLOCK)
      f = await measure(plainFetch, BLOCK)
    }
    fetchMs += f
    clientMs += c
    pairRatios.push(c / f)
  }
  fetchTotal += fetchMs
  clientTotal += clientMs
  console.log(
    `round ${round + 1}: fetch ${(fetchMs / CALLS * 1000).toFixed(0)} µs/call, client ${(clientMs / CALLS * 1000).toFixed(0)} µs/call, ratio ${(clientMs / fetchMs).toFixed(3)}×`,
  )
}
await client.close()
child.kill()

const ratio = clientTotal / fetchTotal
const median = [...pairRatios].sort((a, b) => a - b)[Math.floor(pairRatios.length / 2)] ?? ratio
console.log(
  `\nclient-overhead: ${ROUNDS} rounds × ${CALLS} sequential markStageComplete calls per side (node ${process.version})\n` +
    `  plain fetch: ${(fetchTotal / (ROUNDS * CALLS) * 1000).toFixed(1)} µs/call\n` +
    `  client:      ${(clientTotal / (ROUNDS * CALLS) * 1000).toFixed(1)} µs/call\n` +
    `  ratio:       ${ratio.toFixed(3)}× over the totals, ${median.toFixed(3)}× median of ${pairRatios.length} block pairs\n` +
    `  target:      ≤ ${TARGET}× (${median <= TARGET ? 'met' : 'NOT met'} by the median)`,
)
