/**
 * The samples that talk to a server do what they say when run: every TypeScript block of the
 * docs and every `@example` of the API reference that creates a `PrismaAPIClient` and sends with
 * it (a runner program) runs, as a user would run it with `npx tsx`, against the mock server
 * (`startMockServer`: the real handlers on an in-memory store, the default five-stage
 * catalogue and a two-stage pipeline `report`), with `FRONTEND_WEBHOOK_URL` and `WEBHOOK_SECRET` set as the guides say. Each runs
 * in a folder of its own (outbox directories land there) and must exit 0 with every request it
 * sent answered; a runPipeline sample must leave its run COMPLETED. Type-checking them is
 * code-blocks.test.ts's job. Not run here: samples that only construct a client (nothing is
 * sent), and test files (`import ... from 'vitest'`, docs/testing.md), which bring their own
 * in-process mock and run under the user's test runner.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { defineStages } from 'pipeline-status-sdk'
import { startMockServer, type MockServerRequestEntry } from 'pipeline-status-sdk/msw'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CodeBlock, collectDocumentedBlocks, isChecked } from './code-blocks.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const require = createRequire(import.meta.url)
const execFileAsync = promisify(execFile)
/** A sample sends a handful of requests to a local server; 30 s is far above the 1 to 3 s it takes. */
const SAMPLE_DEADLINE_MS = 30_000

/** A call that sends a request to the server. */
const SENDS = /\b(runPipeline|\.createRun|\.markStage\w+|\.getStatus|\.completeRun|\.reportProgress|\.sendStageUpdate|\.initializePipelineStages)\(/

const runners = collectDocumentedBlocks(root)
  .filter(isChecked)
  .filter((block) => /new PrismaAPIClient\(/.test(block.code))
  .filter((block) => SENDS.test(block.code) && !/from 'vitest'/.test(block.code))

/** The pipeline the samples of "Runs as a collection" name (docs/listing-runs.md), beside `default`. */
const SAMPLE_PIPELINES = { pipelines: { report: defineStages(['Fetch', 'Summarise']) } }

let base = ''

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/client/index.js'))) throw new Error('dist/ is missing: the global setup builds it (npm run build)')
  base = await mkdtemp(join(tmpdir(), 'pss-run-samples-'))
  // The package as users install it: resolved through its exports map to dist/.
  await mkdir(join(base, 'node_modules'))
  await symlink(root, join(base, 'node_modules/pipeline-status-sdk'), 'dir')
  // The optional peer a tracing sample imports (docs/tracing.md), installed beside it as users do.
  await mkdir(join(base, 'node_modules/@opentelemetry'))
  await symlink(join(root, 'node_modules/@opentelemetry/api'), join(base, 'node_modules/@opentelemetry/api'), 'dir')
  await writeFile(join(base, 'package.json'), JSON.stringify({ name: 'run-samples', private: true, type: 'module' }))
})

afterAll(async () => {
  if (base) await rm(base, { recursive: true, force: true })
})

/** Where a sample comes from, as its test's name. */
const label = (block: CodeBlock) => `${block.file}:${block.line}`

describe('samples that talk to a server, run against the mock', () => {
  it('are found: the runner programs of the guides and of the API reference', () => {
    const files = new Set(runners.map((block) => block.file))
    for (const file of ['README.md', 'docs/quick-start.md', 'src/client/run-pipeline.ts', 'src/client/index.ts']) expect(files).toContain(file)
    expect(runners.length).toBeGreaterThanOrEqual(12)
  })

  it.each(runners.map((block) => [label(block), block] as const))('%s', async (_name, block) => {
    const requests: MockServerRequestEntry[] = []
    const secret = 'docs-sample-secret'
    const server = await startMockServer({ secret, autoCreateRuns: true, ...SAMPLE_PIPELINES, onRequest: (entry) => requests.push(entry) })
    const folder = await mkdtemp(join(base, 'sample-'))
    try {
      const file = join(folder, `sample.${block.lang === 'tsx' ? 'tsx' : 'mts'}`)
      await writeFile(file, block.code)
      const env: NodeJS.ProcessEnv = { ...process.env, FRONTEND_WEBHOOK_URL: server.url, WEBHOOK_SECRET: secret }
      delete env['PIPELINE_STATUS_SIGNING_SECRET']
      let output: { stdout: string; stderr: string }
      try {
        output = await execFileAsync(process.execPath, [require.resolve('tsx/cli'), file], { cwd: folder, env, timeout: SAMPLE_DEADLINE_MS })
      } catch (error) {
        const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string }
        throw new Error(`${label(block)} failed against the mock:\n${stdout}\n${stderr}`, { cause: error })
      }
      // It reached the server, and each request got an answer (no dropped connection).
      expect(requests.length, output.stderr).toBeGreaterThan(0)
      // Every request was answered; a run's live stream (the runner follows its own run while a
      // stage runs) stays open until the runner closes it, so it has no final status.
      expect(requests.filter((entry) => entry.status === undefined && !(entry.method === 'GET' && entry.path.endsWith('/events')))).toEqual([])
      if (/\brunPipeline\(/.test(block.code)) {
        // Every run it reported ended COMPLETED: the stage functions match the server's catalogue.
        const runIds = [...new Set(server.mock.requests.map((request) => request.runId).filter((id) => id !== undefined))]
        expect(runIds.length).toBeGreaterThan(0)
        for (const runId of runIds) expect((await server.mock.getRun(runId))?.run.status, `${runId}\n${output.stdout}${output.stderr}`).toBe('COMPLETED')
      }
    } finally {
      await server.close()
      await rm(folder, { recursive: true, force: true })
    }
  })
})
