/**
 * Two runs on the page's shared connection (`subscribeToRun`, `share: true`) deleted together,
 * with a credential that reads any run, against the real handlers over a real port (PrismaStore: PostgreSQL when DATABASE_URL is set,
 * else PGlite): the server ends the set stream with `: closed deleted <first>`, and the reopen for
 * the second finds it gone (`404 run_not_found`). Both subscriptions report the same final
 * RunStreamClosedError (`closedCause: 'deleted'`): the second run was streamed, so it existed.
 */
import { isRunStreamClosedError, subscribeToRun } from 'pipeline-status-sdk'
import { afterEach, describe, expect, it } from 'vitest'
import { useTestDatabase } from '../support/use-test-database.js'
import { until } from './fake-event-fetch.js'
import { LIVE_SECRET, type LiveServer, postJson, startLiveServer } from './live-server.js'

const fixture = useTestDatabase()

let server: LiveServer | undefined
afterEach(async () => {
  await server?.close()
  server = undefined
})

describe("the page's shared connection, two runs deleted together", () => {
  it('both subscriptions stop with RunStreamClosedError deleted: the one the comment names and the one the reopen finds gone (404)', async () => {
    server = await startLiveServer({ pollIntervalMs: 20 }, { store: fixture.store })
    const { url } = server
    const ids = ['shared-deleted-1', 'shared-deleted-2']
    for (const id of ids) await postJson(url, '/runs', { id })
    // A credential of the app (here the secret; a session's cookies alike) that reads any run: a
    // read token would be refused (401 invalid_read_token) for a run that is gone, not 404.
    const headers = { 'X-Webhook-Secret': LIVE_SECRET }
    const [first, second] = ids.map((id) => subscribeToRun(id, { url, headers, share: true, reconnectDelayMs: 1 }))
    await until(() => first!.state === 'live' && second!.state === 'live' && first!.status !== undefined && second!.status !== undefined, 'both live')

    await fixture.db.prisma.$transaction(ids.map((id) => fixture.db.prisma.pipelineRun.delete({ where: { id } })))
    await Promise.all([first!.done, second!.done])

    for (const [subscription, id] of [[first!, ids[0]], [second!, ids[1]]] as const) {
      expect(subscription.state).toBe('error')
      expect(isRunStreamClosedError(subscription.error), String(subscription.error)).toBe(true)
      expect(subscription.error).toMatchObject({ closedCause: 'deleted', runId: id, final: true })
    }
  })
})
