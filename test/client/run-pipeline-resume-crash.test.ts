/**
 * A runner process killed mid-stage 2 and started again with the same `runId` and outbox
 * directory, over real HTTP against the real handlers: the restarted `runPipeline` does not run
 * stage 1 again (its model is not called twice), sends nothing for it, and hands its stored
 * output to stage 2 and to the `/complete`. A runner killed after its last stage's `COMPLETED`
 * and before its `/complete` (the server completed the run from its stages) is resumed too: no
 * stage runs, and its `/complete` reaches the app's `onRunCompleted` hook once. The in-process
 * cases are run-pipeline-resume.test.ts.
 */
import { runPipeline, silentLogger } from 'pipeline-status-sdk/client'
import { describe, expect, it } from 'vitest'
import { useHookedApp } from './support/hooked-app.js'
import { clientFactory } from './support/client-factory.js'
import { crashChild } from './support/crash-child.js'
import { TEST_SECRET } from './support/test-server.js'

const t = useHookedApp('resume-crash-')
// Registered after the afterEach above: clients close before the server stops.
const clients = clientFactory(() => ({ baseUrl: t.app.origin, secret: TEST_SECRET, logger: silentLogger, heartbeatIntervalMs: 60_000, followRunStream: false }))

describe('a runner killed mid-stage 2 and started again (real HTTP, outbox directory)', () => {
  it("does not call stage 1's model again: no update for stage 1, no conflict, and its output reaches stage 2 and /complete", async () => {
    const reader = clients.make()
    const runId = 'killed_mid_stage_2'
    await reader.createRun(runId)
    expect(await crashChild('complete-stage-1-then-crash.ts', t.app, t.dir, runId, 'in stage 2')).toEqual({ stdout: 'in stage 2\n', stderr: '' })
    expect((await reader.getStatus(runId)).stages.map((stage) => [stage.stageNumber, stage.status])).toEqual([
      [1, 'COMPLETED'],
      [2, 'PROCESSING'],
    ])
    const from = t.app.requests.length

    const restarted = clients.make({ outbox: { dir: t.dir } })
    let modelCalls = 0
    const summary = await runPipeline({
      runId,
      client: restarted,
      stages: [
        () => {
          modelCalls++
          return { answer: 'a second, different answer', tokens: 999 }
        },
        ({ previousOutputs, write }) => {
          write('stage 2 again, ')
          return `stage 2 read: ${(previousOutputs[0] as { answer: string }).answer}`
        },
        ...[3, 4, 5].map((n) => () => `stage ${n}`),
      ],
      results: (outputs) => ({ stageOutputs: outputs }),
    })

    expect(modelCalls).toBe(0)
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [], conflicts: [] })
    expect(summary.stages[0]).toMatchObject({ status: 'COMPLETED', skipped: 'already-completed' })
    const sent = t.app.requests.slice(from).filter((request) => request.method === 'POST' && /\/stage-update$|\/output$/.test(request.url))
    expect(sent.filter((request) => request.url.endsWith('/stages/1/output') || (JSON.parse(request.body) as { stageNumber?: number }).stageNumber === 1)).toEqual([])
    const complete = t.app.requests.slice(from).find((request) => request.url.endsWith('/complete'))
    expect((JSON.parse(complete?.body ?? '{}') as { stageOutputs?: unknown[] }).stageOutputs?.[0]).toEqual({ answer: 'the model answered this once', tokens: 1234 })
    const status = await reader.getStatus(runId)
    expect(status.run.status).toBe('COMPLETED')
    expect(status.stages.slice(0, 2).map(({ stageNumber, status, attempt, output }) => ({ stageNumber, status, attempt, output }))).toEqual([
      { stageNumber: 1, status: 'COMPLETED', attempt: null, output: '{"answer":"the model answered this once","tokens":1234}' },
      { stageNumber: 2, status: 'COMPLETED', attempt: 2, output: 'stage 2 read: the model answered this once' },
    ])
  })
})

describe('a runner killed after its last stage COMPLETED, before its /complete, and started again (real HTTP, outbox directory)', () => {
  it("runs no stage again and sends the /complete: the app's onRunCompleted hook gets the results exactly once", async () => {
    const reader = clients.make()
    const runId = 'killed_before_complete'
    await reader.createRun(runId)
    expect(await crashChild('complete-last-stage-then-crash.ts', t.app, t.dir, runId, 'last stage completed')).toEqual({ stdout: 'last stage completed\n', stderr: '' })
    // The server completed the run from its stages; no /complete arrived, so the hook has not run.
    const crashed = await reader.getStatus(runId)
    expect(crashed.run).toMatchObject({ status: 'COMPLETED', completionReceivedAt: null })
    expect(crashed.stages.map((stage) => stage.status)).toEqual(Array(5).fill('COMPLETED'))
    expect(t.app.requestsTo('/complete')).toEqual([])
    expect(t.hooked).toEqual([])
    const from = t.app.requests.length

    const restarted = clients.make({ outbox: { dir: t.dir } })
    let stageCalls = 0
    const summary = await runPipeline({
      runId,
      client: restarted,
      stages: [1, 2, 3, 4, 5].map(() => () => {
        stageCalls++
        return 'run again'
      }),
      results: (outputs) => ({ stageOutputs: outputs, from: 'the restarted runner' }),
    })

    const outputs = [{ answer: 'the model answered this once', tokens: 1234 }, 'stage 2', 'stage 3', 'stage 4', 'stage 5']
    expect(stageCalls).toBe(0)
    expect(summary).toMatchObject({ status: 'COMPLETED', delivered: true, warnings: [], conflicts: [], outputs })
    expect(summary.finishedElsewhere).toBeUndefined()
    expect(summary.stages.map((stage) => stage.skipped)).toEqual(Array(5).fill('already-completed'))
    expect(summary.completion).toMatchObject({ ok: true, response: { outcome: 'applied' } })
    expect(t.app.requests.slice(from).filter((request) => request.method === 'POST' && !request.url.endsWith('/complete'))).toEqual([])
    expect(t.hooked).toEqual([{ runId, payload: expect.objectContaining({ status: 'COMPLETED', stageOutputs: outputs, from: 'the restarted runner' }) }])
    expect((await reader.getStatus(runId)).run.completionReceivedAt).not.toBeNull()
  })
})
