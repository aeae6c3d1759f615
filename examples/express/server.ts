/**
 * The Express example from the command line: `npm run example:express`.
 *
 * Environment:
 * - `PORT` (default 3000)
 * - `WEBHOOK_SECRET`, comma-separated for rotation (unset: a demo secret, loudly logged)
 * - `DATABASE_URL` (unset: embedded PGlite with its data in `./.data/express-example`,
 *   or in `DATA_DIR` when set): the URL requests use; a transaction pooler's is fine
 * - `DIRECT_DATABASE_URL`: a direct session URL for the migrations and LISTEN, when
 *   `DATABASE_URL` is a pooler's (unset: `DATABASE_URL`)
 * - `LIVE_MODE`: `poll` (each instance polls the versions of the runs it streams) or `listen` (one
 *   LISTEN connection per instance on the direct URL; with only a pooled `DATABASE_URL` it says so
 *   once and polls). Unset: `listen` when `DIRECT_DATABASE_URL` is set, else `poll`; one line at
 *   start says which, and why
 * - `PIPELINES_FILE`: named stage catalogues, a JSON file `{ "report": ["Fetch", "Summarise"] }`
 *   (the same format as `pipeline-status mock --pipelines`); runs created without a pipeline
 *   stay in `default`
 * - `READ_TOKEN_SECRET`: accept run read tokens signed with it (at least 32 characters, not the
 *   webhook secret); comma-separated for several
 * - `OTEL_EXPORTER_OTLP_ENDPOINT`: start the OpenTelemetry Node SDK and export stage spans and
 *   metrics over OTLP (`OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` by default, `http/json`,
 *   `grpc`); see docs/tracing.md
 */
import { MigrationHistoryError } from '../shared/database.js'
import { CLOSE_GRACE_MS, collectionFromEnv, liveFromEnv, startExpressExample } from './app.js'
import { startTelemetry, TelemetryConfigurationError } from './telemetry.js'

const DEMO_SECRET = 'demo-secret-do-not-use-in-production'
/**
 * How long stopping may take before the process exits anyway, in milliseconds: the server's own
 * grace for requests in flight, then a few seconds for the store's queued notifications (at most
 * 2 s), the database and the telemetry's last export.
 */
const STOP_DEADLINE_MS = CLOSE_GRACE_MS + 5_000

const port = Number(process.env['PORT'] ?? 3000)
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  console.error(`PORT must be a port number, got ${process.env['PORT']}`)
  process.exit(1)
}

let secret = (process.env['WEBHOOK_SECRET'] ?? '')
  .split(',')
  .map((part) => part.trim())
  .filter((part) => part !== '')
if (secret.length === 0) {
  secret = [DEMO_SECRET]
  console.warn(
    [
      '',
      '!!! WEBHOOK_SECRET is not set. This example uses the DEMO secret:',
      `!!!   X-Webhook-Secret: ${DEMO_SECRET}`,
      '!!! Anyone who reads this can write to the example. Set WEBHOOK_SECRET for anything real.',
      '',
    ].join('\n'),
  )
}

const databaseUrl = process.env['DATABASE_URL'] || undefined
const dataDir = databaseUrl ? undefined : (process.env['DATA_DIR'] ?? '.data/express-example')

let collection: ReturnType<typeof collectionFromEnv>
try {
  collection = collectionFromEnv()
} catch (error) {
  // A pipelines file the example cannot use: one line naming the file and the key, no stack.
  console.error(`[express-example] PIPELINES_FILE: ${(error as Error).message}`)
  process.exit(1)
}

let live: ReturnType<typeof liveFromEnv>
try {
  live = liveFromEnv()
} catch (error) {
  console.error(`[express-example] ${(error as Error).message}`)
  process.exit(1)
}
if (live.liveMode === 'listen' && !databaseUrl) {
  console.error('[express-example] LIVE_MODE=listen needs PostgreSQL: set DATABASE_URL (and DIRECT_DATABASE_URL when it is a pooler)')
  process.exit(1)
}

// Started first, so its instrumentation is there before the first request.
const telemetry = await startTelemetry().catch((error: unknown) => {
  // A protocol the SDK does not support is the user's to fix: one line that names the variable.
  if (!(error instanceof TelemetryConfigurationError)) throw error
  console.error(`[express-example] ${error.message}`)
  process.exit(1)
})
if (telemetry) console.info(`[express-example] OpenTelemetry: exporting to ${process.env['OTEL_EXPORTER_OTLP_ENDPOINT']} (${process.env['OTEL_EXPORTER_OTLP_PROTOCOL'] ?? 'http/protobuf'})`)

const example = await startExpressExample({ port, databaseUrl, dataDir, secret, ...live, ...collection, instrumentation: telemetry?.instrumentation }).catch((error: unknown) => {
  // A database the example cannot migrate, reach or open is the user's to fix: one line that says how, no stack.
  const problem = databaseProblem(error)
  if (problem === undefined) throw error
  console.error(`[express-example] ${problem}`)
  process.exit(1)
})
// SIGTERM (a process manager, `kill`, or npm passing on its own: the npm script execs this
// process, so npm's child is this server, not a shell that would die and leave it running) or
// SIGINT (Ctrl+C): stop accepting requests, end the live streams, close the store and the
// database, then exit 0; a close that hangs exits 1 at the deadline, saying so. Ctrl+C reaches
// this process twice (from the terminal and from npm): a signal while stopping changes nothing.
let stopping = false
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return
  stopping = true
  console.info(`[express-example] ${signal}: stopping`)
  setTimeout(() => {
    console.error(`[express-example] still stopping ${STOP_DEADLINE_MS / 1000} s after ${signal}: exiting`)
    process.exit(1)
  }, STOP_DEADLINE_MS)
  example
    .close()
    .then(() => telemetry?.shutdown())
    .then(
      () => process.exit(0),
      (error: unknown) => {
        console.error('[express-example] failed to stop cleanly', error)
        process.exit(1)
      },
    )
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)

// Said only once the signals are handled: whoever waits for this line may stop the server at once.
console.info(
  `[express-example] listening on ${example.url} (${example.database === 'postgres' ? 'PostgreSQL' : `embedded PGlite in ${dataDir}`}, live mode: ${example.live.mode})`,
)
if (collection.pipelines) console.info(`[express-example] pipelines: default, ${Object.keys(collection.pipelines).join(', ')}`)
console.info(`[express-example] dashboard: ${example.url}/dashboard (sign in with the webhook secret)`)
console.info(`[express-example] try: curl -X POST ${example.url}/runs -H 'X-Webhook-Secret: …' -H 'Content-Type: application/json' -d '{}'`)

/**
 * What the user must fix when the example cannot start on its database: a migration history it
 * cannot take, or a database it cannot reach or open (a system error code such as ECONNREFUSED,
 * or PostgreSQL's SQLSTATE such as 3D000, "database does not exist"); `undefined` for anything
 * else, which is a bug and keeps its stack.
 */
function databaseProblem(error: unknown): string | undefined {
  if (error instanceof MigrationHistoryError) return error.message
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return undefined
  const inner = error instanceof AggregateError ? (error.errors[0] as Error | undefined) : undefined
  const message = (error as Error).message || inner?.message || code
  return `cannot open the database (${code}: ${message}); check DATABASE_URL and DIRECT_DATABASE_URL: is PostgreSQL running there, and does the database exist?`
}
