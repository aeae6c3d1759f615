/**
 * A run whose runner stopped reporting, end to end through the routes, on the in-memory store:
 * the Web handlers with a stale-run sweeper, and the MSW mock's `sweepStaleRuns`. The same
 * scenario runs on PostgreSQL in test/prisma/stale-runs.test.ts.
 */
import { createPipelineMock } from 'pipeline-status-sdk/msw'
import { createPipelineStatusHandlers, createStaleRunSweeper, MemoryStore, type RunState } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { runStaleRunScenario, STALE_AFTER_MS, STALE_SECRET } from '../support/stale-run-scenario.js'
import { quiet } from '../support/loggers.js'


function sharedClock() {
  let time = Date.parse('2026-03-01T08:00:00.000Z')
  return { clock: () => new Date(time), advance: (ms: number) => void (time += ms) }
}

describe('a run that stopped reporting', () => {
  it('is failed by the sweeper next to the Web handlers, and the runner can still report its own failure', async () => {
    const store = new MemoryStore()
    const { clock, advance } = sharedClock()
    const completions: RunState[] = []
    const handlers = createPipelineStatusHandlers({
      store,
      secret: STALE_SECRET,
      clock,
      logger: quiet,
      onRunCompleted: (_tx, run) => void completions.push(run),
    })
    const sweeper = createStaleRunSweeper({ store, staleAfterMs: STALE_AFTER_MS, clock, logger: quiet })
    await runStaleRunScenario(
      { fetch: handlers.fetch, base: 'https://app.test/api/pipeline', advance, sweep: sweeper.sweep, completions },
      'stale-memory',
    )
  })

  it('is failed the same way by the MSW mock’s sweepStaleRuns', async () => {
    const { clock, advance } = sharedClock()
    const completions: RunState[] = []
    const mock = createPipelineMock({
      baseUrl: 'http://app.test',
      secret: STALE_SECRET,
      clock,
      logger: quiet,
      onRunCompleted: (_tx, run) => void completions.push(run),
    })
    await runStaleRunScenario(
      {
        fetch: async (request) => {
          const response = await mock.fetch(request)
          if (!response) throw new Error(`the mock does not serve ${request.url}`)
          return response
        },
        base: 'http://app.test/api/pipeline',
        advance,
        sweep: () => mock.sweepStaleRuns(STALE_AFTER_MS),
        completions,
      },
      'stale-mock',
    )
    const record = await mock.getRun('stale-mock')
    expect(record?.run.status).toBe('FAILED')
  })
})
