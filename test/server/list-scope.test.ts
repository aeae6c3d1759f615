/**
 * Who sees what of the collection, over HTTP against the real handlers on the MemoryStore and
 * on PostgreSQL (docs/security.md, "Lists: who sees which runs"): users scoped by the app's
 * `listScope` try every way to see another user's runs (query parameters naming the other's tag
 * or pipeline, a cursor from the other's list, a run by id) and are refused or filtered; the
 * webhook secret sees every run; a tag read token sees exactly its tag's runs and ignores
 * `listScope`. Needs `GET /runs` and `GET /runs/counts` (issue 24, the lists work) and
 * `POST /{runId}/tags` (the pipelines work): it passes once both are merged.
 */
import { createPipelineStatusHandlers, createRunReadToken, HttpProblemError, MemoryStore, type RunState, type Store } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { HANDLER_BASE_URL } from '../support/handler-requests.js'
import { useTestDatabase } from '../support/use-test-database.js'

const SECRET = 'webhook-secret-for-list-scope-tests-01'
const READ_SECRET = 'read-token-secret-for-list-scope-0001'
const quiet = { warn: () => undefined, error: () => undefined }
const CATALOGUE = [
  { number: 1, name: 'Fetch' },
  { number: 2, name: 'Summarise' },
]

const fixture = useTestDatabase({ poolSize: 4 })

const targets: Array<{ name: string; store(): Store<unknown> }> = [
  { name: 'MemoryStore', store: () => new MemoryStore() },
  { name: 'PrismaStore on PostgreSQL', store: () => fixture.store as Store<unknown> },
]

/** The runs: two teams, two pipelines; `team` is the tag the app scopes its users by. */
const RUNS = [
  { id: 'a1', team: 'team:a', pipeline: 'report' },
  { id: 'a2', team: 'team:a', pipeline: 'report' },
  { id: 'a3', team: 'team:a', pipeline: 'ingest' },
  { id: 'b1', team: 'team:b', pipeline: 'report' },
  { id: 'b2', team: 'team:b', pipeline: 'report' },
  { id: 'b3', team: 'team:b', pipeline: 'ingest' },
] as const
const ids = (team?: string, pipeline?: string) =>
  RUNS.filter((run) => (team === undefined || run.team === team) && (pipeline === undefined || run.pipeline === pipeline))
    .map((run) => run.id)
    .sort()

/** The app's users: alice and bob see their team's runs, carol the report pipeline's. */
const SCOPES: Record<string, { tags?: string[]; pipeline?: string }> = {
  alice: { tags: ['team:a'] },
  bob: { tags: ['team:b'] },
  carol: { pipeline: 'report' },
}
const userOf = (request: Request) => /session=(\w+)/.exec(request.headers.get('cookie') ?? '')?.[1]

