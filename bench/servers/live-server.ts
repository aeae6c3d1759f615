/**
 * One instance of the app for the live benchmark: the Express adapter with PrismaStore (on the
 * `pg` pool fast path) on real PostgreSQL, streams in `BENCH_LIVE=poll` (version polling every
 * 250 ms) or `BENCH_LIVE=listen` (LISTEN connection; the store notifies after commit, in batches; on the
 * request pool, or with `BENCH_LIVE=direct` on a connection of their own, `notifyPool`). Answers `cpu`
 * and `memory` (after a full GC; run with --expose-gc) over IPC. `BENCH_STAGE_COUNT` shortens the catalogue.
 */
import { createServer } from 'node:http'
import { PrismaPg } from '@prisma/adapter-pg'
import express from 'express'
import pg from 'pg'
import { createExpressRouter } from 'pipeline-status-sdk/express'
import { createPgConnections, createPgRunListener } from 'pipeline-status-sdk/pg'
import { createPrismaStore } from 'pipeline-status-sdk/server'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { BENCH_SECRET, BENCH_STAGES, databaseUrl, POOL_SIZE, reportToParent } from './shared.js'

// `direct`: LISTEN mode with the notification batches on a connection of their own (notifyPool).
const direct = process.env['BENCH_LIVE'] === 'direct'
const listen = process.env['BENCH_LIVE'] === 'listen' || direct
const channel = 'pipeline_status_bench'
const pool = new pg.Pool({ connectionString: databaseUrl(), max: POOL_SIZE })
const prisma = new PrismaClient({ adapter: new PrismaPg(pool) })
const notifyPool = direct ? createPgConnections({ connectionString: databaseUrl() }).notifyPool : undefined
const store = createPrismaStore({ prisma, pool, ...(listen ? { notifyChannel: channel, notifyPool } : {}) })
// Counted for the bench's per-round breakdown: the watcher's run reads (one per notified change).
let runReads = 0
const getRun = store.getRun.bind(store)
store.getRun = (runId) => {
  runReads += 1
  return getRun(runId)
}
// The watcher's batched reads (Store.getRuns): statements, and the runs they read.
let runsReads = 0
let runsRead = 0
// (Absent from an older commit's store, which the bench can run for an A/B.)
const getRuns = (store as Partial<Pick<typeof store, 'getRuns'>>).getRuns?.bind(store)
if (getRuns) {
  store.getRuns = (runIds, options) => {
    runsReads += 1
    runsRead += runIds.length
    return getRuns(runIds, options)
  }
}
// And the writes decided under the run's lock (a transaction): the optimistic write lost its race.
let transactions = 0
const transaction = store.transaction.bind(store)
store.transaction = (fn) => {
  transactions += 1
  return transaction(fn)
}
const silent = { warn: () => {}, error: (message: string) => console.error(message) }

const app = express()
app.use(
  '/api/pipeline',
  createExpressRouter({
    store,
    secret: BENCH_SECRET,
    // BENCH_STAGE_COUNT: a shorter catalogue (the stage-output bench's runs have one stage, as runPipeline checks).
    stages: process.env['BENCH_STAGE_COUNT'] ? BENCH_STAGES.slice(0, Number(process.env['BENCH_STAGE_COUNT'])) : BENCH_STAGES,
    logger: silent,
    live: { maxStreams: 5_000, listen: listen ? createPgRunListener({ connectionString: databaseUrl(), channel }) : undefined },
  }),
)
reportToParent(createServer(app))
process.on('message', (message) => {
  if (message === 'stats') process.send?.({ stats: { cpu: process.cpuUsage(), runReads, runsReads, runsRead, transactions, notify: store.notifyCounts ?? null } })
  if (message !== 'memory') return
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  gc?.()
  process.send?.({ memory: process.memoryUsage() })
})
