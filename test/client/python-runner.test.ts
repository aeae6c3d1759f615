/**
 * The Python client (clients/python, `pipeline_status_client.PrismaAPIClient`, which the Python
 * example runner uses) keeps a stage's status like the TypeScript client: unstorable characters
 * replaced, a too-large output cut to the limit the 413 states and sent as a new update, both
 * reported in `altered_outputs`, retries logged as warnings with their cause and wait, what was
 * not delivered reported by `undelivered()`, and a FRONTEND_WEBHOOK_URL that ends with the base
 * path accepted. Against the real handlers. Without Python 3.9+ it is skipped
 * (test/support/optional-tools.ts), unless PIPELINE_STATUS_REQUIRE_ALL is set.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { PrismaAPIClient, TRUNCATION_MARKER } from 'pipeline-status-sdk/client'
import { createProblem } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { pythonHandlersTool, toolForTests } from '../support/optional-tools.js'
import { type RecordedRequest, TEST_SECRET, type TestServer, startTestServer } from './support/test-server.js'

const LIMIT = 4096
const clientDir = fileURLToPath(new URL('../../clients/python/', import.meta.url))
const runnerPath = fileURLToPath(new URL('../../examples/python-runner/runner.py', import.meta.url))
const python = toolForTests(pythonHandlersTool())

/** Runs `code` with `pipeline_status_client` importable and warnings logged to stderr as `LEVEL message`,
 * against the test server's URL as the Express example prints it (with /api/pipeline). */
async function runPython(server: TestServer, code: string): Promise<{ stdout: string; stderr: string }> {
  const script = [
    'import sys, json, logging, dataclasses',
    `sys.path.insert(0, ${JSON.stringify(clientDir)})`,
    'logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")',
    'from pipeline_status_client import PrismaAPIClient, RetryPolicy',
    code,
  ].join('\n')
  return promisify(execFile)(python!, ['-c', script], {
    env: { ...process.env, FRONTEND_WEBHOOK_URL: `${server.origin}/api/pipeline`, WEBHOOK_SECRET: TEST_SECRET, PYTHONDONTWRITEBYTECODE: '1' },
  })
}

const body = (request: RecordedRequest | undefined) => JSON.parse(request?.body ?? 'null') as { stageNumber: number; output: string }