describe.each(targets)('list scope on $name', (target) => {
  const open: Array<{ close(): Promise<void> }> = []
  afterEach(async () => {
    for (const handlers of open.splice(0)) await handlers.close()
  })

  async function setup(overrides: { listScope?: (input: { request: Request }) => unknown } = {}) {
    const store = target.store()
    const base = Date.UTC(2026, 0, 1)
    for (const [index, run] of RUNS.entries()) {
      const at = new Date(base + index * 1000)
      const state: RunState = {
        id: run.id,
        status: 'PENDING',
        error: null,
        completedAt: null,
        completionReceivedAt: null,
        createdAt: at,
        updatedAt: at,
        pipeline: run.pipeline,
        catalogue: CATALOGUE,
        tags: [run.team],
      }
      await store.insertRun(state)
    }
    const authorize = vi.fn(({ request, runId, action }: { request: Request; runId: string | undefined; action: string }) => {
      const user = userOf(request)
      if (user === undefined || SCOPES[user] === undefined) throw new HttpProblemError('authentication_required', { detail: 'Sign in first' })
      if (action === 'list') return true
      const run = RUNS.find((candidate) => candidate.id === runId)
      const scope = SCOPES[user]
      return run !== undefined && (scope.tags?.includes(run.team) ?? true) && (scope.pipeline ?? run.pipeline) === run.pipeline
    })
    const listScope = vi.fn(overrides.listScope ?? (({ request }: { request: Request }) => SCOPES[userOf(request) as string]))
    const handlers = createPipelineStatusHandlers({
      store,
      secret: SECRET,
      readTokens: { secret: READ_SECRET },
      authorize,
      listScope: listScope as never,
      logger: quiet,
    })
    open.push(handlers)
    const get = (path: string, headers: Record<string, string>) => handlers.fetch(new Request(`${HANDLER_BASE_URL}${path}`, { headers }))
    const as = (user: string) => ({ Cookie: `session=${user}` })
    const post = (path: string, json: unknown) =>
      handlers.fetch(
        new Request(`${HANDLER_BASE_URL}${path}`, {
          method: 'POST',
          headers: { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' },
          body: JSON.stringify(json),
        }),
      )
    const list = async (query: string, headers: Record<string, string>) => {
      const response = await get(`/runs?${query}`, headers)
      const text = await response.text()
      expect({ status: response.status, text }).toMatchObject({ status: 200 })
      return JSON.parse(text) as { runs: Array<{ id: string }>; nextCursor: string | null }
    }
    const listed = async (query: string, headers: Record<string, string>) => (await list(query, headers)).runs.map((run) => run.id).sort()
    const counts = async (query: string, headers: Record<string, string>) => {
      const response = await get(`/runs/counts?${query}`, headers)
      const text = await response.text()
      expect({ status: response.status, text }).toMatchObject({ status: 200 })
      return (JSON.parse(text) as { counts: Record<string, number> }).counts
    }
    return { get, post, as, list, listed, counts, authorize, listScope }
  }

  it("each user lists and counts exactly the runs of their scope; query parameters only narrow it", async () => {
    const { as, listed, counts } = await setup()
    expect(await listed('', as('alice'))).toEqual(ids('team:a'))
    expect(await listed('', as('bob'))).toEqual(ids('team:b'))
    expect(await listed('', as('carol'))).toEqual(ids(undefined, 'report'))

    // Naming the other's tag or pipeline: nothing, never the other's runs.
    expect(await listed('tag=team:b', as('alice'))).toEqual([])
    expect(await listed('tag=team:a&tag=team:b', as('alice'))).toEqual([])
    expect(await listed('pipeline=ingest', as('carol'))).toEqual([])
    expect(await counts('groupBy=status&tag=team:b', as('alice'))).toEqual({})
    expect(await counts('groupBy=pipeline&pipeline=ingest', as('carol'))).toEqual({})
    // Narrowing within the scope works as a filter.
    expect(await listed('pipeline=ingest', as('alice'))).toEqual(ids('team:a', 'ingest'))
    expect(await listed('tag=team:b', as('carol'))).toEqual(ids('team:b', 'report'))

    expect(await counts('groupBy=status', as('alice'))).toEqual({ PENDING: 3 })
    expect(await counts('groupBy=pipeline', as('alice'))).toEqual({ report: 2, ingest: 1 })
    expect(await counts('groupBy=pipeline', as('carol'))).toEqual({ report: 4 })
  })

  it("a cursor from another user's list shows nothing of theirs; paging one's own stays in scope", async () => {
    const { as, get, list } = await setup()
    const bobs = await list('limit=1', as('bob'))
    expect(bobs.nextCursor).not.toBeNull()
    const stolen = await get(`/runs?limit=1&cursor=${encodeURIComponent(bobs.nextCursor as string)}`, as('alice'))
    const text = await stolen.text()
    expect({ status: stolen.status, code: JSON.parse(text).code }).toEqual({ status: 400, code: 'invalid_cursor' })
    for (const id of ids('team:b')) expect(text).not.toContain(`"${id}"`)

    const seen: string[] = []
    let cursor: string | null = null
    for (let page = 0; page < 10; page++) {
      const result: { runs: Array<{ id: string }>; nextCursor: string | null } = await list(
        `limit=1${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`,
        as('alice'),
      )
      seen.push(...result.runs.map((run) => run.id))
      cursor = result.nextCursor
      if (cursor === null) break
    }
    expect(seen.sort()).toEqual(ids('team:a'))
  })

  it("another user's run by id is refused by the app's own read rule", async () => {
    const { as, get } = await setup()
    for (const path of ['/b1/status', '/b1/events']) {
      const refused = await get(path, as('alice'))
      expect(refused.status).toBe(403)
      expect(await refused.json()).toMatchObject({ code: 'forbidden' })
    }
    expect((await get('/a1/status', as('alice'))).status).toBe(200)
  })

  it("the webhook secret sees every run and never asks authorize or listScope", async () => {
    const { listed, counts, authorize, listScope } = await setup()
    const secret = { 'X-Webhook-Secret': SECRET }
    expect(await listed('', secret)).toEqual(ids())
    expect(await counts('groupBy=pipeline', secret)).toEqual({ report: 4, ingest: 2 })
    expect(authorize).not.toHaveBeenCalled()
    expect(listScope).not.toHaveBeenCalled()
  })

  it("a tag read token lists and reads exactly its tag's runs, whatever the session or listScope say", async () => {
    const { as, get, listed, counts, authorize, listScope } = await setup()
    const token = await createRunReadToken({ tag: 'team:b', secret: READ_SECRET, expiresInSeconds: 600 })
    // Sent beside alice's session: the token decides, not her scope.
    const headers = { Authorization: `Bearer ${token}`, ...as('alice') }
    expect(await listed('', headers)).toEqual(ids('team:b'))
    expect(await listed('tag=team:a', headers)).toEqual([])
    expect(await counts('groupBy=status', headers)).toEqual({ PENDING: 3 })
    expect((await get('/b1/status', headers)).status).toBe(200)
    const other = await get('/a1/status', headers)
    expect(other.status).toBe(401)
    expect(await other.json()).toMatchObject({ code: 'invalid_read_token' })
    expect(authorize).not.toHaveBeenCalled()
    expect(listScope).not.toHaveBeenCalled()

    const runToken = await createRunReadToken({ runId: 'b1', secret: READ_SECRET, expiresInSeconds: 600 })
    const refused = await get('/runs', { Authorization: `Bearer ${runToken}` })
    expect(refused.status).toBe(401)
    expect(await refused.json()).toMatchObject({ code: 'invalid_read_token' })
  })

  it('a run whose tag is removed through POST /{runId}/tags leaves the tag token\'s lists and reads at once', async () => {
    const { get, listed, post } = await setup()
    const token = await createRunReadToken({ tag: 'team:b', secret: READ_SECRET, expiresInSeconds: 600 })
    const headers = { Authorization: `Bearer ${token}` }
    expect((await get('/b1/status', headers)).status).toBe(200)
    const untagged = await post('/b1/tags', { remove: ['team:b'] })
    expect(untagged.status).toBe(200)
    expect(await listed('', headers)).toEqual(['b2', 'b3'])
    expect((await get('/b1/status', headers)).status).toBe(401)
    expect((await get('/b1/events', headers)).status).toBe(401)
  })

  it("authorize is asked with action 'list' and no run; a caller not signed in is 401", async () => {
    const { as, get, listed, authorize } = await setup()
    await listed('', as('alice'))
    expect(authorize).toHaveBeenCalledWith(expect.objectContaining({ action: 'list', runId: undefined }))
    for (const path of ['/runs', '/runs/counts?groupBy=status']) {
      const anonymous = await get(path, {})
      expect(anonymous.status).toBe(401)
      expect(await anonymous.json()).toMatchObject({ code: 'authentication_required' })
    }
  })

  it('a listScope that throws answers 500 without its message, for lists and counts', async () => {
    const { as, get } = await setup({
      listScope: () => {
        throw new Error('team lookup failed: postgres://admin:hunter2@db')
      },
    })
    for (const path of ['/runs', '/runs/counts?groupBy=status']) {
      const failed = await get(path, as('alice'))
      expect(failed.status).toBe(500)
      const text = await failed.text()
      expect(JSON.parse(text)).toMatchObject({ code: 'internal_error' })
      expect(text).not.toContain('hunter2')
    }
  })
})
