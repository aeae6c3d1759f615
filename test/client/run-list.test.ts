/**
 * The client's side of "Runs as a collection" (docs/design.md) on the wire, against a small fake
 * server (the client's `fetch` option): `createRun({ id, pipeline, tags, metadata })` and its old
 * call forms, `listRuns` following `nextCursor` with the same filters, `limit` and `maxRuns`,
 * the abort signal and the timeout, reads authenticated like status reads (the secret, or a
 * signature whose webhook-id names the path without the query), and `countRuns`. The last block
 * runs against the MSW mock and needs the server side of lists and tags (issue 24).
 */
import { setupServer } from 'msw/node'
import { PrismaAPIClient, type PrismaAPIClientOptions, type RunListPage, type RunSummary, isPayloadValidationError } from 'pipeline-status-sdk/client'
import { createPipelineMock } from 'pipeline-status-sdk/msw'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ORIGIN = 'http://runs.test'
const SECRET = 'run-list-secret'

interface Sent {
  method: string
  url: URL
  headers: Headers
  body: string | undefined
}

function summary(id: string, createdAt: string): RunSummary {
  return {
    id,
    status: 'COMPLETED',
    pipeline: 'report',
    tags: ['x'],
    metadata: {},
    createdAt,
    startedAt: createdAt,
    completedAt: createdAt,
    error: null,
    version: 3,
    currentStage: null,
    stageCounts: { PENDING: 0, PROCESSING: 0, COMPLETED: 2, FAILED: 0, CANCELLED: 0 },
  }
}

/** Seven runs, newest first; the fake server pages through them by index (its cursor). */
const RUNS = Array.from({ length: 7 }, (_, index) => summary(`run_${7 - index}`, `2026-01-0${7 - index}T00:00:00.000Z`))

/** A client on a fake server: the list and count routes answer from {@link RUNS}, others 201 with the body's run. */
function fakeServer(options: Partial<PrismaAPIClientOptions> = {}) {
  const sent: Sent[] = []
  const fetch = async (input: string, init: RequestInit): Promise<Response> => {
    const url = new URL(input)
    sent.push({ method: init.method ?? 'GET', url, headers: new Headers(init.headers), body: typeof init.body === 'string' ? init.body : undefined })
    const json = (value: unknown, status = 200) => new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json' } })
    if (url.pathname === '/api/pipeline/runs/counts') return json({ counts: { COMPLETED: RUNS.length } })
    if (url.pathname === '/api/pipeline/runs' && init.method === 'GET') {
      const from = Number(url.searchParams.get('cursor') ?? 0)
      const limit = Number(url.searchParams.get('limit') ?? 50)
      const runs = RUNS.slice(from, from + limit)
      const page: RunListPage = { runs, nextCursor: from + limit < RUNS.length ? String(from + limit) : null }
      return json(page)
    }
    const body = JSON.parse(String(init.body)) as { id: string; pipeline?: string; tags?: string[]; metadata?: Record<string, unknown> }
    const now = '2026-01-08T00:00:00.000Z'
    return json(
      {
        created: true,
        run: { id: body.id, status: 'PENDING', error: null, completedAt: null, completionReceivedAt: null, createdAt: now, updatedAt: now, lastActivityAt: null, heartbeatIntervalMs: null, pipeline: body.pipeline ?? 'default', tags: body.tags ?? [], metadata: body.metadata ?? {}, startedAt: null },
        catalogue: [{ stageNumber: 1, stageName: 'Fetch' }, { stageNumber: 2, stageName: 'Summarise' }],
      },
      201,
    )
  }
  const client = new PrismaAPIClient({ baseUrl: ORIGIN, secret: SECRET, fetch, retry: { limit: 0 }, logger: { warn: () => {}, error: () => {} }, ...options })
  return { client, sent }
}

async function collect(pages: AsyncIterable<RunListPage>): Promise<RunListPage[]> {
  const all: RunListPage[] = []
  for await (const page of pages) all.push(page)
  return all
}

