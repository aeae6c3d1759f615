/**
 * `createPgConnections` (issue 31, "Two URLs, said once"): the request pool on the pooled URL,
 * LISTEN and migrations on the direct one, and one warning with the cause and the fix when LISTEN
 * is asked for with only a pooled URL. Against a real PgBouncer in transaction mode in front of
 * the test PostgreSQL: the migrations, which refuse a transaction pooler, pass on the direct URL.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { createPgConnections } from 'pipeline-status-sdk/pg'
import { ServerConfigurationError } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { usesPostgres } from '../setup/test-database.js'
import { toolForTests } from '../support/optional-tools.js'
import { pgbouncerTool, startPgBouncer } from '../support/pgbouncer.js'

const PGBOUNCER = toolForTests(pgbouncerTool('test/live/pg-connections.test.ts', 'createPgConnections behind PgBouncer'))

function recording() {
  const warnings: string[] = []
  return { warnings, logger: { warn: (message: string) => void warnings.push(message) } }
}

describe('createPgConnections: the two URLs', () => {
  it('refuses an empty request URL, naming DATABASE_URL', () => {
    expect(() => createPgConnections({ connectionString: '' })).toThrow(ServerConfigurationError)
    expect(() => createPgConnections({ connectionString: ' ' })).toThrow(/connectionString is empty: set DATABASE_URL/)
  })

  it('with only a pooled URL, LISTEN says once why it will poll and how to fix it, without the password', async () => {
    const { warnings, logger } = recording()
    const db = createPgConnections({ connectionString: 'postgresql://app:s3cret@db.pooler.supabase.com:6543/app', logger })
    expect(db.directConnectionString).toBe(db.connectionString)
    expect(db.hasDirectUrl).toBe(false)
    const first = db.listener()
    const second = db.listener()
    expect(first.state).toBe('idle')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain('only a pooled URL is given (DATABASE_URL, connectionString: db.pooler.supabase.com:6543)')
    expect(warnings[0]).toContain("A transaction pooler never delivers another session's notifications, so live streams will poll run versions instead")
    expect(warnings[0]).toContain('Fix: set DIRECT_DATABASE_URL (directConnectionString)')
    expect(warnings[0]).not.toContain('s3cret')
    await Promise.all([first.close(), second.close(), db.close()])
  })

  it.each([
    ['a pgbouncer=true parameter', 'postgresql://app@db.example.com:5432/app?pgbouncer=true'],
    ["Neon's -pooler host", 'postgresql://app@ep-cool-123-pooler.eu-central-1.aws.neon.tech/app'],
    ["PgBouncer's port", 'postgresql://app@db.example.com:6432/app'],
  ])('knows %s for a pooler', async (_what, url) => {
    const { warnings, logger } = recording()
    const db = createPgConnections({ connectionString: url, logger })
    await db.listener().close()
    await db.close()
    expect(warnings).toHaveLength(1)
  })

  it('with a direct URL (or one URL that is direct), LISTEN warns of nothing and uses the direct one', async () => {
    const { warnings, logger } = recording()
    const pair = createPgConnections({
      connectionString: 'postgresql://app@db.pooler.supabase.com:6543/app',
      directConnectionString: 'postgresql://app@db.example.com:5432/app',
      logger,
    })
    expect(pair.directConnectionString).toBe('postgresql://app@db.example.com:5432/app')
    expect(pair.hasDirectUrl).toBe(true)
    const single = createPgConnections({ connectionString: 'postgresql://app@db.example.com:5432/app', logger })
    await pair.listener().close()
    await single.listener().close()
    await Promise.all([pair.close(), single.close()])
    expect(warnings).toEqual([])
  })
})

describe('createPgConnections: a read replica', () => {
  it('gives a replica pool and the handlers\' readReplica option only with replicaConnectionString', async () => {
    const without = createPgConnections({ connectionString: 'postgresql://app@db.example.com:5432/app' })
    expect(without.replicaPool).toBeUndefined()
    expect(without.readReplica).toBeUndefined()
    const withReplica = createPgConnections({
      connectionString: 'postgresql://app@db.example.com:5432/app',
      replicaConnectionString: 'postgresql://app@replica.example.com:5432/app',
    })
    expect(withReplica.replicaPool).toBeInstanceOf(pg.Pool)
    expect(withReplica.readReplica).toEqual({ pool: withReplica.replicaPool })
    await Promise.all([without.close(), withReplica.close()])
  })
})

describe.skipIf(!PGBOUNCER || !usesPostgres())('createPgConnections behind PgBouncer in transaction mode (needs DATABASE_URL)', () => {
  it('serves requests through the pooler and migrates over the direct URL (which a transaction pooler would refuse)', async () => {
    const server = process.env['DATABASE_URL'] as string
    const name = `pss_two_urls_${randomBytes(5).toString('hex')}`
    const admin = new pg.Client({ connectionString: server })
    await admin.connect()
    await admin.query(`CREATE DATABASE "${name}"`)
    const direct = new URL(server)
    direct.pathname = `/${name}`
    const bouncer = await startPgBouncer({ databaseUrl: direct.toString(), binary: PGBOUNCER as string })
    const db = createPgConnections({ connectionString: bouncer.url, directConnectionString: direct.toString(), logger: recording().logger })
    try {
      const { applied } = await db.migrate()
      expect(applied.length).toBeGreaterThan(0)
      const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM "_prisma_migrations"')
      expect(rows).toEqual([{ n: applied.length }])
      expect(db.pool.options.connectionString).toBe(bouncer.url)
    } finally {
      await db.close()
      await bouncer.stop()
      await admin.query(`DROP DATABASE "${name}" WITH (FORCE)`)
      await admin.end()
    }
  })
})
