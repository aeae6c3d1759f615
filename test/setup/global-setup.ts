/**
 * Generates the Prisma client that the tests and examples import (`src/generated/prisma`, not
 * committed) when it is missing or older than the schema, so `npm test` works on a fresh clone.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export default function setup(): void {
  const script = fileURLToPath(new URL('../../scripts/prisma-generate.mjs', import.meta.url))
  const result = spawnSync(process.execPath, [script, '--if-stale'], { encoding: 'utf8' })
  if (result.status !== 0) {
    throw new Error(`Generating the Prisma client failed (npm run prisma:generate):\n${result.stdout}\n${result.stderr}`, {
      cause: result.error,
    })
  }
}
