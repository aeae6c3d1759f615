/**
 * Runs' first stage updates through the Prisma-only store, in process (no HTTP): what a run's
 * first update costs the store with a long catalogue (issue 31, item 2; bench/README.md "The
 * catalogue by its digest"). Seeds `FIRST_UPDATES_RUNS` runs without a catalogue on a throwaway
 * database, then applies stage 1 of each, 8 at a time, through `createPrismaStore({ prisma })`
 * and `applyStageUpdate` with a `FIRST_UPDATES_STAGES`-stage catalogue and a 2 KB output; prints
 * updates/s and this process's CPU per update.
 *
 * To compare two commits, run it in a checkout of each, interleaved (A B A B).
 * Run: DATABASE_URL=… npx tsx bench/first-updates.ts
 * Knobs: FIRST_UPDATES_RUNS (default 4,000), FIRST_UPDATES_STAGES (default 200).
 */
import { randomBytes } from 'node:crypto'
import { applyStageUpdate } from '../src/core/operations.js'
import { createPrismaStore } from '../src/server/storage/prisma-store.js'
import { requireDatabaseUrl, withAdmin } from './servers/database.js'
import { prepareBench } from './prepare.js'

const serverUrl = requireDatabaseUrl('first updates', 'npx tsx bench/first-updates.ts')
prepareBench()
// Loaded only now: it imports the Prisma client that prepareBench() generates.
const { openDatabase } = await import('../examples/shared/database.js')

const RUNS = Number(process.env['FIRST_UPDATES_RUNS'] ?? 4_000)
const STAGES = Number(process.env['FIRST_UPDATES_STAGES'] ?? 200)
const CONCURRENCY = 8

const name = `pss_first_${randomBytes(5).toString('hex')}`
await withAdmin(serverUrl, (client) => client.query(`CREATE DATABASE "${name}"`))
const url = new URL(serverUrl)
url.pathname = `/${name}`
const db = await openDatabase({ url: url.toString() })
try {
  await db.prisma.$executeRawUnsafe(
    `INSERT INTO "PipelineRun" ("id", "status", "updatedAt") SELECT 'run-' || g, 'PENDING', now() FROM generate_series(1, ${RUNS}) g`,
  )
  const stages = Array.from({ length: STAGES }, (_, i) => ({ number: i + 1, name: `Stage number ${i + 1} of the bench` }))
  const store = createPrismaStore({ prisma: db.prisma, logger: { warn: (message: string) => console.warn(message), error: (message: string) => console.error(message) } })
  const output = JSON.stringify({ summary: 'x'.repeat(2_000) })
  let next = 1
  const cpuBefore = process.cpuUsage()
  const started = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next <= RUNS) {
        const runId = `run-${next++}`
        const update = { stageNumber: 1, stageName: stages[0]!.name, status: 'PROCESSING' as const, output }
        const result = await applyStageUpdate(store, runId, update, { stages, now: new Date() })
        if (result.outcome !== 'applied') throw new Error(`${runId}: ${result.outcome}`)
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  console.log(
    `${RUNS} first updates, ${STAGES}-stage catalogue, ${CONCURRENCY} at a time: ${(RUNS / seconds).toFixed(0)}/s, ` +
      `CPU of this process ${((cpu.user + cpu.system) / RUNS).toFixed(0)} µs per update`,
  )
} finally {
  await db.close()
  await withAdmin(serverUrl, (client) => client.query(`DROP DATABASE "${name}" WITH (FORCE)`))
}
