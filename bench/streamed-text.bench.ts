/**
 * What one streamed chunk costs the server when a run's text is already long: the server's CPU
 * per chunk (`process.cpuUsage()` of its process) with 1 KB and with 200 KB of text streamed
 * before, A/B against an older source tree, interleaved A B B A, with the load average beside
 * every phase; and the bytes of streamed text the live streams read per chunk (counted in the
 * store). Real PostgreSQL (PrismaStore on the `pg` pool); the database's own CPU is not counted.
 *
 * Each phase: a fresh run with stage 1 PROCESSING and the text so far (chunks of 25 KB), then two
 * subscribers, as a runner and a page make them: the runner's run-end watch (`GET
 * /events?run=<id>&view=summary`) and the page's run stream (`GET /<id>/events?outputs=changed`);
 * then BENCH_CHUNKS chunks of 100 B, one after the other, each waited for until the page's stream
 * sent its `output` event.
 *
 * A/B: BENCH_BASE_SRC is the root of the older tree (its `src/`), e.g. main before this change:
 *   mkdir -p /tmp/base && git archive <commit> src | tar -x -C /tmp/base
 *   cp -r src/generated /tmp/base/src/ && ln -s "$PWD/node_modules" /tmp/base/node_modules
 * Without it, only this tree is measured. Needs DATABASE_URL. Knobs: BENCH_CHUNKS (default 60),
 * BENCH_ROUNDS (A B B A groups per size, default 2), BENCH_STREAMED_TEXT (output, default
 * bench/results/latest/streamed-text.json).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { defaultOutput } from './prepare.js'
import { createThrowawayDatabase, requireDatabaseUrl } from './servers/database.js'
import { BENCH_SECRET } from './servers/shared.js'
import { openEventStream } from './sse.js'

const serverUrl = requireDatabaseUrl('streamed-text benchmark')
const root = fileURLToPath(new URL('..', import.meta.url))
const BASE_SRC = process.env['BENCH_BASE_SRC']
const CHUNKS = Number(process.env['BENCH_CHUNKS'] ?? 60)
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 2)
const SIZES = [1_000, 200_000]
const OUTPUT_FILE = resolve(root, process.env['BENCH_STREAMED_TEXT'] ?? defaultOutput('streamed-text.json'))
const load = () => loadavg()[0]!.toFixed(2)
const headers = { 'X-Webhook-Secret': BENCH_SECRET, 'Content-Type': 'application/json' }
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : Math.round((sorted[middle - 1]! + sorted[middle]!) / 2)
}

// ---- database --------------------------------------------------------------------------------
const database = await createThrowawayDatabase(serverUrl, 'pss_bench_text')
const databaseUrl = database.url
{
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  const migrations = join(root, 'prisma/migrations')
  for (const name of readdirSync(migrations).filter((entry) => /^\d/.test(entry)).sort()) {
    await client.query(readFileSync(join(migrations, name, 'migration.sql'), 'utf8'))
  }
  await client.end()
}

// ---- servers ---------------------------------------------------------------------------------
interface Stats {
  cpu: NodeJS.CpuUsage
  withText: number
  withoutText: number
  textBytes: number
  chunkReads: number
  chunkBytes: number
}
interface Instance {
  name: string
  base: string
  child: ChildProcess
  stats(): Promise<Stats>
}
async function startInstance(name: string, srcRoot: string): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'bench/servers/streamed-text-server.ts')], {
    cwd: root,
    env: { ...process.env, BENCH_DATABASE_URL: databaseUrl, BENCH_SRC_ROOT: srcRoot, NODE_ENV: 'production' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const port = await new Promise<number>((resolvePort, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)))
    child.on('message', (message: { port?: number }) => message.port && resolvePort(message.port))
  })
  const stats = () =>
    new Promise<Stats>((resolveStats) => {
      const onMessage = (message: { stats?: Stats }) => {
        if (!message.stats) return
        child.off('message', onMessage)
        resolveStats(message.stats)
      }
      child.on('message', onMessage)
      child.send('stats')
    })
  return { name, base: `http://127.0.0.1:${port}/api/pipeline`, child, stats }
}

async function post(base: string, path: string, body: unknown): Promise<void> {
  const response = await fetch(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body) })
  if (!response.ok) throw new Error(`POST ${path} answered ${response.status}: ${await response.text()}`)
  await response.arrayBuffer()
}

interface Phase {
  variant: string
  size: number
  load: string
  cpuUsPerChunk: number
  textBytesReadPerChunk: number
  chunkBytesReadPerChunk: number
  summaryEvents: number
}
let phaseNumber = 0
async function phase(instance: Instance, size: number): Promise<Phase> {
  const runId = `text-${size}-${phaseNumber++}`
  const { base } = instance
  await post(base, '/runs', { id: runId })
  await post(base, `/${runId}/stage-update`, { stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING' })
  let seq = 0
  for (let filled = 0; filled < size; filled += 25_000) await post(base, `/${runId}/stages/1/output`, { seq: seq++, text: 'p'.repeat(Math.min(25_000, size - filled)) })
  const controller = new AbortController()
  let summaryEvents = 0
  let lastSeq = -1
  let waiter: (() => void) | undefined
  await openEventStream(`${base}/events?run=${runId}&view=summary`, 'ready', () => void (summaryEvents += 1), controller.signal)
  await openEventStream(`${base}/${runId}/events?outputs=changed`, 'snapshot', (name, data) => {
    if (name !== 'output') return
    lastSeq = (JSON.parse(data) as { seq: number }).seq
    waiter?.()
  }, controller.signal)
  await sleep(200)
  const summaryBefore = summaryEvents
  const before = await instance.stats()
  const phaseLoad = load()
  for (let i = 0; i < CHUNKS; i++) {
    const current = seq++
    const shown = new Promise<void>((r) => (waiter = () => lastSeq >= current && r()))
    await post(base, `/${runId}/stages/1/output`, { seq: current, text: 'token '.repeat(16) + '\n\n\n\n' })
    await shown
  }
  await sleep(100)
  const after = await instance.stats()
  controller.abort()
  const cpu = after.cpu.user + after.cpu.system - (before.cpu.user + before.cpu.system)
  return {
    variant: instance.name,
    size,
    load: phaseLoad,
    cpuUsPerChunk: Math.round(cpu / CHUNKS),
    textBytesReadPerChunk: Math.round((after.textBytes - before.textBytes) / CHUNKS),
    chunkBytesReadPerChunk: Math.round((after.chunkBytes - before.chunkBytes) / CHUNKS),
    summaryEvents: summaryEvents - summaryBefore,
  }
}

// ---- run ---------------------------------------------------------------------------------------
const instances: Instance[] = []
const loadBefore = loadavg().map((v) => v.toFixed(2)).join(' ')
console.log(`load average before: ${loadBefore}`)
try {
  const after = await startInstance('after', root)
  instances.push(after)
  const before = BASE_SRC ? await startInstance('before', resolve(BASE_SRC)) : undefined
  if (before) instances.push(before)
  // Warm-up: one phase each, not reported (JIT, pool connections).
  for (const instance of instances) await phase(instance, 1_000)
  const order = before ? [before, after, after, before] : [after]
  const phases: Phase[] = []
  for (const size of SIZES) {
    for (let round = 0; round < ROUNDS; round++) {
      for (const instance of order) {
        const result = await phase(instance, size)
        phases.push(result)
        console.log(JSON.stringify(result))
      }
    }
  }
  const table: Array<Record<string, unknown>> = []
  for (const size of SIZES) {
    for (const instance of instances) {
      const mine = phases.filter((p) => p.size === size && p.variant === instance.name)
      table.push({
        variant: instance.name,
        size,
        loads: mine.map((p) => p.load).join(' '),
        cpuUsPerChunk: mine.map((p) => p.cpuUsPerChunk),
        medianCpuUsPerChunk: median(mine.map((p) => p.cpuUsPerChunk)),
        textBytesReadPerChunk: median(mine.map((p) => p.textBytesReadPerChunk)),
        chunkBytesReadPerChunk: median(mine.map((p) => p.chunkBytesReadPerChunk)),
        summaryEventsPerPhase: median(mine.map((p) => p.summaryEvents)),
      })
    }
  }
  console.table(table)
  const loadAfter = loadavg().map((v) => v.toFixed(2)).join(' ')
  console.log(`load average after: ${loadAfter}`)
  mkdirSync(dirname(OUTPUT_FILE), { recursive: true })
  writeFileSync(OUTPUT_FILE, `${JSON.stringify({ date: new Date().toISOString(), chunks: CHUNKS, rounds: ROUNDS, base: BASE_SRC ?? null, loadBefore, loadAfter, phases, table }, null, 2)}\n`)
  console.log(`written to ${OUTPUT_FILE}`)
} finally {
  for (const instance of instances) instance.child.kill('SIGTERM')
  await sleep(300)
  await database.drop()
}
