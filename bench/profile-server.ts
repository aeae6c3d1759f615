/**
 * Where the server's CPU goes: starts the SDK's Express server (bench/servers/sdk-server.ts) with
 * `--cpu-prof` on a throwaway database, drives stage updates (or status reads) at 8 concurrent
 * for a few seconds, and prints self time per request grouped by where the code lives.
 *
 * Run: DATABASE_URL=… npx tsx bench/profile-server.ts [update|status] [prisma|pool|original]
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { prepareBench } from './prepare.js'
import { requireDatabaseUrl, withAdmin } from './servers/database.js'
import { BENCH_SECRET } from './servers/shared.js'

const serverUrl = requireDatabaseUrl('profile', 'npx tsx bench/profile-server.ts [update|status] [prisma|pool|original]')
prepareBench()
// Loaded only now: it imports the Prisma client that prepareBench() generates.
const { openDatabase } = await import('../examples/shared/database.js')
const kind = process.argv[2] === 'status' ? 'status' : 'update'
const mode = process.argv[3] === 'pool' ? 'pool' : process.argv[3] === 'original' ? 'original' : 'prisma'
const root = fileURLToPath(new URL('..', import.meta.url))
// PROFILE_RUNS: fewer runs, so that most updates are a run's later ones (its catalogue stored and read back).
const RUNS = Number(process.env['PROFILE_RUNS'] ?? 20_000)
const MEASURE_SECONDS = 6

const name = `pss_prof_${randomBytes(5).toString('hex')}`
const admin = (sql: string) => withAdmin(serverUrl, (client) => client.query(sql))
await admin(`CREATE DATABASE "${name}"`)
const url = new URL(serverUrl)
url.pathname = `/${name}`
const db = await openDatabase({ url: url.toString() })
await db.prisma.$executeRawUnsafe(
  `INSERT INTO "PipelineRun" ("id", "status", "updatedAt") SELECT 'bench-' || g, 'PENDING', now() FROM generate_series(1, ${RUNS}) g`,
)
await db.prisma.$executeRawUnsafe(
  `INSERT INTO "StageOutput" ("id", "runId", "stageNumber", "stageName", "status", "output", "createdAt", "updatedAt")
   SELECT gen_random_uuid()::text, 'bench-' || g, s, 'Stage ' || s, 'COMPLETED', repeat('x', 2000), now(), now()
   FROM generate_series(1, ${Math.min(2000, RUNS)}) g, generate_series(90, 92) s`,
)
await db.close()

const profileDir = mkdtempSync(join(tmpdir(), 'pss-prof-'))
const child = spawn(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, '--import', 'tsx', join(root, mode === 'original' ? 'bench/servers/original-route.ts' : 'bench/servers/sdk-server.ts')], {
  cwd: root,
  env: { ...process.env, BENCH_DATABASE_URL: url.toString(), BENCH_MODE: mode, NODE_ENV: 'production' },
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
})
const port = await new Promise<number>((resolve) => child.on('message', (m: { port?: number }) => m.port && resolve(m.port)))
let i = 0
const output = JSON.stringify({ summary: 'x'.repeat(2_000) })
const run = (seconds: number) =>
  autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: 8,
    duration: seconds,
    requests: [
      {
        method: kind === 'update' ? 'POST' : 'GET',
        headers: { 'x-webhook-secret': BENCH_SECRET, 'content-type': 'application/json' },
        setupRequest: (request) => {
          const n = i++
          if (kind === 'status') return { ...request, path: `/api/pipeline/bench-${1 + (n % 2000)}/status` }
          const stage = 1 + Math.floor(n / RUNS)
          return {
            ...request,
            path: `/api/pipeline/bench-${1 + (n % RUNS)}/stage-update`,
            body: JSON.stringify({ stageNumber: stage, stageName: `Stage ${stage}`, status: 'COMPLETED', output }),
          }
        },
      },
    ],
  })
await run(2)
const measured = await run(MEASURE_SECONDS)
child.disconnect()
await new Promise((resolve) => child.once('exit', resolve))
await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)

interface Node {
  id: number
  callFrame: { functionName: string; url: string }
  hitCount: number
}
const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile')) as string
if (process.env['PROFILE_KEEP']) console.log('profile:', join(profileDir, file))
const profile = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as {
  nodes: Node[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}
function bucket(node: Node): string {
  const { url: u, functionName } = node.callFrame
  if (functionName === '(garbage collector)') return 'garbage collection'
  if (functionName === '(idle)' || functionName === '(program)') return functionName
  if (u === '') return `(native) ${functionName || 'anonymous'}`
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)
  if (pkg) return `npm:${pkg[1]}`
  if (u.startsWith('node:')) return `node:${u.slice(5).split('/')[0]}`
  const local = /\/(dist|src)\/(.*)$/.exec(u)
  return local ? `sdk ${local[2]}` : u
}
// Only the samples of the measured seconds (the last ones before the server was told to stop).
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const hits = new Map<number, number>()
let at = profile.startTime
const from = profile.endTime - MEASURE_SECONDS * 1e6 - 200_000
for (const [index, id] of profile.samples.entries()) {
  at += profile.timeDeltas[index] ?? 0
  if (at >= from) hits.set(id, (hits.get(id) ?? 0) + 1)
}
const windowUs = profile.endTime - from
const perSample = windowUs / [...hits.values()].reduce((sum, n) => sum + n, 0)
const buckets = new Map<string, number>()
for (const [id, count] of hits) {
  const key = bucket(byId.get(id) as Node)
  buckets.set(key, (buckets.get(key) ?? 0) + count)
}
const answered = measured['2xx']
console.log(`${kind} (${mode}), 8 concurrent: ${(answered / MEASURE_SECONDS).toFixed(0)}/s; self time per request (µs) in the measured seconds:`)
const rows = [...buckets.entries()].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1])
const busy = rows.reduce((sum, [, count]) => sum + count, 0)
for (const [key, count] of rows.slice(0, 25)) console.log(`  ${((count * perSample) / answered).toFixed(1).padStart(7)}  ${key}`)
console.log(`  ${((busy * perSample) / answered).toFixed(1).padStart(7)}  total busy`)
