/**
 * How the Prisma store classifies database errors: unreachable (503 `database_unavailable`),
 * missing schema objects (503 `database_not_migrated`), a connection the configuration cannot
 * make (500 `configuration_error`: no user name, a wrong password, an unknown role), or anything
 * else (propagated).
 * Internal: no entry point exports it.
 */
import { StoreUnavailableError } from '../core/store.js'

/**
 * Whether an error means the database could not be reached (as opposed to a query that
 * failed): Prisma's connection error codes, a driver adapter's connection error kinds,
 * PostgreSQL's connection and shutdown states, and Node's socket errors, anywhere in the
 * error's `cause` chain.
 */
export function isDatabaseUnreachableError(error: unknown): boolean {
  return findInChain(error, isUnreachableNode) !== undefined
}

// P1001 can't reach server, P1002 server timed out, P1008 operation timed out, P1017 server
// closed the connection, P2024 timed out waiting for a pooled connection, P2037 too many connections.
const PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2037'])
const ADAPTER_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections'])
const NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
])
// Class 08 connection exceptions; 57P01..57P03 the server shutting down or starting; 53300 too
// many connections; 57014 a statement cancelled by the server's statement_timeout.
const SQLSTATE_UNREACHABLE = /^(08[0-9A-Z]{3}|57P0[123]|53300|57014)$/

function isUnreachableNode(node: Record<string, unknown>): boolean {
  const { code, errorCode, kind, originalCode } = node
  for (const value of [code, errorCode, originalCode]) {
    if (typeof value !== 'string') continue
    if (PRISMA_CODES.has(value) || NODE_CODES.has(value) || SQLSTATE_UNREACHABLE.test(value)) return true
  }
  return typeof kind === 'string' && ADAPTER_KINDS.has(kind)
}

// 3D000 no such database, 3F000 no such schema, 42P01 no such table, 42703 no such column,
// 42704 no such type (the status enum); with Prisma's own codes and the driver adapters' kinds.
const MISSING_SQLSTATES = new Set(['3D000', '3F000', '42P01', '42703', '42704'])
const MISSING_PRISMA_CODES = new Set(['P1003', 'P2021', 'P2022'])
const MISSING_KINDS = new Set(['DatabaseDoesNotExist', 'TableDoesNotExist', 'ColumnNotFound'])

function isMissingNode(node: Record<string, unknown>): boolean {
  const { code, originalCode, kind } = node
  for (const value of [code, originalCode]) {
    if (typeof value === 'string' && (MISSING_SQLSTATES.has(value) || MISSING_PRISMA_CODES.has(value))) return true
  }
  return typeof kind === 'string' && MISSING_KINDS.has(kind)
}

/**
 * For an error that says the database, a schema, a table, a column or the status type is
 * missing (the SDK's migrations were not deployed, a later one is missing after an upgrade, or
 * they were applied to another PostgreSQL schema than the one the app queries), a message naming
 * what is missing, in which schema, and what to run or configure; `undefined` for any other error.
 */
export function describeMissingSchema(error: unknown): string | undefined {
  const node = findInChain(error, (candidate) => isMissingNode(candidate) && missingObject(candidate) !== undefined)
  if (!node) return findInChain(error, isMissingNode) ? `${GENERIC_MISSING}${DEPLOY}` : undefined
  const what = missingObject(node) as MissingObject
  if (what.noun === 'database') {
    return `The database "${what.name}" does not exist: create it, then run \`npx pipeline-status migrate\` (or \`prisma migrate deploy\` with the pipeline-status-sdk migrations in prisma/migrations)`
  }
  if (what.noun === 'schema') {
    return (
      `The schema "${what.name}" does not exist: the app queries the package's tables there (the adapter's or the store's ` +
      `\`schema\` option), but no migration created them. Run \`npx pipeline-status migrate --schema ${what.name}\` (or ` +
      `\`prisma migrate deploy\` with \`?schema=${what.name}\` in its URL), or give the adapter and the store the schema the migrations did create`
    )
  }
  if (what.noun === 'column') return `The column "${what.name}" does not exist${DEPLOY}`
  const where = what.schema === undefined ? ` in the schema of the connection's search_path (normally "public")` : ` in schema "${what.schema}"`
  return `The ${what.noun} "${what.name}" does not exist${where}${DEPLOY}${otherSchema(what.schema)}`
}

