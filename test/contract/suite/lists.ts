/**
 * Contract scenarios, runs as a collection: `GET /runs` (order, ties, keyset paging, the cursor's
 * binding, limits, filters, the summary) and `GET /runs/counts` (docs/design.md, "Runs as a
 * collection"). Runs with tags, pipelines and chosen instants are put into the target's store
 * through the server API (`TargetOptions.runs`), since `POST /runs` takes only an id today; runs
 * made over HTTP get the scenario's clock. Every scenario lists inside a time window (or a tag) of
 * its own, because the PostgreSQL targets share one database between scenarios.
 */
import { MAX_SUMMARY_ERROR_LENGTH, RunCounts, RunListPage } from 'pipeline-status-sdk'
import type { RunState } from 'pipeline-status-sdk/server'
import { describe, expect } from 'vitest'
import { encodeRunListCursor } from '../../../src/contract/run-list-query.js'
import { makeStageUpdate } from '../../support/fixtures.js'
import { type Api, expectProblem, type TargetOptions, uniqueRunId } from './harness.js'
import type { ContractContext } from './use-target.js'

/** A window of one day no other scenario lists: a random day between the years 2300 and 9000. */
function freshWindow(): { start: number; iso: (offsetMs?: number) => string; query: string } {
  const day = 86_400_000
  const start = Date.UTC(2300, 0, 1) + Math.floor(Math.random() * 2_400_000) * day
  const iso = (offsetMs = 0) => new Date(start + offsetMs).toISOString()
  return { start, iso, query: `createdAfter=${iso()}&createdBefore=${iso(day)}` }
}

/** A run as the server API stores it, created at `createdAt`. */
function seedRun(id: string, createdAt: number, fields: Partial<RunState> = {}): RunState {
  const at = new Date(createdAt)
  return { id, status: 'PENDING', error: null, completedAt: null, completionReceivedAt: null, createdAt: at, updatedAt: at, ...fields }
}

async function listOk(api: Api, query: string): Promise<RunListPage> {
  const response = await api.send({ path: `/runs?${query}` })
  const text = await response.text()
  expect({ status: response.status, text }).toMatchObject({ status: 200 })
  return RunListPage.parse(JSON.parse(text))
}

async function countsOk(api: Api, query: string): Promise<RunCounts['counts']> {
  const response = await api.send({ path: `/runs/counts?${query}` })
  const text = await response.text()
  expect({ status: response.status, text }).toMatchObject({ status: 200 })
  return RunCounts.parse(JSON.parse(text)).counts
}

/** Every page of a list, following `nextCursor`; `between` runs after each page. */
async function allPages(api: Api, query: string, between: (page: number) => Promise<void> = async () => {}): Promise<string[]> {
  const ids: string[] = []
  let cursor: string | null = null
  for (let page = 0; page < 50; page++) {
    const result: RunListPage = await listOk(api, cursor === null ? query : `${query}&cursor=${encodeURIComponent(cursor)}`)
    ids.push(...result.runs.map((run) => run.id))
    if (result.nextCursor === null) return ids
    cursor = result.nextCursor
    await between(page)
  }
  throw new Error('The list did not end within 50 pages')
}

