#!/usr/bin/env node
// Runs `prisma generate` for prisma/schema.prisma into src/generated/prisma (extra arguments are
// passed on). With --if-stale it does nothing when the generated client is newer than the schema.
//
// It works on machines that cannot download Prisma's schema engine: generate never runs that
// engine, but the CLI insists on finding it first, and pointing PRISMA_SCHEMA_ENGINE_BINARY at
// any existing file satisfies the check. Only for `generate`: commands that do need the engine
// (`prisma migrate deploy`) must be run with the plain CLI.
import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const schema = join(root, 'prisma', 'schema.prisma')
const generated = join(root, 'src', 'generated', 'prisma', 'client.ts')

const args = process.argv.slice(2)
const ifStale = args.includes('--if-stale')
if (ifStale && existsSync(generated) && statSync(generated).mtimeMs >= statSync(schema).mtimeMs) process.exit(0)

const cli = createRequire(import.meta.url).resolve('prisma/build/index.js')
const env = { ...process.env }
env.PRISMA_SCHEMA_ENGINE_BINARY ??= process.execPath
// No update notices or telemetry: both would reach for the network.
env.PRISMA_HIDE_UPDATE_MESSAGE ??= '1'
env.CHECKPOINT_DISABLE ??= '1'

const result = spawnSync(process.execPath, [cli, 'generate', ...args.filter((arg) => arg !== '--if-stale')], {
  cwd: root,
  env,
  stdio: 'inherit',
})
if (result.error) throw result.error
process.exit(result.status ?? 1)
