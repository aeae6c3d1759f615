/** A runner process killed mid-run, for the crash-restart tests: runs a fixture of `test/client/fixtures` and kills it at its mark. */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { until } from '../../support/until.js'
import { TEST_SECRET, type TestServer } from './test-server.js'

/**
 * Runs `fixtures/<fixture>` in a child process (`tsx <fixture> <origin> <secret> <outboxDir> <runId>`),
 * waits up to 30 s for it to print `marker` (or exit), kills it with SIGKILL and waits for it to
 * close. Returns what it printed: a crashed runner that reached its mark printed `<marker>\n` and no stderr.
 */
export async function crashChild(fixture: string, server: TestServer, dir: string, runId: string, marker: string): Promise<{ stdout: string; stderr: string }> {
  const script = fileURLToPath(new URL(`../fixtures/${fixture}`, import.meta.url))
  const child = spawn(process.execPath, ['--import', 'tsx', script, server.origin, TEST_SECRET, dir, runId], { cwd: process.cwd() })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()))
  try {
    await until(`the child printed ${marker}`, () => stdout.includes(marker) || child.exitCode !== null, 30_000)
  } finally {
    child.kill('SIGKILL')
  }
  await exited
  return { stdout, stderr }
}
