/**
 * The Python client's retries and run watch (clients/python: `run_stage_with_retries`,
 * `mark_stage_retrying`, `cancelled(run_id)`), against the real handlers over HTTP
 * (test/client/support/test-server.ts streams the live stream as it comes). A cancel from the
 * web app sets `cancelled(run_id)` through the stream: the client sends no heartbeat and no
 * status read, so nothing else could have told it. Without Python 3.9+ it is skipped
 * (test/support/optional-tools.ts), unless PIPELINE_STATUS_REQUIRE_ALL is set. Assertions wait on
 * conditions, never on how long something took.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { pythonHandlersTool, toolForTests } from '../support/optional-tools.js'
import { until } from '../support/until.js'
import { TEST_SECRET, type TestServer, startTestServer } from './support/test-server.js'

const clientDir = fileURLToPath(new URL('../../clients/python/', import.meta.url))
const python = toolForTests(pythonHandlersTool())

/** Starts `code` with the client importable; resolves its lines of stdout as they come, and its end. */
function startPython(server: TestServer, code: string): { lines: string[]; stderr: () => string; done: Promise<number | null> } {
  const script = [
    'import sys, json, logging, threading, time',
    `sys.path.insert(0, ${JSON.stringify(clientDir)})`,
    'logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")',
    'from pipeline_status_client import PrismaAPIClient, RunFinishedElsewhereError',
    code,
  ].join('\n')
  const child = spawn(python!, ['-c', script], {
    env: { ...process.env, FRONTEND_WEBHOOK_URL: server.origin, WEBHOOK_SECRET: TEST_SECRET, PYTHONDONTWRITEBYTECODE: '1' },
  })
  const lines: string[] = []
  let stderr = ''
  let partial = ''
  child.stdout.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString('utf8')).split('\n')
    partial = parts.pop() ?? ''
    lines.push(...parts)
  })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8')
  })
  const done = new Promise<number | null>((resolve) => child.on('close', resolve))
  return { lines, stderr: () => stderr, done }
}

async function cancel(server: TestServer, runId: string): Promise<void> {
  expect((await server.cancel(runId, 'stopped from the web app')).status).toBe(200)
}

