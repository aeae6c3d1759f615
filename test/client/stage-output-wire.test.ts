/**
 * Streamed stage output from the runner, on the wire against a small fake server (the client's
 * `fetch`): `runPipeline`'s `write` sends `{ seq, text }` chunks to
 * `{base}/{runId}/stages/{stageNumber}/output` between the stage's PROCESSING and its final
 * status, restarts `seq` at 0 for a retry attempt, stops after a 409 with one log line, and goes
 * through the outbox in order with the stage's updates. The same against the real handlers is
 * test/client/stage-output-stream.test.ts.
 */
import { createProblem } from 'pipeline-status-sdk'
import { PayloadValidationError, runPipeline } from 'pipeline-status-sdk/client'
import { describe, expect, it } from 'vitest'
import { recordingLogger } from '../support/loggers.js'
import { useTempDirs } from '../support/temp-dirs.js'
import { fakePipelineServer } from './support/fake-pipeline-server.js'
import { nearCeiling } from './support/outbox-jitter.js'

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The requests of one run as lines: `stage-update 2 PROCESSING`, `output 2 #0 "text"`, `complete`. */
function wire(bodies: { path: string; body: Record<string, unknown> }[]): string[] {
  return bodies.flatMap(({ path, body }) => {
    const chunk = /\/stages\/(\d+)\/output$/.exec(path)
    if (chunk) return [`output ${chunk[1]} #${String(body['seq'])} ${JSON.stringify(body['text'])}`]
    if (path.endsWith('/stage-update')) return [`stage-update ${String(body['stageNumber'])} ${String(body['status'])}${body['attempt'] ? ` attempt ${String(body['attempt'])}` : ''}`]
    if (path.endsWith('/complete')) return ['complete']
    return []
  })
}

const problem = (code: Parameters<typeof createProblem>[0], extra: Record<string, unknown> = {}) => {
  const body = createProblem(code, extra)
  return new Response(JSON.stringify(body), { status: body.status, headers: { 'content-type': 'application/problem+json' } })
}

