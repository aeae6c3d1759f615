/**
 * Streamed stage output (issue 27), on real PostgreSQL, with the machine's load beside every number.
 *
 * Shape: 50 concurrent runs of a one-stage pipeline, each `runPipeline` (the package's, from
 * `dist/`) whose stage calls `write(token)` 50 times a second (tokens of 4–6 bytes) for
 * BENCH_STREAM_SECONDS. Not one run with 50 stages: a run's stages are sequential in
 * `runPipeline`, so 50 stages streaming at once are 50 runs, as 50 runners (or one runner with
 * 50 pipelines in flight) make them. One `PrismaAPIClient` serves the 50 runs (per-run lanes).
 * The app: four instances (bench/servers/live-server.ts, Express + PrismaStore on the `pg` pool,
 * one-stage catalogue), a writer and a subscriber in `poll` mode (version polling every 250 ms)
 * and in `listen` mode (LISTEN/NOTIFY).
 *
 * 1. Streaming rounds, interleaved poll, listen, listen, poll: the runner writes to the writer
 *    instance, a subscriber on the other instance follows each run's stream (`GET /events`); per
 *    `write`, the time until a subscriber's `output` event carries its last byte (p50/p99); the
 *    requests the runner made by route (chunk POSTs/s against tokens/s); the writer's CPU per chunk.
 * 2. Server cost per request, interleaved A B A B on one server (the poll writer, no streams
 *    open): A = chunk POSTs (60 B, the runner's 250 ms batch, on 50 runs whose text grows over the
 *    phases), B = PROCESSING stage updates (each applied: stage 1 of a fresh run); autocannon at 8
 *    connections; server CPU (`process.cpuUsage()` of its process) over the phase / requests.
 *
 * Needs DATABASE_URL; without it, it says so and skips. Knobs: BENCH_STREAM_SECONDS (per round,
 * default 8), BENCH_RUNNER_STREAM (0: `followRunStream: false`), BENCH_SECONDS (per cost phase, default 3), BENCH_ROUNDS (cost rounds, default 3),
 * BENCH_STAGE_OUTPUT (default bench/results/latest/stage-output.json; bench/results/stage-output.json
 * is the run behind bench/README.md).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg as osLoadavg } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import pg from 'pg'
import { defaultOutput, prepareBench } from './prepare.js'
import { createThrowawayDatabase, requireDatabaseUrl } from './servers/database.js'
import { BENCH_SECRET } from './servers/shared.js'
import { openEventStream } from './sse.js'

const serverUrl = requireDatabaseUrl('stage-output benchmark')

const root = fileURLToPath(new URL('..', import.meta.url))
const STREAM_SECONDS = Number(process.env['BENCH_STREAM_SECONDS'] ?? 8)
/** `BENCH_RUNNER_STREAM=0`: the runner does not follow its run's stream (`followRunStream: false`), to see what that stream costs. */
const RUNNER_STREAM = process.env['BENCH_RUNNER_STREAM'] !== '0'
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 3)
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3)
const RUNS_PER_ROUND = 50
const TOKENS_PER_SECOND = 50
const ROUND_MODES = ['poll', 'listen', 'listen', 'poll'] as const
const COST_RUNS = 50
const COST_CONNECTIONS = 8
const CHUNK_TEXT = 'tok1 '.repeat(12) // 60 B: 50 tokens/s of ~5 B, batched every 250 ms
const OUTPUT_FILE = resolve(root, process.env['BENCH_STAGE_OUTPUT'] ?? defaultOutput('stage-output.json'))
const load = () => osLoadavg().map((v) => v.toFixed(2)).join(' ')

prepareBench()
const { openDatabase } = await import('../examples/shared/database.js')
const { PrismaAPIClient, runPipeline } = await import('pipeline-status-sdk/client')

// ---- database --------------------------------------------------------------------------------
const database = await createThrowawayDatabase(serverUrl, 'pss_bench_output')
const databaseUrl = database.url

