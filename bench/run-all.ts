/**
 * Runs every `bench/*.bench.ts` one after another, each in its own process, and fails if one
 * fails. Each benchmark prints its own ratio against its hand-written baseline.
 *
 * Run: npm run bench
 */
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const dir = fileURLToPath(new URL('.', import.meta.url))
const benches = readdirSync(dir).filter((name) => name.endsWith('.bench.ts')).sort()
let failed = 0
for (const name of benches) {
  console.log(`\n▶ ${name}`)
  const result = spawnSync(process.execPath, ['--import', 'tsx', `${dir}${name}`], { stdio: 'inherit' })
  if (result.status !== 0) failed++
}
if (failed > 0) {
  console.error(`${failed} benchmark(s) failed`)
  process.exit(1)
}
