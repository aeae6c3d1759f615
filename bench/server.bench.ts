/**
 * The server hot path on real PostgreSQL, against a hand-written baseline (issue 12).
 *
 * Servers, each in its own child process (so that `process.cpuUsage()` measures one server):
 * - `sdk`: the Express adapter with PrismaStore, every statement through the Prisma client (the default);
 * - `sdk+pool`: the same with the opt-in fast path (`PrismaStore({ pool })`, the app's `pg` pool), named statements (the default on a direct connection);
 * - `sdk+unnamed`: the same with `namedStatements: false` (unnamed statements: what the default turns to behind a transaction pooler);
 * - `baseline`: `node:http` + `pg`, the minimal correct transaction (bench/servers/baseline-server.ts);
 * - `original`: the route the package replaces, Prisma without a transaction (stage updates only).
 * All use a pool of 10 connections on one throwaway database seeded with 100,000 runs.
 *
 * Load: autocannon, in this process, every stage update a distinct (run, stage) with a 2 KB
 * output, so every one is applied. Per concurrency the variants run in interleaved blocks
 * (A B C A B C …), so drift and the machine's other load hit them alike; each cell is the median
 * over the rounds. Then `GET /status` the same way, and PrismaStore on a table of 1,000 runs
 * against the one of 100,000, with the same requests (1,000 runs × stages 10 on) on both, so
 * that only the table's size differs (cost must not grow with it).
 *
 * Prints a table with updates/s, p50/p99 latency, server CPU per update and the ratios to the
 * baseline, and writes everything to bench/results/server.json.
 *
 * Needs DATABASE_URL (a PostgreSQL server where it may create and drop a database); without it,
 * it says so and skips. Run: DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres npm run bench
 * Knobs: BENCH_SECONDS (per block, default 3), BENCH_ROUNDS (default 4), BENCH_CONCURRENCY (default
 * 1,8,32,64), BENCH_PARTS (default update,status,size), BENCH_FLAGGED (more SDK servers with node flags, e.g.
 * `pool:--no-maglev`), BENCH_OUTPUT (default bench/results/latest/server.json; bench/results/server.json is the run behind bench/README.md).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import pg from 'pg'
import { defaultOutput, prepareBench } from './prepare.js'
import { requireDatabaseUrl, withAdmin } from './servers/database.js'
import { BENCH_SECRET } from './servers/shared.js'

const serverUrl = requireDatabaseUrl('server benchmark (the server part)')

const root = fileURLToPath(new URL('..', import.meta.url))
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 3)
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 4)
const CONCURRENCY = (process.env['BENCH_CONCURRENCY'] ?? '1,8,32,64').split(',').map(Number)
const PARTS = (process.env['BENCH_PARTS'] ?? 'update,status,size').split(',')
const BIG = 100_000
const SMALL = 1_000
/**
 * `BENCH_STAGES`: the app's catalogue, default 200 stages (the runs of earlier tables). The SDK
 * stores the catalogue on each run and reads it with the run on every update; the original route
 * and the baseline never read one, so a long catalogue costs only the SDK's variants.
 */
const CATALOGUE_STAGES = Number(process.env['BENCH_STAGES'] ?? 200)
const STAGES_USED = CATALOGUE_STAGES - 1
const OUTPUT = JSON.stringify({ summary: 'x'.repeat(2_000) })

prepareBench()
// Loaded only now: it imports the Prisma client that prepareBench() generates.
const { openDatabase } = await import('../examples/shared/database.js')

// ---- databases -------------------------------------------------------------------------------
const created: string[] = []
const admin = <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => withAdmin(serverUrl, fn)
async function createDatabase(runs: number): Promise<string> {
  const name = `pss_bench_${randomBytes(5).toString('hex')}`
  await admin((client) => client.query(`CREATE DATABASE "${name}"`))
  created.push(name)
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  const db = await openDatabase({ url: url.toString() })
  await db.close()
  const seed = new pg.Client({ connectionString: url.toString() })
  await seed.connect()
  await seed.query(
    `INSERT INTO "PipelineRun" ("id", "status", "updatedAt") SELECT 'bench-' || g, 'PENDING', now() FROM generate_series(1, $1::int) g`,
    [runs],
  )
  await seed.query('ANALYZE')
  await seed.end()
  return url.toString()
}