describe('createRun with a pipeline, tags and metadata', () => {
  it('sends { id, pipeline, tags, metadata }, and keeps the old call forms (an id, nothing)', async () => {
    const { client, sent } = fakeServer()
    const { run } = await client.createRun({ id: 'r1', pipeline: 'report', tags: ['nightly', 'acme'], metadata: { customer: 'acme' } })
    expect(run).toMatchObject({ id: 'r1', pipeline: 'report', tags: ['nightly', 'acme'], metadata: { customer: 'acme' } })
    await client.createRun('r2')
    await client.createRun()
    await client.createRun({ pipeline: 'report' })
    const bodies = sent.map((request) => JSON.parse(request.body ?? 'null') as Record<string, unknown>)
    expect(bodies[0]).toEqual({ id: 'r1', pipeline: 'report', tags: ['nightly', 'acme'], metadata: { customer: 'acme' } })
    // Only the fields given: an older server takes `{ id }` alone.
    expect(bodies[1]).toEqual({ id: 'r2' })
    expect(Object.keys(bodies[2] ?? {})).toEqual(['id'])
    expect(bodies[3]).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), pipeline: 'report' })
    expect(sent.every((request) => request.headers.get('x-webhook-secret') === SECRET)).toBe(true)
  })

  it('refuses, before sending, what the contract refuses, naming the field', async () => {
    const { client, sent } = fakeServer()
    const refusals = [
      client.createRun({ tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }),
      client.createRun({ tags: ['x'.repeat(129)] }),
      client.createRun({ tags: [''] }),
      client.createRun({ metadata: { blob: 'x'.repeat(16 * 1024) } }),
      client.createRun({ pipeline: '' }),
      client.createRun({ id: 'no spaces' }),
    ]
    const errors = await Promise.all(refusals.map((attempt) => attempt.then(() => undefined, (error: unknown) => error)))
    expect(errors.every(isPayloadValidationError)).toBe(true)
    expect(errors.map((error) => (isPayloadValidationError(error) ? error.fieldErrors[0]?.field : undefined))).toEqual(['tags', 'tags.0', 'tags.0', 'metadata', 'pipeline', 'id'])
    expect(sent).toHaveLength(0)
  })
})

