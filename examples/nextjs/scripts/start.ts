/**
 * Starts the built Next.js example for a person (`npm run example:nextjs` at the repository
 * root, or `npm start` here after `npm run build`): opens the database, then runs `next start`
 * with DATABASE_URL and WEBHOOK_SECRET set, and prints what a runner needs to report to it.
 *
 * Environment:
 * - DATABASE_URL: a PostgreSQL server; the package's migrations are applied to it. Without it,
 *   an embedded PGlite database in `.data/nextjs-example` (at the repository root) is served
 *   over a local socket; pass `--memory` to keep it in memory instead.
 * - DIRECT_DATABASE_URL: with DATABASE_URL, a direct session URL to the same database; the app's
 *   live streams then use LISTEN instead of polling (lib/prisma.ts). Ignored with PGlite.
 * - WEBHOOK_SECRET: the runners' shared secret. Without it, a random one is made and printed.
 * - PORT: the HTTP port, 3000 unless set.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { serveDatabase } from './database-server.js'

const app = fileURLToPath(new URL('..', import.meta.url))
const dataDir = fileURLToPath(new URL('../../../.data/nextjs-example', import.meta.url))
const port = process.env['PORT'] ?? '3000'

const secretFromEnv = process.env['WEBHOOK_SECRET']
const secret = secretFromEnv || randomBytes(24).toString('base64url')
const database = await serveDatabase({
  url: process.env['DATABASE_URL'],
  dataDir: process.argv.includes('--memory') ? undefined : dataDir,
})

const next = createRequire(import.meta.url).resolve('next/dist/bin/next')
// DIRECT_DATABASE_URL (LISTEN for the live streams) goes to the app as given, with DATABASE_URL;
// never beside the embedded PGlite, which is not the database it names.
const { DIRECT_DATABASE_URL: directUrl, ...inherited } = process.env
const child = spawn(process.execPath, [next, 'start', '--port', port], {
  cwd: app,
  stdio: 'inherit',
  env: {
    ...inherited,
    ...(database.kind === 'postgres' && directUrl ? { DIRECT_DATABASE_URL: directUrl } : {}),
    DATABASE_URL: database.url,
    DATABASE_POOL_SIZE: String(database.poolSize),
    WEBHOOK_SECRET: secret,
    NEXT_TELEMETRY_DISABLED: '1',
  },
})

const origin = `http://localhost:${port}`
console.log(
  [
    '',
    `Pipeline status example on ${origin}`,
    `  database: ${database.kind === 'pglite' ? `embedded PGlite (${process.argv.includes('--memory') ? 'in memory' : dataDir})` : 'PostgreSQL from DATABASE_URL'}`,
    secretFromEnv ? '  WEBHOOK_SECRET: from the environment' : `  WEBHOOK_SECRET: ${secret} (random; set WEBHOOK_SECRET to choose it)`,
    '',
    'Report a run to it from another terminal, at the repository root:',
    `  FRONTEND_WEBHOOK_URL=${origin} WEBHOOK_SECRET=${secretFromEnv ? '<the same secret>' : secret} npx tsx examples/runner/runner.ts`,
    `then open ${origin}/ and click the run (or ${origin}/runs/<the run id it printed>).`,
    '',
  ].join('\n'),
)

let stopping = false
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return
  stopping = true
  child.kill(signal)
}
process.on('SIGINT', () => stop('SIGINT'))
process.on('SIGTERM', () => stop('SIGTERM'))

child.on('exit', (code, signal) => {
  database.close().finally(() => process.exit(code ?? (signal ? 0 : 1)))
})
