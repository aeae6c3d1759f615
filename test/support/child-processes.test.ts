/**
 * useChildProcesses: a child a test leaves running (one that ignores SIGTERM, and what it started
 * itself) is gone before the next test starts, as the Express example's tests need when one of
 * them fails or times out with its server up. whenClosed: a child's output is read to its end.
 */
import { execFileSync, spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { useChildProcesses, whenClosed } from './child-processes.js'

/** Whether `pid` is a live process (not gone, not a zombie waiting to be reaped). */
function alive(pid: number): boolean {
  try {
    const stat = execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim()
    return stat !== '' && !stat.startsWith('Z')
  } catch {
    return false // ps exits 1 when there is no such process
  }
}

/** A process that ignores SIGTERM and starts one more like itself, printing that one's pid. */
const STUBBORN = `
  process.on('SIGTERM', () => {})
  const grandchild = require('node:child_process').spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"], { stdio: 'ignore' })
  console.log(grandchild.pid)
  setInterval(() => {}, 1000)
`

describe('useChildProcesses', () => {
  const start = useChildProcesses()
  let left: number[] = []

  it('a test ends with its child and the child’s own child still running', async () => {
    const child = start(process.execPath, ['-e', STUBBORN], { stdio: ['ignore', 'pipe', 'inherit'] })
    const grandchild = await new Promise<number>((resolve, reject) => {
      let output = ''
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('\n')) resolve(Number(output.trim()))
      })
      child.once('exit', (code) => reject(new Error(`exited with ${code} before printing`)))
    })
    left = [child.pid!, grandchild]
    expect(left.map(alive)).toEqual([true, true])
  })

  it('the next test finds neither running', () => {
    expect(left).toHaveLength(2)
    expect(left.map(alive)).toEqual([false, false])
  })
})

describe('whenClosed', () => {
  it('resolves once all the child wrote has been read, with its exit code', async () => {
    // More than a pipe holds, written just before it exits: the end of it is read after 'exit' may have come.
    const child = spawn(process.execPath, ['-e', "process.stdout.write('x'.repeat(4 * 1024 * 1024) + 'end'); process.stderr.write('done'); process.exitCode = 3"], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    expect(await whenClosed(child)).toEqual({ code: 3, signal: null })
    expect({ length: stdout.length, end: stdout.endsWith('end'), stderr }).toEqual({ length: 4 * 1024 * 1024 + 3, end: true, stderr: 'done' })
  })

  it('resolves with the signal that ended the child', async () => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.kill('SIGKILL')
    expect(await whenClosed(child)).toEqual({ code: null, signal: 'SIGKILL' })
  })
})
