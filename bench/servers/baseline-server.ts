/**
 * The hand-written baseline: `node:http` and `pg`, no framework, no validation library. A stage
 * update is the minimal correct transaction (lock the run, upsert the stage, update the run); a
 * status read is the run and its stages. It exists only in bench/, to measure the package against.
 */
import { createServer } from 'node:http'
import pg from 'pg'
import { BENCH_SECRET, databaseUrl, POOL_SIZE, reportToParent } from './shared.js'

const pool = new pg.Pool({ connectionString: databaseUrl(), max: POOL_SIZE })
const ROUTE = /^\/api\/pipeline\/([^/]+)\/(stage-update|status)$/

function send(res: import('node:http').ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function stageUpdate(runId: string, raw: string): Promise<[number, unknown]> {
  const update = JSON.parse(raw) as { stageNumber: number; stageName: string; status: string; output?: string | null }
  if (!Number.isInteger(update.stageNumber) || typeof update.stageName !== 'string' || typeof update.status !== 'string') {
    return [400, { error: 'invalid body' }]
  }
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const locked = await client.query('SELECT "status" FROM "PipelineRun" WHERE "id" = $1 FOR UPDATE', [runId])
    if (locked.rowCount === 0) {
      await client.query('ROLLBACK')
      return [404, { error: 'run not found' }]
    }
    const now = new Date()
    const completedAt = update.status === 'PROCESSING' ? null : now
    const stage = await client.query(
      `INSERT INTO "StageOutput" ("id", "runId", "stageNumber", "stageName", "status", "output", "completedAt", "createdAt", "updatedAt")
       VALUES (gen_random_uuid()::text, $1, $2, $3, $4, $5, $6, $7, $7)
       ON CONFLICT ("runId", "stageNumber") DO UPDATE SET "stageName" = EXCLUDED."stageName", "status" = EXCLUDED."status",
         "output" = EXCLUDED."output", "completedAt" = EXCLUDED."completedAt", "updatedAt" = EXCLUDED."updatedAt"
       RETURNING "stageNumber", "stageName", "status", "output", "completedAt", "createdAt", "updatedAt"`,
      [runId, update.stageNumber, update.stageName, update.status, update.output ?? null, completedAt, now],
    )
    const run = await client.query(
      `UPDATE "PipelineRun" SET "status" = CASE WHEN "status" = 'PENDING' THEN 'PROCESSING' ELSE "status" END, "updatedAt" = $2,
         "version" = "version" + 1 WHERE "id" = $1
       RETURNING "id", "status", "error", "completedAt", "completionReceivedAt", "createdAt", "updatedAt"`,
      [runId, now],
    )
    await client.query('COMMIT')
    return [200, { outcome: 'applied', stage: stage.rows[0], run: run.rows[0] }]
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  } finally {
    client.release()
  }
}

async function status(runId: string): Promise<[number, unknown]> {
  const run = await pool.query(
    'SELECT "id", "status", "error", "completedAt", "completionReceivedAt", "createdAt", "updatedAt" FROM "PipelineRun" WHERE "id" = $1',
    [runId],
  )
  if (run.rowCount === 0) return [404, { error: 'run not found' }]
  const stages = await pool.query(
    `SELECT "stageNumber", "stageName", "status", "output", "completedAt", "createdAt", "updatedAt"
     FROM "StageOutput" WHERE "runId" = $1 ORDER BY "stageNumber"`,
    [runId],
  )
  return [200, { run: run.rows[0], stages: stages.rows }]
}

const server = createServer((req, res) => {
  const match = ROUTE.exec(req.url ?? '')
  if (!match) return send(res, 404, { error: 'no route' })
  if (req.headers['x-webhook-secret'] !== BENCH_SECRET) return send(res, 401, { error: 'unauthorized' })
  const runId = decodeURIComponent(match[1] as string)
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    const work = match[2] === 'status' ? status(runId) : stageUpdate(runId, Buffer.concat(chunks).toString('utf8'))
    work.then(
      ([code, body]) => send(res, code, body),
      (error: unknown) => {
        console.error(error)
        send(res, 500, { error: 'internal' })
      },
    )
  })
})
reportToParent(server)