const GENERIC_MISSING = 'A table or column of pipeline-status-sdk does not exist'
const DEPLOY =
  ': the database lacks pipeline-status-sdk migrations. Run `npx pipeline-status migrate` or `prisma migrate deploy` with the migrations of prisma/migrations (copy any new ones from the package after an upgrade)'

/**
 * The other cause of a missing table: the migrations created it in another PostgreSQL schema
 * (`pipeline-status migrate --schema`, or `?schema=` in the URL, which `pipeline-status migrate`
 * and Prisma's CLI read but `@prisma/adapter-pg` does not), and the app queries `searched`.
 */
function otherSchema(searched: string | undefined): string {
  return (
    `. If the migrations created the tables in another PostgreSQL schema (\`pipeline-status migrate --schema NAME\`, or ` +
    `\`?schema=NAME\` in the URL, which @prisma/adapter-pg ignores${searched === undefined ? '' : `, so it queries "${searched}"`}), name that ` +
    "schema in the adapter's `schema` option and the store's: new PrismaPg({ connectionString }, { schema: 'NAME' }) and " +
    "createPrismaStore({ prisma, schema: 'NAME' })"
  )
}

interface MissingObject {
  noun: 'table' | 'column' | 'database' | 'schema' | 'type'
  name: string
  /** The schema PostgreSQL or Prisma named with a table or type (`public.PipelineRun`), if any. */
  schema?: string | undefined
}

/** `table "x"`, `column "y"`, `database "z"`, … from an error's PostgreSQL message or its fields. */
function missingObject(node: Record<string, unknown>): MissingObject | undefined {
  const { kind, table, column, db, originalMessage, message } = node
  const text = typeof originalMessage === 'string' ? originalMessage : typeof message === 'string' ? message : ''
  // The same missing column reads `column r.version` in a SELECT and `column "version" of relation
  // "PipelineRun"` in an UPDATE: both name only the column, so that it is logged once.
  const match = /\b(relation|column|database|schema|type) ("[^"]+"|\S+)(?: of relation "[^"]+")? does not exist/.exec(text)
  if (match) {
    const noun = match[1] === 'relation' ? 'table' : (match[1] as MissingObject['noun'])
    const quoted = (match[2] as string).replace(/^"|"$/g, '')
    if (noun === 'column') return { noun, name: withoutAlias(quoted) }
    return noun === 'table' || noun === 'type' ? qualified(noun, quoted) : { noun, name: quoted }
  }
  if (kind === 'TableDoesNotExist' && typeof table === 'string') return qualified('table', table)
  if (kind === 'ColumnNotFound' && typeof column === 'string') return { noun: 'column', name: withoutAlias(column.replace(/ of relation .*$/, '')) }
  if (kind === 'DatabaseDoesNotExist' && typeof db === 'string') return { noun: 'database', name: db }
  return undefined
}

/** `public.PipelineRun` (as Prisma qualifies every table) into its schema and name. */
function qualified(noun: 'table' | 'type', name: string): MissingObject {
  const dot = name.indexOf('.')
  return dot === -1 ? { noun, name } : { noun, name: name.slice(dot + 1), schema: name.slice(0, dot) }
}

/** A column as PostgreSQL names it in an error may carry the statement's table alias (`r.version`). */
function withoutAlias(column: string): string {
  return column.replace(/^[a-z]\./, '')
}

/** The first object in an error's `cause` chain (and Prisma's `meta.driverAdapterError`) that `test` accepts. */
function findInChain(
  error: unknown,
  test: (node: Record<string, unknown>) => boolean,
  depth = 0,
): Record<string, unknown> | undefined {
  if (depth > 5 || typeof error !== 'object' || error === null) return undefined
  const node = error as Record<string, unknown>
  if (test(node)) return node
  const { cause, meta } = node
  const adapterError = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>)['driverAdapterError'] : undefined
  return findInChain(cause, test, depth + 1) ?? findInChain(adapterError, test, depth + 1)
}

/**
 * Whether PostgreSQL answered SQLSTATE `state` (e.g. `42883`, no such function), found anywhere
 * in the error's cause chain: `pg`'s error, or the driver adapter's error inside Prisma's.
 */
export function hasSqlState(error: unknown, state: string): boolean {
  return findInChain(error, (node) => node['code'] === state || node['originalCode'] === state) !== undefined
}

