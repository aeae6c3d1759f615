/**
 * Stage updates against the servers of two checkouts in ONE interleaved run: this tree's
 * `sdk-server.ts` and the one of `BENCH_OTHER_ROOT` (a worktree of another commit with its
 * `dist/` built), in the Prisma path and the pool path each, plus the hand-written baseline,
 * on one throwaway database of 100,000 runs. Every block gives each server's updates/s and
 * server CPU per update; for each round the ratio this-tree / other-tree is taken directly
 * (no baseline between them), and the medians over the rounds are printed. What
 * bench/server.bench.ts run once per checkout cannot give on a noisy machine: both versions
 * under the same load at the same minutes.
 *
 * Run: DATABASE_URL=… BENCH_OTHER_ROOT=/work/wt/bench-base npx tsx bench/prototype/server-head-to-head.ts
 * Knobs: BENCH_SECONDS (2), BENCH_ROUNDS (6), BENCH_CONCURRENCY (8,32), BENCH_OUTPUT.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import pg from 'pg'
import { prepareBench } from '../prepare.js'
import { requireDatabaseUrl, withAdmin } from '../servers/database.js'
import { BENCH_SECRET } from '../servers/shared.js'

const serverUrl = requireDatabaseUrl('server head-to-head')
const here = fileURLToPath(new URL('../..', import.meta.url))
const other = process.env['BENCH_OTHER_ROOT'] ?? ''
if (!other) throw new Error('set BENCH_OTHER_ROOT to the other checkout (with its dist/ built)')
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 2)
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 6)
const CONCURRENCY = (process.env['BENCH_CONCURRENCY'] ?? '8,32').split(',').map(Number)
const RUNS = 100_000
const OUTPUT = JSON.stringify({ summary: 'x'.repeat(2_000) })

prepareBench()
const { openDatabase } = await import('../../examples/shared/database.js')

const name = `pss_bench_${randomBytes(5).toString('hex')}`
await withAdmin(serverUrl, (c) => c.query(`CREATE DATABASE "${name}"`))
const dbUrl = new URL(serverUrl)
dbUrl.pathname = `/${name}`
const children: ChildProcess[] = []
async function cleanUp(): Promise<void> {
  for (const child of children.splice(0)) child.kill()
  await withAdmin(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).catch(() => undefined)
}

interface Server { name: string; port: number; cpu(): Promise<number> }
async function start(label: string, root: string, file: string, env: Record<string, string>): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'bench/servers', file)], {
    cwd: root,
    env: { ...process.env, ...env, BENCH_DATABASE_URL: dbUrl.toString(), NODE_ENV: 'production' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  children.push(child)
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${label} exited with ${code}`)))
    child.on('message', (m: { port?: number }) => m.port && resolve(m.port))
  })
  const cpu = () =>
    new Promise<number>((resolve) => {
      const on = (m: { cpu?: NodeJS.CpuUsage }) => {
        if (!m.cpu) return
        child.off('message', on)
        resolve(m.cpu.user + m.cpu.system)
      }
      child.on('message', on)
      child.send('cpu')
    })
  return { name: label, port, cpu }
}

let next = 0
function pair(): { runId: string; stageNumber: number } {
  const i = next++
  const stageNumber = 1 + Math.floor(i / RUNS)
  if (stageNumber > 199) throw new Error('out of distinct (run, stage) pairs')
  return { runId: `bench-${1 + (i % RUNS)}`, stageNumber }
}

async function block(server: Server, connections: number, seconds = SECONDS): Promise<{ perSecond: number; cpuUs: number; p99: number; errors: number }> {
  const before = await server.cpu()
  const result = await autocannon({
    url: `http://127.0.0.1:${server.port}`,
    connections,
    duration: seconds,
    requests: [{
      method: 'POST',
      headers: { 'x-webhook-secret': BENCH_SECRET, 'content-type': 'application/json' },
      setupRequest: (request) => {
        const { runId, stageNumber } = pair()
        return { ...request, path: `/api/pipeline/${runId}/stage-update`, body: JSON.stringify({ stageNumber, stageName: `Stage ${stageNumber}`, status: 'COMPLETED', output: OUTPUT }) }
      },
    }],
  })
  const after = await server.cpu()
  const ok = result['2xx']
  return { perSecond: ok / seconds, cpuUs: ok ? (after - before) / ok : Number.NaN, p99: result.latency.p99, errors: result.non2xx + result.errors + result.timeouts }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

try {
  console.log(`head-to-head: seeding ${RUNS} runs …`)
  const db = await openDatabase({ url: dbUrl.toString() })
  await db.close()
  const seed = new pg.Client({ connectionString: dbUrl.toString() })
  await seed.connect()
  await seed.query(`INSERT INTO "PipelineRun" ("id", "status", "updatedAt") SELECT 'bench-' || g, 'PENDING', now() FROM generate_series(1, $1::int) g`, [RUNS])
  await seed.query('ANALYZE')
  await seed.end()
  const servers = [
    await start('new pool', here, 'sdk-server.ts', { BENCH_MODE: 'pool' }),
    await start('base pool', other, 'sdk-server.ts', { BENCH_MODE: 'pool' }),
    await start('new prisma', here, 'sdk-server.ts', { BENCH_MODE: 'prisma' }),
    await start('base prisma', other, 'sdk-server.ts', { BENCH_MODE: 'prisma' }),
    await start('baseline', here, 'baseline-server.ts', {}),
  ]
  for (const s of servers) await block(s, 8, 1) // warm up
  const results: Record<string, unknown> = { other, seconds: SECONDS, rounds: ROUNDS }
  for (const connections of CONCURRENCY) {
    const rows: Record<string, Array<{ perSecond: number; cpuUs: number; p99: number; errors: number }>> = {}
    for (let round = 0; round < ROUNDS; round++) {
      // A B A B: base and new of each path back to back, the order of the pair and of the
      // whole round alternating, so neither always follows the other.
      const order = round % 2 === 0 ? servers : [...servers].reverse()
      for (const s of order) (rows[s.name] ??= []).push(await block(s, connections))
    }
    results[String(connections)] = rows
    console.log(`\n${connections} concurrent, ${ROUNDS} rounds of ${SECONDS} s:`)
    for (const s of servers) {
      const r = rows[s.name]!
      console.log(`  ${s.name.padEnd(12)} ${median(r.map((x) => x.perSecond)).toFixed(0).padStart(5)}/s  CPU ${median(r.map((x) => x.cpuUs)).toFixed(0).padStart(5)} µs/update  errors ${r.reduce((a, x) => a + x.errors, 0)}`)
    }
    for (const path of ['pool', 'prisma']) {
      const n = rows[`new ${path}`]!
      const b = rows[`base ${path}`]!
      const rate = n.map((x, i) => x.perSecond / b[i]!.perSecond)
      const cpu = n.map((x, i) => x.cpuUs / b[i]!.cpuUs)
      const rateVsBaseline = (r: typeof n) => median(r.map((x, i) => x.perSecond / rows['baseline']![i]!.perSecond))
      const cpuVsBaseline = (r: typeof n) => median(r.map((x, i) => x.cpuUs / rows['baseline']![i]!.cpuUs))
      console.log(
        `  ${path}: new/base rate per round ${rate.map((x) => x.toFixed(2)).join(' ')} (median ${median(rate).toFixed(2)}), CPU per update ${cpu.map((x) => x.toFixed(2)).join(' ')} (median ${median(cpu).toFixed(2)})` +
          `; vs baseline: base rate ${rateVsBaseline(b).toFixed(2)} CPU ${cpuVsBaseline(b).toFixed(2)}, new rate ${rateVsBaseline(n).toFixed(2)} CPU ${cpuVsBaseline(n).toFixed(2)}`,
      )
    }
  }
  if (process.env['BENCH_OUTPUT']) writeFileSync(process.env['BENCH_OUTPUT'], `${JSON.stringify(results, null, 2)}\n`)
} finally {
  await cleanUp()
}