async function expectRefused(api: Api, path: string, code: string, parameter: string): Promise<string> {
  const problem = await expectProblem(await api.send({ path }), 400, code)
  expect(problem.errors?.map((error) => error.field)).toEqual([parameter])
  return problem.detail ?? ''
}

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeListRuns({ name, scenario }: ContractContext): void {
  describe(`${name}: run lists and counts`, () => {
    {
      const w = freshWindow()
      // Code units: '-' 45 < '.' 46 < '0' 48 < ':' 58 < 'B' 66 < '_' 95 < 'a' 97 < 'b' 98 < '~' 126.
      const tied = ['tie-a', 'tie-B', 'tie-b', 'tie-_', 'tie-~', 'tie-0', 'tie-:', 'tie-.', 'tie--']
      const prefix = uniqueRunId('order')
      const runs = [
        seedRun(`${prefix}-newer`, w.start + 1001),
        ...tied.map((id) => seedRun(`${prefix}-${id}`, w.start + 1000)),
        seedRun(`${prefix}-older`, w.start + 999),
      ]
      scenario(
        'lists newest first, ties by id in code-unit order (COLLATE "C"), the same on every page size',
        async (api) => {
          const expected = [
            `${prefix}-newer`,
            ...[...tied].sort().reverse().map((id) => `${prefix}-${id}`),
            `${prefix}-older`,
          ]
          expect(expected.slice(1, 4)).toEqual([`${prefix}-tie-~`, `${prefix}-tie-b`, `${prefix}-tie-a`])
          expect((await listOk(api, w.query)).runs.map((run) => run.id)).toEqual(expected)
          expect(await allPages(api, `${w.query}&limit=1`)).toEqual(expected)
          expect(await allPages(api, `${w.query}&limit=4`)).toEqual(expected)
        },
        { runs },
      )
    }

    {
      const w = freshWindow()
      let now = w.start
      scenario(
        'keyset paging: runs created between pages neither repeat nor skip one, an older one shows up in order',
        async (api) => {
          const created: string[] = []
          for (let i = 0; i < 7; i++) {
            now = w.start + 10_000 + i * 1000
            created.push(await api.createRun(uniqueRunId('page')))
          }
          const olderId = uniqueRunId('page-older')
          const ids = await allPages(api, `${w.query}&limit=3`, async (page) => {
            // Newer runs than the first page: not in this walk; an older one: after the cursor.
            now = w.start + 60_000 + page
            await api.createRun(uniqueRunId('page-newer'))
            if (page === 0) {
              now = w.start + 1000
              await api.createRun(olderId)
            }
          })
          expect(ids).toEqual([...created].reverse().concat(olderId))
          expect(new Set(ids).size).toBe(ids.length)
        },
        { clock: () => new Date(now) },
      )
    }

    {
      const w = freshWindow()
      const prefix = uniqueRunId('bound')
      const runs = [0, 1, 2].map((i) => seedRun(`${prefix}-${i}`, w.start + i, { status: i === 2 ? 'FAILED' : 'PENDING' }))
      scenario(
        'a cursor is bound to its filters: with other filters, or malformed, it is 400 invalid_cursor naming cursor',
        async (api) => {
          const first = await listOk(api, `${w.query}&status=PENDING&limit=1`)
          expect(first.runs.map((run) => run.id)).toEqual([`${prefix}-1`])
          const cursor = encodeURIComponent(first.nextCursor ?? expect.unreachable('a next page'))
          // The same filters, in another order and with another limit: still this list.
          const next = await listOk(api, `status=PENDING&${w.query}&limit=5&cursor=${cursor}`)
          expect(next).toEqual({ runs: [expect.objectContaining({ id: `${prefix}-0` })], nextCursor: null })
          for (const other of [w.query, `${w.query}&status=FAILED`, `${w.query}&status=PENDING&tag=x`, `${w.query}&status=PENDING&pipeline=default`]) {
            await expectRefused(api, `/runs?${other}&cursor=${cursor}`, 'invalid_cursor', 'cursor')
          }
          const garbage = ['not a cursor', 'eyJ0IjoxfQ', Buffer.from('{"t":"x","i":1,"h":"y"}').toString('base64url'), '%F0%9F%98%80']
          for (const bad of garbage) await expectRefused(api, `/runs?${w.query}&cursor=${encodeURIComponent(bad)}`, 'invalid_cursor', 'cursor')
        },
        { runs },
      )
    }

    {
      const w = freshWindow()
      const prefix = uniqueRunId('limit')
      const runs = Array.from({ length: 51 }, (_, i) => seedRun(`${prefix}-${String(i).padStart(2, '0')}`, w.start + i))
      scenario(
        'limit is 50 by default and 1..200; anything else is 400 invalid_query naming limit',
        async (api) => {
          const page = await listOk(api, w.query)
          expect(page.runs).toHaveLength(50)
          expect(page.nextCursor).not.toBeNull()
          expect((await listOk(api, `${w.query}&limit=1`)).runs).toHaveLength(1)
          expect(await listOk(api, `${w.query}&limit=200`)).toMatchObject({ runs: expect.any(Array), nextCursor: null })
          for (const bad of ['0', '201', '-1', '1.5', 'ten', '', '1e2']) await expectRefused(api, `/runs?${w.query}&limit=${bad}`, 'invalid_query', 'limit')
          await expectRefused(api, `/runs?${w.query}&limit=1&limit=2`, 'invalid_query', 'limit')
        },
        { runs },
      )
    }

    {
      const w = freshWindow()
      const prefix = uniqueRunId('dates')
      const runs = [0, 1000, 2000].map((offset) => seedRun(`${prefix}-${offset}`, w.start + offset))
      scenario(
        'createdAfter is inclusive and createdBefore exclusive, in any offset; a bad instant is 400 naming it',
        async (api) => {
          const inWindow = async (query: string) => (await listOk(api, query)).runs.map((run) => run.id)
          expect(await inWindow(`createdAfter=${w.iso(1000)}&createdBefore=${w.iso(2000)}`)).toEqual([`${prefix}-1000`])
          // The same instants written with a +02:00 offset.
          const plusTwo = (offset: number) => encodeURIComponent(new Date(w.start + offset + 7_200_000).toISOString().replace('Z', '+02:00'))
          expect(await inWindow(`createdAfter=${plusTwo(1000)}&createdBefore=${plusTwo(2001)}`)).toEqual([`${prefix}-2000`, `${prefix}-1000`])
          await expectRefused(api, `/runs?createdAfter=yesterday`, 'invalid_query', 'createdAfter')
          await expectRefused(api, `/runs?createdBefore=2026-02-30T00:00:00Z`, 'invalid_query', 'createdBefore')
          // Instants are stored to the millisecond: a bound between two milliseconds is rounded up
          // (createdAfter X ⇔ createdAt ≥ ceil(X), createdBefore X ⇔ createdAt < ceil(X)).
          const sub = (offset: number, digits: string) => w.iso(offset).replace('Z', `${digits}Z`)
          expect(await inWindow(`createdAfter=${sub(1000, '1')}&createdBefore=${w.iso(3000)}`)).toEqual([`${prefix}-2000`])
          expect(await inWindow(`createdAfter=${sub(999, '9')}&createdBefore=${sub(2000, '000001')}`)).toEqual([`${prefix}-2000`, `${prefix}-1000`])
          expect(await inWindow(`createdAfter=${sub(1000, '000')}&createdBefore=${sub(2000, '000')}`)).toEqual([`${prefix}-1000`])
          // An offset's `+` sent unencoded arrives as a space: the answer says to encode it.
          const plain = `createdAfter=${w.iso(1000).replace('Z', '+01:00')}`
          expect(await expectRefused(api, `/runs?${plain}`, 'invalid_query', 'createdAfter')).toContain('URL-encode it as `%2B`')
          expect(await expectRefused(api, `/runs?createdBefore=2026-01-01T00:00:00%20x`, 'invalid_query', 'createdBefore')).not.toContain('%2B')
        },
        { runs },
      )
    }

    {
      const w = freshWindow()
      const x = uniqueRunId('tag-x')
      const y = uniqueRunId('tag-y')
      const runs = [
        seedRun('both', w.start + 3, { tags: [x, y], status: 'FAILED', error: 'boom' }),
        seedRun('only-x', w.start + 2, { tags: [x], status: 'CANCELLED', error: 'stopped' }),
        seedRun('only-y', w.start + 1, { tags: [y] }),
        seedRun('retired', w.start, { pipeline: 'retired-pipeline' }),
      ].map((run) => ({ ...run, id: `${x}-${run.id}` }))
      scenario(
        'repeated status is any of them, repeated tag all of them; pipeline= of an unconfigured pipeline lists its runs',
        async (api) => {
          const ids = async (query: string) => (await listOk(api, query)).runs.map((run) => run.id.slice(x.length + 1))
          expect(await ids(`tag=${x}&tag=${y}`)).toEqual(['both'])
          expect(await ids(`tag=${x}`)).toEqual(['both', 'only-x'])
          expect(await ids(`${w.query}&status=FAILED&status=CANCELLED`)).toEqual(['both', 'only-x'])
          expect(await ids(`${w.query}&status=PENDING&tag=${y}`)).toEqual(['only-y'])
          expect(await ids(`${w.query}&pipeline=retired-pipeline`)).toEqual(['retired'])
          expect(await ids(`${w.query}&pipeline=default`)).toEqual(['both', 'only-x', 'only-y'])
          await expectRefused(api, `/runs?status=DONE`, 'invalid_query', 'status')
          await expectRefused(api, `/runs?status=PENDING&status=pending`, 'invalid_query', 'status')
          await expectRefused(api, `/runs?tag=`, 'invalid_query', 'tag')
        },
        { runs },
      )
    }

    {
      const w = freshWindow()
      const prefix = uniqueRunId('summary')
      const long = 'x'.repeat(MAX_SUMMARY_ERROR_LENGTH + 500)
      const runs = [
        seedRun(`${prefix}-failed`, w.start + 2, { status: 'FAILED', error: long, completedAt: new Date(w.start + 5) }),
        seedRun(`${prefix}-short`, w.start + 1, { status: 'FAILED', error: 'short', completedAt: new Date(w.start + 5) }),
      ]
      scenario(
        'a list item: the run without outputs, currentStage, all five stageCounts (PENDING = catalogue − rows), error cut at 1,000',
        async (api) => {
          const running = `${prefix}-running`
          await api.send({ path: '/runs', json: { id: running } })
          await api.stageOk(running, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING' }))
          await api.stageOk(running, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'one' }))
          await api.stageOk(running, makeStageUpdate({ stageNumber: 2, status: 'PROCESSING' }))
          const listed = (await listOk(api, w.query)).runs
          expect(listed.map((run) => run.id)).toEqual([running, `${prefix}-failed`, `${prefix}-short`])
          const [item, failed, short] = listed
          expect(item).toMatchObject({ id: running, status: 'PROCESSING', pipeline: 'default', tags: [], metadata: {}, currentStage: 2, error: null })
          expect(item?.stageCounts).toEqual({ PENDING: 3, PROCESSING: 1, COMPLETED: 1, FAILED: 0, CANCELLED: 0 })
          expect(item).not.toHaveProperty('errorTruncated')
          expect(JSON.stringify(item)).not.toContain('"output"')

          expect(failed).toMatchObject({ id: `${prefix}-failed`, error: long.slice(0, MAX_SUMMARY_ERROR_LENGTH), errorTruncated: true, currentStage: null })
          expect(failed?.stageCounts).toEqual({ PENDING: 5, PROCESSING: 0, COMPLETED: 0, FAILED: 0, CANCELLED: 0 })
          expect(short).toMatchObject({ error: 'short' })
          expect(short).not.toHaveProperty('errorTruncated')
        },
        { runs, clock: () => new Date(w.start + 10) },
      )
    }

    {
      const w = freshWindow()
      const prefix = uniqueRunId('counts')
      const runs = [
        seedRun(`${prefix}-1`, w.start + 1),
        seedRun(`${prefix}-2`, w.start + 2),
        seedRun(`${prefix}-3`, w.start + 3, { status: 'FAILED', error: 'e' }),
        seedRun(`${prefix}-4`, w.start + 4, { pipeline: 'retired-pipeline' }),
      ]
      scenario(
        'counts by status or pipeline with the list filters; zero keys are absent; groupBy is required',
        async (api) => {
          expect(await countsOk(api, `groupBy=status&${w.query}`)).toEqual({ PENDING: 3, FAILED: 1 })
          expect(await countsOk(api, `groupBy=pipeline&${w.query}`)).toEqual({ default: 3, 'retired-pipeline': 1 })
          expect(await countsOk(api, `groupBy=status&${w.query}&status=FAILED&status=COMPLETED`)).toEqual({ FAILED: 1 })
          expect(await countsOk(api, `groupBy=status&${w.query}&pipeline=nothing-here`)).toEqual({})
          await expectRefused(api, `/runs/counts?${w.query}`, 'invalid_query', 'groupBy')
          expect(await expectRefused(api, `/runs/counts?groupBy=tag`, 'invalid_query', 'groupBy')).toBe('`groupBy` must be one of status, pipeline; got "tag"')
          expect(await expectRefused(api, `/runs/counts?${w.query}`, 'invalid_query', 'groupBy')).toBe('`groupBy` is required: one of status, pipeline')
          // An unknown parameter is refused, naming it, not ignored (which would count everything).
          expect(await expectRefused(api, `/runs/counts?groupBy=status&tags=x`, 'invalid_query', 'tags')).toContain(
            'groupBy, status, pipeline, tag, createdAfter, createdBefore',
          )
          await expectRefused(api, `/runs/counts?groupBy=status&status=NOPE`, 'invalid_query', 'status')
        },
        { runs },
      )
    }

    {
      const w = freshWindow()
      const prefix = uniqueRunId('wide')
      // 128 UTF-16 code units of which 80 are 40 emoji: within the rule POST /runs applies.
      const emoji = `${prefix}-`.padEnd(48, 'x') + '😀'.repeat(40)
      const runs = [
        // Run ids outside Latin-1, as an app's own Prisma code may insert them.
        seedRun(`${prefix}-字-2`, w.start + 2, { tags: [emoji] }),
        seedRun(`${prefix}-😀-1`, w.start + 1, { tags: [emoji] }),
        seedRun(`${prefix}-0`, w.start),
      ]
      scenario(
        'any run id pages (the cursor is base64url of UTF-8); a tag filter counts UTF-16 code units like POST /runs; unknown parameters are 400',
        async (api) => {
          expect(await allPages(api, `${w.query}&limit=1`)).toEqual(runs.map((run) => run.id))
          expect(await allPages(api, `${w.query}&limit=2`)).toEqual(runs.map((run) => run.id))
          expect(emoji.length).toBe(128)
          expect((await listOk(api, `tag=${encodeURIComponent(emoji)}`)).runs.map((run) => run.id)).toEqual(runs.slice(0, 2).map((run) => run.id))
          const tooLong = await expectRefused(api, `/runs?tag=${encodeURIComponent('😀'.repeat(65))}`, 'invalid_query', 'tag')
          expect(tooLong).toBe('`tag` must be 1 to 128 characters (UTF-16 code units), got 130')
          // A misspelt filter must not answer the whole unfiltered list.
          const unknown = await expectRefused(api, `/runs?${w.query}&tags=x`, 'invalid_query', 'tags')
          expect(unknown).toBe('Unknown query parameter "tags"; this route knows status, pipeline, tag, createdAfter, createdBefore, limit, cursor')
          await expectRefused(api, `/runs?${w.query}&groupBy=status`, 'invalid_query', 'groupBy')
        },
        { runs },
      )
    }

    {
      const w = freshWindow()
      const prefix = uniqueRunId('unstorable')
      // What `tag=%ED%A0%80` decodes to: the bytes of a lone surrogate are not UTF-8, so U+FFFD each.
      const replaced = '\uFFFD\uFFFD\uFFFD'
      const runs = [seedRun(`${prefix}-fffd`, w.start + 1, { tags: [replaced] })]
      scenario(
        'a query parameter that is not storable text (NUL) is 400 naming it on lists, counts and stats; %ED%A0%80 is U+FFFD text',
        async (api) => {
          for (const [query, parameter] of [
            ['pipeline=%00', 'pipeline'],
            ['pipeline=p%00', 'pipeline'],
            ['tag=%00', 'tag'],
            ['tag=a%00b', 'tag'],
          ] as const) {
            expect(await expectRefused(api, `/runs?${query}`, 'invalid_query', parameter)).toBe(`\`${parameter}\` must not contain NUL or a lone surrogate`)
            await expectRefused(api, `/runs/counts?groupBy=status&${query}`, 'invalid_query', parameter)
          }
          expect(await expectRefused(api, '/runs/stats?pipeline=%00', 'invalid_query', 'pipeline')).toBe('`pipeline` must not contain NUL or a lone surrogate')
          await expectRefused(api, '/runs?cursor=%00', 'invalid_cursor', 'cursor')
          // A cursor bound to this query (no filters, the secret's whole scope) whose run id holds a NUL is malformed, not a 500.
          const nulCursor = encodeRunListCursor({ createdAt: new Date(w.start), id: 'a\u0000b' }, {}, {})
          await expectRefused(api, `/runs?cursor=${nulCursor}`, 'invalid_cursor', 'cursor')
          // U+FFFD is storable text: the filter runs, and finds the run tagged with it.
          expect((await listOk(api, `${w.query}&tag=%ED%A0%80`)).runs.map((run) => run.id)).toEqual([`${prefix}-fffd`])
          expect(await countsOk(api, `groupBy=status&${w.query}&tag=%ED%A0%80`)).toEqual({ PENDING: 1 })
        },
        { runs },
      )
    }

    scenario('lists and counts need the webhook secret (401 without); POST /runs still creates; other methods are 405 with Allow', async (api) => {
      await expectProblem(await api.send({ path: '/runs', secret: null }), 401, 'unauthorized')
      await expectProblem(await api.send({ path: '/runs/counts?groupBy=status', secret: 'wrong' }), 401, 'unauthorized')
      expect((await api.send({ path: '/runs', json: { id: uniqueRunId('still') } })).status).toBe(201)
      const head = await api.send({ method: 'HEAD', path: '/runs?limit=1' })
      expect([head.status, head.headers.get('content-type'), await head.text()]).toEqual([200, 'application/json', ''])
      const put = await api.send({ method: 'DELETE', path: '/runs' })
      await expectProblem(put.clone(), 405, 'method_not_allowed')
      expect(put.headers.get('allow')?.split(/, */).sort()).toEqual(['GET', 'HEAD', 'POST'])
      const counts = await api.send({ method: 'POST', path: '/runs/counts', json: {} })
      await expectProblem(counts.clone(), 405, 'method_not_allowed')
      expect(counts.headers.get('allow')?.split(/, */).sort()).toEqual(['GET', 'HEAD'])
    })

    scenario('a store without listRuns or countRuns: 501 not_implemented naming the method', async (api) => {
      expect((await expectProblem(await api.send({ path: '/runs' }), 501, 'not_implemented')).detail).toContain('listRuns')
      expect((await expectProblem(await api.send({ path: '/runs/counts?groupBy=status' }), 501, 'not_implemented')).detail).toContain('countRuns')
    }, { store: 'throwing' } satisfies TargetOptions)
  })
}
