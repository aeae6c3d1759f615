/**
 * The Python client's `timeout` is one deadline per attempt across connect, headers and body
 * (urllib's is per socket operation: a body trickled a byte a second never trips it). Against
 * the node:http test server with the real handlers behind it: a server that stalls after the
 * headers, and one that trickles the body a byte a second, end each attempt by the client's own
 * deadline (a timeout, not the server closing), the retry carries the same Idempotency-Key, and
 * the original runner's whole sequence completes once the server recovers. Real clock: the
 * bounds are ceilings of 5x the timeout. Without Python 3.9+ it is skipped
 * (test/support/optional-tools.ts), unless PIPELINE_STATUS_REQUIRE_ALL is set.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { pythonHandlersTool, toolForTests } from '../support/optional-tools.js'
import { createRunOn } from './support/outbox-fixture.js'
import { type Fault, TEST_SECRET, type TestServer, startTestServer } from './support/test-server.js'

const clientDir = fileURLToPath(new URL('../../clients/python/', import.meta.url))
const python = toolForTests(pythonHandlersTool())

// The trickle's gap (1 s) is shorter than the timeout, so a deadline per socket read never fires.
const faults: Array<[string, Fault, number]> = [
  ['stalls after the headers', { stallBody: true }, 0.5],
  ['trickles the body a byte a second', { trickleBodyMs: 1000 }, 2.0],
]

describe.skipIf(!python)('the Python client', () => {
  describe.each(faults)('against a server that %s', (_, fault, timeout) => {
    let server: TestServer
    beforeEach(async () => {
      server = await startTestServer()
    })
    afterEach(() => server.stop())

    it('ends each attempt by its timeout, retries with the same Idempotency-Key, and the run completes once the server recovers', async () => {
      const runId = await createRunOn(server, 'py_deadline')
      const pass: Fault = { pass: true }
      // check_catalogue's status read: two attempts time out; stage 1's first update: one.
      server.inject(fault, fault, pass, fault)
      const script = [
        'import sys, json, logging',
        `sys.path.insert(0, ${JSON.stringify(clientDir)})`,
        'logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")',
        'from pipeline_status_client import PrismaAPIClient, RetryPolicy',
        `client = PrismaAPIClient(timeout=${timeout}, retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.01), background=False)`,
        `run = ${JSON.stringify(runId)}`,
        'client.check_catalogue(run)',
        'ok = [client.initialize_pipeline_stages(run), client.mark_stage_complete(run, 1, "one")]',
        'for n in range(2, 6):',
        '    ok += [client.mark_stage_processing(run, n), client.mark_stage_complete(run, n, str(n))]',
        'done = client.complete_run(run, "COMPLETED", duration=1.0)',
        'print(json.dumps({"ok": ok, "completed": done, "all_delivered": client.undelivered().all_delivered}))',
      ].join('\n')
      const { stdout, stderr } = await promisify(execFile)(python!, ['-c', script], {
        env: { ...process.env, FRONTEND_WEBHOOK_URL: server.origin, WEBHOOK_SECRET: TEST_SECRET, PYTHONDONTWRITEBYTECODE: '1' },
      })
      expect(JSON.parse(stdout)).toEqual({ ok: Array(10).fill(true), completed: true, all_delivered: true })
      // Each timed-out attempt is a retry warning naming the timeout, not a closed connection.
      const timedOut = `failed (timed out after ${timeout} s)`
      expect(stderr.split('\n').filter(Boolean)).toEqual([
        expect.stringMatching(new RegExp(`^WARNING GET /api/pipeline/py_deadline/status ${escape(timedOut)}; attempt 2 of 3 \\(retry 1 of 2\\) in 0\\.\\d\\d s$`)),
        expect.stringMatching(new RegExp(`^WARNING GET /api/pipeline/py_deadline/status ${escape(timedOut)}; attempt 3 of 3 \\(retry 2 of 2\\) in 0\\.\\d\\d s$`)),
        expect.stringMatching(new RegExp(`^WARNING Run py_deadline: stage 1 PROCESSING ${escape(timedOut)}; attempt 2 of 3 \\(retry 1 of 2\\) in 0\\.\\d\\d s$`)),
      ])
      const statusReads = server.requestsTo('/status')
      const firstUpdates = server.requestsTo('/stage-update').slice(0, 2)
      expect(statusReads).toHaveLength(3)
      expect(firstUpdates.map((r) => JSON.parse(r.body) as { stageNumber: number; status: string })).toEqual([
        expect.objectContaining({ stageNumber: 1, status: 'PROCESSING' }),
        expect.objectContaining({ stageNumber: 1, status: 'PROCESSING' }),
      ])
      expect(firstUpdates[0]?.headers['idempotency-key']).toBe(firstUpdates[1]?.headers['idempotency-key'])
      // How long each timed-out attempt took, as the server saw it: from its arrival to the
      // next attempt's (the attempt, then a backoff of at most 10 ms and a new connection).
      const gaps = [statusReads[1]!.arrivedAt - statusReads[0]!.arrivedAt, statusReads[2]!.arrivedAt - statusReads[1]!.arrivedAt, firstUpdates[1]!.arrivedAt - firstUpdates[0]!.arrivedAt]
      for (const gap of gaps) {
        // Only an upper bound: each attempt ended by the deadline (the log lines above say "timed
        // out after"), and a connect delayed by a loaded machine can shorten or lengthen a gap.
        expect(gap).toBeLessThan(5 * timeout * 1000)
      }
      expect((await (await fetch(`${server.origin}/api/pipeline/${runId}/status`, { headers: { 'x-webhook-secret': TEST_SECRET } })).json()) as unknown).toMatchObject({
        run: { status: 'COMPLETED' },
      })
    })
  })
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
