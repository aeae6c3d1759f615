/**
 * The Express example as a child process for the Python client's tests
 * (clients/python/tests/support.py starts and stops it): `startExpressExample` on
 * `DATABASE_URL` (PostgreSQL) or else embedded PGlite in `DATA_DIR`, on `PORT` (0 picks one),
 * accepting `WEBHOOK_SECRET`. Prints `listening on <origin>` once ready; stops on SIGTERM.
 */
import { startExpressExample } from '../../examples/express/app.js'

const quiet = { info: () => {}, warn: (message: string) => console.error(message), error: (message: string) => console.error(message) }
const example = await startExpressExample({
  port: Number(process.env['PORT'] ?? 0),
  databaseUrl: process.env['DATABASE_URL'] || undefined,
  dataDir: process.env['DATABASE_URL'] ? undefined : process.env['DATA_DIR'],
  secret: process.env['WEBHOOK_SECRET'] ?? '',
  log: quiet,
})
process.stdout.write(`express example listening on http://127.0.0.1:${example.port} (${example.database})\n`)
const stop = () => void example.close().then(() => process.exit(0), () => process.exit(1))
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
