/**
 * `GET /runs/stats` query shapes (bench/README.md, the stats paragraph of issue 29): on a throwaway
 * database of 100,000 runs x 5 stages over 69 days (one run per ~60 s, the 7-day window holding
 * 10 % of the stages), EXPLAIN (ANALYZE, BUFFERS) of `runStatsStatement` as shipped (A) against
 * B: a redundant bound on the run's `updatedAt` (1 day below `since`) through the existing
 * `(status, updatedAt)` index; C: both percentiles from one `percentile_cont(ARRAY[…])`; D: B with
 * sequential scans off (the stages read through `StageOutput_runId_idx`). Rounds alternate the
 * order (A B C D, D C B A, …); round 0 prints D's plan; the answers of A, B and C are compared.
 * Not run by `npm run bench` (no `.bench.ts` name).
 * Run: DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres npx tsx bench/prototype/stats-shape.ts
 */
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import pg from 'pg'
import { prepareBench } from '../prepare.js'
import { requireDatabaseUrl, withAdmin } from '../servers/database.js'

const serverUrl = requireDatabaseUrl('stats shape')
prepareBench()
const { openDatabase } = await import('../../examples/shared/database.js')
const { runStatsStatement } = await import('../../src/server/storage/sql/run-list.js')
const { resolveTableNames } = await import('../../src/server/storage/table-names.js')
const name = `pss_bench_${randomBytes(5).toString('hex')}`
const url = new URL(serverUrl)
url.pathname = `/${name}`
await withAdmin(serverUrl, (c) => c.query(`CREATE DATABASE "${name}"`))
const db = await openDatabase({ url: url.toString() })
const direct = new pg.Client({ connectionString: url.toString() })
await direct.connect()
const END = '2026-12-01T00:00:00Z'
try {
  // 100,000 runs one per ~60 s over 69 days; 5 stages each, 1 min apart; 5 % of runs fail at stage 3.
  await direct.query(`INSERT INTO "PipelineRun" ("id","status","createdAt","updatedAt","completedAt","pipeline","tags")
    SELECT 'run-' || lpad(g::text, 8, '0'), (CASE WHEN g % 20 = 0 THEN 'FAILED' ELSE 'COMPLETED' END)::"RunStatus",
      c, c + interval '5 minutes', c + interval '5 minutes', CASE WHEN g % 5 = 0 THEN 'ingest' ELSE 'default' END, ARRAY[]::text[]
    FROM generate_series(1, 100000) g, LATERAL (SELECT timestamptz '${END}' - (g * 59.616) * interval '1 second' AS c) t`)
  await direct.query(`INSERT INTO "StageOutput" ("id","runId","stageNumber","stageName","status","createdAt","updatedAt","startedAt","completedAt")
    SELECT gen_random_uuid()::text, 'run-' || lpad(g::text, 8, '0'), n, 'Stage ' || n,
      (CASE WHEN g % 20 = 0 AND n = 3 THEN 'FAILED' WHEN g % 20 = 0 AND n > 3 THEN 'CANCELLED' ELSE 'COMPLETED' END)::"RunStatus",
      c + (n - 1) * interval '1 minute', c + n * interval '1 minute', c + (n - 1) * interval '1 minute', c + n * interval '1 minute' + (g % 17) * interval '1 second'
    FROM generate_series(1, 100000) g CROSS JOIN generate_series(1, 5) n, LATERAL (SELECT timestamptz '${END}' - (g * 59.616) * interval '1 second' AS c) t`)
  await direct.query('VACUUM ANALYZE')
  const names = resolveTableNames(db.prisma, {})
  const since = new Date(Date.parse(END) - 7 * 86_400_000)
  const shapes: Record<string, { text: string; values: unknown[] }> = {}
  for (const pipeline of [undefined, 'ingest']) {
    const base = runStatsStatement(names, { filter: pipeline ? { pipeline } : {}, since } as never)
    const tag = pipeline ? ' pipeline=ingest' : ' all'
    shapes[`A current${tag}`] = base
    // B: a redundant bound through the runs' (status, updatedAt) index: a stage completed at t leaves its run updatedAt >= t - tolerance.
    const bound = `$${base.values.length + 1}::timestamptz`
    shapes[`B runs.updatedAt bound${tag}`] = {
      text: base.text.replace('s."completedAt" >=', `r."status" IN ('PENDING','PROCESSING','COMPLETED','FAILED','CANCELLED') AND r."updatedAt" >= ${bound} AND s."completedAt" >=`),
      values: [...base.values, new Date(since.getTime() - 86_400_000)],
    }
    // C: both percentiles from one ordered-set aggregate (one sort of the durations per group, not two).
    const from = base.text.indexOf('percentile_cont(0.5)')
    const to = base.text.indexOf('AS "p95"') + 'AS "p95"'.length
    const p50 = base.text.slice(from, base.text.indexOf(' AS "p50"'))
    const one = base.text.slice(0, from) + p50.replace('percentile_cont(0.5)', 'percentile_cont(ARRAY[0.5, 0.95]::float8[])') + ' AS "p"' + base.text.slice(to)
    if (one === base.text) throw new Error('C did not apply')
    shapes[`C one percentile sort${tag}`] = { text: one, values: base.values }
  }
  for (const tag of [' all', ' pipeline=ingest']) shapes[`D B through the stage index${tag}`] = shapes[`B runs.updatedAt bound${tag}`]!
  console.log(shapes['C one percentile sort all']!.text)
  console.log('load', loadavg().map((l) => l.toFixed(2)).join(' '))
  for (let round = 0; round < 6; round++) {
    const order = round === 0 ? Object.keys(shapes) : Object.keys(shapes).reverse()
    for (const key of order) {
      const s = shapes[key]!
      // D: B with the stages read through their (runId, stageNumber) index (nested loop), the planner's other choice.
      await direct.query(`SET enable_seqscan = ${key.startsWith('D') ? 'off' : 'on'}`)
      const plan = await direct.query(`EXPLAIN (ANALYZE, BUFFERS) ${s.text}`, s.values)
      const lines = plan.rows.map((r) => r['QUERY PLAN'] as string)
      console.log(`\n== ${key} (round ${round}, load ${loadavg()[0]!.toFixed(2)}) ${lines.at(-1)}`)
      if (round === 0 && key.startsWith('D')) console.log(lines.join('\n'))
    }
  }
  await direct.query('SET enable_seqscan = on')
  // Same answers?
  for (const tag of [' all', ' pipeline=ingest']) {
    const a = await direct.query(shapes[`A current${tag}`]!.text, shapes[`A current${tag}`]!.values)
    const b = await direct.query(shapes[`B runs.updatedAt bound${tag}`]!.text, shapes[`B runs.updatedAt bound${tag}`]!.values)
    console.log('same rows', tag, JSON.stringify(a.rows) === JSON.stringify(b.rows), a.rows.length)
    const c = await direct.query(shapes[`C one percentile sort${tag}`]!.text, shapes[`C one percentile sort${tag}`]!.values)
    console.log('C same', tag, JSON.stringify(a.rows.map(({ p50, p95, ...rest }) => ({ ...rest, p: p50 === null ? null : [p50, p95] }))) === JSON.stringify(c.rows), JSON.stringify(c.rows[0]))
  }
} finally {
  await direct.end()
  await db.close?.()
  await withAdmin(serverUrl, (c) => c.query(`DROP DATABASE "${name}" WITH (FORCE)`))
}