describe('listRuns', () => {
  it('follows nextCursor page by page with the same filters, authenticated like status reads', async () => {
    const { client, sent } = fakeServer()
    const pages = await collect(client.listRuns({ tag: ['x', 'y'], status: ['FAILED', 'COMPLETED'], pipeline: 'report', createdAfter: new Date('2026-01-01T00:00:00Z'), createdBefore: '2026-02-01T00:00:00Z', limit: 3 }))
    expect(pages.map((page) => page.runs.map((run) => run.id))).toEqual([['run_7', 'run_6', 'run_5'], ['run_4', 'run_3', 'run_2'], ['run_1']])
    expect(pages.map((page) => page.nextCursor)).toEqual(['3', '6', null])
    expect(sent.map((request) => `${request.method} ${request.url.pathname}?${request.url.searchParams}`)).toEqual([
      'GET /api/pipeline/runs?status=FAILED&status=COMPLETED&pipeline=report&tag=x&tag=y&createdAfter=2026-01-01T00%3A00%3A00.000Z&createdBefore=2026-02-01T00%3A00%3A00Z&limit=3',
      'GET /api/pipeline/runs?status=FAILED&status=COMPLETED&pipeline=report&tag=x&tag=y&createdAfter=2026-01-01T00%3A00%3A00.000Z&createdBefore=2026-02-01T00%3A00%3A00Z&limit=3&cursor=3',
      'GET /api/pipeline/runs?status=FAILED&status=COMPLETED&pipeline=report&tag=x&tag=y&createdAfter=2026-01-01T00%3A00%3A00.000Z&createdBefore=2026-02-01T00%3A00%3A00Z&limit=3&cursor=6',
    ])
    expect(sent.map((request) => request.headers.get('x-webhook-secret'))).toEqual([SECRET, SECRET, SECRET])
  })

  it('without options asks for the server default page size; maxRuns asks the last page for only what is left', async () => {
    const { client, sent } = fakeServer()
    expect((await collect(client.listRuns())).map((page) => page.runs.length)).toEqual([7])
    expect(sent[0]?.url.href).toBe(`${ORIGIN}/api/pipeline/runs`)
    sent.length = 0
    const pages = await collect(client.listRuns({ limit: 2, maxRuns: 5 }))
    expect(pages.map((page) => page.runs.length)).toEqual([2, 2, 1])
    expect(sent.map((request) => request.url.searchParams.get('limit'))).toEqual(['2', '2', '1'])
    sent.length = 0
    expect((await collect(client.listRuns({ maxRuns: 4 }))).flatMap((page) => page.runs)).toHaveLength(4)
    expect(sent.map((request) => request.url.search)).toEqual(['?limit=4'])
    sent.length = 0
    // More than a page: pages of the server's default size, never a limit over 200.
    expect((await collect(client.listRuns({ maxRuns: 500 }))).flatMap((page) => page.runs)).toHaveLength(7)
    expect(sent.map((request) => request.url.search)).toEqual(['?limit=50'])
  })

  it('stops reading when the caller breaks out: no page is asked for that is not wanted', async () => {
    const { client, sent } = fakeServer()
    for await (const page of client.listRuns({ limit: 2 })) {
      expect(page.runs).toHaveLength(2)
      break
    }
    expect(sent).toHaveLength(1)
  })

  it('refuses options the contract refuses when iteration starts, naming the option', async () => {
    const { client, sent } = fakeServer()
    const cases = [{ limit: 0 }, { limit: 201 }, { status: 'DONE' as never }, { createdAfter: 'yesterday' }, { createdBefore: new Date('nope') }, { maxRuns: 0 }]
    for (const options of cases) {
      const error = await collect(client.listRuns(options)).then(() => undefined, (thrown: unknown) => thrown)
      expect(isPayloadValidationError(error) && error.fieldErrors[0]?.field).toBe(Object.keys(options)[0])
    }
    expect(sent).toHaveLength(0)
  })

  it('says what the option must be and what it got, like the server does', async () => {
    const { client, sent } = fakeServer()
    const cases: [Parameters<typeof client.listRuns>[0], string][] = [
      [{ status: ['BOGUS' as never] }, 'Invalid run list options: status must be one of PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED; got "BOGUS"'],
      [{ createdAfter: new Date('nope') }, 'Invalid run list options: createdAfter is an invalid Date (its time is NaN); give a valid Date or an ISO 8601 timestamp'],
      [
        { createdBefore: '2026-12-01' },
        'Invalid run list options: createdBefore is not an ISO 8601 timestamp YYYY-MM-DDTHH:MM:SS[.fraction of 1 to 9 digits][Z|±HH:MM] with an offset (e.g. 2026-12-01T00:00:00Z; without one it is UTC); got "2026-12-01"',
      ],
      [{ tag: ['ok', 'x'.repeat(129)] }, 'Invalid run list options: tag must be 1 to 128 characters (UTF-16 code units), got 129'],
      [{ limit: 201 }, 'Invalid run list options: limit must be a whole number from 1 to 200 (runs per page); got 201'],
      [{ pipeline: '' }, 'Invalid run list options: pipeline must be a non-empty pipeline name; got ""'],
    ]
    for (const [options, message] of cases) {
      await expect(collect(client.listRuns(options))).rejects.toThrow(message)
    }
    expect(sent).toHaveLength(0)
  })

  it('ends with an abort error when the signal aborts the page in flight, and with a timeout past timeoutMs', async () => {
    const hanging = (_: string, init: RequestInit) =>
      new Promise<Response>((_resolve, reject) => init.signal?.addEventListener('abort', () => reject(init.signal?.reason as Error), { once: true }))
    const controller = new AbortController()
    const aborted = new PrismaAPIClient({ baseUrl: ORIGIN, secret: SECRET, fetch: (input, init) => (controller.abort(new Error('the user left')), hanging(input, init)) })
    await expect(collect(aborted.listRuns({ signal: controller.signal }))).rejects.toMatchObject({ name: 'PipelineStatusError', message: expect.stringMatching(/was aborted: the user left/) })
    await expect(collect(aborted.listRuns({ signal: controller.signal }))).rejects.toThrow('the user left')

    const slow = new PrismaAPIClient({ baseUrl: ORIGIN, secret: SECRET, fetch: hanging, timeoutMs: 20, retry: { limit: 0 } })
    await expect(collect(slow.listRuns())).rejects.toMatchObject({ name: 'StatusTimeoutError', timeoutMs: 20 })
  })

  it('refuses to read once the client is closed', async () => {
    const { client } = fakeServer()
    await client.close()
    await expect(collect(client.listRuns())).rejects.toMatchObject({ name: 'ClientClosedError' })
  })

  it('signs list reads with a webhook-id that names the path without the query', async () => {
    const { client, sent } = fakeServer({ secret: undefined, signing: { secret: 'whsec_c2lnbmluZy1zZWNyZXQtZm9yLWxpc3Rz' } })
    await collect(client.listRuns({ tag: 'x', limit: 50 }))
    await client.countRuns({ groupBy: 'pipeline', tag: 'x' })
    expect(sent.map((request) => request.headers.get('webhook-id')?.split(' ').slice(0, 2).join(' '))).toEqual(['GET runs', 'GET runs/counts'])
    expect(sent.every((request) => request.headers.get('webhook-signature')?.startsWith('v1,'))).toBe(true)
  })
})

