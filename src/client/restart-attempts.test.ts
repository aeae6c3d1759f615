import { describe, expect, it } from 'vitest'
import type { OutboxEntry } from './outbox/entry.js'
import { completedByItsStages, inheritedEnds, inheritedStages, notDeadLettered, resumedOutput, stagesCompleted, stagesLeftProcessing } from './restart-attempts.js'
import { TRUNCATION_MARKER, UNSERIALISABLE_OUTPUT_PREFIX, serialiseOutput } from './stage-output.js'

function update(runId: string, body: Record<string, unknown>): OutboxEntry {
  return { v: 1, id: crypto.randomUUID(), runId, route: 'stageUpdate', body: JSON.stringify(body), queuedAt: '2026-12-07T00:00:00.000Z' }
}

describe('stagesLeftProcessing: the attempt a restarted runner finds a stage at', () => {
  const inherited = inheritedStages([
    update('r', { stageNumber: 1, stageName: 'a', status: 'PROCESSING' }),
    update('r', { stageNumber: 1, stageName: 'a', status: 'COMPLETED', output: 'x' }),
    update('r', { stageNumber: 2, stageName: 'b', status: 'PROCESSING' }),
    update('r', { stageNumber: 2, stageName: 'b', status: 'PROCESSING', attempt: 3, maxAttempts: 4, nextRetryAt: null }),
    update('r', { stageNumber: 3, stageName: 'c', status: 'PROCESSING' }),
    update('other', { stageNumber: 4, stageName: 'd', status: 'PROCESSING' }),
    { ...update('r', {}), route: 'stageOutput', stageNumber: 3, body: '{"seq":0,"text":"t"}' },
  ]).get('r')

  it('reads the server and the pending updates alike: a pending final status ends the stage, the highest attempt wins', () => {
    expect(stagesLeftProcessing([], inherited)).toEqual(new Map([[2, 3], [3, 1]]))
    expect(
      stagesLeftProcessing(
        [
          { stageNumber: 1, status: 'PROCESSING', attempt: null },
          { stageNumber: 2, status: 'PROCESSING', attempt: 5 },
          { stageNumber: 3, status: 'COMPLETED', attempt: null },
          { stageNumber: 5, status: 'PROCESSING', attempt: null },
        ],
        inherited,
      ),
    ).toEqual(new Map([[2, 5], [5, 1]]))
    expect(stagesLeftProcessing([{ stageNumber: 1, status: 'FAILED' }, { stageNumber: 2, status: 'PROCESSING', attempt: 2 }], undefined)).toEqual(new Map([[2, 2]]))
  })
  it('ends a stage on the contract\'s final statuses only: PENDING and PROCESSING leave it to the other side', () => {
    const pendingProcessing = inheritedStages([update('r', { stageNumber: 1, stageName: 'a', status: 'PROCESSING', attempt: 2 })]).get('r')
    for (const status of ['COMPLETED', 'FAILED', 'CANCELLED']) {
      expect(stagesLeftProcessing([{ stageNumber: 1, status }], pendingProcessing)).toEqual(new Map())
    }
    expect(stagesLeftProcessing([{ stageNumber: 1, status: 'PENDING' }], pendingProcessing)).toEqual(new Map([[1, 2]]))
    expect(stagesLeftProcessing([{ stageNumber: 1, status: 'PROCESSING', attempt: 1 }], pendingProcessing)).toEqual(new Map([[1, 2]]))
    const pendingFinal = inheritedStages([
      update('r', { stageNumber: 1, stageName: 'a', status: 'PROCESSING' }),
      update('r', { stageNumber: 1, stageName: 'a', status: 'CANCELLED' }),
    ]).get('r')
    expect(stagesLeftProcessing([{ stageNumber: 1, status: 'PROCESSING', attempt: 3 }], pendingFinal)).toEqual(new Map())
  })
})

describe('stagesCompleted: the stages a restarted runner does not run again', () => {
  it('takes the server COMPLETED with its output, else a pending COMPLETED with the output it carries; never a stage the server holds FAILED or CANCELLED', () => {
    const inherited = inheritedStages([
      update('r', { stageNumber: 1, stageName: 'a', status: 'COMPLETED', output: 'pending one' }),
      update('r', { stageNumber: 2, stageName: 'b', status: 'PROCESSING' }),
      update('r', { stageNumber: 2, stageName: 'b', status: 'COMPLETED', output: '{"rows":7}' }),
      update('r', { stageNumber: 3, stageName: 'c', status: 'COMPLETED' }),
      update('r', { stageNumber: 4, stageName: 'd', status: 'COMPLETED', output: 'x' }),
      update('r', { stageNumber: 5, stageName: 'e', status: 'COMPLETED', output: 'y' }),
      update('r', { stageNumber: 5, stageName: 'e', status: 'PROCESSING', progress: { seq: 1 } }),
    ]).get('r')
    const stored = [
      { stageNumber: 1, status: 'COMPLETED', output: 'stored one' },
      { stageNumber: 2, status: 'PROCESSING', output: 'streamed so far' },
      { stageNumber: 4, status: 'CANCELLED', output: null },
      { stageNumber: 6, status: 'COMPLETED', output: null },
      { stageNumber: 7, status: 'PROCESSING', output: null },
    ]
    expect(stagesCompleted(stored, inherited)).toEqual(
      new Map([
        [1, { output: 'stored one', from: 'server' }],
        [2, { output: '{"rows":7}', from: 'outbox' }],
        [3, { output: null, from: 'outbox' }],
        [6, { output: null, from: 'server' }],
      ]),
    )
    expect(stagesCompleted([], undefined)).toEqual(new Map())
  })

  it('does not take a pending COMPLETED the outbox dead-lettered: the stage runs again, as the next attempt of the one left PROCESSING', () => {
    const processing = update('r', { stageNumber: 1, stageName: 'a', status: 'PROCESSING' })
    const completed = update('r', { stageNumber: 1, stageName: 'a', status: 'COMPLETED', output: 'one' })
    const stored = [{ stageNumber: 1, status: 'PROCESSING', attempt: null, output: null }]
    expect(stagesCompleted(stored, inheritedStages([processing, completed]).get('r'))).toEqual(new Map([[1, { output: 'one', from: 'outbox' }]]))
    const inherited = inheritedStages(notDeadLettered([processing, completed], new Set([completed.id]))).get('r')
    expect(stagesCompleted(stored, inherited)).toEqual(new Map())
    expect(stagesLeftProcessing(stored, inherited)).toEqual(new Map([[1, 1]]))
  })
})

