/**
 * Runs once before every test file:
 * 1. generates the Prisma client that the tests and examples import (`src/generated/prisma`, not
 *    committed) when it is missing or older than the schema, so `npm test` works on a fresh clone;
 * 2. builds the dashboard page into `src/generated/dashboard-assets.ts` (not committed) when it is
 *    missing or older than `src/dashboard`;
 * 3. builds the package (`dist/`) when it is missing or older than its sources, once, so the
 *    tests that use the built package (exports, the bin, the docs, the Next.js example) never
 *    build it concurrently.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

function run(what: string, args: string[]): void {
  const result = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' })
  if (result.status !== 0) {
    throw new Error(`${what} failed:\n${result.stdout}\n${result.stderr}`, { cause: result.error })
  }
}

function newestMtime(path: string): number {
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  let newest = stat.mtimeMs
  for (const entry of readdirSync(path)) {
    if (entry === 'generated' || entry === 'node_modules') continue
    newest = Math.max(newest, newestMtime(join(path, entry)))
  }
  return newest
}

export default function setup(): void {
  run('Generating the Prisma client (npm run prisma:generate)', [join(root, 'scripts/prisma-generate.mjs'), '--if-stale'])
  run('Building the dashboard page (scripts/build-dashboard.mjs)', [join(root, 'scripts/build-dashboard.mjs'), '--if-stale'])

  const stamp = join(root, 'dist/.build-stamp')
  const sources = Math.max(...['src', 'mock-server', 'tsup.config.ts', 'package.json'].map((p) => newestMtime(join(root, p))))
  if (!existsSync(stamp) || statSync(stamp).mtimeMs < sources) {
    run('Building the package (npm run build)', [join(root, 'node_modules/tsup/dist/cli-default.js')])
    writeFileSync(stamp, new Date().toISOString())
  }
}
