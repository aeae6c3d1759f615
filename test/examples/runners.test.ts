/**
 * The example runners as people run them, each a child process against `pipeline-status mock`
 * (the built bin) over HTTP: the TypeScript runner (runPipeline + PrismaAPIClient + outbox) and
 * the Python runner (pipeline_status_client). Both must end with the run COMPLETED, unchanged,
 * although the mock serves two more pipelines (`--pipelines`): their runs are in `default`. Without
 * Python 3.9+ the Python test is skipped (test/support/optional-tools.ts).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { RunStatusResponse } from 'pipeline-status-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pythonTool, toolForTests } from '../support/optional-tools.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const SECRET = 'runner-example-secret'
let mock: ChildProcess
let url: string
let work: string

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'pss-runners-'))
  const pipelines = join(work, 'pipelines.json')
  await writeFile(pipelines, JSON.stringify({ report: ['Fetch', 'Summarise'], ingest: ['Load'] }))
  const args = ['mock', '--port', '0', '--secret', SECRET, '--pipelines', pipelines]
  mock = spawn(process.execPath, [join(root, 'dist/cli.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  url = await new Promise<string>((resolve, reject) => {
    let out = ''
    mock.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk
      const match = /listening on (http:\/\/[^/\s]+)/.exec(out)
      if (match) resolve(match[1]!)
    })
    mock.once('exit', (code) => reject(new Error(`pipeline-status mock exited ${code}: ${out}`)))
  })
})
afterAll(async () => {
  mock?.kill('SIGTERM')
  if (work) await rm(work, { recursive: true, force: true })
})

const env = () => ({ ...process.env, FRONTEND_WEBHOOK_URL: url, WEBHOOK_SECRET: SECRET, STAGE_DELAY_MS: '20' })

async function statusOf(runId: string) {
  const response = await fetch(`${url}/api/pipeline/${runId}/status`, { headers: { 'X-Webhook-Secret': SECRET } })
  expect(response.status).toBe(200)
  return RunStatusResponse.parse(await response.json())
}

// Python 3.9+; skipped without it unless PIPELINE_STATUS_REQUIRE_ALL is set.
const python = toolForTests(pythonTool())

describe('example runners against pipeline-status mock', () => {
  it('the TypeScript runner completes a run and saves its debug outputs', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(root, 'node_modules/tsx/dist/cli.mjs'), 'examples/runner/runner.ts', 'ts-example-run'],
      { cwd: root, env: { ...env(), PIPELINE_DEBUG_DIR: join(work, 'debug') } },
    )
    expect(stdout).toContain('GET /status: run ts-example-run is COMPLETED')
    const { run, stages } = await statusOf('ts-example-run')
    expect(run).toMatchObject({ status: 'COMPLETED', pipeline: 'default' })
    expect(run.completionReceivedAt).not.toBeNull()
    expect(stages.map((s) => s.status)).toEqual(Array(5).fill('COMPLETED'))
    const saved = JSON.parse(await readFile(join(work, 'debug/ts-example-run/stage_1_output.json'), 'utf8'))
    expect(saved).toMatchObject({ rows: 1280 })
  })

  it.skipIf(!python)('the Python runner completes a run with the original payloads', async () => {
    const { stdout } = await promisify(execFile)(python!, [join(root, 'examples/python-runner/runner.py'), 'py-example-run'], { env: env() })
    expect(stdout).toContain('Every update was delivered')
    expect(stdout).toContain('GET /status: run py-example-run is COMPLETED')
    const { run, stages } = await statusOf('py-example-run')
    expect(run).toMatchObject({ status: 'COMPLETED', pipeline: 'default' })
    expect(stages.map((s) => [s.stageNumber, s.status])).toEqual([1, 2, 3, 4, 5].map((n) => [n, 'COMPLETED']))
    // Python's microsecond timestamps were accepted and stored.
    expect(stages[0]?.completedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(JSON.parse(stages[0]?.output ?? '')).toMatchObject({ rows: 1280 })
  })
})