describe('inheritedEnds: the run end an earlier process left pending, which a restarted runner is not resumed past', () => {
  const complete = (runId: string): OutboxEntry => ({ ...update(runId, { status: 'COMPLETED', completedAt: '2026-12-07T01:00:00.000Z' }), route: 'complete' })

  it('does not take a pending FAILED or /complete the outbox dead-lettered: it never ended the run, which is resumed', () => {
    const failed = update('r', { stageNumber: 2, stageName: 'b', status: 'FAILED', output: 'boom' })
    const completion = complete('r')
    expect(inheritedEnds([failed, completion]).get('r')).toMatchObject({ status: 'FAILED', reason: 'boom', updates: ['stage 2 FAILED ("boom")', 'its /complete (COMPLETED)'] })
    // The FAILED dead-lettered: the /complete still pending ends the run, with its status.
    expect(inheritedEnds(notDeadLettered([failed, completion], new Set([failed.id]))).get('r')).toMatchObject({ status: 'COMPLETED', updates: ['its /complete (COMPLETED)'] })
    expect(inheritedEnds(notDeadLettered([failed, completion], new Set([failed.id, completion.id]))).get('r')).toBeUndefined()
  })
})

describe('completedByItsStages: a finished run a restarted runner still resumes (its /complete is still to be sent)', () => {
  const all = [1, 2, 3].map((stageNumber) => ({ stageNumber, status: 'COMPLETED' }))
  const completedByStages = { status: 'COMPLETED', completionReceivedAt: null }

  it('is a run COMPLETED with every stage COMPLETED and no /complete received', () => {
    expect(completedByItsStages(completedByStages, all, 3)).toBe(true)
    // Stored out of order: each stage is looked up by its number.
    expect(completedByItsStages(completedByStages, [...all].reverse(), 3)).toBe(true)
  })

  it('is not a run completed by a received /complete, FAILED, CANCELLED or unfinished', () => {
    expect(completedByItsStages({ status: 'COMPLETED', completionReceivedAt: '2026-12-07T00:00:00.000Z' }, all, 3)).toBe(false)
    for (const status of ['FAILED', 'CANCELLED', 'PROCESSING', 'PENDING']) expect(completedByItsStages({ status, completionReceivedAt: null }, all, 3)).toBe(false)
  })

  it('is not a run its last stage completed while another stage is not COMPLETED (absent, PROCESSING, CANCELLED)', () => {
    const withStage2 = (status: string | undefined) => all.flatMap((stage) => (stage.stageNumber !== 2 ? [stage] : status === undefined ? [] : [{ stageNumber: 2, status }]))
    for (const status of [undefined, 'PROCESSING', 'CANCELLED']) expect(completedByItsStages(completedByStages, withStage2(status), 3)).toBe(false)
    // Counted over the run's catalogue: stages past those stored are not COMPLETED.
    expect(completedByItsStages(completedByStages, all, 4)).toBe(false)
    expect(completedByItsStages(completedByStages, [], 0)).toBe(false)
  })
})

describe('resumedOutput: what a later stage gets for a stage skipped as already completed', () => {
  it('parses the JSON of an object or an array, and gives any other text back as the string', () => {
    const roundTrip = (value: unknown) => resumedOutput(serialiseOutput(value).text ?? null)
    expect(roundTrip({ rows: 7, nested: [1, { a: null }] })).toEqual({ rows: 7, nested: [1, { a: null }] })
    expect(roundTrip([1, 'two'])).toEqual([1, 'two'])
    expect(roundTrip('# Markdown\n\n- a')).toBe('# Markdown\n\n- a')
    expect(roundTrip(undefined)).toBeUndefined()
    // The documented limits: what JSON keeps, and text that cannot tell a string from a value.
    expect(roundTrip({ at: new Date('2026-01-02T03:04:05.000Z'), big: 12n, gone: undefined })).toEqual({ at: '2026-01-02T03:04:05.000Z', big: '12' })
    expect(roundTrip(42)).toBe('42')
    expect(roundTrip(true)).toBe('true')
    expect(roundTrip(null)).toBe('null')
    expect(roundTrip('{"a":1}')).toEqual({ a: 1 })
    expect(roundTrip(' {"a":1}')).toBe(' {"a":1}')
    expect(roundTrip('[not json')).toBe('[not json')
  })
  it("gives a cut output and the placeholder of an unserialisable one back as their text", () => {
    const cut = `{"text":"xxxx${TRUNCATION_MARKER}`
    expect(resumedOutput(cut)).toBe(cut)
    const circular: Record<string, unknown> = {}
    circular.self = circular
    const placeholder = serialiseOutput(circular).text as string
    expect(placeholder.startsWith(UNSERIALISABLE_OUTPUT_PREFIX)).toBe(true)
    expect(resumedOutput(placeholder)).toBe(placeholder)
  })
})
