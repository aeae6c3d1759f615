/**
 * Status reads with and without a read replica (issue 32): `GET /status` through the handlers in
 * process (`handlers.fetch`: authentication, the read, the JSON; no socket) on a throwaway primary
 * and its streaming standby on this machine (test/support/replica.ts: `initdb`, `pg_basebackup`,
 * free ports; the cluster on 5432 is never touched).
 *
 * Two handlers instances on the same primary pool (10 connections): `primary` reads the primary;
 * `replica` has `readReplica: { pool }` (10 connections on the standby). BENCH_CLIENTS concurrent
 * readers each read a random run of BENCH_REPLICA_RUNS (5 stages each, unchanged, so every read
 * of `replica` is served by the standby) for BENCH_PHASE_MS, phases interleaved
 * primary, replica, primary, replica… (BENCH_ROUNDS of each) so the machine's other load hits
 * both alike. Measured per phase: reads per second, and the primary's CPU per read: the user +
 * system time of every process of the primary's postmaster (its backends, walsender, checkpointer,
 * …; /proc/<pid>/stat, in clock ticks) over the phase, divided by the reads. Reported: each mode's
 * median, the ratios replica / primary, and the load average before and after.
 *
 * Needs the PostgreSQL 15 server binaries (PG_BIN_DIR, default /usr/lib/postgresql/15/bin) and
 * runs as root or postgres; without them it says so and skips. Writes
 * bench/results/latest/read-replica.json (BENCH_OUTPUT=bench/results/read-replica.json records a run).
 * Run: npx tsx bench/read-replica.bench.ts
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { defaultOutput } from './prepare.js'
import { replicaTool } from '../test/support/optional-tools.js'

const RUNS = Number(process.env['BENCH_REPLICA_RUNS'] ?? 1_000)
const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 16)
const PHASE_MS = Number(process.env['BENCH_PHASE_MS'] ?? 2_000)
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3)
const OUTPUT = process.env['BENCH_OUTPUT'] ?? defaultOutput('read-replica.json')
const SECRET = 'bench-secret-read-replica'

const binDir = replicaTool('bench/read-replica.bench.ts', 'the read-replica benchmark').path
if (!binDir) {
  console.log('read-replica benchmark skipped: no PostgreSQL server binaries (apt-get install -y postgresql-15, or set PG_BIN_DIR)')
  process.exit(0)
}
// The generated Prisma client only (this benchmark imports the sources, not dist/).
const root = fileURLToPath(new URL('..', import.meta.url))
if (spawnSync(process.execPath, [join(root, 'scripts/prisma-generate.mjs'), '--if-stale'], { cwd: root, stdio: 'inherit' }).status !== 0) {
  throw new Error('npm run prisma:generate failed')
}
const { startReplicaCluster } = await import('../test/support/replica.js')
const { openDatabase } = await import('../examples/shared/database.js')
const { createPipelineStatusHandlers, createPrismaStore } = await import('../src/server/index.js')

/** User + system clock ticks of every process whose parent is `postmaster` (and of the postmaster). */
function primaryTicks(postmaster: number): number {
  let ticks = 0
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
    } catch {
      continue // ended meanwhile
    }
    // Fields after the command (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ppid = Number(fields[1])
    if (Number(entry) !== postmaster && ppid !== postmaster) continue
    ticks += Number(fields[11]) + Number(fields[12]) // utime, stime
  }
  return ticks
}

