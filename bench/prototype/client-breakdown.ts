/**
 * Where the client's cost per call goes, without a network: every case calls a `fetch` that
 * answers at once (a fresh `Response` per call, as a real one), so what is left is the per-call
 * work of JavaScript. The cases run interleaved (each round runs every case for a block of
 * calls, the order rotating per round) and each prints its median µs per call over the rounds.
 *
 * Run: npx tsx bench/prototype/client-breakdown.ts   (knobs: BREAKDOWN_ROUNDS, BREAKDOWN_BLOCK)
 */
import ky from 'ky'
import { PrismaAPIClient } from '../../src/client/prisma-api-client.js'
import { silentLogger } from '../../src/client/logger.js'
import { DEFAULT_RETRY_POLICY } from '../../src/client/retry-policy.js'
import { Transport } from '../../src/client/transport.js'
import { DEFAULT_STAGES } from '../../src/client/index.js'
import { FetchTransport } from './fetch-transport.js'
import { installRoute, route } from './route-attempts.js'

const ROUNDS = Number(process.env['BREAKDOWN_ROUNDS'] ?? 15)
const BLOCK = Number(process.env['BREAKDOWN_BLOCK'] ?? 2_000)
const url = 'http://127.0.0.1:9/api/pipeline/run_bench/stage-update'
const SECRET = 'bench-secret'
const answer = '{"outcome":"applied"}'
const instant = async (_input: string | URL | Request, _init?: RequestInit): Promise<Response> =>
  new Response(answer, { status: 200, headers: { 'content-type': 'application/json' } })
const output = { signals: [{ id: 1, text: 'Gen Z wants éclairs' }], count: 1 }
const stageName = DEFAULT_STAGES[0]?.name ?? ''
const headers = { 'User-Agent': 'pipeline-status-sdk', Accept: 'application/json', 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' }

const transportConfig = { secret: SECRET, timeoutMs: 30_000, retry: DEFAULT_RETRY_POLICY, userAgent: 'pipeline-status-sdk', fetch: instant, signer: undefined, logger: silentLogger }
const viaKy = new Transport(transportConfig)
const viaFetch = new FetchTransport(transportConfig)
const kyInstance = ky.create({ retry: 0, timeout: false, fetch: instant })
const client = new PrismaAPIClient({ baseUrl: 'http://127.0.0.1:9', secret: SECRET, logger: silentLogger, throwOnError: true, fetch: instant })
installRoute({ secret: SECRET, logger: silentLogger, fetch: instant })

const body = (): string =>
  JSON.stringify({ stageNumber: 1, stageName, status: 'COMPLETED', output: JSON.stringify(output), completedAt: new Date().toISOString() })

const cases: Record<string, () => unknown> = {
  'instant fetch + text() (the floor)': async () => (await instant(url, { method: 'POST' })).text(),
  'plain fetch as the bench sends it (body, headers, UUID)': async () => {
    const response = await instant(url, { method: 'POST', headers: { ...headers, 'Idempotency-Key': crypto.randomUUID() }, body: body() })
    await response.text()
  },
  'JSON body (JSON.stringify ×2, toISOString)': () => body(),
  'crypto.randomUUID()': () => crypto.randomUUID(),
  'new Headers(5 headers)': () => new Headers(headers),
  'new Request(url, { method }) body-less': () => new Request(url, { method: 'POST' }),
  'new Request(url, { method, headers, body })': () => new Request(url, { method: 'POST', headers, body: answer }),
  'new AbortController()': () => new AbortController(),
  'AbortController + setTimeout/clearTimeout': () => {
    const controller = new AbortController()
    clearTimeout(setTimeout(() => controller.abort(), 30_000))
  },
  'AbortSignal.any([signal])': () => AbortSignal.any([new AbortController().signal]),
  'ky(url, { retry: 0, timeout: false, method, fetch }) + text() (as the transport calls it)': async () =>
    (await ky(url, { retry: 0, timeout: false, method: 'POST', fetch: instant })).text(),
  'ky.create once, instance(url, { method }) + text()': async () => (await kyInstance(url, { method: 'POST' })).text(),
  'ky(prebuilt Request, { retry: 0, timeout: false, fetch }) + text()': async () =>
    (await ky(new Request(url, { method: 'POST' }), { retry: 0, timeout: false, fetch: instant })).text(),
  'ky with a signal (AbortSignal.any inside ky) + text()': async () =>
    (await ky(url, { retry: 0, timeout: false, method: 'POST', fetch: instant, signal: new AbortController().signal })).text(),
  'Transport.send via ky (shipped attempt path)': () => viaKy.send({ method: 'POST', url, body: answer, idempotencyKey: crypto.randomUUID() }, { retry: true }),
  'FetchTransport.send (plain-fetch prototype)': () => viaFetch.send({ method: 'POST', url, body: answer, idempotencyKey: crypto.randomUUID() }, { retry: true }),
  'client.markStageComplete, ky path': async () => {
    route.path = 'ky'
    await client.markStageComplete('run_bench', 1, output)
  },
  'client.markStageComplete, fetch prototype': async () => {
    route.path = 'fetch'
    await client.markStageComplete('run_bench', 1, output)
    route.path = 'ky'
  },
}

async function block(call: () => unknown, n: number): Promise<number> {
  const started = performance.now()
  for (let i = 0; i < n; i++) await call()
  return ((performance.now() - started) / n) * 1000
}

const names = Object.keys(cases)
for (const name of names) await block(cases[name]!, BLOCK) // warm up
const samples = new Map<string, number[]>(names.map((n) => [n, []]))
for (let round = 0; round < ROUNDS; round++) {
  const order = names.map((_, i) => names[(i + round) % names.length]!)
  for (const name of order) samples.get(name)!.push(await block(cases[name]!, BLOCK))
}
await client.close()
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
console.log(`client breakdown: ${ROUNDS} interleaved rounds × ${BLOCK} calls per case, instant fetch (node ${process.version})`)
for (const name of names) {
  const xs = samples.get(name)!
  console.log(`  ${median(xs).toFixed(1).padStart(7)} µs  (min ${Math.min(...xs).toFixed(1)})  ${name}`)
}