describe('streamed output from runPipeline, on the wire', () => {
  it("sends the stage's text as ordered chunks between its PROCESSING and its COMPLETED", async () => {
    const { client, bodies } = fakePipelineServer('report')
    const tokens = Array.from({ length: 40 }, (_, i) => `token${i} `)
    const summary = await runPipeline({
      client,
      pipeline: 'report',
      runId: 'so_1',
      stages: [
        () => 'fetched',
        async ({ write }) => {
          for (const [i, token] of tokens.entries()) {
            write(token)
            if (i % 10 === 9) await pause(30)
          }
          return tokens.join('')
        },
      ],
    })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [] })
    const lines = wire(bodies)
    const outputs = lines.filter((line) => line.startsWith('output'))
    expect(outputs.length).toBeGreaterThanOrEqual(1)
    // Between stage 2's PROCESSING and its COMPLETED, numbered from 0, the text whole.
    expect(lines.indexOf('stage-update 2 PROCESSING')).toBeLessThan(lines.indexOf(outputs[0] as string))
    expect(lines.indexOf(outputs.at(-1) as string)).toBeLessThan(lines.indexOf('stage-update 2 COMPLETED'))
    const chunks = bodies.filter((entry) => entry.path === '/api/pipeline/so_1/stages/2/output').map((entry) => entry.body)
    expect(chunks.map((chunk) => chunk['seq'])).toEqual(chunks.map((_, i) => i))
    expect(chunks.map((chunk) => chunk['text']).join('')).toBe(tokens.join(''))
    // Fewer requests than writes: batched.
    expect(chunks.length).toBeLessThan(tokens.length)
  })

  it("restarts seq at 0 for a retry attempt, after the failed attempt's text and the retry's report", async () => {
    const { client, bodies } = fakePipelineServer('report')
    let attempts = 0
    const summary = await runPipeline({
      client,
      pipeline: 'report',
      runId: 'so_2',
      retry: { attempts: 2, backoffMs: 0 },
      stages: [
        () => 'fetched',
        ({ write, attempt }) => {
          attempts++
          write(`attempt ${attempt} text`)
          if (attempt === 1) throw new Error('the model timed out')
          return 'done'
        },
      ],
    })
    expect(summary.status).toBe('COMPLETED')
    expect(attempts).toBe(2)
    expect(wire(bodies).slice(2)).toEqual([
      'stage-update 2 PROCESSING attempt 1',
      'output 2 #0 "attempt 1 text"',
      'stage-update 2 PROCESSING attempt 2',
      'stage-update 2 PROCESSING attempt 2',
      'output 2 #0 "attempt 2 text"',
      'stage-update 2 COMPLETED',
      'complete',
    ])
  })

  it('stops after a 409 with one log line and a warning in the summary; the stage completes', async () => {
    const logger = recordingLogger()
    const { client, bodies } = fakePipelineServer('report', {
      logger,
      answer: (path, body) => (path.endsWith('/output') && body['seq'] === 1 ? problem('output_out_of_order', { detail: 'The next chunk is seq 0', expectedSeq: 0 }) : undefined),
    })
    const summary = await runPipeline({
      client,
      pipeline: 'report',
      runId: 'so_3',
      stages: [
        async ({ write }) => {
          for (let i = 0; i < 5; i++) {
            write(`piece ${i} `)
            await pause(300)
          }
          return 'all pieces'
        },
        () => 'two',
      ],
    })
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true })
    const outputs = wire(bodies).filter((line) => line.startsWith('output'))
    expect(outputs).toEqual(['output 1 #0 "piece 0 "', 'output 1 #1 "piece 1 "'])
    const stopped = logger.lines.filter((line) => /streamed output|output chunk/.test(line.message))
    expect(stopped).toHaveLength(1)
    expect(stopped[0]?.level).toBe('warn')
    expect(stopped[0]?.message).toMatch(/^Run so_3: stage 1: streamed output stopped: chunk 1 was refused.*409.*output_out_of_order/)
    expect(summary.warnings).toEqual([expect.stringMatching(/^Stage 1 streamed output stopped: chunk 1 was refused/)])
    expect(wire(bodies)).toContain('stage-update 1 COMPLETED')
  })

  it('goes through the outbox: chunks wait there in order with the stage updates, and are delivered by a flush', async () => {
    const dir = tempDir()
    let down = true
    const { client, bodies } = fakePipelineServer('report', {
      client: { outbox: { dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling }, retry: { limit: 0 } },
      answer: (path) => (down && path.endsWith('/output') ? problem('database_unavailable') : undefined),
    })
    const summary = await runPipeline({
      client,
      pipeline: 'report',
      runId: 'so_4',
      stages: [
        ({ write }) => {
          write('queued ')
          write('text')
          return 'one'
        },
        () => 'two',
      ],
    })
    expect(summary.delivered).toBe(false)
    expect(client.pendingCount('so_4')).toBeGreaterThan(0)
    down = false
    const sent = bodies.length
    const flushed = await client.flush()
    expect(flushed.pending).toBe(0)
    expect(wire(bodies.slice(sent))).toEqual([
      'output 1 #0 "queued text"',
      'stage-update 1 COMPLETED',
      'stage-update 2 PROCESSING',
      'stage-update 2 COMPLETED',
      'complete',
    ])
    await client.close()
  })
})

const tempDir = useTempDirs('stage-output-wire-')

describe('appendStageOutput', () => {
  it('refuses a text over 64 KiB of UTF-8 and a bad stage number before sending', async () => {
    const { client, bodies } = fakePipelineServer('report')
    await expect(client.appendStageOutput('so_5', 1, { seq: 0, text: 'é'.repeat(32 * 1024 + 1) })).rejects.toThrow(PayloadValidationError)
    await expect(client.appendStageOutput('so_5', 0, { seq: 0, text: 'x' })).rejects.toThrow(PayloadValidationError)
    await expect(client.appendStageOutput('so_5', 1, { seq: -1, text: 'x' })).rejects.toThrow(PayloadValidationError)
    expect(bodies).toEqual([])
  })

  it('throws the 409 as a StatusHttpError with its code', async () => {
    const { client } = fakePipelineServer('report', { answer: () => problem('stage_not_started', { detail: 'Stage 3 has not started' }) })
    await expect(client.appendStageOutput('so_6', 3, { seq: 0, text: 'x' })).rejects.toMatchObject({ name: 'StatusHttpError', status: 409, problem: { code: 'stage_not_started' } })
  })
})
