/**
 * Contract scenarios, stage stats: `GET /runs/stats?pipeline=&days=` (docs/design.md, "What
 * people see"): exact `percentile_cont` p50/p95 in integer milliseconds for known durations,
 * FAILED counts, the window (`completedAt` at or after now − days, by the handlers' clock), the
 * pipeline filter, the caller's scope, the name from the newest run, and the 400s. Each scenario
 * uses pipelines of its own and a clock in a far-off random day, because the PostgreSQL targets
 * share one database between scenarios.
 */
import { defineStages, RunStatsResponse, type StageStats } from 'pipeline-status-sdk'
import { createRunReadToken } from 'pipeline-status-sdk/server'
import { describe, expect } from 'vitest'
import { type Api, expectProblem, READ_TOKEN_SECRET, uniqueRunId } from './harness.js'
import type { ContractContext } from './use-target.js'

const DAY = 86_400_000
const STAGES = defineStages(['Fetch', 'Summarise', 'Publish'])

/** A clock the scenario moves, starting on a random day between the years 2400 and 9000. */
function movableClock(): { at: (ms: number) => void; now: () => Date; start: number } {
  const start = Date.UTC(2400, 0, 1) + Math.floor(Math.random() * 2_400_000) * DAY
  let now = start
  return { start, now: () => new Date(now), at: (ms) => void (now = start + ms) }
}