describe('countRuns', () => {
  it('asks GET /runs/counts with groupBy and the filters, and answers { counts }', async () => {
    const { client, sent } = fakeServer()
    expect(await client.countRuns({ groupBy: 'status', tag: 'x', pipeline: 'report' })).toEqual({ counts: { COMPLETED: 7 } })
    expect(`${sent[0]?.url.pathname}${sent[0]?.url.search}`).toBe('/api/pipeline/runs/counts?pipeline=report&tag=x&groupBy=status')
    await expect(client.countRuns({ groupBy: 'tag' as never })).rejects.toMatchObject({ name: 'PayloadValidationError', fieldErrors: [{ field: 'groupBy' }] })
  })
})

// Needs the server side of issue 24 (tags on POST /runs, GET /runs, GET /runs/counts).
describe('listRuns and countRuns against the MSW mock', () => {
  const MOCK_ORIGIN = 'http://list-mock.test'
  const mock = createPipelineMock({ baseUrl: MOCK_ORIGIN, secret: SECRET })
  const server = setupServer(...mock.handlers)
  beforeAll(() => server.listen({ onUnhandledFrame: 'error' }))
  afterAll(() => server.close())

  it('lists the runs carrying a tag, newest first across pages, and counts them by status', async () => {
    const client = new PrismaAPIClient({ baseUrl: MOCK_ORIGIN, secret: SECRET })
    const ids = ['m_1', 'm_2', 'm_3', 'm_4', 'm_5']
    for (const id of ids) await client.createRun({ id, tags: ['listed'], metadata: { id } })
    await client.createRun({ id: 'm_other', tags: ['other'] })
    await client.markStageProcessing('m_5', 1)

    const pages = await collect(client.listRuns({ tag: 'listed', limit: 2 }))
    expect(pages.map((page) => page.runs.length)).toEqual([2, 2, 1])
    const listed = pages.flatMap((page) => page.runs)
    // Newest first (created one after another; within one millisecond the id, descending, also puts m_5 first).
    expect(listed.map((run) => run.id)).toEqual(['m_5', 'm_4', 'm_3', 'm_2', 'm_1'])
    expect(listed.find((run) => run.id === 'm_5')).toMatchObject({ status: 'PROCESSING', pipeline: 'default', tags: ['listed'], metadata: { id: 'm_5' }, currentStage: 1 })
    expect((await collect(client.listRuns({ tag: 'listed', status: 'PROCESSING' }))).flatMap((page) => page.runs.map((run) => run.id))).toEqual(['m_5'])
    expect(await client.countRuns({ groupBy: 'status', tag: 'listed' })).toEqual({ counts: { PENDING: 4, PROCESSING: 1 } })
    await client.close()
  })
})
