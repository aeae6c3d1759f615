#!/usr/bin/env node
/**
 * `pipeline-status mock --port <n> --secret <s> [--host 127.0.0.1] [--auto-create-runs]`:
 * serves the mock over HTTP for runners in any language.
 */
import { parseArgs } from 'node:util'
import { ENV_WEBHOOK_SECRET } from '../src/contract/index.js'
import { resolveWebhookSecrets } from '../src/server/webhook-auth.js'
import { startMockServer } from './mock-http-server.js'

const USAGE = `Usage: pipeline-status mock [options]

Serves the pipeline status contract over HTTP from an in-memory store, exactly as the real
handlers behave. Point a runner's FRONTEND_WEBHOOK_URL at the printed origin.

Options:
  --port <n>            TCP port (default 4010; 0 picks a free one)
  --host <address>      interface to listen on (default 127.0.0.1)
  --secret <s>          accepted X-Webhook-Secret; comma-separated for several
                        (default: $${ENV_WEBHOOK_SECRET})
  --base-path <path>    base path of the routes (default /api/pipeline)
  --auto-create-runs    create a run on its first update instead of answering 404
  -h, --help            show this help
`

export async function main(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        port: { type: 'string', default: '4010' },
        host: { type: 'string', default: '127.0.0.1' },
        secret: { type: 'string' },
        'base-path': { type: 'string' },
        'auto-create-runs': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals[0] !== 'mock' || positionals.length > 1) {
    process.stderr.write(`${positionals[0] ? `Unknown command: ${positionals.join(' ')}\n\n` : ''}${USAGE}`)
    return 2
  }
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    process.stderr.write(`--port must be a whole number from 0 to 65535, got ${values.port}\n`)
    return 2
  }
  const secret = values.secret ?? process.env[ENV_WEBHOOK_SECRET]
  if (!secret) {
    process.stderr.write(`Give the accepted secret with --secret or ${ENV_WEBHOOK_SECRET}\n`)
    return 2
  }

  const server = await startMockServer({
    port,
    host: values.host,
    secret: resolveWebhookSecrets(secret),
    autoCreateRuns: values['auto-create-runs'],
    ...(values['base-path'] ? { basePath: values['base-path'] } : {}),
  })
  // The origin is what a runner's FRONTEND_WEBHOOK_URL takes; the client adds the base path.
  process.stdout.write(`pipeline-status mock listening on ${server.url} (routes under ${server.mock.server.basePath})\n`)

  await new Promise<void>((resolve) => {
    const stop = () => resolve()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  await server.close()
  process.stdout.write('pipeline-status mock stopped\n')
  return 0
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`pipeline-status: ${(error as Error).message}\n`)
    process.exitCode = 1
  },
)