describe.skipIf(!python)('the Python client: retries and cancelled(run_id)', () => {
  let server: TestServer
  beforeEach(async () => {
    server = await startTestServer()
  })
  afterEach(async () => {
    await server.stop()
  })

  it('a cancel from the web app ends a running 60 s stage through the stream: no heartbeat, no status read', async () => {
    const python = startPython(
      server,
      `
client = PrismaAPIClient()
run = client.create_run("py_cancel")["id"]
cancelled = client.cancelled(run)
def stage():
    print("running", flush=True)
    cancelled.wait(60)  # a 60 s stage that stops when the run ends elsewhere
    return "never stored"
client.mark_stage_complete(run, 1, "one")
try:
    client.run_stage_with_retries(run, 2, stage, attempts=3)
    result = "completed"
except RunFinishedElsewhereError as error:
    result = {"error": str(error), "run": error.run["status"]}
print(json.dumps({"result": result, "set": cancelled.is_set()}), flush=True)
`,
    )
    await until('stage 2 to run under the open stream', () => python.lines.includes('running') && server.openStreams === 1, 30_000)
    await cancel(server, 'py_cancel')
    expect(await python.done).toBe(0)
    const outcome = JSON.parse(python.lines.at(-1) ?? 'null') as { result: unknown; set: boolean }
    expect(outcome).toEqual({ result: { error: 'Run py_cancel was CANCELLED elsewhere: stopped from the web app', run: 'CANCELLED' }, set: true })
    // Nothing but the stream could have told it.
    expect(server.requestsTo('/py_cancel/heartbeat')).toEqual([])
    expect(server.requestsTo('/py_cancel/status')).toEqual([])
    // The set stream's summary view of the one run (no chunks echoed back), not the run's own stream.
    expect(server.requestsTo('/py_cancel/events')).toEqual([])
    expect(server.requests.filter((request) => request.url.endsWith('/events?run=py_cancel&view=summary'))).toHaveLength(1)
    await until('the stream to be closed', () => server.openStreams === 0)
    // Nothing was sent for stage 2 after its first PROCESSING.
    const stage2 = server.requestsTo('/py_cancel/stage-update').filter((r) => r.body.includes('"stageNumber": 2') || r.body.includes('"stageNumber":2'))
    expect(stage2).toHaveLength(1)
  })

  it('a stage that fails twice, then succeeds with attempts=3: each retry reported, stored attempt 3, the run goes on', async () => {
    const python = startPython(
      server,
      `
client = PrismaAPIClient()
run = client.create_run("py_retry")["id"]
calls = []
def flaky():
    calls.append(1)
    if len(calls) < 3:
        raise TimeoutError(f"model timed out (attempt {len(calls)})")
    return {"found": True}
client.mark_stage_complete(run, 1, "one")
result = client.run_stage_with_retries(run, 2, flaky, attempts=3, backoff=0)
for number in (3, 4, 5):
    client.run_stage_with_retries(run, number, lambda: number, attempts=1)
# The client's own last stage finished the run: the stream ends with it (the watch's thread
# returns on "end"), and that is not "elsewhere".
client._watches[run].thread.join(30)
print(json.dumps({"result": result, "cancelled": client.cancelled(run).is_set(), "elsewhere": client.run_finished(run)}), flush=True)
`,
    )
    expect(await python.done, python.stderr()).toBe(0)
    expect(JSON.parse(python.lines.at(-1) ?? 'null')).toEqual({ result: { found: true }, cancelled: false, elsewhere: null })
    const bodies = server
      .requestsTo('/py_retry/stage-update')
      .map((r) => JSON.parse(r.body) as Record<string, unknown>)
      .filter((b) => b.stageNumber === 2)
    expect(bodies.map(({ status, attempt, maxAttempts, lastError, nextRetryAt }) => ({ status, attempt, maxAttempts, lastError, retryAt: typeof nextRetryAt }))).toEqual([
      { status: 'PROCESSING', attempt: 1, maxAttempts: 3, lastError: undefined, retryAt: 'object' },
      { status: 'PROCESSING', attempt: 2, maxAttempts: 3, lastError: 'model timed out (attempt 1)', retryAt: 'string' },
      { status: 'PROCESSING', attempt: 2, maxAttempts: 3, lastError: undefined, retryAt: 'object' },
      { status: 'PROCESSING', attempt: 3, maxAttempts: 3, lastError: 'model timed out (attempt 2)', retryAt: 'string' },
      { status: 'PROCESSING', attempt: 3, maxAttempts: 3, lastError: undefined, retryAt: 'object' },
      { status: 'COMPLETED', attempt: undefined, maxAttempts: undefined, lastError: undefined, retryAt: 'undefined' },
    ])
    const status = (await (await fetch(`${server.origin}/api/pipeline/py_retry/status`, { headers: { 'x-webhook-secret': TEST_SECRET } })).json()) as {
      run: { status: string }
      stages: Array<Record<string, unknown>>
    }
    expect(status.run.status).toBe('COMPLETED')
    expect(status.stages[1]).toMatchObject({ status: 'COMPLETED', attempt: 3, maxAttempts: 3, lastError: 'model timed out (attempt 2)', nextRetryAt: null })
  })

  it('a stream whose headers never come: given up at the client timeout, tried again, the run polled meanwhile', async () => {
    const real = createPipelineStatusHandlers({ store: server.store, secret: TEST_SECRET, logger: { error: () => undefined, warn: () => undefined } })
    server.setHandler((request) => (new URL(request.url).pathname.endsWith('/events') ? new Promise<Response>(() => {}) : real.fetch(request)))
    const python = startPython(
      server,
      `
client = PrismaAPIClient(timeout=0.3)
client.poll_interval = 0.05
run = client.create_run("py_hang")["id"]
client.initialize_pipeline_stages(run)
cancelled = client.cancelled(run)
print(json.dumps({"set": cancelled.wait(60)}), flush=True)
`,
    )
    await until('a poll after a stream attempt', () => server.requests.some((request) => request.url.endsWith('/events?run=py_hang&view=summary')) && server.requestsTo('/py_hang/status').length >= 1, 30_000)
    await cancel(server, 'py_hang')
    expect(await python.done).toBe(0)
    expect(JSON.parse(python.lines.at(-1) ?? 'null')).toEqual({ set: true })
    expect(python.stderr().match(/live stream: GET \S+ failed \(\w+: timed out\); retrying with backoff, polling GET \/status meanwhile/g)).toHaveLength(1)
  })

  it('polls GET /status when the events route answers 404, and says so once', async () => {
    const real = createPipelineStatusHandlers({ store: server.store, secret: TEST_SECRET, logger: { error: () => undefined, warn: () => undefined } })
    server.setHandler((request) => (new URL(request.url).pathname.endsWith('/events') ? new Response('Not Found', { status: 404 }) : real.fetch(request)))
    const python = startPython(
      server,
      `
client = PrismaAPIClient()
client.poll_interval = 0.05
run = client.create_run("py_poll")["id"]
client.initialize_pipeline_stages(run)
cancelled = client.cancelled(run)
print("watching", flush=True)
print(json.dumps({"set": cancelled.wait(60)}), flush=True)
`,
    )
    await until('the first poll', () => python.lines.includes('watching') && server.requestsTo('/py_poll/status').length > 0, 30_000)
    await cancel(server, 'py_poll')
    expect(await python.done).toBe(0)
    expect(JSON.parse(python.lines.at(-1) ?? 'null')).toEqual({ set: true })
    expect(server.requestsTo('/py_poll/events')).toHaveLength(1)
    expect(python.stderr().match(/no live stream route; polling GET \/status/g)).toHaveLength(1)
  })
})
