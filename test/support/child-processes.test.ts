/**
 * useChildProcesses: a child a test leaves running (one that ignores SIGTERM, and what it started
 * itself) is gone before the next test starts, as the Express example's tests need when one of
 * them fails or times out with its server up.
 */
import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { useChildProcesses } from './child-processes.js'

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
