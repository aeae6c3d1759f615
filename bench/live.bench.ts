/**
 * Live status across instances (issue 14), on real PostgreSQL. Four app instances, each in its
 * own child process (bench/servers/live-server.ts, the Express adapter with PrismaStore on its
 * `pg` pool): a subscriber side and a writer side in each mode, `poll` (version polling every
 * 250 ms, writes send nothing) and `listen` (a LISTEN connection; the store sends each committed
 * change's notification after commit, in batches every 5 ms, outside the write).
 *
 * 1. Latency: 100 streams open on the subscriber instance; the writer sends 100 (and, LISTEN
 *    only, 1,000) stage updates a second to the other instance (open loop, round robin over the
 *    runs, each a distinct (run, stage)); per update, the time from the writer's 200 to the
 *    `update` event carrying that stage at the subscriber. Rounds interleave the modes and rates.
 * 2. Write throughput, LISTEN mode vs polling mode: autocannon, distinct stage updates at 32
 *    concurrent, against the two writer instances in interleaved blocks.
 * 3. Heartbeats beside the stage-update load: 10,000 runs heartbeating every 10 s (1,000 a
 *    second, autocannon at a fixed overall rate) against the writer, while autocannon sends 32
 *    concurrent stage updates to it; blocks with and without heartbeats interleaved; the stage
 *    updates' rate and p99 with and without, and how many of the run table's updates were
 *    heap-only (pg_stat_user_tables).
 * 4. Memory per idle subscriber: 1,000 open streams on one instance (poll mode), the instance's
 *    heap and RSS after a full GC before and after, divided by 1,000.
 *
 * Each latency round also prints where the CPU went (cores used by the subscriber, the writer and
 * this process, the machine's busy share) and the subscriber's run reads and the writer's batches.
 *
 * Needs DATABASE_URL; without it, it says so and skips. Knobs: BENCH_LIVE_NOTIFY=1 (only part 1,
 * LISTEN writers batching on their request pool vs on `notifyPool`, rates interleaved),
 * BENCH_LIVE_HIGH_RATE (the high rate, default 1000), BENCH_LIVE_HEARTBEATS=1 (only part 3, with the
 * writer's CPU per request per block), BENCH_LIVE_SECONDS (per latency
 * round, default 8, at most 20 for the 1,000/s rounds), BENCH_SECONDS (per throughput block, default 3), BENCH_ROUNDS (default 4),
 * BENCH_LIVE_OUTPUT (default bench/results/latest/live.json; bench/results/live.json is the run behind bench/README.md).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import http from 'node:http'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import pg from 'pg'
import { defaultOutput, prepareBench } from './prepare.js'
import { createThrowawayDatabase, requireDatabaseUrl } from './servers/database.js'
import { BENCH_SECRET } from './servers/shared.js'
import { openEventStream } from './sse.js'

const serverUrl = requireDatabaseUrl('live benchmark')

const root = fileURLToPath(new URL('..', import.meta.url))
const LIVE_SECONDS = Number(process.env['BENCH_LIVE_SECONDS'] ?? 8)
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 3)
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 4)
const RATE = 100
/** `BENCH_LIVE_HIGH_RATE`: the high rate of the latency rounds (a lower one shows each process's CPU per update while the machine is not saturated). */
const HIGH_RATE = Number(process.env['BENCH_LIVE_HIGH_RATE'] ?? 1_000)
const STREAMS = 100
/**
 * `BENCH_LIVE_STAGES`: the catalogue of every instance, default 50 stages (more than any run gets
 * in a round, or in the write-throughput blocks); the app's catalogue is stored on each run and
 * read with it, so a 200-stage one made every read carry ~6 KB that a pipeline's runs do not.
 */
const CATALOGUE_STAGES = Number(process.env['BENCH_LIVE_STAGES'] ?? 50)
/**
 * `BENCH_LIVE_HIGH_STREAMS`: streams (and runs) of the high-rate rounds, default 1,000, so that each
 * run gets about one stage update a second and a round leaves it with ~8 stages, as a pipeline's
 * runs do; `100` gives the rounds before this knob (each run 10 updates a second, ~80 stages by
 * the round's end, every notified read returning them all).
 */