describe.skipIf(!python)('the Python client against the real handlers', () => {
  let server: TestServer
  beforeEach(async () => {
    server = await startTestServer({ maxBodyBytes: LIMIT })
  })
  afterEach(async () => {
    await server.stop()
  })

  it('delivers the status of stages whose output has a lone surrogate, a NUL, or is over the body limit', async () => {
    const { stdout, stderr } = await runPython(
      server,
      `
client = PrismaAPIClient()
run = client.create_run("py_unstorable")["id"]
ok = [
    client.initialize_pipeline_stages(run),
    client.mark_stage_complete(run, 1, "lone \\ud800 surrogate"),
    client.mark_stage_complete(run, 2, "nul \\x00 char"),
    client.mark_stage_complete(run, 3, "\\u00e9" * 3000 + "y" * 3000),
]
undelivered = client.undelivered()
print(json.dumps({
    "ok": ok,
    "altered": [dataclasses.asdict(a) for a in client.altered_outputs],
    "all_delivered": undelivered.all_delivered,
    "failed": undelivered.failed,
}))
`,
    )
    const result = JSON.parse(stdout) as { ok: boolean[]; altered: unknown[]; all_delivered: boolean; failed: string[] }
    expect(result.ok).toEqual([true, true, true, true])
    expect(result.all_delivered).toBe(true)
    expect(result.failed).toEqual([])
    const replaced = (stage: number) => ({
      run_id: 'py_unstorable',
      stage_number: stage,
      kind: 'replaced',
      description: '1 character(s) PostgreSQL cannot store replaced with U+FFFD',
      replaced_characters: 1,
      bytes_before: null,
      bytes_after: null,
      limit: null,
      reason: null,
    })
    expect(result.altered).toEqual([
      replaced(1),
      replaced(2),
      {
        run_id: 'py_unstorable',
        stage_number: 3,
        kind: 'truncated',
        description: expect.stringMatching(/^output truncated from 9000 to \d+ bytes to fit the server's body limit \(4096 bytes\)$/),
        replaced_characters: 0,
        bytes_before: 9000,
        bytes_after: expect.any(Number),
        limit: LIMIT,
        reason: null,
      },
    ])
    const lines = stderr.split('\n').filter(Boolean)
    expect(lines).toEqual([
      'WARNING Run py_unstorable: stage 1 COMPLETED: replaced 1 character(s) PostgreSQL cannot store (NUL, lone UTF-16 surrogates) in the output with U+FFFD',
      'WARNING Run py_unstorable: stage 2 COMPLETED: replaced 1 character(s) PostgreSQL cannot store (NUL, lone UTF-16 surrogates) in the output with U+FFFD',
      expect.stringMatching(
        /^WARNING Run py_unstorable: stage 3 COMPLETED: the server refused the body as too large \(413, limit 4096 bytes\); sending it again with the output cut from 9000 to \d+ bytes, ending with the truncation marker$/,
      ),
    ])

    // The URL ended with /api/pipeline: the path was not doubled.
    for (const request of server.requests) expect(request.url).toMatch(/^\/api\/pipeline\/(runs|py_unstorable\/stage-update)$/)
    const stage3 = server.requests.filter((r) => r.url.endsWith('/stage-update') && body(r).stageNumber === 3)
    expect(stage3).toHaveLength(2)
    const [refused, cut] = stage3 as [RecordedRequest, RecordedRequest]
    expect(Buffer.byteLength(refused.body)).toBeGreaterThan(LIMIT)
    expect(Buffer.byteLength(cut.body)).toBeLessThanOrEqual(LIMIT)
    expect(cut.headers['idempotency-key']).not.toBe(refused.headers['idempotency-key'])
    const altered = result.altered[2] as { bytes_after: number }
    expect(Buffer.byteLength(body(cut).output)).toBe(altered.bytes_after)

    const { stages } = await new PrismaAPIClient({ baseUrl: server.origin, secret: TEST_SECRET }).getStatus('py_unstorable')
    expect(stages.map((s) => [s.stageNumber, s.status])).toEqual([1, 2, 3].map((n) => [n, 'COMPLETED']))
    expect(stages[0]?.output).toBe('lone \uFFFD surrogate')
    expect(stages[1]?.output).toBe('nul \uFFFD char')
    // The same marker as the TypeScript client's, once, at the end.
    expect(stages[2]?.output?.endsWith(TRUNCATION_MARKER)).toBe(true)
    expect(stages[2]?.output?.split(TRUNCATION_MARKER)).toHaveLength(2)
  })

  it('logs each retry as a warning with the status, the problem code or the refused connection, and the wait', async () => {
    server.inject(
      { status: 503, headers: { 'content-type': 'application/problem+json' }, body: JSON.stringify(createProblem('database_unavailable')) },
      { status: 429, headers: { 'retry-after': '0' } },
    )
    // base_delay=0 makes the jittered waits exactly 0; nothing listens on the closed port.
    const { stdout, stderr } = await runPython(
      server,
      `
import socket
client = PrismaAPIClient(retry=RetryPolicy(attempts=4, base_delay=0))
print(client.create_run("py_retry")["id"])
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
offline = PrismaAPIClient(f"http://127.0.0.1:{closed_port}", retry=RetryPolicy(attempts=2, base_delay=0))
delivered = offline.initialize_pipeline_stages("py_retry")
undelivered = offline.undelivered("py_retry")
print(json.dumps({"delivered": delivered, "all_delivered": undelivered.all_delivered, "failed": undelivered.failed}))
`,
    )
    const [runId, summary] = stdout.trim().split('\n')
    expect(runId).toBe('py_retry')
    expect(JSON.parse(summary ?? 'null')).toEqual({
      delivered: false,
      all_delivered: false,
      failed: [expect.stringMatching(/^Run py_retry: stage 1 PROCESSING: POST \/api\/pipeline\/py_retry\/stage-update got no answer: .*refused/i)],
    })
    expect(stderr.split('\n').filter(Boolean)).toEqual([
      'WARNING POST /api/pipeline/runs failed (HTTP 503 database_unavailable); attempt 2 of 4 (retry 1 of 3) in 0.00 s',
      'WARNING POST /api/pipeline/runs failed (HTTP 429); attempt 3 of 4 (retry 2 of 3) in 0.00 s',
      'WARNING Run py_retry: stage 1 PROCESSING failed (connection refused (ECONNREFUSED)); attempt 2 of 2 (retry 1 of 1) in 0.00 s',
      'ERROR Run py_retry: stage 1 PROCESSING was not delivered: connection refused (ECONNREFUSED). Later updates of this run failing the same way are logged at debug level',
    ])
    expect(server.requestsTo('runs')).toHaveLength(3)
  })

  it('the example runner prints the altered outputs and exits 1 when an update was not delivered', async () => {
    // The real handlers, except that stage 2 PROCESSING is refused for good (400) and stage 5
    // COMPLETED is refused as too large once (413 stating a 170-byte limit: the body is 173 bytes).
    const handlers = createPipelineStatusHandlers({ store: server.store, secret: TEST_SECRET, logger: { error: () => undefined, warn: () => undefined } })
    server.setHandler(async (request) => {
      if (request.url.endsWith('/stage-update')) {
        const text = await request.clone().text()
        const update = JSON.parse(text) as { stageNumber: number; status: string }
        const problem = (code: 'validation_failed' | 'payload_too_large', status: number, extra = {}) =>
          new Response(JSON.stringify(createProblem(code, extra)), { status, headers: { 'content-type': 'application/problem+json' } })
        if (update.stageNumber === 2 && update.status === 'PROCESSING') return problem('validation_failed', 400)
        const size = Buffer.byteLength(text)
        if (update.stageNumber === 5 && update.status === 'COMPLETED' && size > 170) return problem('payload_too_large', 413, { maxBytes: 170 })
      }
      return handlers.fetch(request)
    })
    const result = await promisify(execFile)(python!, [runnerPath, 'py_runner'], {
      env: { ...process.env, FRONTEND_WEBHOOK_URL: `${server.origin}/api/pipeline`, WEBHOOK_SECRET: TEST_SECRET, STAGE_DELAY_MS: '0', PYTHONDONTWRITEBYTECODE: '1' },
    }).then(
      () => ({ code: 0, stdout: '', stderr: '' }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    )
    expect(result.code).toBe(1)
    expect(result.stdout).toMatch(/\n {2}stage 5 output altered: output truncated from \d+ to \d+ bytes to fit the server's body limit \(170 bytes\)\n/)
    expect(result.stderr).toMatch(/\n {2}not delivered: Run py_runner: stage 2 PROCESSING: POST \/api\/pipeline\/py_runner\/stage-update answered 400 validation_failed/)
    expect(result.stderr.trimEnd().endsWith('Not every update was delivered')).toBe(true)
    // The run itself completed: the lost update was a PROCESSING one, and stage 5 was cut, not lost.
    const { run, stages } = await new PrismaAPIClient({ baseUrl: server.origin, secret: TEST_SECRET }).getStatus('py_runner')
    expect(run.status).toBe('COMPLETED')
    expect(stages.map((s) => s.status)).toEqual(Array(5).fill('COMPLETED'))
    expect(stages[4]?.output?.endsWith(TRUNCATION_MARKER)).toBe(true)
  })

  it("streams a stage's text with stream_output before its final status, and stops with one warning on a 409", async () => {
    const { stdout, stderr } = await runPython(
      server,
      `
client = PrismaAPIClient()
run = client.create_run("py_stream")["id"]
client.mark_stage_processing(run, 1)
with client.stream_output(run, 1, flush_interval=0.05) as out:
    for i in range(40):
        out.write(f"tok{i} ")
during = client.get_status(run)["stages"][0]
client.mark_stage_complete(run, 1, "final")
after = client.get_status(run)["stages"][0]
early = client.stream_output(run, 2, flush_interval=0)
early.write("stage 2 has not started")
early.close()
early.write("dropped")
print(json.dumps({"during": during["output"], "status": during["status"], "after": after["output"], "chunks": out.chunks, "stopped": early.stopped}))
`,
    )
    const result = JSON.parse(stdout) as { during: string; status: string; after: string; chunks: number; stopped: string | null }
    expect(result.during).toBe(Array.from({ length: 40 }, (_, i) => `tok${i} `).join(''))
    expect(result.status).toBe('PROCESSING')
    expect(result.after).toBe('final')
    expect(result.chunks).toBeGreaterThanOrEqual(1)
    expect(result.stopped).toMatch(/chunk 0 was refused: .*409.*stage_not_started/)
    expect(stderr.split('\n').filter((line) => /output/.test(line))).toEqual([expect.stringMatching(/^WARNING Run py_stream: stage 2: streamed output stopped/)])
    const chunks = server.requestsTo('/stages/1/output').map((request) => JSON.parse(request.body) as { seq: number })
    expect(chunks.map((chunk) => chunk.seq)).toEqual(chunks.map((_, i) => i))
  })

  it('parallel stages and a completion after a failed stage answer as docs/other-languages.md documents', async () => {
    const { stdout } = await runPython(
      server,
      `
client = PrismaAPIClient(retry=RetryPolicy(attempts=1))
# Stages that run in parallel: stage 5, the catalogue's last, completes while stage 3 runs.
run = client.create_run("py_parallel")["id"]
client.mark_stage_processing(run, 3)
five = client.mark_stage_complete(run, 5, "report")
after = {"run": client.get_status(run)["run"]["status"], "processing_4": client.mark_stage_processing(run, 4)}
with client.stream_output(run, 3, flush_interval=0) as out:
    out.write("too late")
after["chunk"] = out.stopped
after["completed_3"] = client.mark_stage_complete(run, 3, "three")
after["failed_4"] = client.mark_stage_failed(run, 4, "boom")
after["complete_failed"] = client.complete_run(run, "FAILED", error="x")
status = client.get_status(run)
after["stored"] = [[s["stageNumber"], s["status"]] for s in status["stages"]]
after["error"] = status["run"]["error"]
# A completion FAILED after a stage FAILED: accepted, but the run keeps the stage's error.
failed = client.create_run("py_failed")["id"]
client.initialize_pipeline_stages(failed)
client.mark_stage_failed(failed, 2, "model timed out")
completion = client.complete_run(failed, "FAILED", error="pipeline aborted")
print(json.dumps({"five": five, "after": after, "completion": completion, "failed_error": client.get_status(failed)["run"]["error"]}))
`,
    )
    expect(JSON.parse(stdout)).toEqual({
      five: true,
      after: {
        run: 'COMPLETED',
        processing_4: true, // answered stale: nothing stored
        chunk: 'chunk 0 was refused: POST /api/pipeline/py_parallel/stages/3/output answered 409 run_finished: Run py_parallel is COMPLETED and takes no more output',
        completed_3: true, // stored: it agrees with the run's end
        failed_4: false, // 409 run_finished: nothing stored, the run's error stays null
        complete_failed: false, // 409 run_finished
        stored: [
          [3, 'COMPLETED'],
          [5, 'COMPLETED'],
        ],
        error: null,
      },
      completion: true,
      failed_error: 'model timed out',
    })
  })
})
