/**
 * Runs as a collection at scale (issue 24): `GET /runs` and `GET /runs/counts` on a table of
 * 1,000,000 runs, of which 10 % carry the filtered tag, through `PrismaStore` (the statements of
 * src/server/storage/sql/run-list.ts) and through the handlers in process (`handlers.fetch`: query
 * parsing, authorization, summaries and JSON included; no socket).
 *
 * Data: one throwaway database, migrated, filled by one `INSERT … SELECT generate_series`: runs
 * one second apart with three runs per instant (ties), statuses 70 % COMPLETED, 10 % FAILED,
 * 5 % CANCELLED, 10 % PROCESSING, 5 % PENDING (by a hash of the number, so independent of the tag), pipelines 80 % `default` and 20 % `ingest`, every
 * tenth run tagged `team-a` and every run one of `shard-0`…`shard-6`; the newest 100,000 runs
 * have three stage rows each. Then VACUUM ANALYZE, as autovacuum would do on a table this size.
 *
 * Measured: each query's median and p90 over BENCH_ROUNDS rounds (after one warm-up round), and
 * the plan of each store statement (EXPLAIN (ANALYZE, BUFFERS)), written to
 * bench/results/latest/run-list.json (BENCH_OUTPUT=bench/results/run-list.json records a run).
 * Targets: the first page of the tag-filtered list under 10 ms, counts by status under 200 ms.
 *
 * Needs DATABASE_URL; without it, it says so and skips. Knobs: BENCH_LIST_RUNS (default
 * 1,000,000; CI never runs benchmarks, and a small value makes a quick check), BENCH_ROUNDS
 * (default 30), BENCH_OUTPUT.
 * Run: DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres npx tsx bench/run-list.bench.ts
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { dirname } from 'node:path'
import pg from 'pg'
import { defaultOutput, prepareBench } from './prepare.js'
import { requireDatabaseUrl, withAdmin } from './servers/database.js'

const serverUrl = requireDatabaseUrl('run list benchmark')
const RUNS = Number(process.env['BENCH_LIST_RUNS'] ?? 1_000_000)
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 30)
const OUTPUT = process.env['BENCH_OUTPUT'] ?? defaultOutput('run-list.json')
const STAGED_RUNS = Math.min(100_000, RUNS)
const SECRET = 'bench-secret-run-list'

prepareBench()
// Loaded only now: they import the Prisma client that prepareBench() generates.
const { openDatabase } = await import('../examples/shared/database.js')
const { createPipelineStatusHandlers, createPrismaStore } = await import('../src/server/index.js')
const { listRunsStatement, countRunsStatement } = await import('../src/server/storage/sql/run-list.js')
const { resolveTableNames } = await import('../src/server/storage/table-names.js')

const name = `pss_bench_${randomBytes(5).toString('hex')}`
const url = new URL(serverUrl)
url.pathname = `/${name}`
await withAdmin(serverUrl, (client) => client.query(`CREATE DATABASE "${name}"`))
const db = await openDatabase({ url: url.toString() })
const direct = new pg.Client({ connectionString: url.toString() })
await direct.connect()

try {
  const filledAt = performance.now()
  await direct.query(
    `INSERT INTO "PipelineRun" ("id", "status", "updatedAt", "createdAt", "pipeline", "tags")
     SELECT 'run-' || lpad(g::text, 8, '0'),
       (CASE WHEN h < 14 THEN 'COMPLETED' WHEN h < 16 THEN 'FAILED' WHEN h = 16 THEN 'CANCELLED'
             WHEN h < 19 THEN 'PROCESSING' ELSE 'PENDING' END)::"RunStatus",
       now(), timestamptz '2026-12-01T00:00:00Z' - (g / 3) * interval '1 second',
       CASE WHEN g % 5 = 0 THEN 'ingest' ELSE 'default' END,
       CASE WHEN g % 10 = 0 THEN ARRAY['team-a', 'shard-' || (g % 7)] ELSE ARRAY['shard-' || (g % 7)] END
     FROM generate_series(1, $1::int) g, LATERAL (SELECT abs(hashint4(g)) % 20 AS h) s`,
    [RUNS],
  )
  await direct.query(
    `INSERT INTO "StageOutput" ("id", "runId", "stageNumber", "stageName", "status", "updatedAt")
     SELECT gen_random_uuid()::text, 'run-' || lpad(g::text, 8, '0'), n, 'Stage ' || n,
       (CASE WHEN n < 3 THEN 'COMPLETED' ELSE 'PROCESSING' END)::"RunStatus", now()
     FROM generate_series(1, $1::int) g CROSS JOIN generate_series(1, 3) n`,
    [STAGED_RUNS],
  )
  await direct.query('VACUUM ANALYZE')
  const fillMs = performance.now() - filledAt
  console.log(`${RUNS.toLocaleString('en')} runs (${(STAGED_RUNS * 3).toLocaleString('en')} stage rows) in ${(fillMs / 1000).toFixed(1)} s; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)

  const store = createPrismaStore({ prisma: db.prisma })
  const handlers = createPipelineStatusHandlers({ store, secret: SECRET, logger: { warn: () => {}, error: () => {} } })
  const names = resolveTableNames(db.prisma, {})
  const firstTagPage = await store.listRuns({ filter: { tags: ['team-a'] }, limit: 51 })
  const last = firstTagPage.at(49)?.run
  if (!last) throw new Error('the tag-filtered list is empty')

  const lists = {
    'list, tag=team-a, first page': { filter: { tags: ['team-a'] }, after: undefined },
    'list, tag=team-a, second page': { filter: { tags: ['team-a'] }, after: { createdAt: last.createdAt, id: last.id } },
    'list, no filter, first page': { filter: {}, after: undefined },
    'list, tag=team-a&status=FAILED': { filter: { tags: ['team-a'], statuses: ['FAILED' as const] }, after: undefined },
    'list, pipeline=ingest': { filter: { pipeline: 'ingest' }, after: undefined },
    'list, tag=team-a&tag=shard-3': { filter: { tags: ['team-a', 'shard-3'] }, after: undefined },
    'list, tag=team-a&status=PENDING&pipeline=ingest': { filter: { tags: ['team-a'], statuses: ['PENDING' as const], pipeline: 'ingest' }, after: undefined },
    'list, a combination no run has (tag=team-a&tag=absent)': { filter: { tags: ['team-a', 'absent'] }, after: undefined },
  }
  const counts = {
    'counts by status': { filter: {}, groupBy: 'status' as const },
    'counts by status, tag=team-a': { filter: { tags: ['team-a'] }, groupBy: 'status' as const },
    'counts by pipeline': { filter: {}, groupBy: 'pipeline' as const },
    'counts by status, createdAfter (the last day)': { filter: { createdAfter: new Date('2026-11-30T00:00:00Z') }, groupBy: 'status' as const },
  }
  const http = {
    'HTTP list, tag=team-a, first page': '/runs?tag=team-a',
    'HTTP counts by status': '/runs/counts?groupBy=status',
  }

  const cases: Record<string, () => Promise<unknown>> = {}
  for (const [label, request] of Object.entries(lists)) cases[`store ${label}`] = () => store.listRuns({ ...request, limit: 51 })
  for (const [label, request] of Object.entries(counts)) cases[`store ${label}`] = () => store.countRuns(request)
  for (const [label, path] of Object.entries(http)) {
    cases[label] = async () => {
      const response = await handlers.fetch(new Request(`http://bench.local/api/pipeline${path}`, { headers: { 'X-Webhook-Secret': SECRET } }))
      if (response.status !== 200) throw new Error(`${path}: ${response.status} ${await response.text()}`)
      return response.json()
    }
  }

  // Interleaved rounds: every case once per round, so the machine's other load hits them alike.
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((label) => [label, []]))
  for (let round = -1; round < ROUNDS; round++) {
    for (const [label, run] of Object.entries(cases)) {
      const started = performance.now()
      await run()
      if (round >= 0) samples[label]?.push(performance.now() - started)
    }
  }
  const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * q))] ?? NaN
  const results = Object.entries(samples).map(([label, values]) => ({ label, medianMs: quantile(values, 0.5), p90Ms: quantile(values, 0.9) }))
  const targets: Record<string, number> = { 'store list, tag=team-a, first page': 10, 'store counts by status': 200 }
  console.log(`\n| query | median ms | p90 ms | target |\n| --- | --- | --- | --- |`)
  for (const { label, medianMs, p90Ms } of results) {
    const target = targets[label]
    const verdict = target === undefined ? '' : medianMs < target ? `< ${target} ms: met` : `< ${target} ms: NOT met`
    console.log(`| ${label} | ${medianMs.toFixed(2)} | ${p90Ms.toFixed(2)} | ${verdict} |`)
  }

  const plans: Record<string, string> = {}
  const explain = async (label: string, statement: { text: string; values: unknown[] }) => {
    const result = await direct.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${statement.text}`, statement.values)
    plans[label] = result.rows.map((row) => row['QUERY PLAN']).join('\n')
  }
  for (const [label, request] of Object.entries(lists)) await explain(label, listRunsStatement(names, request.filter, request.after, 51))
  for (const [label, request] of Object.entries(counts)) await explain(label, countRunsStatement(names, request))
  for (const [label, plan] of Object.entries(plans)) console.log(`\n${label}:\n${plan}`)

  mkdirSync(dirname(OUTPUT), { recursive: true })
  writeFileSync(OUTPUT, `${JSON.stringify({ runs: RUNS, stageRows: STAGED_RUNS * 3, rounds: ROUNDS, loadavg: loadavg(), fillMs, results, plans }, null, 2)}\n`)
  console.log(`\nwritten to ${OUTPUT}`)
  await handlers.close()
} finally {
  await direct.end()
  await db.close()
  await withAdmin(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))
}