/**
 * The message PostgreSQL gave with SQLSTATE `state` (`relation "PipelineRun" does not exist`),
 * from the error that carries the state in the cause chain: `pg`'s `message`, or the driver
 * adapter's `originalMessage` inside Prisma's error; `undefined` when no error there has the state
 * or its words.
 */
export function sqlStateMessage(error: unknown, state: string): string | undefined {
  const node = findInChain(error, (candidate) => candidate['code'] === state || candidate['originalCode'] === state)
  const text = node?.['originalMessage'] ?? node?.['message']
  return typeof text === 'string' ? text : undefined
}

/**
 * The driver's cause of a database error in one line: its code, the host and port it tried, and
 * its message, from the most specific error in the `cause` chain (Node's socket error, the
 * driver adapter's error kind, PostgreSQL's SQLSTATE), e.g. `connect ECONNREFUSED 127.0.0.1:5432`
 * or `DatabaseNotReachable 127.0.0.1:5432: Can't reach database server at 127.0.0.1:5432`.
 * Never the connection string. Falls back to the error's own message.
 */
export function describeDatabaseCause(error: unknown): string {
  const chain = causeChain(error)
  // Node's socket error says it all: `connect ECONNREFUSED 127.0.0.1:5432`.
  const socket = chain.find((node) => typeof node['syscall'] === 'string' && typeof node['code'] === 'string')
  if (socket) return withWhere(oneLine(String(socket['message'] ?? socket['code'])), String(socket['code']), socket)
  const adapter = chain.find((node) => typeof node['kind'] === 'string' && node['kind'] !== 'postgres')
  if (adapter) {
    const kind = String(adapter['kind'])
    const text = adapter['originalMessage'] ?? adapter['cause'] ?? adapter['reason'] ?? prismaMessage(chain)
    const code = typeof adapter['originalCode'] === 'string' ? ` ${adapter['originalCode']}` : ''
    return withWhere(typeof text === 'string' ? `${kind}${code}: ${oneLine(text)}` : `${kind}${code}`, kind, adapter)
  }
  // Prisma's own errors carry `clientVersion`; their `P2010` codes are not SQLSTATEs.
  const sqlState = chain.find(
    (node) => typeof node['code'] === 'string' && /^[0-9A-Z]{5}$/.test(node['code']) && typeof node['message'] === 'string' && !('clientVersion' in node),
  )
  if (sqlState) return `${String(sqlState['code'])}: ${oneLine(String(sqlState['message']))}`
  const prisma = chain.find((node) => typeof node['code'] === 'string' && /^P\d{4}$/.test(node['code']))
  if (prisma) return `${String(prisma['code'])}: ${prismaMessage(chain) ?? oneLine(String(prisma['message'] ?? ''))}`
  const first = chain[0]
  return first && typeof first['message'] === 'string' ? oneLine(first['message']) : String(error)
}

/** `text`, with ` (host:port)` when the node names where it connected and the text does not. */
function withWhere(text: string, code: string, node: Record<string, unknown>): string {
  const host = node['address'] ?? node['host'] ?? node['hostname']
  if (typeof host !== 'string') return text
  const where = typeof node['port'] === 'number' || typeof node['port'] === 'string' ? `${host}:${String(node['port'])}` : host
  const line = text.includes(where) ? text : `${text} (${where})`
  return line.includes(code) ? line : `${code} ${line}`
}

/** The driver's words inside a Prisma message (`… Message: \`Can't reach database server at …\``). */
function prismaMessage(chain: ReadonlyArray<Record<string, unknown>>): string | undefined {
  for (const node of chain) {
    const message = node['message']
    if (typeof message !== 'string') continue
    const match = /Message: `([^`]+)`/.exec(message)
    if (match) return oneLine(match[1] as string)
  }
  return undefined
}

/**
 * For a connection a pooler refused because of a startup parameter (PgBouncer answers
 * `unsupported startup parameter: statement_timeout`, SQLSTATE 08P01, to any parameter it does
 * not know), a message naming the parameter and the fix; `undefined` for any other error.
 */
export function describeRefusedStartupParameter(error: unknown): string | undefined {
  const node = findInChain(error, (candidate) => refusedParameter(candidate) !== undefined)
  if (!node) return undefined
  const parameter = refusedParameter(node) as string
  return (
    `The connection pooler refused the startup parameter "${parameter}" (unsupported startup parameter): ` +
    `remove it from the pool's options and set it on the database instead ` +
    `(ALTER ROLE <app user> SET ${parameter} = …, or ALTER DATABASE <name> SET ${parameter} = …), ` +
    `or connect without the pooler; docs/operations.md, "Behind a pooler, a proxy or a load balancer"`
  )
}

