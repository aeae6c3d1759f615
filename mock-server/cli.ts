/**
 * The `pipeline-status` command line: `pipeline-status mock` serves the mock over HTTP for
 * runners in any language; `pipeline-status migrate` creates the package's tables without the
 * Prisma CLI's schema engine. `mock-server/bin.ts` runs {@link main}; importing this module runs
 * nothing.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util'
import { ENV_WEBHOOK_SECRET } from '../src/contract/headers.js'
import { createOpenApiDocument } from '../src/contract/openapi.js'
import { PACKAGE_VERSION } from '../src/contract/package-info.js'
import { schemaNameProblem } from '../src/internal/quote-identifier.js'
import { listMigrationFiles, packageMigrationsDir, renderMigrationScript, writeMigrationsInto } from '../src/pg/migration-files.js'
import { checkDatabaseUrl } from '../src/pg/database-url.js'
import { resolveWebhookSecrets } from '../src/server/auth/webhook-auth.js'
import { type PipelineCatalogues, loadPipelinesFile } from '../src/server/pipelines-file.js'
import { parseSecretList } from '../src/contract/secrets.js'
import type { MockServerRequestEntry } from './mock-http-server.js'

/** The read-token secret's variable, as the Next.js and Express examples read it. */
const ENV_READ_TOKEN_SECRET = 'READ_TOKEN_SECRET'

const HELP = `Usage: pipeline-status <command> [options]

Commands:
  mock              serve the pipeline status contract over HTTP from memory, exactly as the
                    real handlers behave (needs msw installed)
  openapi           print the contract's OpenAPI 3.1 document (JSON) on stdout
  migrate           create the package's tables without the Prisma CLI: apply its migrations to
                    a database that serves only this, or write them into your own migrations

Options:
  -h, --help        show this help; \`pipeline-status <command> --help\` shows a command's options
  -v, --version     print the version of pipeline-status-sdk
`

const MOCK_HELP = `Usage: pipeline-status mock [options]

Serves the pipeline status contract over HTTP from an in-memory store, exactly as the real
handlers behave. Point a runner's FRONTEND_WEBHOOK_URL at the printed origin. Logs one line per
request (method, path, status, problem code, time) unless --quiet. The dashboard is served at /
(open without sign-in on a loopback --host; on any other interface it asks for the secret).

Options:
  --port <n>            TCP port (default 4010; 0 picks a free one)
  --host <address>      interface to listen on (default 127.0.0.1)
  --secret <s>          accepted X-Webhook-Secret; comma-separated for several
                        (default: $${ENV_WEBHOOK_SECRET})
  --base-path <path>    base path of the routes (default /api/pipeline)
  --auto-create-runs    create a run on its first update instead of answering 404
  --pipelines <file>    named stage catalogues from a JSON file, e.g.
                        { "report": ["Fetch", "Summarise"], "ingest": ["Load"] };
                        runs created without a pipeline stay in 'default' (the five stages;
                        a "default" key in the file replaces them)
  --read-token-secret <s>
                        accept read tokens signed with this secret (at least 32 characters,
                        not a webhook secret); comma-separated for several
                        (default: $READ_TOKEN_SECRET)
  -q, --quiet           do not log each request
  -h, --help            show this help
`

const OPENAPI_HELP = `Usage: pipeline-status openapi [options]

Prints the OpenAPI 3.1 document of the contract (JSON) on stdout: every route, body, answer,
problem code and header, generated from the package's zod schemas. The same document is served
at GET {base-path}/openapi.json and shipped as pipeline-status-sdk/openapi.json.

Options:
  --base-path <path>    base path of the routes, the document's server URL (default /api/pipeline)
  -h, --help            show this help
`