const HIGH_STREAMS = Number(process.env['BENCH_LIVE_HIGH_STREAMS'] ?? 1_000)
/** Streams of a round at `rate` updates a second. */
const streamsAt = (rate: number): number => (rate >= HIGH_RATE ? HIGH_STREAMS : STREAMS)
const HEARTBEAT_RUNS = 10_000
const HEARTBEAT_RATE = 1_000
/** `BENCH_LIVE_NOTIFY=1`: only the latency part, LISTEN writers batching on their request pool vs on `notifyPool` (`direct`). */
const NOTIFY_ONLY = process.env['BENCH_LIVE_NOTIFY'] === '1'
/** `BENCH_LIVE_HEARTBEATS=1`: only part 3 (heartbeats beside stage updates), with the writer's CPU per request in each block. */
const HEARTBEATS_ONLY = process.env['BENCH_LIVE_HEARTBEATS'] === '1'
/** The latency rounds, interleaved: mode and updates per second. */
/** `BENCH_LIVE_ROUNDS`: the latency rounds as `mode@rate` in order, comma-separated (e.g. `direct@1000,listen@1000`), instead of the defaults below. */
const ROUNDS_OVERRIDE = process.env['BENCH_LIVE_ROUNDS']
  ?.split(',')
  .filter(Boolean)
  .map((round) => {
    const [mode, rate] = round.split('@')
    if (mode !== 'poll' && mode !== 'listen' && mode !== 'direct') throw new Error(`BENCH_LIVE_ROUNDS: unknown mode in ${round}`)
    return [mode, Number(rate)] as const
  })
const LATENCY_ROUNDS: ReadonlyArray<readonly ['poll' | 'listen' | 'direct', number]> = ROUNDS_OVERRIDE ?? (NOTIFY_ONLY
  ? [
      ['listen', RATE],
      ['direct', RATE],
      ['listen', HIGH_RATE],
      ['direct', HIGH_RATE],
      ['direct', RATE],
      ['listen', RATE],
      ['direct', HIGH_RATE],
      ['listen', HIGH_RATE],
    ]
  : // LISTEN as set up by default (createPgConnections with a direct URL): batches on notifyPool.
    [
      ['poll', RATE],
      ['direct', RATE],
      ['direct', HIGH_RATE],
      ['direct', RATE],
      ['poll', RATE],
      ['direct', HIGH_RATE],
    ])
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').trim()
/** The machine's busy and total CPU time so far, in clock ticks (/proc/stat's first line). */
const machineTicks = () => {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number)
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0)
  const total = fields.reduce((a, b) => a + b, 0)
  return { busy: total - idle, total }
}
/** CPU ticks of every PostgreSQL process (all databases: other engineers' tests included). */
const postgresTicks = () => {
  let ticks = 0
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const close = stat.lastIndexOf(')')
      if (!stat.slice(stat.indexOf('(') + 1, close).startsWith('postgres')) continue
      const rest = stat.slice(close + 2).split(' ')
      ticks += Number(rest[11]) + Number(rest[12])
    } catch {
      // Gone meanwhile.
    }
  }
  return ticks
}
interface InstanceStats {
  cpu: NodeJS.CpuUsage
  runReads: number
  transactions: number
  runsReads: number
  runsRead: number
  notify: { sent: number; batches: number; failedBatches: number; dropped: number } | null
}
const IDLE_STREAMS = 1_000
/** Runs seeded: every latency round's own runs, then the write-throughput and idle-stream ones. */
const RUNS = 4_000 + LATENCY_ROUNDS.reduce((sum, [, rate]) => sum + streamsAt(rate), 0)
const OUTPUT_FILE = resolve(root, process.env['BENCH_LIVE_OUTPUT'] ?? defaultOutput('live.json'))