// ---- servers ---------------------------------------------------------------------------------
interface BenchServer {
  name: string
  port: number
  child: ChildProcess
  cpu(): Promise<number>
}
async function startServer(name: string, file: string, env: Record<string, string>, nodeFlags: string[] = []): Promise<BenchServer> {
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', join(root, 'bench/servers', file)], {
    cwd: root,
    env: { ...process.env, ...env, BENCH_STAGE_COUNT: String(CATALOGUE_STAGES), NODE_ENV: 'production' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)))
    child.on('message', (message: { port?: number }) => {
      if (message.port) resolve(message.port)
    })
  })
  const cpu = () =>
    new Promise<number>((resolve) => {
      const onMessage = (message: { cpu?: NodeJS.CpuUsage }) => {
        if (!message.cpu) return
        child.off('message', onMessage)
        resolve(message.cpu.user + message.cpu.system)
      }
      child.on('message', onMessage)
      child.send('cpu')
    })
  return { name, port, child, cpu }
}

// ---- load ------------------------------------------------------------------------------------
/**
 * Hands out distinct (run, stage) pairs over runs 1..`runs`: stage `firstStage` of every run, then
 * the next stage, …
 */
function pairs(runs: number, firstStage = 1) {
  let next = 0
  return () => {
    const i = next++
    const stage = firstStage + Math.floor(i / runs)
    if (stage > STAGES_USED) throw new Error('the benchmark ran out of distinct (run, stage) pairs')
    return { runId: `bench-${1 + (i % runs)}`, stageNumber: stage }
  }
}

interface Block {
  server: string
  kind: 'update' | 'status'
  concurrency: number
  perSecond: number
  p50: number
  p99: number
  cpuPerRequestUs: number
  errors: number
}

