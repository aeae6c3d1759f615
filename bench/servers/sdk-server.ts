/**
 * The package as an app runs it: the Express adapter with PrismaStore on real PostgreSQL.
 * `BENCH_MODE=prisma` (the default path: every statement through the Prisma client),
 * `BENCH_MODE=pool` (the opt-in fast path: the store's statements on the app's `pg` pool, named
 * prepared statements until a pooler refuses one, the default) or `BENCH_MODE=pool-unnamed` (the
 * same with `namedStatements: false`: unnamed statements, what the default turns to behind a
 * transaction pooler).
 */
import { createServer } from 'node:http'
import { PrismaPg } from '@prisma/adapter-pg'
import express from 'express'
import pg from 'pg'
import { createExpressRouter } from 'pipeline-status-sdk/express'
import { createPrismaStore } from 'pipeline-status-sdk/server'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { BENCH_SECRET, BENCH_STAGES, databaseUrl, POOL_SIZE, reportToParent } from './shared.js'

const mode = process.env['BENCH_MODE'] ?? 'prisma'
const pool = new pg.Pool({ connectionString: databaseUrl(), max: POOL_SIZE })
const prisma = new PrismaClient({ adapter: new PrismaPg(pool) })
const store = createPrismaStore({ prisma, ...(mode === 'pool' ? { pool } : mode === 'pool-unnamed' ? { pool, namedStatements: false } : {}) })
const silent = { warn: () => {}, error: (message: string) => console.error(message) }

const app = express()
app.use('/api/pipeline', createExpressRouter({ store, secret: BENCH_SECRET, stages: BENCH_STAGES.slice(0, Number(process.env['BENCH_STAGE_COUNT'] ?? BENCH_STAGES.length)), logger: silent }))
reportToParent(createServer(app))