// ---- servers ---------------------------------------------------------------------------------
interface Instance {
  base: string
  child: ChildProcess
  cpu(): Promise<number>
}
async function startInstance(name: string, live: 'poll' | 'listen'): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'bench/servers/live-server.ts')], {
    cwd: root,
    env: { ...process.env, BENCH_DATABASE_URL: databaseUrl, BENCH_LIVE: live, BENCH_STAGE_COUNT: '1', NODE_ENV: 'production' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const port = await new Promise<number>((resolvePort, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)))
    child.on('message', (message: { port?: number }) => {
      if (message.port) resolvePort(message.port)
    })
  })
  /** The process's user + system CPU so far, in µs. */
  const cpu = () =>
    new Promise<number>((resolveCpu) => {
      const onMessage = (message: { cpu?: NodeJS.CpuUsage }) => {
        if (!message.cpu) return
        child.off('message', onMessage)
        resolveCpu(message.cpu.user + message.cpu.system)
      }
      child.on('message', onMessage)
      child.send('cpu')
    })
  return { base: `http://127.0.0.1:${port}/api/pipeline`, child, cpu }
}
const instances: Instance[] = []
async function cleanUp(): Promise<void> {
  for (const instance of instances) instance.child.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 500))
  await database.drop()
}

// ---- helpers ---------------------------------------------------------------------------------
const headers = { 'X-Webhook-Secret': BENCH_SECRET, 'Content-Type': 'application/json' }
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}
const median = (values: number[]) => percentile(values, 50)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Follows a run's stream; `onOutput(text)` at each `output` event's arrival. Resolves after the snapshot. */
async function follow(base: string, runId: string, onOutput: (text: string, at: number) => void, signal: AbortSignal): Promise<void> {
  await openEventStream(`${base}/${runId}/events`, 'snapshot', (name, data, at) => {
    if (name === 'output') onOutput((JSON.parse(data) as { text: string }).text, at)
  }, signal)
}

interface RoundResult {
  mode: string
  load: string
  tokens: number
  tokensPerSecond: number
  latencies: number[]
  requests: Record<string, number>
  seconds: number
  writerCpuPerChunkUs: number
  subscriberCpuPerChunkUs: number
  missingBytes: number
  chunkTripP50Ms: number
  chunkTripP99Ms: number
  loopDelayP50Ms: number
  loopDelayP99Ms: number
}

