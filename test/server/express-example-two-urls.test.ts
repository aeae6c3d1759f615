/**
 * The Express example's two URLs (issue 31, "Two URLs, said once"): `DATABASE_URL` for requests
 * (here a real PgBouncer in transaction mode) and `DIRECT_DATABASE_URL` for the migrations and
 * LISTEN, with `LIVE_MODE=listen|poll` read from the environment; unset, LISTEN is the default
 * when `DIRECT_DATABASE_URL` is given (issue 31 item 1). Two instances share one PostgreSQL; the
 * LISTEN connection must be the direct one (a transaction pooler never delivers another
 * session's notifications, so its delivery check would never pass).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ExpressExample, liveFromEnv, startExpressExample } from '../../examples/express/app.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'
import { toolForTests } from '../support/optional-tools.js'
import { type PgBouncer, pgbouncerTool, startPgBouncer } from '../support/pgbouncer.js'
import { until } from '../support/until.js'
import { openSse } from '../live/sse-reader.js'

const PGBOUNCER = toolForTests(pgbouncerTool('test/server/express-example-two-urls.test.ts', 'the Express example with a pooled and a direct URL'))
const SECRET = 'two-urls-secret'
const root = fileURLToPath(new URL('../..', import.meta.url))

/** `npm run example:express` with `env`, until it exits by itself: its exit code and stderr. */
async function runExample(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const started = spawn(process.execPath, [join(root, 'node_modules/tsx/dist/cli.mjs'), 'examples/express/server.ts'], {
    cwd: root,
    env: { ...process.env, PORT: '0', WEBHOOK_SECRET: 's', DATABASE_URL: '', DIRECT_DATABASE_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  started.stderr?.on('data', (chunk: Buffer) => void (stderr += chunk.toString()))
  const [code] = (await once(started, 'exit')) as [number | null]
  return { code, stderr }
}

describe('LIVE_MODE and DIRECT_DATABASE_URL from the environment', () => {
  it('leaves the mode to the rule when unset, reads poll, listen and the direct URL, and refuses any other mode naming LIVE_MODE', () => {
    expect(liveFromEnv({})).toEqual({})
    expect(liveFromEnv({ DIRECT_DATABASE_URL: 'postgresql://db:5432/app' })).toEqual({ directDatabaseUrl: 'postgresql://db:5432/app' })
    expect(liveFromEnv({ LIVE_MODE: 'poll' })).toEqual({ liveMode: 'poll' })
    expect(liveFromEnv({ LIVE_MODE: 'listen', DIRECT_DATABASE_URL: 'postgresql://db:5432/app' })).toEqual({
      liveMode: 'listen',
      directDatabaseUrl: 'postgresql://db:5432/app',
    })
    expect(() => liveFromEnv({ LIVE_MODE: 'notify' })).toThrow('LIVE_MODE must be poll or listen, got "notify"')
  })

  it('npm run example:express stops with one line for an unknown LIVE_MODE, and for listen without PostgreSQL', async () => {
    expect(await runExample({ LIVE_MODE: 'notify' })).toEqual({ code: 1, stderr: '[express-example] LIVE_MODE must be poll or listen, got "notify"\n' })
    expect(await runExample({ LIVE_MODE: 'listen' })).toEqual({
      code: 1,
      stderr: '[express-example] LIVE_MODE=listen needs PostgreSQL: set DATABASE_URL (and DIRECT_DATABASE_URL when it is a pooler)\n',
    })
  }, 60_000)

  it('npm run example:express stops with one line, no stack, for a database it cannot reach', async () => {
    // A port nothing listens on: 1 is reserved (tcpmux) and refused on loopback.
    expect(await runExample({ DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/app' })).toEqual({
      code: 1,
      stderr:
        '[express-example] cannot open the database (ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:1); check DATABASE_URL and ' +
        'DIRECT_DATABASE_URL: is PostgreSQL running there, and does the database exist?\n',
    })
  }, 60_000)
})

describe.skipIf(!PGBOUNCER || !usesPostgres())('the Express example on a pooled DATABASE_URL and a direct DIRECT_DATABASE_URL (needs DATABASE_URL)', () => {
  let db: TestDatabase
  let bouncer: PgBouncer
  const started: ExpressExample[] = []
  const logs: string[] = []
  const infos: string[] = []
  const log = { info: (m: string) => void infos.push(m), warn: (m: string) => void logs.push(m), error: (m: string) => void logs.push(m) }

  // Ten minutes between version polls: a cross-instance update that arrives came through LISTEN (or the 5 s safety poll).
  const start = (env: NodeJS.ProcessEnv, pollIntervalMs = 600_000) =>
    startExpressExample({ port: 0, secret: SECRET, databaseUrl: bouncer.url, log, pollIntervalMs, ...liveFromEnv(env) }).then((example) => {
      started.push(example)
      return example
    })

  beforeAll(async () => {
    db = await createTestDatabase()
    bouncer = await startPgBouncer({ databaseUrl: db.url as string, binary: PGBOUNCER as string })
  })
  afterAll(async () => {
    for (const example of started) await example.close()
    await bouncer?.stop()
    await db?.close()
  })

  it('with DIRECT_DATABASE_URL and no LIVE_MODE, LISTEN is the default: it listens on the direct URL, and a write on one instance reaches a stream on the other', async () => {
    infos.length = 0
    const env = { DIRECT_DATABASE_URL: db.url }
    const writer = await start(env)
    const reader = await start(env)
    expect(reader.live.mode).toBe('listen')
    expect(infos.filter((line) => line.startsWith('pipeline-status: live streams use LISTEN'))).toHaveLength(2) // one per instance

    const created = await fetch(`${writer.url}/runs`, { method: 'POST', headers: { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' }, body: '{}' })
    expect(created.status).toBe(201)
    const runId = ((await created.json()) as { run: { id: string } }).run.id
    const stream = await openSse(`${reader.url}/${runId}/events`, { 'X-Webhook-Secret': SECRET })
    await stream.waitFor((event) => event.event === 'snapshot')

    // The delivery check passes only where another session's NOTIFY arrives: never through the pooler.
    const listener = reader.live.listener
    await until('the reader to listen', () => listener?.state === 'listening')
    const admin = new pg.Client({ connectionString: db.url })
    await admin.connect()
    try {
      const { rows } = await admin.query<{ application_name: string; query: string }>(
        'SELECT application_name, query FROM pg_stat_activity WHERE pid = $1 AND datname = current_database()',
        [listener?.backendPid],
      )
      expect(rows).toEqual([expect.objectContaining({ application_name: 'pipeline-status-listener' })])
    } finally {
      await admin.end()
    }

    const update = await fetch(`${writer.url}/${runId}/stage-update`, {
      method: 'POST',
      headers: { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' },
      body: JSON.stringify({ stageNumber: 1, stageName: 'Stage 1', status: 'PROCESSING' }),
    })
    expect(update.status).toBe(200)
    const event = await stream.waitFor((message) => message.event === 'update')
    expect(JSON.parse(event.data)).toMatchObject({ stages: [{ stageNumber: 1, status: 'PROCESSING' }] })
    stream.abort()
    expect(logs.filter((line) => /LISTEN|notification/.test(line))).toEqual([])
  })

  it('LIVE_MODE=poll opts out with a direct URL, and says so at start', async () => {
    infos.length = 0
    const example = await start({ LIVE_MODE: 'poll', DIRECT_DATABASE_URL: db.url }, 250)
    expect(example.live).toEqual({ mode: 'poll', listener: undefined })
    expect(infos.filter((line) => line.startsWith('pipeline-status: live streams'))).toEqual([
      "pipeline-status: live streams poll run versions every 250 ms: createPgConnections was given live: 'poll'. To use LISTEN on the direct URL given, leave live unset (docs/live-status.md)",
    ])
  })

  it('with only the pooled URL and no LIVE_MODE it polls, and the start line says how to turn LISTEN on', async () => {
    infos.length = 0
    logs.length = 0
    const example = await start({}, 250)
    expect(example.live).toEqual({ mode: 'poll', listener: undefined })
    const lines = infos.filter((line) => line.startsWith('pipeline-status: live streams'))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^pipeline-status: live streams poll run versions every 250 ms: no direct URL is given .* set DIRECT_DATABASE_URL/)
    // Polling by default is no fault: no warning about LISTEN (the pooler's refused bounds are warned of apart).
    expect(logs.filter((line) => /LISTEN|notification/.test(line))).toEqual([])
  })

  it('LISTEN mode with only the pooled URL says once why it polls, and how to fix it', async () => {
    logs.length = 0
    const example = await start({ LIVE_MODE: 'listen' })
    expect(example.live).toEqual({ mode: 'poll', listener: undefined })
    const lines = logs.filter((line) => line.includes('LIVE_MODE=listen'))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/goes through a connection pooler .* Fix: set DIRECT_DATABASE_URL/)
  })
})
