/**
 * The one rule for the PostgreSQL URLs the `pg` entry takes (createPgConnections, the LISTEN
 * connection, the migrations and `pipeline-status migrate`), and how they appear in messages:
 * host and port, never the password. Imports no `pg`, so the CLI can check a URL before it loads
 * the optional peer.
 */
import { ServerConfigurationError } from '../server/configuration-error.js'

/** A URL's scheme (RFC 3986 section 3.1), before its first colon. */
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/

/** Where a URL came from, for the message: `createPgConnections: directConnectionString (DIRECT_DATABASE_URL)`. */
export interface DatabaseUrlSource {
  /** The function or command that was given the URL, e.g. `'createPgConnections'`. */
  readonly where: string
  /** The option (or flag) that held it, e.g. `'directConnectionString'` or `'--database-url'`. */
  readonly option: string
  /** The environment variable it usually comes from, e.g. `'DIRECT_DATABASE_URL'`. */
  readonly variable: string
}

/**
 * Refuses a URL whose scheme is not `postgres:` or `postgresql:`. `pg` ignores the scheme, so a
 * typo (`postgressql://`) would otherwise connect by accident, and a URL meant for another
 * database would fail later with a less helpful error.
 *
 * @throws ServerConfigurationError naming `source` (option and variable), the URL as given
 * without its password, and the fix.
 */
export function checkDatabaseUrl(url: string, source: DatabaseUrlSource): void {
  const scheme = SCHEME.exec(url)?.[1]?.toLowerCase()
  if (scheme === 'postgres' || scheme === 'postgresql') return
  const said = scheme === undefined ? 'it has no scheme' : `its scheme is '${scheme}:'`
  throw new ServerConfigurationError(
    `${source.where}: ${source.option === source.variable ? source.option : `${source.option} (${source.variable})`} must be a postgresql:// (or postgres://) URL, got ${JSON.stringify(redactUrl(url))}: ${said}. ` +
      `Fix: set ${source.variable} to postgresql://USER:PASSWORD@HOST:5432/DATABASE`,
  )
}

/** `host:port` of a URL (the port only when it has one), for a log line; never the password. */
export function describeUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.hostname === '') return 'a URL without a host (the local socket)'
    return `${parsed.hostname}${parsed.port ? `:${parsed.port}` : ''}`
  } catch {
    return 'an unparsable URL'
  }
}

/** The URL as given, with its password (if any) replaced by `***`; a URL that does not parse shows only its scheme (or `…`). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    const scheme = SCHEME.exec(url)?.[1]
    return scheme === undefined ? '…' : `${scheme}:…`
  }
}
