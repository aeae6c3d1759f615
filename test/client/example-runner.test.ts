/** The example runner (examples/runner) against the real handlers over HTTP. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { silentLogger } from 'pipeline-status-sdk/client'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { formatProgress, runExamplePipeline } from '../../examples/runner/runner.js'
import { TEST_SECRET, type TestServer, startTestServer } from './support/test-server.js'

let server: TestServer
let dir: string
beforeEach(async () => {
  server = await startTestServer()
  dir = mkdtempSync(join(tmpdir(), 'example-runner-'))
})
afterEach(async () => {
  await server.stop()
  rmSync(dir, { recursive: true, force: true })
})

it('runs the five example stages to COMPLETED and reads the status back', async () => {
  const lines: string[] = []
  const { summary, status, delivered } = await runExamplePipeline({
    runId: 'example_1',
    stageDelayMs: 5,
    client: { baseUrl: server.origin, secret: TEST_SECRET, logger: silentLogger, outbox: { dir } },
    onProgress: (event) => lines.push(formatProgress(event)),
  })
  expect(summary.status).toBe('COMPLETED')
  expect(summary.delivered).toBe(true)
  expect(delivered).toBe(true)
  expect(status.run.status).toBe('COMPLETED')
  expect(status.stages.map((s) => s.status)).toEqual(Array(5).fill('COMPLETED'))
  expect(lines.at(-1)).toMatch(/^run example_1: COMPLETED in \d+ ms$/)
  expect(lines.filter((l) => l.endsWith(': PROCESSING'))).toHaveLength(5)
  expect(JSON.parse(server.requestsTo('/complete')[0]?.body ?? '{}').fullReportMarkdown).toMatch(/^# Opportunities/)
})
