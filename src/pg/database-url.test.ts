import { describe, expect, it } from 'vitest'
import { isServerConfigurationError } from '../server/configuration-error.js'
import { createPgConnections } from './connections.js'
import { checkDatabaseUrl, describeUrl, redactUrl } from './database-url.js'
import { applyMigrations } from './migrate.js'
import { createPgRunListener } from './run-listener.js'

const GOOD = 'postgresql://app:hunter2@db.internal:5432/app'

/** The message `fn` throws, after checking it is a ServerConfigurationError. */
function refusal(fn: () => unknown): string {
  try {
    fn()
  } catch (error) {
    expect(isServerConfigurationError(error)).toBe(true)
    return (error as Error).message
  }
  throw new Error('expected a ServerConfigurationError, got none')
}

describe('the database URL rule', () => {
  it('accepts postgres: and postgresql:, in any case', () => {
    for (const url of [GOOD, 'postgres://db/app', 'POSTGRESQL://db/app', 'postgresql:///app?host=/var/run/postgresql']) {
      expect(() => checkDatabaseUrl(url, { where: 'test', option: 'url', variable: 'DATABASE_URL' })).not.toThrow()
    }
  })

  it('refuses every other scheme, showing the URL without its password and the fix', () => {
    const source = { where: 'test', option: 'url', variable: 'DATABASE_URL' }
    for (const [url, shown, scheme] of [
      ['postgressql://app:hunter2@db:5432/app', 'postgressql://app:***@db:5432/app', "its scheme is 'postgressql:'"],
      ['postgresq://app:hunter2@db/app', 'postgresq://app:***@db/app', "its scheme is 'postgresq:'"],
      ['postgre://db/app', 'postgre://db/app', "its scheme is 'postgre:'"],
      ['mysql://root:hunter2@db/app', 'mysql://root:***@db/app', "its scheme is 'mysql:'"],
      ['http://db:5432/app', 'http://db:5432/app', "its scheme is 'http:'"],
      ['//app:hunter2@db/app', '…', 'it has no scheme'],
    ] as const) {
      const message = refusal(() => checkDatabaseUrl(url, source))
      expect(message).toBe(
        `test: url (DATABASE_URL) must be a postgresql:// (or postgres://) URL, got "${shown}": ${scheme}. ` +
          'Fix: set DATABASE_URL to postgresql://USER:PASSWORD@HOST:5432/DATABASE',
      )
      expect(message).not.toContain('hunter2')
    }
  })

  it('describes a URL by host and port, never its password', () => {
    expect(describeUrl(GOOD)).toBe('db.internal:5432')
    expect(describeUrl('postgresql://db/app')).toBe('db')
    expect(redactUrl(GOOD)).toBe('postgresql://app:***@db.internal:5432/app')
  })
})

describe('the rule where URLs come in', () => {
  it('createPgConnections names the option and variable of each of its three URLs', () => {
    const cases = [
      [{ connectionString: 'postgressql://app:hunter2@pooler:6543/app' }, 'connectionString (DATABASE_URL)'],
      [{ connectionString: GOOD, directConnectionString: 'postgresq://app:hunter2@db:5432/app' }, 'directConnectionString (DIRECT_DATABASE_URL)'],
      [{ connectionString: GOOD, replicaConnectionString: 'postgress://app:hunter2@replica:5432/app' }, 'replicaConnectionString (REPLICA_DATABASE_URL)'],
    ] as const
    for (const [options, named] of cases) {
      const message = refusal(() => createPgConnections(options))
      expect(message).toContain(`createPgConnections: ${named} must be a postgresql:// (or postgres://) URL`)
      expect(message).toContain(`Fix: set ${named.split(' ')[1]!.slice(1, -1)} to postgresql://`)
      expect(message).not.toContain('hunter2')
    }
  })

  it('createPgRunListener names DIRECT_DATABASE_URL', () => {
    expect(refusal(() => createPgRunListener({ connectionString: 'postgressql://db/app' }))).toContain(
      'createPgRunListener: connectionString (DIRECT_DATABASE_URL) must be a postgresql:// (or postgres://) URL, got "postgressql://db/app"',
    )
  })

  it('applyMigrations refuses before connecting, naming DIRECT_DATABASE_URL', async () => {
    const error = await applyMigrations('postgresq://app:hunter2@db/app').catch((caught: unknown) => caught)
    expect(isServerConfigurationError(error)).toBe(true)
    expect((error as Error).message).toBe(
      'applyMigrations: the connection string (DIRECT_DATABASE_URL) must be a postgresql:// (or postgres://) URL, got "postgresq://app:***@db/app": ' +
        "its scheme is 'postgresq:'. Fix: set DIRECT_DATABASE_URL to postgresql://USER:PASSWORD@HOST:5432/DATABASE",
    )
  })
})

describe('a database that cannot be reached', () => {
  it('applyMigrations names host:port (never the password) and what to check', async () => {
    // Port 1 on the loopback is closed: refused at once, no timeout involved.
    const error = await applyMigrations('postgresql://app:hunter2@127.0.0.1:1/app').catch((caught: unknown) => caught)
    expect(error).toMatchObject({ name: 'MigrationError', code: 'connection-failed' })
    const { message } = error as Error
    expect(message).toMatch(/^Could not connect to the database at 127\.0\.0\.1:1 \(within 10000 ms\): .*ECONNREFUSED.*\. Nothing was changed\. /)
    expect(message).toContain("Check DIRECT_DATABASE_URL (or --database-url): that it names the database's own host and port, that the host is reachable from here")
    expect(message).toContain('the database is up and accepts connections')
    expect(message).not.toContain('hunter2')
    expect((error as Error).cause).toMatchObject({ code: 'ECONNREFUSED' })
  })
})
