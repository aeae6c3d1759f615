/**
 * runPipeline against the Express example (examples/express) on the test database (real
 * PostgreSQL with DATABASE_URL set, else PGlite), with stages whose outputs PostgreSQL cannot
 * store as they are: a lone surrogate, a NUL, and more than the server's body limit (1 MiB by
 * default). Every stage's status must still arrive.
 */
import { PrismaAPIClient, TRUNCATION_MARKER, runPipeline } from 'pipeline-status-sdk/client'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { type ExpressExample, startExpressExample } from '../../examples/express/app.js'
import { type TestDatabase, createTestDatabase } from '../setup/test-database.js'
import { recordingLogger } from '../support/loggers.js'
import { quiet } from '../support/loggers.js'

const SECRET = 'express-example-secret'
const MAX_BODY_BYTES = 1024 * 1024

let db: TestDatabase
let example: ExpressExample
beforeAll(async () => {
  db = await createTestDatabase()
  example = await startExpressExample({ port: 0, secret: SECRET, databaseUrl: db.url, log: quiet })
})
afterAll(async () => {
  await example?.close()
  await db?.close()
})

it('completes every stage and the run although three outputs cannot be stored as they are', async () => {
  const logger = recordingLogger()
  // The URL as the example prints it, base path included.
  const client = new PrismaAPIClient({ baseUrl: example.url, secret: SECRET, logger, retry: { limit: 2, baseDelayMs: 10 } })
  try {
    const { run } = await client.createRun()
    const huge = `# Report\n\n${'Signal: pastry demand is rising. '.repeat(40_000)}`
    const summary = await runPipeline({
      runId: run.id,
      client,
      stages: [
        () => 'half an emoji: \uD83D',
        () => 'a NUL: \u0000 in the middle',
        () => huge,
        () => ({ brand: 'fit' }),
        () => '# Opportunities',
      ],
    })

    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, completion: { ok: true } })
    expect(summary.stages.map((s) => [s.stageNumber, s.status, s.reported])).toEqual([1, 2, 3, 4, 5].map((n) => [n, 'COMPLETED', true]))
    expect(summary.alteredOutputs).toEqual([
      { runId: run.id, stageNumber: 1, kind: 'replaced', replacedCharacters: 1 },
      { runId: run.id, stageNumber: 2, kind: 'replaced', replacedCharacters: 1 },
      {
        runId: run.id,
        stageNumber: 3,
        kind: 'truncated',
        originalBytes: Buffer.byteLength(huge),
        sentBytes: expect.any(Number),
        maxBodyBytes: MAX_BODY_BYTES,
      },
    ])
    expect(summary.warnings).toEqual([
      expect.stringMatching(/^Stage 1 output: 1 character\(s\) .* replaced with U\+FFFD$/),
      expect.stringMatching(/^Stage 2 output: 1 character\(s\) .* replaced with U\+FFFD$/),
      expect.stringMatching(/^Stage 3 output truncated from \d+ to \d+ bytes to fit the server's body limit \(1048576 bytes\)/),
    ])
    // The same three as warnings of the client. (A retry may appear too: until the server closes
    // the connection after an early 413, the next request on it can be reset.)
    expect(logger.lines.filter((l) => l.level === 'warn' && !/; attempt \d+ of \d+ \(retry \d+ of \d+\) in /.test(l.message)).map((l) => l.message)).toEqual([
      expect.stringMatching(/: stage 1 COMPLETED: replaced 1 character\(s\)/),
      expect.stringMatching(/: stage 2 COMPLETED: replaced 1 character\(s\)/),
      expect.stringMatching(/: stage 3 COMPLETED: the server refused the body as too large \(413, limit 1048576 bytes\)/),
    ])
    expect(logger.lines.filter((l) => l.level === 'error')).toEqual([])

    const status = await client.getStatus(run.id)
    expect(status.run.status).toBe('COMPLETED')
    expect(status.run.completionReceivedAt).not.toBeNull()
    expect(status.stages.map((s) => s.status)).toEqual(Array(5).fill('COMPLETED'))
    expect(status.stages[0]?.output).toBe('half an emoji: \uFFFD')
    expect(status.stages[1]?.output).toBe('a NUL: \uFFFD in the middle')
    const cut = status.stages[2]?.output ?? ''
    expect(cut.endsWith(TRUNCATION_MARKER)).toBe(true)
    expect(huge.startsWith(cut.slice(0, -TRUNCATION_MARKER.length))).toBe(true)
    expect(Buffer.byteLength(cut)).toBe(summary.alteredOutputs[2]?.sentBytes)
    expect(Buffer.byteLength(cut)).toBeGreaterThan(MAX_BODY_BYTES - 256)
    expect(status.stages[3]?.output).toBe('{"brand":"fit"}')
  } finally {
    expect((await client.close()).undelivered).toEqual({})
  }
})
