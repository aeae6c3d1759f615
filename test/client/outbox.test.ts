/**
 * The durable outbox: nothing is lost while the receiver is down, also across a process exit;
 * order per run is kept; a crash mid-write loses nothing that was written before.
 */
import { spawn } from 'node:child_process'
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { OutboxLockedError, type QueuedCompletionEvent, isOutboxLockedError, isQueuedDelivery } from 'pipeline-status-sdk/client'
import { describe, expect, it, vi } from 'vitest'
import { recordingLogger } from '../support/loggers.js'
import { until } from '../support/until.js'
import { useServerAndOutbox } from './support/outbox-fixture.js'
import { type RecordedRequest, TEST_SECRET } from './support/test-server.js'

const env = useServerAndOutbox()
const { makeClient, createRun } = env

const body = (request: RecordedRequest) => JSON.parse(request.body) as { stageNumber: number; status: string; completedAt?: string }
const lines = (file: string) => (existsSync(join(env.dir, file)) ? readFileSync(join(env.dir, file), 'utf8').split('\n').filter(Boolean) : [])

function runChild(script: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: process.cwd() })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

describe('receiver down', () => {
  it('delivers all 10 updates of a run sent while the server was down, after the sender exited', async () => {
    const runId = await createRun('run_down')
    await env.server.stop()

    // A separate process sends the run's ten updates (connection refused) and exits.
    const script = fileURLToPath(new URL('./fixtures/send-while-down.ts', import.meta.url))
    const child = await runChild(script, [env.server.origin, TEST_SECRET, env.dir, runId])
    expect(child.stderr).toBe('')
    expect(child.code).toBe(0)
    expect(JSON.parse(child.stdout)).toEqual({ results: Array(10).fill(true), pending: 10 })
    expect(lines('journal.jsonl')).toHaveLength(10)
    expect(env.server.requests).toHaveLength(0)

    await env.server.start()
    const client = makeClient()
    expect(client.pendingCount()).toBe(10)
    expect(client.pendingCount(runId)).toBe(10)
    const result = await client.flush()
    expect(result).toEqual({ delivered: 10, rejected: 0, pending: 0 })

    // All ten arrived exactly once, in the order they were sent, with their original bodies.
    const journal = env.server.requests.map(body)
    expect(journal.map((u) => `${u.stageNumber} ${u.status}`)).toEqual([
      '1 PROCESSING', '1 COMPLETED',
      '2 PROCESSING', '2 COMPLETED',
      '3 PROCESSING', '3 COMPLETED',
      '4 PROCESSING', '4 COMPLETED',
      '5 PROCESSING', '5 COMPLETED',
    ])
    expect(new Set(env.server.requests.map((r) => r.headers['idempotency-key'])).size).toBe(10)
    for (const request of env.server.requests) expect(request.url).toBe(`/api/pipeline/${runId}/stage-update`)

    const status = await client.getStatus(runId)
    expect(status.run.status).toBe('COMPLETED')
    expect(status.stages.map((s) => [s.stageNumber, s.status, s.output])).toEqual(
      [1, 2, 3, 4, 5].map((n) => [n, 'COMPLETED', JSON.stringify({ stage: n, items: [n * 10] })]),
    )
    // The body kept the instant each stage finished in the child. But a stage starts at the
    // server's receipt of its first applied update (DESIGN.md "Timing, attempts and streamed
    // output"), here the redelivered PROCESSING, which came after that instant; its completedAt is
    // stored clamped to that start, so each redelivered stage ran 0 ms as stored.
    const sent = journal.filter((u) => u.status === 'COMPLETED').map((u) => u.completedAt)
    expect(sent.every((at) => typeof at === 'string')).toBe(true)
    expect(status.stages.map((s) => s.completedAt)).toEqual(status.stages.map((s) => s.startedAt))
    status.stages.forEach((s, i) => expect(Date.parse(s.startedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(sent[i] ?? '')))
    expect(status.run.startedAt).toBe(status.stages[0]?.startedAt)

    // Nothing is left to send twice: a flush sends nothing, the files are compacted.
    expect(await client.flush()).toEqual({ delivered: 0, rejected: 0, pending: 0 })
    expect(env.server.requests).toHaveLength(11)
    expect(lines('journal.jsonl')).toEqual([])
    expect(lines('acks.jsonl')).toEqual([])
  })

  it('queues a run\'s later updates behind undelivered ones, even once the server is back', async () => {
    const runId = await createRun()
    const other = await createRun('run_other')
    await env.server.stop()
    const client = makeClient()
    expect(await client.initializePipelineStages(runId)).toBe(true)
    expect(client.pendingCount(runId)).toBe(1)

    await env.server.start()
    // The server is up, but stage 1 COMPLETED must not overtake stage 1 PROCESSING.
    expect(await client.markStageComplete(runId, 1, 'one')).toBe(true)
    expect(env.server.requests).toHaveLength(0)
    expect(client.pendingCount(runId)).toBe(2)
    // Another run has nothing queued: it goes out directly.
    expect(await client.initializePipelineStages(other)).toBe(true)
    expect(env.server.requests.map((r) => r.url)).toEqual([`/api/pipeline/${other}/stage-update`])

    await client.flush()
    expect(env.server.requests.slice(1).map((r) => `${body(r).stageNumber} ${body(r).status}`)).toEqual(['1 PROCESSING', '1 COMPLETED'])
    // With the queue empty, updates go out directly again.
    expect(await client.markStageProcessing(runId, 2)).toBe(true)
    expect(env.server.requests).toHaveLength(4)
    expect(client.pendingCount()).toBe(0)
  })

  it('queues after the retry budget on 503 and 408, and logs a warning', async () => {
    const runA = await createRun('run_a')
    const runB = await createRun('run_b')
    const logger = recordingLogger()
    const client = makeClient({ logger })
    env.server.inject({ status: 503 }, { status: 503 }, { status: 408 }, { status: 408 })
    expect(await client.markStageProcessing(runA, 1)).toBe(true)
    expect(await client.markStageProcessing(runB, 1)).toBe(true)
    expect(env.server.requests).toHaveLength(4)
    expect(client.pendingCount(runA)).toBe(1)
    expect(client.pendingCount(runB)).toBe(1)
    // Each retry is a warning with its cause and wait, then the queuing is one.
    expect(logger.lines.filter((l) => l.level === 'warn').map((l) => l.message)).toEqual([
      expect.stringMatching(/^Run run_a: stage 1 PROCESSING failed \(HTTP 503\); attempt 2 of 2 \(retry 1 of 1\) in \d+ ms$/),
      expect.stringMatching(/run_a: stage 1 PROCESSING queued in the outbox \(HTTP 503\)/),
      expect.stringMatching(/^Run run_b: stage 1 PROCESSING failed \(HTTP 408\); attempt 2 of 2 \(retry 1 of 1\) in \d+ ms$/),
      expect.stringMatching(/run_b: stage 1 PROCESSING queued in the outbox \(HTTP 408\)/),
    ])
    expect(await client.flush()).toEqual({ delivered: 2, rejected: 0, pending: 0 })
    // Each redelivery is the same update: same key, same body.
    const redelivered = env.server.requests.slice(4)
    for (const original of [env.server.requests[0], env.server.requests[2]]) {
      const again = redelivered.find((r) => r.url === original?.url)
      expect(again?.headers['idempotency-key']).toBe(original?.headers['idempotency-key'])
      expect(again?.body).toBe(original?.body)
    }
  })

  it('does not queue a permanent 4xx: false, logged, nothing pending', async () => {
    const logger = recordingLogger()
    const client = makeClient({ logger })
    expect(await client.markStageProcessing('unknown_run', 1)).toBe(false)
    expect(env.server.requests).toHaveLength(1)
    expect(client.pendingCount()).toBe(0)
    expect(lines('journal.jsonl')).toEqual([])
    expect(logger.lines.at(-1)).toMatchObject({ level: 'error', details: { status: 404, code: 'run_not_found' } })
  })

  it('dead-letters a queued update the server now refuses (4xx), keeps it on disk, and goes on', async () => {
    const runId = await createRun()
    await env.server.stop()
    const client = makeClient()
    await client.initializePipelineStages(runId)
    await client.markStageComplete(runId, 1, 'x')
    await env.server.start()
    env.server.inject({ status: 400, headers: { 'content-type': 'application/problem+json' }, body: '{"code":"validation_failed"}' })
    expect(await client.flush()).toEqual({ delivered: 1, rejected: 1, pending: 0 })
    const letters = lines('dead-letters.jsonl').map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(letters).toEqual([expect.objectContaining({ runId, route: 'stageUpdate', status: 400 })])
    expect(await client.deadLetters(runId)).toEqual(letters)
    expect((await client.getStatus(runId)).stages[0]?.status).toBe('COMPLETED')
  })

  it('queues a completion and delivers it with its original body', async () => {
    const runId = await createRun()
    await env.server.stop()
    const client = makeClient({ throwOnError: true })
    await client.markStageComplete(runId, 5, 'final')
    const queued = await client.completeRun(runId, { status: 'COMPLETED', duration: 3, fullReportMarkdown: '# R' })
    expect(isQueuedDelivery(queued)).toBe(true)
    const entry = JSON.parse(lines('journal.jsonl')[1] ?? '{}') as { body: string; id: string }
    await env.server.start()
    expect(await client.flush()).toMatchObject({ delivered: 2, pending: 0 })
    const complete = env.server.requestsTo('/complete')
    expect(complete).toHaveLength(1)
    expect(complete[0]?.body).toBe(entry.body)
    expect(complete[0]?.headers['idempotency-key']).toBe(entry.id)
    expect(JSON.parse(entry.body)).toMatchObject({ status: 'COMPLETED', duration: 3, fullReportMarkdown: '# R' })
    expect((await client.getStatus(runId)).run.completionReceivedAt).not.toBeNull()
  })

  it.each([
    ['is not JSON', 'Bad gateway page', 'its answer is not JSON'],
    ['does not match the contract', '{"ok":true}', 'its answer does not match the contract'],
  ])('tells onQueuedCompletion the outcome is unknown when the answer to a queued completion %s', async (_, answer, said) => {
    const runId = await createRun()
    await env.server.stop()
    const events: QueuedCompletionEvent[] = []
    const logger = recordingLogger()
    const client = makeClient({ logger, onQueuedCompletion: (event) => events.push(event) })
    const queued = await client.completeRun(runId, { status: 'COMPLETED' })
    expect(isQueuedDelivery(queued)).toBe(true)
    await env.server.start()
    // Accepted (2xx), so it leaves the outbox; but what the server did with it cannot be read.
    env.server.inject({ status: 200, headers: { 'content-type': 'application/json' }, body: answer })
    expect(await client.flush()).toMatchObject({ delivered: 1, pending: 0 })
    expect(events).toEqual([
      {
        runId,
        idempotencyKey: isQueuedDelivery(queued) ? queued.idempotencyKey : '',
        outcome: 'unknown',
        reason: `the server accepted it (2xx), but ${said}: whether its results reached the app's onRunCompleted hook is unknown`,
        earlierProcess: false,
      },
    ])
    expect(logger.lines.filter((line) => line.level === 'error').map((line) => line.message)).toEqual([
      `Run ${runId}: the completion delivered from the outbox got an answer that does not match the contract; its outcome is unknown`,
    ])
  })

  it('redelivers in the background once the server is back, without flush()', async () => {
    const runId = await createRun()
    await env.server.stop()
    const client = makeClient({ outbox: { dir: env.dir, retryDelayMs: 20, maxRetryDelayMs: 50 } })
    for (let stage = 1; stage <= 3; stage++) await client.markStageProcessing(runId, stage)
    expect(client.pendingCount()).toBe(3)
    await env.server.start()
    await vi.waitFor(() => expect(client.pendingCount()).toBe(0), { timeout: 10_000, interval: 20 })
    expect(env.server.requests.map((r) => body(r).stageNumber)).toEqual([1, 2, 3])
  })

  it('draws the background redelivery\'s jitter from outbox.random: a draw of 0 redelivers at once, even below a 10-minute ceiling', async () => {
    const runId = await createRun()
    await env.server.stop()
    const draws: number[] = []
    const random = () => draws.push(0) && 0
    const client = makeClient({ outbox: { dir: env.dir, retryDelayMs: 600_000, maxRetryDelayMs: 600_000, random } })
    expect(await client.markStageProcessing(runId, 1)).toBe(true)
    expect(client.pendingCount()).toBe(1)
    expect(draws.length).toBeGreaterThan(0)
    await env.server.start()
    await until('the outbox redelivered in the background', () => client.pendingCount() === 0)
    expect(env.server.requests.map((r) => body(r).stageNumber)).toEqual([1])
  })

  it('moves an update still in flight at the close deadline to the outbox', async () => {
    const runId = await createRun()
    env.server.setFault({ hang: true })
    const client = makeClient({ timeoutMs: 30_000 })
    const pending = client.markStageProcessing(runId, 1)
    await vi.waitFor(() => expect(env.server.requests).toHaveLength(1))
    expect(await client.close({ timeoutMs: 100 })).toMatchObject({ pending: 1 })
    expect(await pending).toBe(true)

    env.server.setFault(undefined)
    const next = makeClient()
    expect(await next.flush()).toEqual({ delivered: 1, rejected: 0, pending: 0 })
    expect(env.server.requests.at(-1)?.headers['idempotency-key']).toBe(env.server.requests[0]?.headers['idempotency-key'])
    expect((await next.getStatus(runId)).stages[0]?.status).toBe('PROCESSING')
  })

  it('flushes on close, and leaves what it cannot deliver for the next client', async () => {
    const runId = await createRun()
    await env.server.stop()
    const first = makeClient()
    await first.initializePipelineStages(runId)
    await first.markStageComplete(runId, 1, 'x')
    expect(await first.close({ timeoutMs: 200 })).toMatchObject({ pending: 2 })
    expect(existsSync(join(env.dir, 'outbox.lock'))).toBe(false)

    await env.server.start()
    const second = makeClient()
    expect(second.pendingCount(runId)).toBe(2)
    expect(await second.close({ timeoutMs: 5_000 })).toEqual({ delivered: 2, rejected: 0, pending: 0, undelivered: {} })
    expect(env.server.requests.map((r) => body(r).status)).toEqual(['PROCESSING', 'COMPLETED'])
  })
})

describe('journal', () => {
  function entry(runId: string, stageNumber: number, status: string) {
    return {
      v: 1,
      id: crypto.randomUUID(),
      runId,
      route: 'stageUpdate',
      body: JSON.stringify({ stageNumber, stageName: `Stage ${stageNumber}`, status }),
      queuedAt: new Date().toISOString(),
    }
  }

  it('ignores a torn last line and still delivers the entries before it', async () => {
    const runId = await createRun()
    const complete = [entry(runId, 1, 'PROCESSING'), entry(runId, 2, 'PROCESSING')]
    const torn = JSON.stringify(entry(runId, 3, 'PROCESSING')).slice(0, 57)
    writeFileSync(join(env.dir, 'journal.jsonl'), `${complete.map((e) => JSON.stringify(e)).join('\n')}\n${torn}`)
    const logger = recordingLogger()
    const client = makeClient({ logger })
    expect(client.pendingCount()).toBe(2)
    expect(logger.lines.some((l) => l.level === 'warn' && /torn/.test(l.message))).toBe(true)
    // The torn fragment is cut off, so the next record starts on its own line.
    expect(readFileSync(join(env.dir, 'journal.jsonl'), 'utf8').endsWith('\n')).toBe(true)
    await env.server.stop()
    await client.markStageProcessing(runId, 4)
    expect(lines('journal.jsonl').map((line) => JSON.parse(line).runId)).toEqual([runId, runId, runId])

    await env.server.start()
    expect(await client.flush()).toMatchObject({ delivered: 3, pending: 0 })
    expect(env.server.requests.map((r) => body(r).stageNumber)).toEqual([1, 2, 4])
    expect(env.server.requests.map((r) => r.headers['idempotency-key']).slice(0, 2)).toEqual(complete.map((e) => e.id))
  })

  it('does not resend what the ack journal says was delivered, and skips unreadable lines', async () => {
    const runId = await createRun()
    const entries = [entry(runId, 1, 'PROCESSING'), entry(runId, 2, 'PROCESSING'), entry(runId, 3, 'PROCESSING')]
    writeFileSync(join(env.dir, 'journal.jsonl'), `${JSON.stringify(entries[0])}\nnot json\n${JSON.stringify(entries[1])}\n${JSON.stringify(entries[2])}\n`)
    appendFileSync(join(env.dir, 'acks.jsonl'), `${JSON.stringify({ id: entries[0]?.id, result: 'delivered', at: new Date().toISOString() })}\n{"id":`)
    const client = makeClient()
    expect(client.pendingCount()).toBe(2)
    await client.flush()
    expect(env.server.requests.map((r) => body(r).stageNumber)).toEqual([2, 3])
  })

  it('keeps one writer per directory, and takes over the lock of a dead process', async () => {
    const client = makeClient()
    expect(() => makeClient()).toThrow(OutboxLockedError)
    await client.close()
    expect(existsSync(join(env.dir, 'outbox.lock'))).toBe(false)

    // A process that died holding the lock (kill -9: no exit handler ran).
    const deadPid = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['-e', ''])
      child.on('close', () => resolve(child.pid ?? -1))
    })
    writeFileSync(join(env.dir, 'outbox.lock'), JSON.stringify({ pid: deadPid, hostname: (await import('node:os')).hostname() }))
    const next = makeClient()
    expect(next.pendingCount()).toBe(0)
    expect(JSON.parse(readFileSync(join(env.dir, 'outbox.lock'), 'utf8')).pid).toBe(process.pid)

    // A live process holding it is respected.
    await next.close()
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'])
    try {
      writeFileSync(join(env.dir, 'outbox.lock'), JSON.stringify({ pid: live.pid, hostname: (await import('node:os')).hostname() }))
      let caught: unknown
      try {
        makeClient()
      } catch (error) {
        caught = error
      }
      expect(isOutboxLockedError(caught)).toBe(true)
      expect(caught).toMatchObject({ pid: live.pid })
    } finally {
      live.kill()
    }
  })
})