/** One streaming round: 50 runs, each one stage writing 50 tokens a second for STREAM_SECONDS. */
async function streamRound(mode: 'poll' | 'listen', writer: Instance, subscriber: Instance, offset: number): Promise<RoundResult> {
  const runs = Array.from({ length: RUNS_PER_ROUND }, (_, i) => `out-${offset + i + 1}`)
  const requests: Record<string, number> = {}
  /** Each chunk POST's time from the call to the answer's headers, ms. */
  const chunkTrips: number[] = []
  const client = new PrismaAPIClient({
    baseUrl: writer.base,
    secret: BENCH_SECRET,
    stages: [{ number: 1, name: 'Stage 1' }],
    followRunStream: RUNNER_STREAM,
    logger: { warn: (m: string) => console.warn(m), error: (m: string) => console.error(m) },
    fetch: (input: string, init: RequestInit) => {
      const route = new URL(input).pathname.split('/').slice(4).join('/').replace(/\/\d+\//, '/') || 'run'
      requests[route] = (requests[route] ?? 0) + 1
      if (route !== 'stages/output') return fetch(input, init)
      const sent = performance.now()
      return fetch(input, init).then((response) => {
        chunkTrips.push(performance.now() - sent)
        return response
      })
    },
  })
  // Per run: the writes not yet seen, as [end offset in the text, time of write].
  const pending = new Map<string, Array<[number, number]>>()
  const received = new Map<string, number>()
  const latencies: number[] = []
  const controller = new AbortController()
  await Promise.all(
    runs.map((runId) => {
      pending.set(runId, [])
      received.set(runId, 0)
      return follow(
        subscriber.base,
        runId,
        (text, at) => {
          const seen = (received.get(runId) ?? 0) + text.length
          received.set(runId, seen)
          const waiting = pending.get(runId) as Array<[number, number]>
          while (waiting.length > 0 && (waiting[0] as [number, number])[0] <= seen) latencies.push(at - (waiting.shift() as [number, number])[1])
        },
        controller.signal,
      )
    }),
  )
  const roundLoad = load()
  // The bench process's own event-loop delay: the runner and the subscribers share it.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()
  const [writerBefore, subscriberBefore] = await Promise.all([writer.cpu(), subscriber.cpu()])
  let tokens = 0
  let firstWrite = Infinity
  let lastWrite = 0
  const started = performance.now()
  const total = TOKENS_PER_SECOND * STREAM_SECONDS
  await Promise.all(
    runs.map((runId, r) =>
      runPipeline({
        runId,
        client,
        complete: false,
        stages: [
          async ({ write }) => {
            let written = 0
            const phase = (r * 1000) / TOKENS_PER_SECOND / RUNS_PER_ROUND
            const start = performance.now() + phase
            for (let i = 0; i < total; i++) {
              const wait = start + (i * 1000) / TOKENS_PER_SECOND - performance.now()
              if (wait > 0) await sleep(wait)
              const token = ` w${(i * 7919 + r) % (i % 3 === 0 ? 100 : i % 3 === 1 ? 1_000 : 10_000)}`.padEnd(4, 'x')
              written += token.length
              ;(pending.get(runId) as Array<[number, number]>).push([written, performance.now()])
              write(token)
              tokens++
              if (i === 0) firstWrite = Math.min(firstWrite, performance.now())
              if (i === total - 1) lastWrite = Math.max(lastWrite, performance.now())
            }
            return 'done'
          },
        ],
      }),
    ),
  )
  const seconds = (performance.now() - started) / 1000
  loopDelay.disable()
  // Tokens per second over the writing itself (the round also holds runPipeline's start and the final flush).
  const writing = (lastWrite - firstWrite) / 1000
  const [writerAfter, subscriberAfter] = await Promise.all([writer.cpu(), subscriber.cpu()])
  await sleep(1500)
  controller.abort()
  await client.close()
  const missingBytes = [...received.entries()].reduce((sum, [runId, seen]) => sum + ((pending.get(runId)?.at(-1)?.[0] ?? seen) - seen), 0)
  const chunks = requests['stages/output'] ?? 0
  return {
    mode,
    load: roundLoad,
    tokens,
    tokensPerSecond: tokens / writing,
    latencies,
    requests,
    seconds,
    writerCpuPerChunkUs: (writerAfter - writerBefore) / chunks,
    subscriberCpuPerChunkUs: (subscriberAfter - subscriberBefore) / chunks,
    missingBytes,
    chunkTripP50Ms: percentile(chunkTrips, 50),
    chunkTripP99Ms: percentile(chunkTrips, 99),
    loopDelayP50Ms: loopDelay.percentile(50) / 1e6,
    loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
  }
}

// ---- run ---------------------------------------------------------------------------------------
const results: Record<string, unknown> = { date: new Date().toISOString(), streamSeconds: STREAM_SECONDS, runs: RUNS_PER_ROUND, tokensPerSecondPerRun: TOKENS_PER_SECOND, runnerStream: RUNNER_STREAM, loadBefore: load() }
console.log(`load average before: ${load()}`)
try {
  const db = await openDatabase({ url: databaseUrl })
  await db.close()
  const seed = new pg.Client({ connectionString: databaseUrl })
  await seed.connect()
  const seedRuns = (prefix: string, count: number) =>
    seed.query(`INSERT INTO "PipelineRun" ("id", "status", "updatedAt") SELECT $1 || g, 'PENDING', now() FROM generate_series(1, $2::int) g`, [prefix, count])
  await seedRuns('out-', RUNS_PER_ROUND * ROUND_MODES.length)
  await seedRuns('cost-chunk-', COST_RUNS)
  await seedRuns('cost-stage-', 40_000)
  await seed.query('ANALYZE')
  await seed.end()

  const writerPoll = await startInstance('writer (poll)', 'poll')
  const subscriberPoll = await startInstance('subscriber (poll)', 'poll')
  const writerListen = await startInstance('writer (listen)', 'listen')
  const subscriberListen = await startInstance('subscriber (listen)', 'listen')
  instances.push(writerPoll, subscriberPoll, writerListen, subscriberListen)
  await sleep(500)

  // 1. Streaming rounds, modes interleaved.
  const rounds: RoundResult[] = []
  for (const [i, mode] of ROUND_MODES.entries()) {
    const [writer, subscriber] = mode === 'poll' ? [writerPoll, subscriberPoll] : [writerListen, subscriberListen]
    const round = await streamRound(mode, writer, subscriber, i * RUNS_PER_ROUND)
    rounds.push(round)
    const chunks = round.requests['stages/output'] ?? 0
    console.log(
      `round ${i + 1} ${mode}: ${round.tokensPerSecond.toFixed(0)} tokens/s, ${(chunks / round.seconds).toFixed(1)} chunk POSTs/s, ` +
        `p50 ${percentile(round.latencies, 50).toFixed(0)} ms, p99 ${percentile(round.latencies, 99).toFixed(0)} ms, load ${round.load}`,
    )
    if (round.missingBytes > 0) throw new Error(`${mode}: ${round.missingBytes} bytes written never reached the subscriber`)
  }

  // 2. Server CPU per request: chunk POSTs (A) vs PROCESSING stage updates (B), on the poll writer.
  const chunkSeq = Array.from({ length: COST_RUNS }, () => 0)
  let stageRun = 0
  for (let i = 1; i <= COST_RUNS; i++) {
    const response = await fetch(`${writerPoll.base}/cost-chunk-${i}/stage-update`, { method: 'POST', headers, body: JSON.stringify({ stageNumber: 1, stageName: 'Stage 1', status: 'PROCESSING' }) })
    if (response.status !== 200) throw new Error(`stage-update answered ${response.status}`)
  }
  let chunkCounter = 0
  const phase = async (kind: 'chunk' | 'stage') => {
    const before = await writerPoll.cpu()
    const result = await autocannon({
      url: writerPoll.base,
      connections: COST_CONNECTIONS,
      duration: SECONDS,
      requests: [
        {
          method: 'POST',
          setupRequest: (request) => {
            if (kind === 'chunk') {
              const k = chunkCounter++ % COST_RUNS
              const seq = chunkSeq[k] as number
              chunkSeq[k] = seq + 1
              return { ...request, path: `/api/pipeline/cost-chunk-${k + 1}/stages/1/output`, headers, body: JSON.stringify({ seq, text: CHUNK_TEXT }) }
            }
            return {
              ...request,
              path: `/api/pipeline/cost-stage-${++stageRun}/stage-update`,
              headers,
              body: JSON.stringify({ stageNumber: 1, stageName: 'Stage 1', status: 'PROCESSING' }),
            }
          },
        },
      ],
    })
    const after = await writerPoll.cpu()
    if (result.non2xx > 0) throw new Error(`${kind}: ${result.non2xx} of ${result.requests.total} requests failed`)
    return { kind, load: load(), requests: result.requests.total, perSecond: result.requests.average, cpuPerRequestUs: (after - before) / result.requests.total, p99Ms: result.latency.p99, textBytesAfter: kind === 'chunk' ? (chunkSeq[0] ?? 0) * CHUNK_TEXT.length : undefined }
  }
  await phase('stage') // warm-up, not measured
  await phase('chunk')
  const costs: Array<Awaited<ReturnType<typeof phase>>> = []
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of round % 2 === 0 ? (['chunk', 'stage'] as const) : (['stage', 'chunk'] as const)) {
      const result = await phase(kind)
      costs.push(result)
      console.log(`cost ${kind}: ${result.perSecond.toFixed(0)}/s, ${result.cpuPerRequestUs.toFixed(0)} µs CPU per request, load ${result.load}`)
    }
  }

  // ---- report ----------------------------------------------------------------------------------
  const streaming = ROUND_MODES.map((_, i) => rounds[i] as RoundResult)
  const byMode = (mode: string) => streaming.filter((r) => r.mode === mode)
  const latency = Object.fromEntries(
    (['poll', 'listen'] as const).map((mode) => {
      const all = byMode(mode).flatMap((r) => r.latencies)
      return [mode, { samples: all.length, p50: percentile(all, 50), p99: percentile(all, 99), roundP50: byMode(mode).map((r) => percentile(r.latencies, 50)), roundP99: byMode(mode).map((r) => percentile(r.latencies, 99)), loads: byMode(mode).map((r) => r.load) }]
    }),
  )
  const chunkCosts = costs.filter((c) => c.kind === 'chunk')
  const stageCosts = costs.filter((c) => c.kind === 'stage')
  const pairRatios = chunkCosts.map((c, i) => c.cpuPerRequestUs / (stageCosts[i]?.cpuPerRequestUs ?? NaN))
  results['rounds'] = streaming.map((r) => ({
    mode: r.mode,
    load: r.load,
    seconds: r.seconds,
    tokensPerSecond: r.tokensPerSecond,
    requestsPerSecond: Object.fromEntries(Object.entries(r.requests).map(([k, v]) => [k, v / r.seconds])),
    p50Ms: percentile(r.latencies, 50),
    p99Ms: percentile(r.latencies, 99),
    writerCpuPerChunkUs: r.writerCpuPerChunkUs,
    subscriberCpuPerChunkUs: r.subscriberCpuPerChunkUs,
    chunkPostMs: { p50: r.chunkTripP50Ms, p99: r.chunkTripP99Ms },
    benchEventLoopDelayMs: { p50: r.loopDelayP50Ms, p99: r.loopDelayP99Ms },
  }))
  results['latencyMs'] = latency
  results['cost'] = { phases: costs, chunkOverStagePerPair: pairRatios, medianChunkUs: median(chunkCosts.map((c) => c.cpuPerRequestUs)), medianStageUs: median(stageCosts.map((c) => c.cpuPerRequestUs)) }
  results['loadAfter'] = load()

  console.log(`\nload average after: ${load()}`)
  console.log(`\nStreaming: ${RUNS_PER_ROUND} runs at once, one stage each writing ${TOKENS_PER_SECOND} tokens/s for ${STREAM_SECONDS} s, runner following its run stream: ${RUNNER_STREAM} (rounds interleaved; tokens/s over the writing, requests/s over the whole round):`)
  console.log('| round | mode | load (1/5/15 min) | tokens/s | chunk POSTs/s | chunks per token | other requests/s | write → output p50 | p99 | chunk POST p50 / p99 | bench event-loop delay p50 / p99 | writer CPU per chunk | subscriber CPU per chunk |')
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const [i, r] of streaming.entries()) {
    const chunks = r.requests['stages/output'] ?? 0
    const other = Object.entries(r.requests).filter(([k]) => k !== 'stages/output').map(([k, v]) => `${k} ${(v / r.seconds).toFixed(1)}`).join(', ')
    console.log(
      `| ${i + 1} | ${r.mode} | ${r.load} | ${r.tokensPerSecond.toFixed(0)} | ${(chunks / r.seconds).toFixed(1)} | ${(chunks / r.tokens).toFixed(3)} | ${other} | ` +
        `${percentile(r.latencies, 50).toFixed(0)} ms | ${percentile(r.latencies, 99).toFixed(0)} ms | ${r.chunkTripP50Ms.toFixed(0)} / ${r.chunkTripP99Ms.toFixed(0)} ms | ${r.loopDelayP50Ms.toFixed(0)} / ${r.loopDelayP99Ms.toFixed(0)} ms | ${r.writerCpuPerChunkUs.toFixed(0)} µs | ${r.subscriberCpuPerChunkUs.toFixed(0)} µs |`,
    )
  }
  for (const mode of ['poll', 'listen'] as const) {
    const l = latency[mode] as { samples: number; p50: number; p99: number }
    console.log(`  ${mode}: ${l.samples} writes, p50 ${l.p50.toFixed(0)} ms, p99 ${l.p99.toFixed(0)} ms`)
  }
  console.log(`\nServer CPU per request on one server, interleaved phases of ${SECONDS} s at ${COST_CONNECTIONS} connections:`)
  console.log('| phase | load (1/5/15 min) | requests/s | CPU per request | p99 | text per run after |')
  console.log('| --- | --- | --- | --- | --- | --- |')
  for (const c of costs) {
    console.log(`| ${c.kind === 'chunk' ? 'chunk POST (60 B)' : 'PROCESSING update'} | ${c.load} | ${c.perSecond.toFixed(0)} | ${c.cpuPerRequestUs.toFixed(0)} µs | ${c.p99Ms} ms | ${c.textBytesAfter ?? ''} |`)
  }
  console.log(`  chunk / stage update, CPU per request, per pair: ${pairRatios.map((r) => r.toFixed(2)).join(', ')}; medians ${median(chunkCosts.map((c) => c.cpuPerRequestUs)).toFixed(0)} / ${median(stageCosts.map((c) => c.cpuPerRequestUs)).toFixed(0)} µs`)

  mkdirSync(dirname(OUTPUT_FILE), { recursive: true })
  writeFileSync(OUTPUT_FILE, `${JSON.stringify(results, null, 2)}\n`)
  console.log(`\nwritten to ${OUTPUT_FILE}`)
} finally {
  await cleanUp()
}
