/**
 * The route this package replaces, as the original app had it (issue 12's "original route"):
 * Express with `express.json()`, the secret compared with `!==`, and two Prisma calls without a
 * transaction (upsert the stage, update the run), so concurrent updates can race. Only in bench/,
 * to show the package is ahead of what it replaces.
 */
import { createServer } from 'node:http'
import { PrismaPg } from '@prisma/adapter-pg'
import express from 'express'
import pg from 'pg'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { BENCH_SECRET, databaseUrl, POOL_SIZE, reportToParent } from './shared.js'

type Status = 'PENDING' | 'PROCESSING' | 'COMPLETED' | 'FAILED' | 'CANCELLED'
const prisma = new PrismaClient({ adapter: new PrismaPg(new pg.Pool({ connectionString: databaseUrl(), max: POOL_SIZE })) })
const app = express()
app.use(express.json({ limit: '1mb' }))
app.post('/api/pipeline/:runId/stage-update', async (req, res) => {
  if (req.get('x-webhook-secret') !== BENCH_SECRET) return void res.status(401).json({ error: 'Unauthorized' })
  const runId = req.params.runId
  const { stageNumber, stageName, status, output } = req.body as { stageNumber: number; stageName: string; status: Status; output?: string }
  try {
    const completedAt = status === 'COMPLETED' ? new Date() : null
    const stage = await prisma.stageOutput.upsert({
      where: { runId_stageNumber: { runId, stageNumber } },
      create: { runId, stageNumber, stageName, status, output: output ?? null, completedAt },
      update: { stageName, status, output: output ?? null, completedAt },
    })
    const run = await prisma.pipelineRun.update({ where: { id: runId }, data: { status: 'PROCESSING' } })
    res.json({ success: true, stage, run })
  } catch (error) {
    res.status(500).json({ error: (error as Error).message })
  }
})
reportToParent(createServer(app))
