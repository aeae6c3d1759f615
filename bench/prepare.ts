/**
 * What the database benchmarks need before they load any of the app's code: the generated Prisma
 * client (`npm run prisma:generate`, when it is missing or older than the schema) and the built
 * package (`dist/`, which the benchmark servers import as `pipeline-status-sdk/*`). The benchmarks
 * call it first and import the examples' database code dynamically after it, so
 * `npx tsx bench/<name>.bench.ts` works straight after `npm ci`, as `npm run bench` does.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Generates the Prisma client when stale and builds `dist/` when older than `src/`; throws when either fails. */
export function prepareBench(): void {
  const generated = spawnSync(process.execPath, [join(root, 'scripts/prisma-generate.mjs'), '--if-stale'], { cwd: root, stdio: 'inherit' })
  if (generated.status !== 0) throw new Error('npm run prisma:generate failed')
  ensureBuilt()
}

/**
 * Where a benchmark writes its numbers unless told otherwise: `bench/results/latest/<name>`, which
 * git ignores, so a quick run never replaces the committed results behind bench/README.md's
 * tables. Setting the benchmark's output variable to `bench/results/<name>` records a run.
 */
export function defaultOutput(name: string): string {
  return `bench/results/latest/${name}`
}

function ensureBuilt(): void {
  const newest = (path: string): number => {
    const stat = statSync(path)
    if (!stat.isDirectory()) return stat.mtimeMs
    let max = stat.mtimeMs
    for (const entry of readdirSync(path)) if (entry !== 'generated') max = Math.max(max, newest(join(path, entry)))
    return max
  }
  const stamp = join(root, 'dist/.build-stamp')
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= newest(join(root, 'src'))) return
  console.log('building the package (dist/) …')
  const built = spawnSync(process.execPath, [join(root, 'node_modules/tsup/dist/cli-default.js')], { cwd: root, stdio: 'inherit' })
  if (built.status !== 0) throw new Error('npm run build failed')
  writeFileSync(stamp, new Date().toISOString())
}