async function block(server: BenchServer, kind: 'update' | 'status', concurrency: number, next: () => { runId: string; stageNumber: number }, seconds = SECONDS): Promise<Block> {
  const cpuBefore = await server.cpu()
  const result = await autocannon({
    url: `http://127.0.0.1:${server.port}`,
    connections: concurrency,
    duration: seconds,
    requests: [
      {
        method: kind === 'update' ? 'POST' : 'GET',
        headers: { 'x-webhook-secret': BENCH_SECRET, 'content-type': 'application/json' },
        setupRequest: (request) => {
          const { runId, stageNumber } = next()
          if (kind === 'status') return { ...request, path: `/api/pipeline/${runId}/status` }
          return {
            ...request,
            path: `/api/pipeline/${runId}/stage-update`,
            body: JSON.stringify({ stageNumber, stageName: `Stage ${stageNumber}`, status: 'COMPLETED', output: OUTPUT }),
          }
        },
      },
    ],
  })
  const cpuAfter = await server.cpu()
  const ok = result['2xx']
  return {
    server: server.name,
    kind,
    concurrency,
    perSecond: ok / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuPerRequestUs: ok > 0 ? (cpuAfter - cpuBefore) / ok : Number.NaN,
    errors: result.non2xx + result.errors + result.timeouts,
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

interface Cell {
  perSecond: number
  p50: number
  p99: number
  cpuPerRequestUs: number
  errors: number
}
function summarize(blocks: Block[]): Cell {
  return {
    perSecond: median(blocks.map((b) => b.perSecond)),
    p50: median(blocks.map((b) => b.p50)),
    p99: median(blocks.map((b) => b.p99)),
    cpuPerRequestUs: median(blocks.map((b) => b.cpuPerRequestUs)),
    errors: blocks.reduce((sum, b) => sum + b.errors, 0),
  }
}

async function interleaved(
  servers: BenchServer[],
  kind: 'update' | 'status',
  concurrency: number,
  nextFor: (server: BenchServer) => () => { runId: string; stageNumber: number },
  rounds = ROUNDS,
  seconds = SECONDS,
) {
  const blocks: Block[] = []
  for (let round = 0; round < rounds; round++) {
    // Alternate the order too, so that no server always runs right after the same other one.
    const order = round % 2 === 0 ? servers : [...servers].reverse()
    for (const server of order) blocks.push(await block(server, kind, concurrency, nextFor(server), seconds))
  }
  const cells: Record<string, Cell> = {}
  for (const server of servers) cells[server.name] = summarize(blocks.filter((b) => b.server === server.name))
  return { blocks, cells }
}

// ---- run ---------------------------------------------------------------------------------------
const children: ChildProcess[] = []
process.once('uncaughtException', (error) => {
  console.error(error)
  void cleanUp().finally(() => process.exit(1))
})
const results: Record<string, unknown> = {
  machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
  settings: { seconds: SECONDS, rounds: ROUNDS, concurrency: CONCURRENCY, runs: BIG, poolSize: 10, outputBytes: OUTPUT.length },
}
try {
  console.log(`server benchmark: seeding ${BIG.toLocaleString('en')} and ${SMALL.toLocaleString('en')} runs …`)
  const bigUrl = await createDatabase(BIG)
  const smallUrl = await createDatabase(SMALL)
  const sdk = await startServer('sdk', 'sdk-server.ts', { BENCH_DATABASE_URL: bigUrl, BENCH_MODE: 'prisma' })
  const sdkPool = await startServer('sdk+pool', 'sdk-server.ts', { BENCH_DATABASE_URL: bigUrl, BENCH_MODE: 'pool' })
  const sdkUnnamed = await startServer('sdk+unnamed', 'sdk-server.ts', { BENCH_DATABASE_URL: bigUrl, BENCH_MODE: 'pool-unnamed' })
  const baseline = await startServer('baseline', 'baseline-server.ts', { BENCH_DATABASE_URL: bigUrl })
  const original = await startServer('original', 'original-route.ts', { BENCH_DATABASE_URL: bigUrl })
  // Two more processes of the same server, started and warmed alike, one per table size: a
  // process that served the whole benchmark before would differ by more than its table.
  const sdkLarge = await startServer('sdk@100k', 'sdk-server.ts', { BENCH_DATABASE_URL: bigUrl, BENCH_MODE: 'prisma' })
  const sdkSmall = await startServer('sdk@1k', 'sdk-server.ts', { BENCH_DATABASE_URL: smallUrl, BENCH_MODE: 'prisma' })
  children.push(sdk.child, sdkPool.child, sdkUnnamed.child, baseline.child, original.child, sdkLarge.child, sdkSmall.child)
  // BENCH_FLAGGED: more SDK servers with node flags, interleaved with the rest (a deployment
  // setting's cost), e.g. `pool:--no-maglev,prisma:--no-maglev` adds `sdk+pool --no-maglev` and
  // `sdk --no-maglev`.
  const flagged: BenchServer[] = []
  for (const entry of (process.env['BENCH_FLAGGED'] ?? '').split(',').filter(Boolean)) {
    const [mode, flags = ''] = entry.split(':') as [string, string?]
    const nodeFlags = flags.split(' ').filter(Boolean)
    const server = await startServer(`${mode === 'prisma' ? 'sdk' : `sdk+${mode}`} ${nodeFlags.join(' ')}`, 'sdk-server.ts', { BENCH_DATABASE_URL: bigUrl, BENCH_MODE: mode }, nodeFlags)
    children.push(server.child)
    flagged.push(server)
  }
  const servers = [sdk, sdkPool, sdkUnnamed, ...flagged, baseline]
  const bigPairs = pairs(BIG)
  const pairsFor = () => bigPairs

  console.log('warming up …')
  for (const server of [...servers, original]) await block(server, 'update', 8, bigPairs, 2)
  // Stages 1–4 of the first runs belong to the main part; the table-size part uses later ones.
  for (const server of [sdkLarge, sdkSmall]) await block(server, 'update', 8, pairs(SMALL, 5), 2)
  const updates: Record<number, Record<string, Cell>> = {}
  const statuses: Record<number, Record<string, Cell>> = {}
  const allBlocks: Block[] = []

  for (const concurrency of PARTS.includes('update') ? CONCURRENCY : []) {
    const { blocks, cells } = await interleaved([...servers, original], 'update', concurrency, pairsFor)
    updates[concurrency] = cells
    allBlocks.push(...blocks)
    printRow('stage update', concurrency, cells)
  }

  // Status reads of runs that have stages (the first runs got theirs above).
  let read = 0
  const readPairs = () => () => ({ runId: `bench-${1 + (read++ % 5_000)}`, stageNumber: 0 })
  for (const concurrency of PARTS.includes('status') ? [8, 32] : []) {
    const { blocks, cells } = await interleaved(servers, 'status', concurrency, readPairs)
    statuses[concurrency] = cells
    allBlocks.push(...blocks)
    printRow('GET /status', concurrency, cells)
  }

  let tableSize: { cells: Record<string, Cell>; throughputRatio: number; cpuRatio: number } | undefined
  if (PARTS.includes('size')) {
    // The same 1,000 runs and the same later stages on both tables: only the table's size differs.
    // Both processes are warmed alike right before (these blocks are discarded).
    const sizePairs = new Map([[sdkLarge, pairs(SMALL, 10)], [sdkSmall, pairs(SMALL, 10)]])
    await interleaved([sdkLarge, sdkSmall], 'update', 8, (server) => sizePairs.get(server) as () => { runId: string; stageNumber: number }, 3, 2)
    const { blocks: sizeBlocks, cells: size } = await interleaved(
      [sdkLarge, sdkSmall],
      'update',
      8, (server) => sizePairs.get(server) as () => { runId: string; stageNumber: number },
      // Many short rounds: a difference of 10% must stand out of this machine's noise.
      4 * ROUNDS,
      2,
    )
    allBlocks.push(...sizeBlocks)
    const sizeRatio = (size['sdk@100k']?.cpuPerRequestUs ?? 0) / (size['sdk@1k']?.cpuPerRequestUs ?? 1)
    const sizeThroughput = (size['sdk@100k']?.perSecond ?? 0) / (size['sdk@1k']?.perSecond ?? 1)
    console.log(
      `\ntable size (PrismaStore, c=8, two fresh processes alike): ${BIG.toLocaleString('en')} runs vs ${SMALL.toLocaleString('en')}: ` +
        `updates/s ×${sizeThroughput.toFixed(2)}, server CPU per update ×${sizeRatio.toFixed(2)}`,
    )
    tableSize = { cells: size, throughputRatio: sizeThroughput, cpuRatio: sizeRatio }
  }

  Object.assign(results, { updates, statuses, tableSize, blocks: allBlocks })
  const output = resolve(root, process.env['BENCH_OUTPUT'] ?? defaultOutput('server.json'))
  mkdirSync(dirname(output), { recursive: true })
  writeFileSync(output, `${JSON.stringify(results, null, 2)}\n`)
  console.log(`\nwrote ${output}`)
} finally {
  await cleanUp()
}

/** Stops the servers and drops the databases; also after a crash inside the load generator. */
async function cleanUp(): Promise<void> {
  for (const child of children.splice(0)) child.kill()
  for (const name of created.splice(0)) await admin((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).catch(() => undefined)
}

function printRow(what: string, concurrency: number, cells: Record<string, Cell>): void {
  const base = cells['baseline'] as Cell
  const line = (name: string) => {
    const cell = cells[name] as Cell
    const original = cells['original']
    const versus = original && name.startsWith('sdk') ? `; ×${(cell.perSecond / original.perSecond).toFixed(2)} rate of original` : ''
    const ratio = name === 'baseline' ? '' : ` (×${(cell.perSecond / base.perSecond).toFixed(2)} rate, ×${(cell.p99 / base.p99).toFixed(2)} p99, ×${(cell.cpuPerRequestUs / base.cpuPerRequestUs).toFixed(2)} CPU${versus})`
    return `  ${name.padEnd(11)} ${cell.perSecond.toFixed(0).padStart(6)}/s  p50 ${cell.p50.toFixed(1).padStart(5)} ms  p99 ${cell.p99.toFixed(1).padStart(6)} ms  CPU ${cell.cpuPerRequestUs.toFixed(0).padStart(5)} µs${cell.errors ? `  ${cell.errors} errors` : ''}${ratio}`
  }
  console.log(`\n${what}, ${concurrency} concurrent:`)
  for (const name of Object.keys(cells)) console.log(line(name))
}

/** Builds dist/ when it is missing or older than src/ (the servers import the package by name). */
