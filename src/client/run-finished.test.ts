import { describe, expect, it } from 'vitest'
import type { PipelineRunRecord } from '../contract/records.js'
import type { Logger } from './logger.js'
import { RECENT_RUNS } from './recent-runs.js'
import { RunFinishedObserver } from './run-finished.js'

/** A run as an answer shows it: cancelled elsewhere (while, for the observer, updates of it still wait in the outbox). */
const cancelled = (id: string) => ({ id, status: 'CANCELLED', error: 'stopped by an operator', completedAt: '2026-12-07T00:00:00.000Z' }) as PipelineRunRecord

function observer() {
  const lines: string[] = []
  const log = (message: string) => void lines.push(message)
  const logger: Logger = { warn: log, error: log, info: log }
  const runs = new RunFinishedObserver({ logger, onRunFinished: undefined, readStatus: () => Promise.reject(new Error('no reads')), onFinished: () => {}, pendingInOutbox: () => 1 })
  return { runs, lines }
}

const WAITED = "it ended while this client's updates for it waited in the outbox"
const REUSED = "it finished before this client's first update for it"

describe('RunFinishedObserver: which runs had requests that waited', () => {
  it('remembers the most recent runs only: past the bound the oldest is forgotten, a recent one kept', () => {
    const { runs, lines } = observer()
    for (let i = 0; i <= RECENT_RUNS; i++) runs.noteWaited(`run-${i}`)
    runs.observe(`run-${RECENT_RUNS}`, cancelled(`run-${RECENT_RUNS}`), 'stage-update', false)
    runs.observe('run-0', cancelled('run-0'), 'stage-update', false)
    expect(lines).toHaveLength(2)
    // The most recent run still knows its request waited; the oldest is read as never shown open.
    expect(lines[0]).toContain(WAITED)
    expect(lines[1]).toContain(REUSED)
  })

  it('keeps a run noted again as recent', () => {
    const { runs, lines } = observer()
    runs.noteWaited('run-0')
    for (let i = 1; i < RECENT_RUNS; i++) runs.noteWaited(`run-${i}`)
    runs.noteWaited('run-0')
    runs.noteWaited(`run-${RECENT_RUNS}`) // forgets run-1, the least recent now
    runs.observe('run-0', cancelled('run-0'), 'stage-update', false)
    runs.observe('run-1', cancelled('run-1'), 'stage-update', false)
    expect(lines[0]).toContain(WAITED)
    expect(lines[1]).toContain(REUSED)
  })
})

const open = (id: string) => ({ id, status: 'PROCESSING', error: null, completedAt: null }) as PipelineRunRecord

describe('RunFinishedObserver: the runs shown open and the runs learned finished', () => {
  it('remembers the runs shown open for the most recent runs only', () => {
    const { runs, lines } = observer()
    for (let i = 0; i <= RECENT_RUNS; i++) runs.observe(`run-${i}`, open(`run-${i}`), 'stage-update', false)
    runs.observe(`run-${RECENT_RUNS}`, cancelled(`run-${RECENT_RUNS}`), 'stage-update', false)
    runs.observe('run-0', cancelled('run-0'), 'stage-update', false)
    // Shown open before: ended elsewhere while it ran. Forgotten: read as finished before this client's first update.
    expect(lines[0]).not.toContain(REUSED)
    expect(lines[1]).toContain(REUSED)
  })

  it('remembers how the most recent runs finished only; the event of a run forgotten is no longer kept', () => {
    const { runs } = observer()
    for (let i = 0; i <= RECENT_RUNS; i++) runs.observe(`run-${i}`, cancelled(`run-${i}`), 'status', false)
    expect(runs.runFinished('run-0')).toBeUndefined()
    expect(runs.runFinished(`run-${RECENT_RUNS}`)).toMatchObject({ runId: `run-${RECENT_RUNS}`, status: 'CANCELLED' })
    expect(runs.runFinished('run-1')).toMatchObject({ runId: 'run-1' })
  })
})
