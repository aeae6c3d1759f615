/**
 * The plain-`requests` Python runner (examples/python-runner/runner.py) keeps a stage's status
 * like the TypeScript client: unstorable characters replaced, a too-large output cut to the
 * limit the 413 states and sent as a new update, retries logged with their cause and wait,
 * and a FRONTEND_WEBHOOK_URL that ends with the base path accepted. Against the real handlers.
 */
import { execFile, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { PrismaAPIClient, TRUNCATION_MARKER, createProblem } from 'pipeline-status-sdk/client'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { type RecordedRequest, TEST_SECRET, type TestServer, startTestServer } from './support/test-server.js'

const LIMIT = 4096
const runnerDir = fileURLToPath(new URL('../../examples/python-runner/', import.meta.url))

let server: TestServer
beforeEach(async () => {
  server = await startTestServer({ maxBodyBytes: LIMIT })
})
afterEach(async () => {
  await server.stop()
})

/** The first Python 3 with `requests`: pyenv's or Debian's. */
function python(): string {
  for (const candidate of ['python3', '/usr/bin/python3']) {
    if (spawnSync(candidate, ['-c', 'import requests'], { stdio: 'ignore' }).status === 0) return candidate
  }
  throw new Error('No python3 with the requests module: apt-get install -y python3-requests')
}

/** Runs `code` with the runner module importable, against the test server's URL as the Express example prints it. */
async function runPython(code: string): Promise<{ stdout: string; stderr: string }> {
  const script = `import sys, json\nsys.path.insert(0, ${JSON.stringify(runnerDir)})\nfrom runner import PipelineStatusClient\n${code}`
  return promisify(execFile)(python(), ['-c', script], {
    env: { ...process.env, FRONTEND_WEBHOOK_URL: `${server.origin}/api/pipeline`, WEBHOOK_SECRET: TEST_SECRET, PYTHONDONTWRITEBYTECODE: '1' },
  })
}

const body = (request: RecordedRequest | undefined) => JSON.parse(request?.body ?? 'null') as { stageNumber: number; output: string }

it('delivers the status of stages whose output has a lone surrogate, a NUL, or is over the body limit', async () => {
  const { stdout, stderr } = await runPython(`
client = PipelineStatusClient()
run = client.create_run("py_unstorable")
ok = [
    client.initialize_pipeline_stages(run),
    client.mark_stage_complete(run, 1, "lone \\ud800 surrogate"),
    client.mark_stage_complete(run, 2, "nul \\x00 char"),
    client.mark_stage_complete(run, 3, "\\u00e9" * 3000 + "y" * 3000),
]
print(json.dumps({"ok": ok, "altered": client.altered_outputs, "undelivered": client.undelivered}))
`)
  const result = JSON.parse(stdout) as { ok: boolean[]; altered: Array<[number, string]>; undelivered: string[] }
  expect(result.ok).toEqual([true, true, true, true])
  expect(result.undelivered).toEqual([])
  expect(result.altered).toEqual([
    [1, '1 character(s) PostgreSQL cannot store replaced with U+FFFD'],
    [2, '1 character(s) PostgreSQL cannot store replaced with U+FFFD'],
    [3, expect.stringMatching(/^output truncated from 9000 to \d+ bytes to fit the server's body limit \(4096 bytes\)$/)],
  ])
  expect(stderr).toContain('warning: stage 3 output truncated from 9000 to')

  // The URL ended with /api/pipeline: the path was not doubled.
  for (const request of server.requests) expect(request.url).toMatch(/^\/api\/pipeline\/(runs|py_unstorable\/stage-update)$/)
  const stage3 = server.requests.filter((r) => r.url.endsWith('/stage-update') && body(r).stageNumber === 3)
  expect(stage3).toHaveLength(2)
  const [refused, cut] = stage3 as [RecordedRequest, RecordedRequest]
  expect(Buffer.byteLength(refused.body)).toBeGreaterThan(LIMIT)
  expect(Buffer.byteLength(cut.body)).toBeLessThanOrEqual(LIMIT)
  expect(cut.headers['idempotency-key']).not.toBe(refused.headers['idempotency-key'])

  const { stages } = await new PrismaAPIClient({ baseUrl: server.origin, secret: TEST_SECRET }).getStatus('py_unstorable')
  expect(stages.map((s) => [s.stageNumber, s.status])).toEqual([1, 2, 3].map((n) => [n, 'COMPLETED']))
  expect(stages[0]?.output).toBe('lone \uFFFD surrogate')
  expect(stages[1]?.output).toBe('nul \uFFFD char')
  // The same marker as the TypeScript client's, once, at the end.
  expect(stages[2]?.output?.endsWith(TRUNCATION_MARKER)).toBe(true)
  expect(stages[2]?.output?.split(TRUNCATION_MARKER)).toHaveLength(2)
})

it('logs each retry with the status, the problem code and the wait', async () => {
  server.inject(
    { status: 503, headers: { 'content-type': 'application/problem+json' }, body: JSON.stringify(createProblem('database_unavailable')) },
    { status: 429, headers: { 'retry-after': '0' } },
  )
  const { stdout, stderr } = await runPython(`
client = PipelineStatusClient()
print(client.create_run("py_retry"))
`)
  expect(stdout.trim()).toBe('py_retry')
  expect(stderr.split('\n').filter(Boolean)).toEqual([
    '  POST /runs failed (HTTP 503 database_unavailable); retry 1 of 3 in 0.40 s',
    '  POST /runs failed (HTTP 429); retry 2 of 3 in 0.00 s',
  ])
})
