/**
 * Errors that name their cause: an unreachable database is one `503 database_unavailable` log
 * line carrying the driver's cause (code, host and port, message), and a connection the
 * configuration cannot make (no user name, as when DATABASE_URL is unset; an unknown role) is one
 * `configuration_error` line naming the fix, never a 500 with a stack. Both store paths: through
 * Prisma's driver adapter and through a `pg` pool (`{ pool }`).
 *
 * The refusals come from a socket that answers the start-up as PostgreSQL does (FATAL 28000), so
 * they hold on any machine; with DATABASE_URL an unknown role is also asked of the real server.
 */
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { PrismaPg } from '@prisma/adapter-pg'
import { Problem } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers, createPrismaStore, createStaleRunSweeper } from 'pipeline-status-sdk/server'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { usesPostgres } from '../setup/test-database.js'
import { startRefusingPostgres } from '../support/refusing-postgres.js'

const SECRET = 'cause-secret'
const cleanups: Array<() => Promise<unknown>> = []
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined)
})

interface Line {
  level: 'warn' | 'error'
  message: string
  details: Record<string, unknown> | undefined
}

/** Handlers on a store for `url`, through Prisma's adapter or a `pg` pool, and what they logged. */
function handlersFor(url: string, path: 'prisma' | 'pool') {
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url }) })
  cleanups.push(() => prisma.$disconnect())
  const pool = path === 'pool' ? new pg.Pool({ connectionString: url }) : undefined
  if (pool) {
    pool.on('error', () => undefined)
    cleanups.push(() => pool.end())
  }
  const store = createPrismaStore({ prisma, ...(pool ? { pool, queryTimeoutMs: 10_000 } : { queryTimeoutMs: 10_000 }) })
  const lines: Line[] = []
  const logger = {
    warn: (message: string, details?: Record<string, unknown>) => void lines.push({ level: 'warn', message, details }),
    error: (message: string, details?: Record<string, unknown>) => void lines.push({ level: 'error', message, details }),
  }
  const handlers = createPipelineStatusHandlers({ store, secret: SECRET, logger })
  const status = () =>
    handlers.fetch(new Request('https://app.example/api/pipeline/run_1/status', { headers: { 'X-Webhook-Secret': SECRET } }))
  return { handlers, lines, status, store, logger }
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** A server that refuses every connection's start-up as PostgreSQL does with `FATAL <code> <message>`. */
async function refusingServer(code: string, message: string): Promise<number> {
  const server = await startRefusingPostgres({ code, message })
  cleanups.push(() => server.close())
  return server.port
}

describe.each(['prisma', 'pool'] as const)('database errors name their cause (%s path)', (path) => {
  it('an unreachable database: 503 and one warning with the code, host and port', async () => {
    const port = await closedPort()
    const { lines, status } = handlersFor(`postgresql://app:pw@127.0.0.1:${port}/app`, path)
    const response = await status()
    expect(response.status).toBe(503)
    expect(Problem.parse(await response.json()).code).toBe('database_unavailable')
    expect(lines).toHaveLength(1)
    const [line] = lines
    expect(line?.level).toBe('warn')
    // The pool keeps Node's error (`connect ECONNREFUSED 127.0.0.1:PORT`); Prisma's adapter
    // reduces it to its kind and the address (`DatabaseNotReachable: Can't reach database server at …`).
    const expected =
      path === 'pool'
        ? `503 database_unavailable: connect ECONNREFUSED 127.0.0.1:${port}`
        : `503 database_unavailable: DatabaseNotReachable: Can't reach database server at 127.0.0.1:${port}`
    expect(line?.message).toBe(`pipeline-status: GET /api/pipeline/run_1/status (run run_1): ${expected}`)
    expect(line?.details?.['cause']).toBe(expected.replace('503 database_unavailable: ', ''))
    // Never the connection string's password.
    expect(JSON.stringify(lines.map((entry) => entry.message))).not.toContain('pw@')
  })

  it('the sweeper names the same cause', async () => {
    const port = await closedPort()
    const { store, lines, logger } = handlersFor(`postgresql://app@127.0.0.1:${port}/app`, path)
    const sweeper = createStaleRunSweeper({ store, staleAfterMs: 60_000, intervalMs: 60_000, logger })
    sweeper.start()
    await expect.poll(() => lines.length, { timeout: 20_000 }).toBe(1)
    await sweeper.stop()
    expect(lines[0]?.level).toBe('warn')
    expect(lines[0]?.message).toContain(`database unavailable during the stale-run sweep (The database is unreachable: `)
    expect(lines[0]?.message).toContain(`127.0.0.1:${port}`)
  })

  it('no user name (DATABASE_URL unset, no PGUSER or USER): configuration_error, one line with the hint, logged once', async () => {
    const port = await refusingServer('28000', 'no PostgreSQL user name specified in startup packet')
    const { lines, status } = handlersFor(`postgresql://app@127.0.0.1:${port}/app`, path)
    for (let request = 0; request < 3; request++) {
      const response = await status()
      expect(response.status).toBe(500)
      const problem = Problem.parse(await response.json())
      expect(problem.code).toBe('configuration_error')
      expect(problem.detail).toBe('The server cannot connect to its database as configured; the server log says why')
    }
    const cause = path === 'pool' ? '28000' : 'DatabaseAccessDenied 28000'
    expect(lines.map((line) => [line.level, line.message])).toEqual([
      [
        'error',
        `pipeline-status: The database refused the connection's configuration (${cause}: no PostgreSQL user name specified in startup packet): ` +
          'the connection names no user: is DATABASE_URL set where the app runs? It must look like postgresql://USER:PASSWORD@HOST:5432/DATABASE',
      ],
    ])
    // One line, and no error object whose stack a console logger would print.
    expect(lines[0]?.message).not.toContain('\n')
    expect(lines[0]?.details?.['error']).toBeUndefined()
    expect(lines[0]?.details?.['code']).toBe('configuration_error')
  })

  it.runIf(usesPostgres())('an unknown role on the real server: configuration_error naming the role and what to check', async () => {
    const url = new URL(process.env['DATABASE_URL'] as string)
    url.username = 'no_such_role_h6'
    url.password = ''
    const { lines, status } = handlersFor(url.toString(), path)
    const response = await status()
    expect(response.status).toBe(500)
    expect(Problem.parse(await response.json()).code).toBe('configuration_error')
    expect(lines).toHaveLength(1)
    expect(lines[0]?.message).toContain('role "no_such_role_h6" does not exist')
    expect(lines[0]?.message).toContain('check the user name and database of the connection string (DATABASE_URL)')
  })
})
