/**
 * The client-overhead benchmark with three sides: plain `fetch`, the client on its shipped
 * attempt path (ky) and the same client on the plain-`fetch` prototype of that path
 * (`FetchTransport`, switched per block by `route-attempts.ts`). Same receiver (a `node:http`
 * child), same requests, blocks of 50 sequential `markStageComplete` calls, the order of the
 * three sides rotating per block, so drift and other load hit them alike. Prints per-side µs
 * per call and the median over the block triples of each ratio.
 *
 * Run: npx tsx bench/prototype/attempt-path-ab.ts   (knob: AB_ROUNDS, default 6)
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { DEFAULT_STAGES } from '../../src/client/index.js'
import { silentLogger } from '../../src/client/logger.js'
import { PrismaAPIClient } from '../../src/client/prisma-api-client.js'
import { installRoute, route } from './route-attempts.js'

const CALLS = 2_000
const ROUNDS = Number(process.env['AB_ROUNDS'] ?? 6)
const WARMUP = 1_000
const BLOCK = 50
const SECRET = 'bench-secret'
const RUN_ID = 'run_bench'

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

async function plainFetch(): Promise<void> {
  const body = JSON.stringify({ stageNumber: 1, stageName, status: 'COMPLETED', output: JSON.stringify(output), completedAt: new Date().toISOString() })
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': SECRET, 'Idempotency-Key': crypto.randomUUID() },
    body,
  })
  await response.text()
  if (!response.ok) throw new Error(`HTTP ${response.status}`)
}

const client = new PrismaAPIClient({ baseUrl: origin, secret: SECRET, logger: silentLogger, throwOnError: true })
installRoute({ secret: SECRET, logger: silentLogger })
const viaKy = async (): Promise<void> => {
  route.path = 'ky'
  await client.markStageComplete(RUN_ID, 1, output)
}
const viaFetchPath = async (): Promise<void> => {
  route.path = 'fetch'
  await client.markStageComplete(RUN_ID, 1, output)
}

async function measure(call: () => Promise<void>, calls: number): Promise<number> {
  const started = performance.now()
  for (let i = 0; i < calls; i++) await call()
  return performance.now() - started
}

const sides = { fetch: plainFetch, ky: viaKy, proto: viaFetchPath }
type Side = keyof typeof sides
const orders: Side[][] = [['fetch', 'ky', 'proto'], ['proto', 'fetch', 'ky'], ['ky', 'proto', 'fetch'], ['proto', 'ky', 'fetch'], ['fetch', 'proto', 'ky'], ['ky', 'fetch', 'proto']]
for (const side of Object.values(sides)) await measure(side, WARMUP)
const totals: Record<Side, number> = { fetch: 0, ky: 0, proto: 0 }
const kyRatios: number[] = []
const protoRatios: number[] = []
const kyOverProto: number[] = []
for (let round = 0; round < ROUNDS; round++) {
  for (let block = 0; block < CALLS / BLOCK; block++) {
    const ms = {} as Record<Side, number>
    for (const side of orders[block % orders.length]!) ms[side] = await measure(sides[side], BLOCK)
    for (const side of Object.keys(ms) as Side[]) totals[side] += ms[side]
    kyRatios.push(ms.ky / ms.fetch)
    protoRatios.push(ms.proto / ms.fetch)
    kyOverProto.push(ms.ky / ms.proto)
  }
}
route.path = 'ky'
await client.close()
child.kill()
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const per = (side: Side): string => ((totals[side] / (ROUNDS * CALLS)) * 1000).toFixed(1)
console.log(
  `attempt paths: ${ROUNDS} rounds × ${CALLS} sequential markStageComplete calls per side, blocks of ${BLOCK} rotating (node ${process.version})\n` +
    `  plain fetch:          ${per('fetch')} µs/call\n` +
    `  client, ky path:      ${per('ky')} µs/call  ${(totals.ky / totals.fetch).toFixed(3)}× over the totals, ${median(kyRatios).toFixed(3)}× median of ${kyRatios.length}\n` +
    `  client, fetch proto:  ${per('proto')} µs/call  ${(totals.proto / totals.fetch).toFixed(3)}× over the totals, ${median(protoRatios).toFixed(3)}× median\n` +
    `  ky path / fetch proto: ${median(kyOverProto).toFixed(3)}× median`,
)
