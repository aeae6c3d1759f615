/**
 * `runPipeline` checks every stage entry before anything is sent (a `ConfigurationError` naming
 * the entry's index and what is wrong), and clamps a `backoffMs` function's unusable answer to no
 * wait with one warning per stage (the client's logger and the summary's `warnings`). On the wire
 * against the small fake server of `support/fake-pipeline-server.ts`.
 */
import { ConfigurationError, runPipeline, type StageEntry } from 'pipeline-status-sdk/client'
import { describe, expect, it } from 'vitest'
import { fakePipelineServer } from './support/fake-pipeline-server.js'

describe('runPipeline checks its stage entries before anything is sent', () => {
  const cases: [string, unknown[], string][] = [
    ['an entry without run', [() => 1, { retry: { attempts: 2 } }], "stages[1] (stage 2): { run, retry } needs `run`, the stage's function, got no run"],
    ['a run that is not a function', [{ run: 'fetch' }, () => 2], 'stages[0] (stage 1): { run, retry } needs `run`, the stage\'s function, got "fetch"'],
    ['an entry that is neither', [() => 1, null], 'stages[1] (stage 2) must be a stage function or { run, retry }, got null'],
    ['a retry that is not an object', [() => 1, { run: () => 2, retry: 3 }], 'stages[1] (stage 2): retry must be an object { attempts?, backoffMs?, retryIf? }, got 3'],
    ['a backoffMs of another type', [{ run: () => 1, retry: { backoffMs: '5s' } }, () => 2], 'stages[0] (stage 1): retry.backoffMs must be a number of milliseconds or a function of the failed attempt, got "5s"'],
    ['a retryIf that is not a function', [() => 1, { run: () => 2, retry: { retryIf: true } }], 'stages[1] (stage 2): retry.retryIf must be a function, got true'],
    ['bad attempts', [() => 1, { run: () => 2, retry: { attempts: 0 } }], 'stages[1] (stage 2): retry.attempts must be a whole number from 1 to 100, got 0'],
    ['a negative backoffMs', [() => 1, { run: () => 2, retry: { backoffMs: -5 } }], 'stages[1] (stage 2): retry.backoffMs must be a number of milliseconds ≥ 0, got -5'],
  ]
  it("names the pipeline's own retry options as the pipeline's", async () => {
    const { client, bodies } = fakePipelineServer('report')
    const attempt = runPipeline({ client, pipeline: 'report', runId: 'rp_entries', retry: { attempts: 101 }, stages: [() => 1, () => 2] })
    await expect(attempt).rejects.toThrow('runPipeline: retry.attempts must be a whole number from 1 to 100, got 101')
    expect(bodies).toEqual([])
  })

  for (const [what, stages, message] of cases) {
    it(`refuses ${what}`, async () => {
      const { client, bodies } = fakePipelineServer('report')
      const attempt = runPipeline({ client, pipeline: 'report', runId: 'rp_entries', stages: stages as StageEntry[] })
      await expect(attempt).rejects.toThrow(ConfigurationError)
      await expect(attempt).rejects.toThrow(message)
      // Nothing reached the server: not even the run's creation.
      expect(bodies).toEqual([])
    })
  }

  it('refuses stages that are not an array', async () => {
    const { client, bodies } = fakePipelineServer('report')
    await expect(runPipeline({ client, runId: 'rp_entries', stages: undefined as never })).rejects.toThrow(
      'runPipeline needs `stages`: an array of at least one stage function or { run, retry }',
    )
    expect(bodies).toEqual([])
  })
})

describe('a backoffMs function that answers no usable wait', () => {
  it('retries without a wait and warns once per stage, in the log and the summary', async () => {
    const logged: string[] = []
    const logger = { warn: (message: string) => logged.push(message), error: () => {} }
    const { client } = fakePipelineServer('report', { logger })
    let calls = 0
    const flaky = () => {
      calls += 1
      if (calls < 3) throw new Error(`attempt ${calls} failed`)
      return 'done'
    }
    const summary = await runPipeline({
      client,
      pipeline: 'report',
      runId: 'rp_nan',
      stages: [() => 'fetched', { run: flaky, retry: { attempts: 3, backoffMs: () => Number.NaN } }],
    })
    expect(summary.status).toBe('COMPLETED')
    expect(summary.stages[1]?.attempts).toBe(3)
    const warning = 'stages[1] (stage 2): retry.backoffMs(1) returned NaN, not a number of milliseconds ≥ 0; retrying without a wait'
    expect(summary.warnings).toEqual([warning])
    // The fake server has no live stream: its own warning is logged too.
    expect(logged.filter((message) => message.includes('backoffMs'))).toEqual([`Run rp_nan: ${warning}`])
  })
})