const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100
const loadBefore = loadavg()
const cluster = await startReplicaCluster(binDir)
const db = await openDatabase({ url: cluster.primaryUrl, poolSize: 10, logger: { warn: () => {} } })
const replicaPool = new pg.Pool({ connectionString: cluster.replicaUrl, max: 10 })
const quiet = { warn: () => {}, error: () => {} }
try {
  const direct = new pg.Client({ connectionString: cluster.primaryUrl })
  await direct.connect()
  await direct.query(
    `INSERT INTO "PipelineRun" ("id", "status", "updatedAt", "createdAt")
     SELECT 'run-' || g, 'PROCESSING', now(), now() FROM generate_series(1, $1::int) g`,
    [RUNS],
  )
  await direct.query(
    `INSERT INTO "StageOutput" ("id", "runId", "stageNumber", "stageName", "status", "output", "updatedAt")
     SELECT gen_random_uuid()::text, 'run-' || g, n, 'Stage ' || n, 'COMPLETED', repeat('x', 200), now()
     FROM generate_series(1, $1::int) g CROSS JOIN generate_series(1, 5) n`,
    [RUNS],
  )
  await direct.query('VACUUM ANALYZE')
  await direct.end()
  await cluster.caughtUp()
  const postmaster = cluster.primaryPid()

  const store = createPrismaStore({ prisma: db.prisma, pool: db.connections!.pool })
  const modes = {
    primary: createPipelineStatusHandlers({ store, secret: SECRET, logger: quiet }),
    replica: createPipelineStatusHandlers({ store, secret: SECRET, logger: quiet, readReplica: { pool: replicaPool } }),
  }
  type Mode = keyof typeof modes

  /** CLIENTS readers for PHASE_MS on `mode`: reads, reads per second, primary CPU µs per read. */
  const phase = async (mode: Mode) => {
    const handlers = modes[mode]
    const until = performance.now() + PHASE_MS
    let reads = 0
    const ticksBefore = primaryTicks(postmaster)
    const started = performance.now()
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (performance.now() < until) {
          const runId = `run-${1 + Math.floor(Math.random() * RUNS)}`
          const response = await handlers.fetch(new Request(`http://bench.local/api/pipeline/${runId}/status`, { headers: { 'X-Webhook-Secret': SECRET } }))
          if (response.status !== 200) throw new Error(`${runId}: ${response.status} ${await response.text()}`)
          await response.arrayBuffer()
          reads++
        }
      }),
    )
    const seconds = (performance.now() - started) / 1000
    const cpuSeconds = (primaryTicks(postmaster) - ticksBefore) / TICKS_PER_SECOND
    return { mode, reads, readsPerSecond: reads / seconds, primaryCpuUsPerRead: (cpuSeconds * 1e6) / reads }
  }

  // Warm-up: every run read once in each mode (plans, caches, connections).
  for (const mode of ['primary', 'replica'] as const) await phase(mode)
  const phases: Awaited<ReturnType<typeof phase>>[] = []
  for (let round = 0; round < ROUNDS; round++) for (const mode of ['primary', 'replica'] as const) phases.push(await phase(mode))
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b)
    const mid = Math.floor(sorted.length / 2)
    return sorted.length % 2 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2
  }
  const summary = Object.fromEntries(
    (['primary', 'replica'] as const).map((mode) => {
      const own = phases.filter((p) => p.mode === mode)
      return [mode, { readsPerSecond: median(own.map((p) => p.readsPerSecond)), primaryCpuUsPerRead: median(own.map((p) => p.primaryCpuUsPerRead)) }]
    }),
  ) as Record<Mode, { readsPerSecond: number; primaryCpuUsPerRead: number }>
  const stats = modes.replica.readStats()
  const loadAfter = loadavg()
  console.log(`\n${RUNS} runs, ${CLIENTS} concurrent readers, ${ROUNDS} × ${PHASE_MS} ms per mode, interleaved; ${TICKS_PER_SECOND} ticks/s`)
  console.log('| phase | mode | reads/s | primary CPU µs/read |\n| --- | --- | --- | --- |')
  phases.forEach((p, i) => console.log(`| ${i + 1} | ${p.mode} | ${p.readsPerSecond.toFixed(0)} | ${p.primaryCpuUsPerRead.toFixed(1)} |`))
  console.log(`\nmedians: primary ${summary.primary.readsPerSecond.toFixed(0)} reads/s, ${summary.primary.primaryCpuUsPerRead.toFixed(1)} µs/read; ` +
    `replica ${summary.replica.readsPerSecond.toFixed(0)} reads/s, ${summary.replica.primaryCpuUsPerRead.toFixed(1)} µs/read`)
  console.log(`ratios replica/primary: reads/s ${(summary.replica.readsPerSecond / summary.primary.readsPerSecond).toFixed(2)}×, ` +
    `primary CPU per read ${(summary.replica.primaryCpuUsPerRead / summary.primary.primaryCpuUsPerRead).toFixed(2)}×`)
  console.log(`replica instance: ${stats.replicaReads} replica reads, fallbacks ${JSON.stringify(stats.primaryFallbacks)}`)
  console.log(`load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`)
  mkdirSync(dirname(OUTPUT), { recursive: true })
  writeFileSync(
    OUTPUT,
    `${JSON.stringify({ runs: RUNS, clients: CLIENTS, phaseMs: PHASE_MS, rounds: ROUNDS, loadBefore, loadAfter, phases, summary, replicaStats: stats }, null, 2)}\n`,
  )
  console.log(`written to ${OUTPUT}`)
  await Promise.all(Object.values(modes).map((handlers) => handlers.close()))
} finally {
  await replicaPool.end()
  await db.close()
  await cluster.stop()
}