prepareBench()
// Loaded only now: it imports the Prisma client that prepareBench() generates.
const { openDatabase } = await import('../examples/shared/database.js')

// ---- database --------------------------------------------------------------------------------
const database = await createThrowawayDatabase(serverUrl, 'pss_bench_live')
const databaseUrl = database.url

// ---- servers ---------------------------------------------------------------------------------
interface Instance {
  name: string
  base: string
  child: ChildProcess
  ask<T>(question: string, key: string): Promise<T>
}
async function startInstance(name: string, live: 'poll' | 'listen' | 'direct'): Promise<Instance> {
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', join(root, 'bench/servers/live-server.ts')], {
    cwd: root,
    env: { ...process.env, BENCH_DATABASE_URL: databaseUrl, BENCH_LIVE: live, BENCH_STAGE_COUNT: String(CATALOGUE_STAGES), NODE_ENV: 'production' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const port = await new Promise<number>((resolvePort, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)))
    child.on('message', (message: { port?: number }) => {
      if (message.port) resolvePort(message.port)
    })
  })
  const ask = <T>(question: string, key: string) =>
    new Promise<T>((resolveAnswer) => {
      const onMessage = (message: Record<string, unknown>) => {
        if (!(key in message)) return
        child.off('message', onMessage)
        resolveAnswer(message[key] as T)
      }
      child.on('message', onMessage)
      child.send(question)
    })
  return { name, base: `http://127.0.0.1:${port}/api/pipeline`, child, ask }
}

const instances: Instance[] = []
async function cleanUp(): Promise<void> {
  for (const instance of instances) instance.child.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 500))
  await database.drop()
}

// ---- helpers ---------------------------------------------------------------------------------
const headers = { 'X-Webhook-Secret': BENCH_SECRET, 'Content-Type': 'application/json' }
const OUTPUT = JSON.stringify({ summary: 'x'.repeat(200) })
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}
const median = (values: number[]) => percentile(values, 50)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * The open loop's sender: `node:http` on a keep-alive agent (at most 256 connections), which
 * costs this process about half of what `fetch` does per request, so that the load generator
 * takes less of the 2 cores the instances and the database share. Resolves at the end of the
 * answer; rejects with a `TypeError` when the connection fails (counted as refused).
 */
const sendAgent = new http.Agent({ keepAlive: true, maxSockets: 256 })
function post(url: string, body: string): Promise<{ status: number }> {
  return new Promise((resolvePost, reject) => {
    const request = http.request(url, { method: 'POST', agent: sendAgent, headers: { ...headers, 'Content-Length': Buffer.byteLength(body) } }, (response) => {
      response.resume()
      response.on('end', () => resolvePost({ status: response.statusCode ?? 0 }))
      response.on('error', (error) => reject(new TypeError(error.message)))
    })
    request.on('error', (error) => reject(new TypeError(error.message)))
    request.end(body)
  })
}

/** Opens a stream and calls `onStage` with each stage of each update event, at arrival. */
async function subscribe(base: string, runId: string, onStage: (key: string, at: number) => void, signal: AbortSignal): Promise<void> {
  await openEventStream(`${base}/${runId}/events`, 'snapshot', (name, data, at) => {
    if (name !== 'update') return
    const update = JSON.parse(data) as { stages: Array<{ stageNumber: number }> }
    for (const stage of update.stages) onStage(`${runId}:${stage.stageNumber}`, at)
  }, signal)
}

/** Stage updates the writer refused (503, or a reset connection: it could not keep up) per `mode@rate`; not latency samples. */
const refusals: Record<string, number> = {}
/** Of those, the 503s (the writer's statement waited past its queryTimeoutMs, 5 s, most of it for a pooled connection). */
const refused503: Record<string, number> = {}
const refused408: Record<string, number> = {}

