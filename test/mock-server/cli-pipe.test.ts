/**
 * `npx pipeline-status openapi | head -c 200` ends quietly (issue 21 item 5): the reader closes
 * the pipe after 200 bytes, and the bin must not print an EPIPE stack. The built bin (global
 * setup builds it) in a child process whose stdout is read as `head -c 200` reads it.
 */
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const pkg = JSON.parse(await readFile(`${root}/package.json`, 'utf8')) as { bin: Record<string, string> }
const bin = `${root}/${pkg.bin['pipeline-status']}`

describe('pipeline-status openapi | head -c 200', () => {
  it('ends quietly when the reader closes the pipe early', async () => {
    // What the shell does: stdout is a pipe whose reader exits after 200 bytes.
    const child = spawn('/bin/sh', ['-c', `"${process.execPath}" "${bin}" openapi | head -c 200`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
    expect(stdout).toHaveLength(200)
    expect(stdout.startsWith('{\n  "openapi": "3.1')).toBe(true)
    expect(stderr).toBe('')
    expect(code).toBe(0)
  })

  it('a reader that closes at once: no output, no stack, exit 0', async () => {
    // The node process itself, its stdout a pipe destroyed before anything is read.
    const child = spawn(process.execPath, [bin, 'openapi'], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.destroy()
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
    expect(stderr).toBe('')
    expect(code).toBe(0)
  })
})
