#!/usr/bin/env node
// Puts pipeline-status-sdk into this app's node_modules the way `npm install` would from the
// registry: package.json, README, prisma/ and a freshly built dist/, resolved through the
// package's exports map. The app then uses exactly what users get, never the sources.
//
// Why not a symlink to the repository (or `file:../..`)? The build goes straight into this copy
// with the package's own tsup config, so it never touches the repository's dist/, which other
// tests rebuild (and wipe) while this app may be building. Its dependencies (zod, ky) resolve
// from the repository's node_modules, two folders up, as they would from a hoisted install.
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const app = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const root = resolve(app, '..', '..')
const target = join(app, 'node_modules', 'pipeline-status-sdk')

// A symlink left by `npm install` is removed, not followed: building into it would wipe the
// repository's own dist/.
rmSync(target, { recursive: true, force: true })
mkdirSync(target, { recursive: true })
for (const entry of ['package.json', 'README.md', 'prisma']) {
  cpSync(join(root, entry), join(target, entry), { recursive: true })
}

const tsup = join(dirname(createRequire(join(root, 'package.json')).resolve('tsup/package.json')), 'dist', 'cli-default.js')
const result = spawnSync(process.execPath, [tsup, '--out-dir', join(target, 'dist'), '--silent'], {
  cwd: root,
  stdio: 'inherit',
})
if (result.error) throw result.error
if (result.status !== 0) {
  console.error('install-sdk: building pipeline-status-sdk failed (see above)')
  process.exit(result.status ?? 1)
}
console.log(`install-sdk: pipeline-status-sdk built into ${target}`)
