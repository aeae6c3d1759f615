import { describe, expect, it } from 'vitest'
import type { OutboxEntry } from './outbox/entry.js'
import { inheritedStages, stagesLeftProcessing } from './restart-attempts.js'

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
