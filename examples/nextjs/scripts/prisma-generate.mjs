#!/usr/bin/env node
// Generates this app's Prisma client (prisma/schema.prisma → generated/prisma), after checking
// that the models copied from pipeline-status-sdk are still identical to the package's. Exits
// with a message naming the model that differs, so a change to the package's schema cannot
// leave this app silently out of date.
//
// Like the repository's scripts/prisma-generate.mjs, it points PRISMA_SCHEMA_ENGINE_BINARY at an
// existing file unless it is set: `prisma generate` never runs the schema engine, but the CLI
// downloads it first when missing, and that download is not reachable everywhere.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const app = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(app, 'package.json'))

const ownSchema = join(app, 'prisma', 'schema.prisma')
let packageSchema
try {
  packageSchema = join(dirname(require.resolve('pipeline-status-sdk/package.json')), 'prisma', 'schema.prisma')
} catch {
  console.error('prisma-generate: pipeline-status-sdk is not installed here; run `npm run install-sdk` first')
  process.exit(1)
}

const differences = compareModels(modelBlocks(readFileSync(packageSchema, 'utf8')), modelBlocks(readFileSync(ownSchema, 'utf8')))
if (differences.length > 0) {
  console.error(
    `prisma-generate: the models in ${ownSchema} differ from pipeline-status-sdk's ${packageSchema}:\n` +
      differences.map((line) => `  - ${line}`).join('\n') +
      '\nCopy the enum and models from the package schema again (and deploy its new migrations).',
  )
  process.exit(1)
}

const cli = require.resolve('prisma/build/index.js')
const env = { ...process.env }
env.PRISMA_SCHEMA_ENGINE_BINARY ??= process.execPath
// No update notices or telemetry: both would reach for the network.
env.PRISMA_HIDE_UPDATE_MESSAGE ??= '1'
env.CHECKPOINT_DISABLE ??= '1'
const result = spawnSync(process.execPath, [cli, 'generate', ...process.argv.slice(2)], { cwd: app, env, stdio: 'inherit' })
if (result.error) throw result.error
process.exit(result.status ?? 1)

/**
 * The schema's enums, models, views and types by name, each as its normalized lines: `//`
 * comments and blank lines dropped (they change nothing), `///` doc comments kept (they end up
 * in the generated client), whitespace collapsed.
 */
function modelBlocks(text) {
  const blocks = new Map()
  let current
  for (const raw of text.split('\n')) {
    const line = raw.replace(/(^|\s)\/\/(?!\/).*$/, '').trim().replace(/\s+/g, ' ')
    if (current) {
      if (line === '}') {
        blocks.set(current.key, current.lines)
        current = undefined
      } else if (line !== '') {
        current.lines.push(line)
      }
      continue
    }
    const start = /^(enum|model|view|type) (\w+) \{$/.exec(line)
    if (start) current = { key: `${start[1]} ${start[2]}`, lines: [] }
  }
  return blocks
}

function compareModels(expected, actual) {
  const differences = []
  for (const [key, lines] of expected) {
    const own = actual.get(key)
    if (!own) {
      differences.push(`${key} is missing`)
      continue
    }
    const length = Math.max(lines.length, own.length)
    for (let index = 0; index < length; index++) {
      if (lines[index] !== own[index]) {
        differences.push(`${key}: expected "${lines[index] ?? '(nothing)'}", found "${own[index] ?? '(nothing)'}"`)
        break
      }
    }
  }
  return differences
}