/** One latency round at `rate` updates a second: returns the milliseconds from each 200 to its event. */
async function latencyRound(mode: string, subscriber: Instance, writer: Instance, runOffset: number, rate: number): Promise<number[]> {
  const streams = streamsAt(rate)
  const runs = Array.from({ length: streams }, (_, i) => `bench-${runOffset + i + 1}`)
  const controller = new AbortController()
  const ok = new Map<string, number>()
  const arrived = new Map<string, number>()
  await Promise.all(runs.map((runId) => subscribe(subscriber.base, runId, (key, at) => void (arrived.has(key) || arrived.set(key, at)), controller.signal)))
  const total = rate * LIVE_SECONDS
  // Each round has runs of its own, so stage numbers start at 1 (the catalogue holds 200).
  const stageBase = 1
  if (Math.ceil(total / streams) > CATALOGUE_STAGES) throw new Error(`BENCH_LIVE_SECONDS too long for ${rate}/s: more than ${CATALOGUE_STAGES} stages per run`)
  const start = performance.now()
  const sends: Promise<void>[] = []
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate
    const wait = due - performance.now()
    if (wait > 0) await sleep(wait)
    const runId = runs[i % streams] as string
    const stageNumber = stageBase + Math.floor(i / streams)
    const body = JSON.stringify({ stageNumber, stageName: `Stage ${stageNumber}`, status: 'COMPLETED', output: OUTPUT })
    sends.push(
      post(`${writer.base}/${runId}/stage-update`, body).then(async (response) => {
        const at = performance.now()
        // 408: Node's own headersTimeout/requestTimeout, when the writer did not even read the request in time.
        if (response.status === 503 || response.status === 408) {
          refusals[`${mode}@${rate}`] = (refusals[`${mode}@${rate}`] ?? 0) + 1
          const kind = response.status === 503 ? refused503 : refused408
          kind[`${mode}@${rate}`] = (kind[`${mode}@${rate}`] ?? 0) + 1
          return
        }
        if (response.status !== 200) throw new Error(`stage-update answered ${response.status}`)
        ok.set(`${runId}:${stageNumber}`, at)
      }, (error: unknown) => {
        // A connection the overloaded writer reset: refused too, not a latency sample.
        if (!(error instanceof TypeError)) throw error
        refusals[`${mode}@${rate}`] = (refusals[`${mode}@${rate}`] ?? 0) + 1
      }),
    )
  }
  await Promise.all(sends)
  await sleep(1500)
  controller.abort()
  const latencies: number[] = []
  let missing = 0
  for (const [key, at] of ok) {
    const event = arrived.get(key)
    if (event === undefined) missing++
    else latencies.push(event - at)
  }
  if (missing > 0) throw new Error(`${mode}: ${missing} of ${ok.size} updates never reached the subscriber`)
  return latencies
}