function refusedParameter(node: Record<string, unknown>): string | undefined {
  const { originalMessage, message } = node
  for (const text of [originalMessage, message]) {
    if (typeof text !== 'string') continue
    const match = /unsupported startup parameter:? "?([A-Za-z_][\w.]*)/.exec(text)
    if (match) return match[1]
  }
  return undefined
}

/** Every object of an error's `cause` chain and Prisma's `meta.driverAdapterError`, outermost first. */
function causeChain(error: unknown): Array<Record<string, unknown>> {
  const nodes: Array<Record<string, unknown>> = []
  findInChain(error, (node) => {
    nodes.push(node)
    return false
  })
  return nodes
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim()
}

// 28000 no user name, an unknown role, no pg_hba.conf entry; 28P01 a wrong password; with
// Prisma's codes (P1000 authentication failed, P1010 access denied, P1013 an invalid database
// string) and the driver adapters' kinds.
const CONFIGURATION_SQLSTATE = /^28(000|P01)$/
const CONFIGURATION_PRISMA_CODES = new Set(['P1000', 'P1010', 'P1013'])
const CONFIGURATION_KINDS = new Set(['AuthenticationFailed', 'DatabaseAccessDenied'])
// `pg` refuses to start SCRAM without a password: the connection string has none.
const NO_PASSWORD = /client password must be a string/

function isConfigurationNode(node: Record<string, unknown>): boolean {
  const { code, originalCode, kind, message } = node
  for (const value of [code, originalCode]) {
    if (typeof value === 'string' && (CONFIGURATION_SQLSTATE.test(value) || CONFIGURATION_PRISMA_CODES.has(value))) return true
  }
  if (typeof kind === 'string' && CONFIGURATION_KINDS.has(kind)) return true
  return typeof message === 'string' && NO_PASSWORD.test(message)
}

/**
 * For an error that says the database connection's configuration cannot work (no user name, a
 * wrong password, a role or database the server refuses), one line naming the cause and the fix;
 * `undefined` for any other error. Never the connection string or the password.
 */
export function describeConfigurationProblem(error: unknown): string | undefined {
  const node = findInChain(error, isConfigurationNode)
  if (!node) return undefined
  const cause = describeDatabaseCause(error)
  const text = `${String(node['originalMessage'] ?? '')} ${String(node['message'] ?? '')} ${cause}`
  let hint: string
  if (/no PostgreSQL user name/i.test(text)) {
    hint = 'the connection names no user: is DATABASE_URL set where the app runs? It must look like postgresql://USER:PASSWORD@HOST:5432/DATABASE'
  } else if (NO_PASSWORD.test(text)) {
    hint = 'the server asks for a password and the connection string has none: add it (postgresql://USER:PASSWORD@HOST:5432/DATABASE)'
  } else if (/password authentication failed|AuthenticationFailed|28P01|P1000/.test(text)) {
    hint = 'check the user name and password of the connection string (DATABASE_URL)'
  } else {
    hint = 'check the user name and database of the connection string (DATABASE_URL) and that the server lets that user connect (roles, pg_hba.conf)'
  }
  return `The database refused the connection's configuration (${cause}): ${hint}`
}

/**
 * The error a store throws for a database error: `StoreUnavailableError` when the database is
 * unreachable (its message carries the driver's cause, or names the startup parameter a pooler
 * refused), lacks the SDK's schema, or refuses the connection's configuration
 * (`configuration_error`); the error itself otherwise.
 */
export function toStoreError(error: unknown): unknown {
  const missing = describeMissingSchema(error)
  if (missing !== undefined) return new StoreUnavailableError(missing, { cause: error, code: 'database_not_migrated' })
  const refused = describeRefusedStartupParameter(error)
  if (refused !== undefined) return new StoreUnavailableError(refused, { cause: error })
  const misconfigured = describeConfigurationProblem(error)
  if (misconfigured !== undefined) return new StoreUnavailableError(misconfigured, { cause: error, code: 'configuration_error' })
  if (!isDatabaseUnreachableError(error)) return error
  return new StoreUnavailableError(`The database is unreachable: ${describeDatabaseCause(error)}`, { cause: error })
}