const MIGRATE_HELP = `Usage: pipeline-status migrate [options]

Creates pipeline-status-sdk's tables; it never runs the Prisma CLI's schema engine (but the
\`prisma migrate deploy\` that applies what --into writes does). Four ways:

  pipeline-status migrate
      applies the package's migrations (node_modules/pipeline-status-sdk/prisma/migrations) to a
      database that serves only this package, recording each in "_prisma_migrations" as
      \`prisma migrate deploy\` does. Refuses a database whose history holds other migrations.
      A second run changes nothing.
  pipeline-status migrate --schema pipeline
      the same, into a PostgreSQL schema of its own (created when missing): for an app with its
      own tables and migrations in "public", the package's tables and their history live beside
      them. The app's PrismaClient for them: new PrismaPg({ connectionString }, { schema:
      'pipeline' }), and createPrismaStore({ prisma, schema: 'pipeline' })
  pipeline-status migrate --into prisma/migrations
      for an app whose migrations Prisma deploys: writes the package's schema as one new migration
      folder <YYYYMMDDHHMMSS>_pipeline_status into that existing folder; apply it with
      \`prisma migrate deploy\`, which needs Prisma's schema engine. Run again after an upgrade to
      add only what is new
  pipeline-status migrate --print > pipeline-status.sql
      writes the SQL on stdout, for a DBA to review and run in one transaction
      (psql -1 -v ON_ERROR_STOP=1 -f pipeline-status.sql); after an upgrade,
      --print --after <the last migration the database has> writes only what is new

Options:
  --database-url <url>  the database (default: $DIRECT_DATABASE_URL, else $DATABASE_URL). It needs
                        a session connection, not a transaction pooler (PgBouncer in transaction
                        mode): the run holds Prisma's advisory lock 72707369 across statements,
                        and refuses a transaction pooler it detects
  --schema <name>       the PostgreSQL schema, as Prisma's ?schema= (which the URL may also carry;
                        default public); created when missing. With --print: the script selects it
  --into <dir>          write into your app's migrations folder (it must exist) instead of
                        migrating a database
  --print               print the SQL instead of migrating a database
  --after <migration>   with --print: only the migrations after this one (the last one the
                        database has; every --print script names its last at the end). With
                        --schema it creates no schema: it checks that the schema holds the tables
  -h, --help            show this help
`

/** What `--into` says to run next: the truth about the engine, and the way around it. */
const INTO_NEXT = `Next: apply it with your app's migrations: npx prisma migrate deploy (npx prisma migrate dev in development).
Both run Prisma's schema engine, which the Prisma CLI downloads first. Where that download is blocked, delete the
folder again and keep the package's tables in a PostgreSQL schema of their own, which needs no engine:
npx pipeline-status migrate --schema pipeline (docs/operations.md, "When the Prisma engine cannot be downloaded").
`

const MIGRATE_OPTIONS = {
  'database-url': { type: 'string' },
  schema: { type: 'string' },
  into: { type: 'string' },
  print: { type: 'boolean', default: false },
  after: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} satisfies ParseArgsOptionsConfig

const OPENAPI_OPTIONS = {
  'base-path': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} satisfies ParseArgsOptionsConfig

const GLOBAL_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} satisfies ParseArgsOptionsConfig

const MOCK_OPTIONS = {
  port: { type: 'string', default: '4010' },
  host: { type: 'string', default: '127.0.0.1' },
  secret: { type: 'string' },
  'base-path': { type: 'string' },
  'auto-create-runs': { type: 'boolean', default: false },
  pipelines: { type: 'string' },
  'read-token-secret': { type: 'string' },
  quiet: { type: 'boolean', short: 'q', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  version: { type: 'boolean', short: 'v', default: false },
} satisfies ParseArgsOptionsConfig

const COMMANDS = ['mock', 'openapi', 'migrate']

/** A usage error: printed with a pointer to `--help`, exit code 2. */
class UsageError extends Error {
  override readonly name = 'UsageError'
}

/**
 * Runs the command line and resolves the process exit code: 0 after a clean stop (or help,
 * version), 1 when the mock cannot start, 2 for wrong arguments.
 */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    return await run([...argv])
  } catch (error) {
    if (error instanceof UsageError) {
      const command = COMMANDS.find((name) => argv.includes(name))
      const help = command ? `pipeline-status ${command} --help` : 'pipeline-status --help'
      process.stderr.write(`pipeline-status: ${error.message}\nRun \`${help}\` for the commands and options.\n`)
      return 2
    }
    process.stderr.write(`pipeline-status: ${(error as Error).message}\n`)
    return 1
  }
}