// ---- run ---------------------------------------------------------------------------------------
const results: Record<string, unknown> = { date: new Date().toISOString(), liveSeconds: LIVE_SECONDS, rate: RATE, streams: STREAMS, highStreams: HIGH_STREAMS, loadBefore: loadavg() }
console.log(`load average before: ${loadavg()}`)
try {
  const db = await openDatabase({ url: databaseUrl })
  await db.close()
  const seed = new pg.Client({ connectionString: databaseUrl })
  await seed.connect()
  await seed.query(
    `INSERT INTO "PipelineRun" ("id", "status", "updatedAt") SELECT 'bench-' || g, 'PENDING', now() FROM generate_series(1, $1::int) g`,
    [RUNS],
  )
  await seed.query(
    `INSERT INTO "PipelineRun" ("id", "status", "updatedAt") SELECT 'hb-' || g, 'PROCESSING', now() FROM generate_series(1, $1::int) g`,
    [HEARTBEAT_RUNS],
  )
  await seed.query('ANALYZE')
  await seed.end()

  const subscriberPoll = await startInstance('subscriber (poll)', 'poll')
  const writerPoll = await startInstance('writer (poll)', 'poll')
  const subscriberListen = await startInstance('subscriber (listen)', 'listen')
  instances.push(subscriberPoll, writerPoll, subscriberListen)
  // `listen`: batches on the request pool (only where a round asks for it); `direct`: on notifyPool, the default set-up.
  const writerListen = LATENCY_ROUNDS.some(([mode]) => mode === 'listen') ? await startInstance('writer (listen)', 'listen') : undefined
  const writerDirect = await startInstance('writer (direct)', 'direct')
  if (writerListen) instances.push(writerListen)
  instances.push(writerDirect)
  await sleep(500)

  // 1. Latency, interleaved modes and rates.
  const samples: Record<string, number[]> = {}
  const roundP99: Record<string, number[]> = {}
  const breakdowns: Record<string, unknown[]> = {}
  let offset = 0
  for (const [mode, rate] of HEARTBEATS_ONLY ? [] : LATENCY_ROUNDS) {
    const [subscriber, writer] = mode === 'poll' ? [subscriberPoll, writerPoll] : [subscriberListen, mode === 'direct' ? writerDirect : (writerListen as Instance)]
    const key = `${mode}@${rate}`
    const [subBefore, writerBefore] = await Promise.all([subscriber.ask<InstanceStats>('stats', 'stats'), writer.ask<InstanceStats>('stats', 'stats')])
    const benchBefore = process.cpuUsage()
    const machineBefore = machineTicks()
    const pgBefore = postgresTicks()
    const startedAt = performance.now()
    const round = await latencyRound(mode, subscriber, writer, offset, rate)
    const seconds = (performance.now() - startedAt) / 1000
    const [subAfter, writerAfter] = await Promise.all([subscriber.ask<InstanceStats>('stats', 'stats'), writer.ask<InstanceStats>('stats', 'stats')])
    const benchCpu = process.cpuUsage(benchBefore)
    const machineAfter = machineTicks()
    const cores = (u: NodeJS.CpuUsage, v: NodeJS.CpuUsage) => (v.user + v.system - u.user - u.system) / 1e6 / seconds
    const breakdown = {
      seconds: Number(seconds.toFixed(1)),
      // Cores in use over the round (1.00 = one core busy throughout).
      coresSubscriber: Number(cores(subBefore.cpu, subAfter.cpu).toFixed(2)),
      coresWriter: Number(cores(writerBefore.cpu, writerAfter.cpu).toFixed(2)),
      coresBench: Number(((benchCpu.user + benchCpu.system) / 1e6 / seconds).toFixed(2)),
      coresPostgres: Number(((postgresTicks() - pgBefore) / 100 / seconds).toFixed(2)),
      machineBusy: Number(((machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total)).toFixed(2)),
      // getRun calls (snapshots of opened streams; every read on a store without getRuns), then the
      // batched reads: statements, and the runs they read.
      subscriberRunReads: subAfter.runReads - subBefore.runReads,
      subscriberBatchedReads: subAfter.runsReads - subBefore.runsReads,
      subscriberRunsBatchRead: subAfter.runsRead - subBefore.runsRead,
      writerTransactions: writerAfter.transactions - writerBefore.transactions,
      notifyBatches: writerAfter.notify && writerBefore.notify ? writerAfter.notify.batches - writerBefore.notify.batches : null,
      notifySent: writerAfter.notify && writerBefore.notify ? writerAfter.notify.sent - writerBefore.notify.sent : null,
    }
    ;(breakdowns[key] ??= []).push(breakdown)
    ;(samples[key] ??= []).push(...round)
    ;(roundP99[key] ??= []).push(percentile(round, 99))
    offset += streamsAt(rate)
    console.log(`latency round ${key}: p50 ${percentile(round, 50).toFixed(1)} ms, p99 ${percentile(round, 99).toFixed(1)} ms, load ${loadavg()}, ${JSON.stringify(breakdown)}`)
  }
  const latency = Object.fromEntries(
    Object.entries(samples).map(([key, values]) => [
      key,
      { samples: values.length, refused: refusals[key] ?? 0, refused503: refused503[key] ?? 0, refused408: refused408[key] ?? 0, p50: percentile(values, 50), p99: percentile(values, 99), max: percentile(values, 100), roundP99: roundP99[key] },
    ]),
  )
  results['latencyMs'] = latency
  results['latencyRounds'] = breakdowns
  if (NOTIFY_ONLY) {
    results['loadAfter'] = loadavg()
    console.log(`\nload average after: ${loadavg()}`)
    for (const [key, value] of Object.entries(latency)) console.log(`| ${key} | ${JSON.stringify(value)} |`)
    mkdirSync(dirname(OUTPUT_FILE), { recursive: true })
    writeFileSync(OUTPUT_FILE, `${JSON.stringify(results, null, 2)}\n`)
    await cleanUp()
    process.exit(0)
  }

  // 2. Write throughput, polling mode (poll writer) vs LISTEN mode (the direct writer: batches on notifyPool), interleaved blocks.
  let counter = 0
  const firstRun = LATENCY_ROUNDS.reduce((sum, [, rate]) => sum + streamsAt(rate), 0) + 1
  const pool = RUNS - firstRun
  const throughput: Record<'off' | 'on', { rps: number[]; p99: number[] }> = { off: { rps: [], p99: [] }, on: { rps: [], p99: [] } }
  /** 32 concurrent distinct stage updates against `writer` for SECONDS. */
  const stageUpdates = async (writer: Instance) => {
    const result = await autocannon({
      url: writer.base,
      connections: 32,
      duration: SECONDS,
      requests: [
        {
          method: 'POST',
          setupRequest: (request) => {
            const k = counter++
            const runId = `bench-${firstRun + (k % pool)}`
            const stageNumber = 1 + (Math.floor(k / pool) % (CATALOGUE_STAGES - 1))
            return {
              ...request,
              path: `/api/pipeline/${runId}/stage-update`,
              headers,
              body: JSON.stringify({ stageNumber, stageName: `Stage ${stageNumber}`, status: 'PROCESSING', output: OUTPUT }),
            }
          },
        },
      ],
    })
    if (result.non2xx > 0) throw new Error(`${result.non2xx} writes failed`)
    return result
  }
  // Warm-up, not measured: the LISTEN writer took 16,000 more writes in the latency rounds, and a
  // cold process (JIT, heap) would make the comparison favour it.
  for (const writer of [writerPoll, writerDirect]) await stageUpdates(writer)
  for (let round = 0; round < (HEARTBEATS_ONLY ? 0 : ROUNDS); round++) {
    const order = round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)
    for (const notify of order) {
      const result = await stageUpdates(notify === 'on' ? writerDirect : writerPoll)
      throughput[notify].rps.push(result.requests.average)
      throughput[notify].p99.push(result.latency.p99)
    }
  }
  const writes = {
    notifyOff: { updatesPerSecond: median(throughput.off.rps), p99Ms: median(throughput.off.p99) },
    notifyOn: { updatesPerSecond: median(throughput.on.rps), p99Ms: median(throughput.on.p99) },
  }
  results['writesAt32'] = { ...writes, rounds: throughput }

  // 3. Heartbeats (10,000 runs every 10 s = 1,000/s) beside the stage-update load, interleaved.
  const runStats = async () => {
    const client = new pg.Client({ connectionString: databaseUrl })
    await client.connect()
    const { rows } = await client.query<{ upd: string; hot: string }>(
      `SELECT n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE relname = 'PipelineRun'`,
    )
    await client.end()
    return { upd: Number(rows[0]?.upd), hot: Number(rows[0]?.hot) }
  }
  let beat = 0
  const heartbeats = (writer: Instance) =>
    autocannon({
      url: writer.base,
      connections: 16,
      overallRate: HEARTBEAT_RATE,
      duration: SECONDS,
      requests: [
        {
          method: 'POST',
          setupRequest: (request) => ({
            ...request,
            // Scattered, as independent runners are: neighbours on a page rarely beat at once.
            path: `/api/pipeline/hb-${1 + ((beat++ * 7_919) % HEARTBEAT_RUNS)}/heartbeat`,
            headers,
            body: JSON.stringify({ intervalMs: 10_000 }),
          }),
        },
      ],
    })
  const beside: Record<'without' | 'with', { rps: number[]; p99: number[] }> = { without: { rps: [], p99: [] }, with: { rps: [], p99: [] } }
  const beats = { sent: 0, rps: [] as number[], p99: [] as number[], non2xx: 0 }
  const cpuPerRequest: Record<string, number[]> = {}
  const cpuBlocks: Array<{ load: string; stageUpdates: number; heartbeats: number; cpuMs: number; loadavg: string }> = []
  await sleep(1500)
  const statsBefore = await runStats()
  let stageWrites = 0
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? (['without', 'with'] as const) : (['with', 'without'] as const)
    for (const load of order) {
      const cpuBefore = await writerPoll.ask<InstanceStats>('stats', 'stats')
      const [result, beaten] = await Promise.all([stageUpdates(writerPoll), load === 'with' ? heartbeats(writerPoll) : undefined])
      const cpuAfter = await writerPoll.ask<InstanceStats>('stats', 'stats')
      const requests = result.requests.total + (beaten?.requests.total ?? 0)
      const cpuMs = (cpuAfter.cpu.user + cpuAfter.cpu.system - cpuBefore.cpu.user - cpuBefore.cpu.system) / 1000
      // The writer's CPU per request in this block (stage updates and heartbeats alike), microseconds.
      ;(cpuPerRequest[load] ??= []).push(Math.round((cpuMs * 1000) / requests))
      cpuBlocks.push({ load, stageUpdates: result.requests.total, heartbeats: beaten?.requests.total ?? 0, cpuMs: Math.round(cpuMs), loadavg: loadavg() })
      beside[load].rps.push(result.requests.average)
      beside[load].p99.push(result.latency.p99)
      stageWrites += result.requests.total
      if (beaten) {
        beats.sent += beaten.requests.total
        beats.non2xx += beaten.non2xx
        beats.rps.push(beaten.requests.average)
        beats.p99.push(beaten.latency.p99)
      }
    }
  }
  await sleep(2000)
  const statsAfter = await runStats()
  const heartbeatLoad = {
    without: { updatesPerSecond: median(beside.without.rps), p99Ms: median(beside.without.p99) },
    with: { updatesPerSecond: median(beside.with.rps), p99Ms: median(beside.with.p99) },
    heartbeats: { perSecond: median(beats.rps), p99Ms: median(beats.p99), sent: beats.sent, non2xx: beats.non2xx },
    runTable: { updates: statsAfter.upd - statsBefore.upd, hotUpdates: statsAfter.hot - statsBefore.hot, stageWrites },
    rounds: beside,
    writerCpuPerRequestUs: cpuPerRequest,
    writerCpuBlocks: cpuBlocks,
  }
  results['heartbeatsBeside'] = heartbeatLoad

  // 3. Memory per idle subscriber: 1,000 streams on the poll subscriber.
  const before = await subscriberPoll.ask<NodeJS.MemoryUsage>('memory', 'memory')
  const idle = new AbortController()
  const idleRuns = Array.from({ length: IDLE_STREAMS }, (_, i) => `bench-${firstRun + i}`)
  for (let i = 0; i < idleRuns.length; i += 100) {
    await Promise.all(idleRuns.slice(i, i + 100).map((runId) => subscribe(subscriberPoll.base, runId, () => {}, idle.signal)))
  }
  await sleep(1000)
  const after = await subscriberPoll.ask<NodeJS.MemoryUsage>('memory', 'memory')
  idle.abort()
  const memory = {
    streams: IDLE_STREAMS,
    heapPerStreamBytes: Math.round((after.heapUsed - before.heapUsed) / IDLE_STREAMS),
    rssPerStreamBytes: Math.round((after.rss - before.rss) / IDLE_STREAMS),
    externalPerStreamBytes: Math.round((after.external + after.arrayBuffers - before.external - before.arrayBuffers) / IDLE_STREAMS),
  }
  results['memory'] = memory

  results['loadAfter'] = loadavg()
  console.log(`\nload average after: ${loadavg()}`)
  // BENCH_LIVE_HEARTBEATS=1 ran only part 3: no latency or write-path table to print.
  if (!HEARTBEATS_ONLY) console.log(`\nLatency from the writer's 200 to the event at a subscriber on another instance (${STREAMS} streams; ${HIGH_STREAMS} at ${HIGH_RATE}/s; direct = LISTEN with batches on notifyPool, the default set-up):`)
  if (!HEARTBEATS_ONLY) console.log('| mode @ updates/s | samples | refused (503 or reset) | p50 | p99 | max | p99 per round |')
  if (!HEARTBEATS_ONLY) console.log('| --- | --- | --- | --- | --- | --- | --- |')
  for (const [key, value] of Object.entries(latency)) {
    const l = value as { samples: number; refused: number; p50: number; p99: number; max: number; roundP99: number[] }
    console.log(`| ${key} | ${l.samples} | ${l.refused} | ${l.p50.toFixed(1)} ms | ${l.p99.toFixed(1)} ms | ${l.max.toFixed(1)} ms | ${l.roundP99.map((v) => v.toFixed(1)).join(', ')} |`)
  }
  const pairs = (a: number[], b: number[]) => a.map((value, i) => (value / (b[i] ?? NaN)).toFixed(2))
  if (!HEARTBEATS_ONLY) {
    console.log('\nWrite path, 32 concurrent distinct stage updates (median of rounds):')
    console.log(`| polling mode | ${writes.notifyOff.updatesPerSecond.toFixed(0)}/s | p99 ${writes.notifyOff.p99Ms} ms |`)
    console.log(`| LISTEN mode  | ${writes.notifyOn.updatesPerSecond.toFixed(0)}/s | p99 ${writes.notifyOn.p99Ms} ms |`)
    console.log(`  LISTEN / polling: ${(writes.notifyOn.updatesPerSecond / writes.notifyOff.updatesPerSecond).toFixed(2)}× (per pair: ${pairs(throughput.on.rps, throughput.off.rps).join(', ')})`)
  }
  const h = heartbeatLoad
  console.log(`\nStage updates at 32 concurrent, without and with ${HEARTBEAT_RATE} heartbeats/s (${HEARTBEAT_RUNS} runs every 10 s), median of rounds:`)
  console.log(`| without | ${h.without.updatesPerSecond.toFixed(0)}/s | p99 ${h.without.p99Ms} ms |`)
  console.log(`| with    | ${h.with.updatesPerSecond.toFixed(0)}/s | p99 ${h.with.p99Ms} ms |`)
  console.log(`  with / without: ${(h.with.updatesPerSecond / h.without.updatesPerSecond).toFixed(2)}× (per pair: ${pairs(beside.with.rps, beside.without.rps).join(', ')})`)
  console.log(`  heartbeats: ${h.heartbeats.perSecond.toFixed(0)}/s, p99 ${h.heartbeats.p99Ms} ms, ${h.heartbeats.sent} sent, ${h.heartbeats.non2xx} not 2xx`)
  console.log(`  writer CPU per request (µs, per block): without ${cpuPerRequest['without']?.join(', ')}; with ${cpuPerRequest['with']?.join(', ')}`)
  console.log(`  run table: ${h.runTable.updates} updates, ${h.runTable.hotUpdates} heap-only (stage writes ${h.runTable.stageWrites}, which change the indexed updatedAt)`)
  console.log(`\nMemory per idle subscriber (${IDLE_STREAMS} open streams): heap ${memory.heapPerStreamBytes} B, RSS ${memory.rssPerStreamBytes} B, external ${memory.externalPerStreamBytes} B`)

  mkdirSync(dirname(OUTPUT_FILE), { recursive: true })
  writeFileSync(OUTPUT_FILE, `${JSON.stringify(results, null, 2)}\n`)
  console.log(`\nwritten to ${OUTPUT_FILE}`)
} finally {
  await cleanUp()
}