/** A pipeline name no other scenario uses. */
const freshPipeline = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`

async function statsOk(api: Api, query: string, spec: { secret?: string | null; headers?: Record<string, string> } = {}): Promise<StageStats[]> {
  const response = await api.send({ path: `/runs/stats${query === '' ? '' : `?${query}`}`, ...spec })
  const text = await response.text()
  expect({ status: response.status, text }).toMatchObject({ status: 200 })
  return RunStatsResponse.parse(JSON.parse(text)).stages
}

/** Creates a run of `pipeline` (with `tags`) and returns its id. */
async function createRun(api: Api, pipeline: string, tags: string[] = []): Promise<string> {
  const id = uniqueRunId('stats')
  const response = await api.send({ path: '/runs', json: { id, pipeline, tags } })
  expect(response.status).toBe(201)
  return id
}

/**
 * Stage `stageNumber` of a new run started at `startMs` and ended `durationMs` later with
 * `status` (the server stamps both times with its clock).
 */
async function stageRun(
  api: Api,
  clock: ReturnType<typeof movableClock>,
  pipeline: string,
  startMs: number,
  durationMs: number,
  options: { status?: 'COMPLETED' | 'FAILED'; stageNumber?: number; stageName?: string; tags?: string[] } = {},
): Promise<string> {
  const { status = 'COMPLETED', stageNumber = 1, stageName = STAGES[stageNumber - 1]?.name ?? 'Stage', tags = [] } = options
  clock.at(startMs)
  const runId = await createRun(api, pipeline, tags)
  await api.stageOk(runId, { stageNumber, stageName, status: 'PROCESSING' })
  clock.at(startMs + durationMs)
  await api.stageOk(runId, { stageNumber, stageName, status, output: status === 'FAILED' ? 'boom' : 'done' })
  return runId
}

const ofPipelines = (stages: StageStats[], ...pipelines: string[]) => stages.filter((stage) => pipelines.includes(stage.pipeline))

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeRunStats({ name, scenario }: ContractContext): void {
  describe(`${name}: stage stats`, () => {
    {
      const clock = movableClock()
      const pipeline = freshPipeline('exact')
      scenario(
        'p50 and p95 are percentile_cont of the COMPLETED durations in integer ms; FAILED stages are counted apart',
        async (api) => {
          // Stage 1: 100, 200, 300, 400, 1000 ms → p50 300, p95 400 + 600 × 0.8 = 880.
          for (const [i, duration] of [400, 100, 1000, 300, 200].entries()) await stageRun(api, clock, pipeline, i * 10_000, duration)
          // Stage 2: 1 and 2 ms → p50 1.5, rounded half up to 2; p95 1.95 → 2. Two FAILED stages beside them.
          for (const [i, duration] of [1, 2].entries()) await stageRun(api, clock, pipeline, 100_000 + i * 10_000, duration, { stageNumber: 2 })
          for (const i of [0, 1]) await stageRun(api, clock, pipeline, 200_000 + i * 10_000, 5_000, { stageNumber: 2, status: 'FAILED' })
          // Stage 3: only a FAILED one: counted, no percentiles.
          await stageRun(api, clock, pipeline, 300_000, 7, { stageNumber: 3, status: 'FAILED' })
          clock.at(400_000)
          expect(await statsOk(api, `pipeline=${pipeline}`)).toEqual([
            { pipeline, stageNumber: 1, name: 'Fetch', count: 5, failed: 0, p50Ms: 300, p95Ms: 880 },
            { pipeline, stageNumber: 2, name: 'Summarise', count: 2, failed: 2, p50Ms: 2, p95Ms: 2 },
            { pipeline, stageNumber: 3, name: 'Publish', count: 0, failed: 1, p50Ms: null, p95Ms: null },
          ])
        },
        { pipelines: { [pipeline]: STAGES }, clock: clock.now },
      )
    }

    {
      const clock = movableClock()
      const pipeline = freshPipeline('single')
      scenario(
        'one stage is its own p50 and p95; a PROCESSING stage and a run without stages count nothing',
        async (api) => {
          await stageRun(api, clock, pipeline, 0, 1234)
          clock.at(10_000)
          const running = await createRun(api, pipeline)
          await api.stageOk(running, { stageNumber: 1, stageName: 'Fetch', status: 'PROCESSING' })
          await createRun(api, pipeline)
          expect(await statsOk(api, `pipeline=${pipeline}&days=1`)).toEqual([
            { pipeline, stageNumber: 1, name: 'Fetch', count: 1, failed: 0, p50Ms: 1234, p95Ms: 1234 },
          ])
        },
        { pipelines: { [pipeline]: STAGES }, clock: clock.now },
      )
    }

    {
      const clock = movableClock()
      const pipeline = freshPipeline('window')
      scenario(
        'the window: stages whose completedAt is at or after now − days count (default 7 days), older ones do not',
        async (api) => {
          // Ends at start + 1000 ms.
          await stageRun(api, clock, pipeline, 0, 1000)
          await stageRun(api, clock, pipeline, 0, 1000, { stageNumber: 2, status: 'FAILED' })
          const at = (days: number, extraMs = 0) => clock.at(1000 + days * DAY + extraMs)
          const one = { pipeline, stageNumber: 1, name: 'Fetch', count: 1, failed: 0, p50Ms: 1000, p95Ms: 1000 }
          const failed = { pipeline, stageNumber: 2, name: 'Summarise', count: 0, failed: 1, p50Ms: null, p95Ms: null }
          at(3)
          expect(await statsOk(api, `pipeline=${pipeline}&days=3`)).toEqual([one, failed]) // exactly at the window's start: in
          expect(await statsOk(api, `pipeline=${pipeline}&days=2`)).toEqual([])
          expect(await statsOk(api, `days=90&pipeline=${pipeline}`)).toEqual([one, failed])
          at(7)
          expect(await statsOk(api, `pipeline=${pipeline}`)).toEqual([one, failed])
          at(7, 1)
          expect(await statsOk(api, `pipeline=${pipeline}`)).toEqual([])
          expect(await statsOk(api, `pipeline=${pipeline}&days=8`)).toEqual([one, failed])
        },
        { pipelines: { [pipeline]: STAGES }, clock: clock.now },
      )
    }

    {
      const clock = movableClock()
      const report = freshPipeline('report')
      const ingest = freshPipeline('ingest')
      scenario(
        'the pipeline filter: one pipeline, or all of them ordered by pipeline then stage; another name answers nothing',
        async (api) => {
          await stageRun(api, clock, report, 0, 50)
          await stageRun(api, clock, ingest, 0, 70, { stageNumber: 2 })
          await stageRun(api, clock, ingest, 0, 30)
          clock.at(10_000)
          const reportStats = { pipeline: report, stageNumber: 1, name: 'Fetch', count: 1, failed: 0, p50Ms: 50, p95Ms: 50 }
          const ingestStats = [
            { pipeline: ingest, stageNumber: 1, name: 'Fetch', count: 1, failed: 0, p50Ms: 30, p95Ms: 30 },
            { pipeline: ingest, stageNumber: 2, name: 'Summarise', count: 1, failed: 0, p50Ms: 70, p95Ms: 70 },
          ]
          expect(await statsOk(api, `pipeline=${report}`)).toEqual([reportStats])
          expect(await statsOk(api, `pipeline=${ingest}`)).toEqual(ingestStats)
          // `ingest-…` sorts before `report-…` in code-unit order.
          expect(ofPipelines(await statsOk(api, ''), report, ingest)).toEqual([...ingestStats, reportStats])
          expect(await statsOk(api, `pipeline=${freshPipeline('retired')}`)).toEqual([])
        },
        { pipelines: { [report]: STAGES, [ingest]: STAGES }, clock: clock.now },
      )
    }

    {
      const clock = movableClock()
      const pipeline = freshPipeline('named')
      scenario(
        "a stage's name is the one of the newest run that has it in the window",
        async (api) => {
          await stageRun(api, clock, pipeline, 2_000, 10, { stageName: 'Fetch v2' })
          await stageRun(api, clock, pipeline, 1_000, 10, { stageName: 'Fetch v1' })
          await stageRun(api, clock, pipeline, 3_000, 10, { stageName: 'Fetch v3', status: 'FAILED' })
          clock.at(10_000)
          expect(await statsOk(api, `pipeline=${pipeline}`)).toEqual([
            { pipeline, stageNumber: 1, name: 'Fetch v3', count: 2, failed: 1, p50Ms: 10, p95Ms: 10 },
          ])
        },
        { pipelines: { [pipeline]: STAGES }, clock: clock.now },
      )
    }

    {
      const clock = movableClock()
      const pipeline = freshPipeline('scoped')
      scenario(
        "a tag read token sees its tag's runs only; a run token and no credential are 401",
        async (api) => {
          await stageRun(api, clock, pipeline, 0, 100, { tags: ['team-a'] })
          await stageRun(api, clock, pipeline, 0, 300, { tags: ['team-b'] })
          clock.at(10_000)
          const both = await statsOk(api, `pipeline=${pipeline}`)
          expect(both).toEqual([{ pipeline, stageNumber: 1, name: 'Fetch', count: 2, failed: 0, p50Ms: 200, p95Ms: 290 }])
          const token = await createRunReadToken({ tag: 'team-a', secret: READ_TOKEN_SECRET, now: clock.now() })
          const scoped = await statsOk(api, `pipeline=${pipeline}`, { secret: null, headers: { Authorization: `Bearer ${token}` } })
          expect(scoped).toEqual([{ pipeline, stageNumber: 1, name: 'Fetch', count: 1, failed: 0, p50Ms: 100, p95Ms: 100 }])
          const runToken = await createRunReadToken({ runId: 'any-run', secret: READ_TOKEN_SECRET, now: clock.now() })
          await expectProblem(await api.send({ path: '/runs/stats', secret: null, headers: { Authorization: `Bearer ${runToken}` } }), 401, 'invalid_read_token')
          await expectProblem(await api.send({ path: '/runs/stats', secret: null }), 401, 'unauthorized')
          await expectProblem(await api.send({ path: '/runs/stats', secret: 'wrong' }), 401, 'unauthorized')
        },
        { pipelines: { [pipeline]: STAGES }, clock: clock.now, readTokens: { secret: READ_TOKEN_SECRET } },
      )
    }

    scenario('days outside 1..90, not an integer, repeated, an empty pipeline or an unknown parameter are 400 naming it', async (api) => {
      const refused = async (query: string, parameter: string) => {
        const problem = await expectProblem(await api.send({ path: `/runs/stats?${query}` }), 400, 'invalid_query')
        expect(problem.errors?.map((error) => error.field)).toEqual([parameter])
      }
      for (const days of ['0', '91', '-1', '1.5', '7d', '', 'abc', '1e1', '1000']) await refused(`days=${days}`, 'days')
      await refused('days=1&days=2', 'days')
      await refused('pipeline=', 'pipeline')
      await refused('pipeline=a&pipeline=b', 'pipeline')
      await refused('tag=x', 'tag')
      await refused('status=FAILED', 'status')
      expect(await statsOk(api, 'days=1')).toBeInstanceOf(Array)
      expect(await statsOk(api, 'days=90')).toBeInstanceOf(Array)
    })
  })
}
