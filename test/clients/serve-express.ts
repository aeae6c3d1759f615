/**
 * A server for the Python client's tests, as a child process (clients/python/tests/support.py
 * starts and stops it), on `DATABASE_URL` (PostgreSQL) or else embedded PGlite in `DATA_DIR`,
 * on `PORT` (0 picks one). Prints `listening on <origin>` once ready; stops on SIGTERM.
 *
 * - Without `SIGNING_SECRET`: the Express example (`startExpressExample`) accepting `WEBHOOK_SECRET`,
 *   with `PIPELINES_FILE` and `READ_TOKEN_SECRET` as `npm run example:express` reads them.
 * - With `SIGNING_SECRET`: the Express adapter as docs/security.md configures a signing-only app
 *   (`secret: []`, `signing: { secret }`): every request, reads included, must be signed.
 */
import type { AddressInfo } from 'node:net'
import express from 'express'
import { createExpressRouter } from 'pipeline-status-sdk/express'
import { collectionFromEnv, startExpressExample } from '../../examples/express/app.js'
import { openDatabase } from '../../examples/shared/database.js'

const quiet = { info: () => {}, warn: (message: string) => console.error(message), error: (message: string) => console.error(message) }
const port = Number(process.env['PORT'] ?? 0)
const databaseUrl = process.env['DATABASE_URL'] || undefined
const dataDir = databaseUrl ? undefined : process.env['DATA_DIR']
const signingSecret = process.env['SIGNING_SECRET']

let close: () => Promise<void>
if (signingSecret) {
  const db = await openDatabase({ url: databaseUrl, dataDir })
  const app = express()
  app.use('/api/pipeline', createExpressRouter({ prisma: db.prisma, secret: [], signing: { secret: signingSecret }, logger: quiet }))
  const server = app.listen(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject))
  process.stdout.write(`signing express listening on http://127.0.0.1:${(server.address() as AddressInfo).port} (${db.kind})\n`)
  close = async () => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeIdleConnections()
    })
    await db.close()
  }
} else {
  const example = await startExpressExample({ port, databaseUrl, dataDir, secret: process.env['WEBHOOK_SECRET'] ?? '', log: quiet, ...collectionFromEnv() })
  process.stdout.write(`express example listening on http://127.0.0.1:${example.port} (${example.database})\n`)
  close = () => example.close()
}
const stop = () => void close().then(() => process.exit(0), () => process.exit(1))
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