async function run(argv: string[]): Promise<number> {
  // The command is the first positional; knowing every option tells `--port 4010` apart from one.
  const { positionals: words } = parseArgs({ args: argv, options: MOCK_OPTIONS, strict: false, allowPositionals: true })
  const command = words[0]
  if (command === undefined) {
    const { values } = parse(argv, GLOBAL_OPTIONS, false)
    if (values.version) {
      process.stdout.write(`${PACKAGE_VERSION}\n`)
      return 0
    }
    if (values.help) {
      process.stdout.write(HELP)
      return 0
    }
    process.stderr.write(HELP)
    return 2
  }
  if (command === 'openapi') return printOpenApi(argv)
  if (command === 'migrate') return migrate(argv)
  if (command !== 'mock') {
    throw new UsageError(`unknown command '${command}'${suggestion(command, COMMANDS)}`)
  }

  const { values, positionals } = parse(argv, MOCK_OPTIONS, true)
  if (values.version) {
    process.stdout.write(`${PACKAGE_VERSION}\n`)
    return 0
  }
  if (values.help) {
    process.stdout.write(MOCK_HELP)
    return 0
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}' after 'mock'`)
  const port = Number(values.port)
  if (!/^\d+$/.test(values.port) || port > 65_535) {
    throw new UsageError(`--port must be a whole number from 0 to 65535, got '${values.port}'`)
  }
  const given = values.secret ?? process.env[ENV_WEBHOOK_SECRET]
  const from = values.secret !== undefined ? '--secret' : ENV_WEBHOOK_SECRET
  if (given === undefined || given.trim() === '') {
    throw new UsageError(`give the accepted secret with --secret or ${ENV_WEBHOOK_SECRET}`)
  }
  const secret = resolveWebhookSecrets(given)
  if (secret.length === 0) {
    throw new UsageError(`${from} holds no secret: give one or more non-empty secrets, comma-separated`)
  }

  const collection = collectionOptions(values.pipelines, values['read-token-secret'])

  const { startMockServer } = await loadMockServer()
  const quiet = values.quiet
  // The dashboard at `/`: open on a loopback interface (only this machine reaches it), so a
  // developer watches the runs without signing in; on any other interface the page asks for the
  // secret. Only the page's own reads are opened (`action: 'dashboard'`), never writes.
  const open = isLoopback(values.host)
  const server = await startMockServer({
    port,
    host: values.host,
    secret,
    dashboard: { open },
    autoCreateRuns: values['auto-create-runs'],
    ...collection,
    ...(values['base-path'] ? { basePath: values['base-path'] } : {}),
    // Each request's line already names a refusal's code and detail; the handlers' own warnings
    // would say it twice, and --quiet prints nothing per request. Errors print in both modes.
    logger: { warn: () => {}, error: (message: string, details?: unknown) => console.error(message, details ?? '') },
    ...(quiet ? {} : { onRequest: (entry: MockServerRequestEntry) => process.stdout.write(`${requestLine(entry)}\n`) }),
  })
  // The origin is what a runner's FRONTEND_WEBHOOK_URL takes; the client adds the base path.
  process.stdout.write(`pipeline-status mock listening on ${server.url} (routes under ${server.mock.server.basePath})\n`)
  process.stdout.write(`dashboard: ${server.url}/ (${open ? 'open on loopback, no sign-in' : 'sign in with the secret'})\n`)

  await new Promise<void>((resolve) => {
    const stop = () => resolve()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  await server.close()
  process.stdout.write('pipeline-status mock stopped\n')
  return 0
}

/** Whether an interface is this machine only: 127.0.0.0/8, ::1, localhost. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}

/**
 * The handlers' `pipelines` (from `--pipelines FILE`) and `readTokens` (from
 * `--read-token-secret`, else READ_TOKEN_SECRET). A bad file is a usage error naming the file and
 * the key; the handlers themselves refuse a read-token secret that is short or a webhook secret.
 */
function collectionOptions(file: string | undefined, readTokenSecret: string | undefined): { pipelines?: PipelineCatalogues; readTokens?: { secret: string[] } } {
  if (file !== undefined && file.trim() === '') throw new UsageError('--pipelines needs a file, e.g. --pipelines pipelines.json')
  let pipelines: PipelineCatalogues | undefined
  try {
    pipelines = file === undefined ? undefined : loadPipelinesFile(file)
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  const given = readTokenSecret ?? process.env[ENV_READ_TOKEN_SECRET]
  if (readTokenSecret !== undefined && readTokenSecret.trim() === '') throw new UsageError('--read-token-secret needs a secret')
  const readSecrets = parseSecretList(given)
  return { ...(pipelines ? { pipelines } : {}), ...(readSecrets.length > 0 ? { readTokens: { secret: readSecrets } } : {}) }
}

/** `pipeline-status openapi`: the document on stdout. */
function printOpenApi(argv: string[]): number {
  const { values, positionals } = parse(argv, OPENAPI_OPTIONS, true)
  if (values.help) {
    process.stdout.write(OPENAPI_HELP)
    return 0
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}' after 'openapi'`)
  const document = createOpenApiDocument(values['base-path'] === undefined ? {} : { basePath: values['base-path'] })
  process.stdout.write(`${JSON.stringify(document, null, 2)}\n`)
  return 0
}

/** `pipeline-status migrate`: apply, `--into` or `--print`. */
async function migrate(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, MIGRATE_OPTIONS, true)
  if (values.help) {
    process.stdout.write(MIGRATE_HELP)
    return 0
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}' after 'migrate'`)
  if (values.into !== undefined && values.print) throw new UsageError('give --into or --print, not both')
  const offline = values.into !== undefined ? '--into' : values.print ? '--print' : undefined
  if (offline && values['database-url'] !== undefined) {
    throw new UsageError(`${offline} touches no database: drop --database-url`)
  }
  if (values.schema !== undefined && values.schema.trim() === '') throw new UsageError('--schema needs a schema name')
  const schemaProblem = values.schema === undefined ? undefined : schemaNameProblem(values.schema)
  if (schemaProblem) throw new UsageError(`--schema: ${schemaProblem}`)
  if (values.into !== undefined && values.schema !== undefined) {
    throw new UsageError("--into writes unqualified SQL that your app's own migrations apply in the schema of its connection: drop --schema")
  }
  if (values.after !== undefined && !values.print) throw new UsageError('--after goes with --print (the SQL of the migrations after that one)')
  const migrations = listMigrationFiles(packageMigrationsDir())

  if (values.print) {
    if (values.after !== undefined && !migrations.some((migration) => migration.name === values.after)) {
      throw new UsageError(`--after ${values.after} is not a migration of pipeline-status-sdk ${PACKAGE_VERSION}: give the last one the database has, one of ${migrations.map((migration) => migration.name).join(', ')}`)
    }
    process.stdout.write(renderMigrationScript(migrations, { version: PACKAGE_VERSION, schema: values.schema, after: values.after }))
    return 0
  }
  if (values.into !== undefined) {
    if (values.into.trim() === '') throw new UsageError('--into needs a folder, e.g. --into prisma/migrations')
    const result = writeMigrationsInto(values.into, migrations, { version: PACKAGE_VERSION })
    if (result.written.length === 0) {
      process.stdout.write(`pipeline-status migrate: nothing to write: ${values.into} holds all ${migrations.length} migrations of pipeline-status-sdk\n`)
    } else {
      process.stdout.write(
        `pipeline-status migrate: wrote ${result.written.map((folder) => `${values.into}/${folder}`).join(', ')} ` +
          `(${result.migrations.join(', ')}).\n${INTO_NEXT}`,
      )
    }
    return 0
  }

  const from = values['database-url'] !== undefined ? '--database-url' : process.env['DIRECT_DATABASE_URL'] ? 'DIRECT_DATABASE_URL' : 'DATABASE_URL'
  const url = values['database-url'] ?? (process.env['DIRECT_DATABASE_URL'] || process.env['DATABASE_URL'])
  if (!url) {
    throw new UsageError('give the database with --database-url or DIRECT_DATABASE_URL (or DATABASE_URL): a session connection, not a transaction pooler')
  }
  try {
    checkDatabaseUrl(url, { where: 'migrate', option: from, variable: from === '--database-url' ? 'DIRECT_DATABASE_URL' : from })
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  const { applyMigrations } = await loadMigrate()
  const result = await applyMigrations(url, { schema: values.schema })
  process.stdout.write(`pipeline-status migrate: ${result.summary}\n`)
  return 0
}

/** `applyMigrations`, or a clear error when its optional peer dependency pg is not installed. */
async function loadMigrate(): Promise<typeof import('../src/pg/migrate.js')> {
  try {
    return await import('../src/pg/migrate.js')
  } catch (error) {
    const { code, message } = error as { code?: unknown; message?: unknown }
    if (code === 'ERR_MODULE_NOT_FOUND' && typeof message === 'string' && /['"]pg['"]/.test(message)) {
      throw new Error('`pipeline-status migrate` needs pg, an optional peer dependency: npm install pg (or use --into / --print)', { cause: error })
    }
    throw error
  }
}

/** `POST /api/pipeline/run_1/stage-update 401 unauthorized (X-Webhook-Secret …) 3ms` */
function requestLine(entry: MockServerRequestEntry): string {
  const problem = entry.problem ? ` ${entry.problem.code}${entry.problem.detail ? ` (${entry.problem.detail})` : ''}` : ''
  return `${entry.method} ${entry.path} ${entry.status ?? 'dropped'}${problem} ${entry.durationMs}ms`
}

/** The mock server, or a clear error when its optional peer dependency msw is not installed. */
async function loadMockServer(): Promise<typeof import('./mock-http-server.js')> {
  try {
    return await import('./mock-http-server.js')
  } catch (error) {
    const { code, message } = error as { code?: unknown; message?: unknown }
    if (code === 'ERR_MODULE_NOT_FOUND' && typeof message === 'string' && /['"]msw['"/]/.test(message)) {
      throw new Error('`pipeline-status mock` needs msw, an optional peer dependency: npm install --save-dev msw', { cause: error })
    }
    throw error
  }
}

function parse<Options extends ParseArgsOptionsConfig>(argv: string[], options: Options, allowPositionals: boolean) {
  // First without `strict`, to name an unknown option and the closest valid one ourselves.
  const { tokens } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true })
  const known = Object.keys(options).map((name) => `--${name}`)
  for (const token of tokens) {
    if (token.kind !== 'option' || options[token.name] !== undefined) continue
    throw new UsageError(`unknown option '${token.rawName}'${suggestion(token.rawName, known)}`)
  }
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals })
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0] ?? String(error))
  }
}

/** `; did you mean '--port'?` for the candidate closest to `given` (Levenshtein distance). */
function suggestion(given: string, candidates: readonly string[]): string {
  let best: { candidate: string; distance: number } | undefined
  for (const candidate of candidates) {
    const distance = editDistance(given, candidate)
    if (!best || distance < best.distance) best = { candidate, distance }
  }
  return best ? `; did you mean '${best.candidate}'?` : ''
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}
