/**
 * `pipeline-status mock` as a user starts it: the built bin (global setup builds it) in a child process, driven over
 * HTTP, stopped with SIGINT and SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { RunStatusResponse } from 'pipeline-status-sdk'
import { afterEach, describe, expect, it } from 'vitest'
import { makeStageUpdate } from '../support/fixtures.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const pkg = JSON.parse(await readFile(`${root}/package.json`, 'utf8')) as { bin: Record<string, string> }
const bin = `${root}/${pkg.bin['pipeline-status']}`
const children: ChildProcess[] = []

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL')
})

async function start(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => {
      const match = /listening on (http:\/\/\S+)/.exec(output)
      if (match) resolve(match[1]!)
    })
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${output}`)))
  })
  return { child, url, output: () => output }
}

describe('pipeline-status mock', () => {
  it('serves the contract over HTTP and stops cleanly on SIGINT', async () => {
    const { child, url, output } = await start(['mock', '--port', '0', '--secret', 'cli-secret', '--auto-create-runs'])
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(output()).toContain('(routes under /api/pipeline)')
    const headers = { 'X-Webhook-Secret': 'cli-secret', 'Content-Type': 'application/json' }
    for (const status of ['PROCESSING', 'COMPLETED'] as const) {
      for (let n = 1; n <= 5; n++) {
        const response = await fetch(`${url}/api/pipeline/py-run/stage-update`, {
          method: 'POST',
          headers,
          body: JSON.stringify(makeStageUpdate({ stageNumber: n, status, output: `o${n}` })),
        })
        expect(response.status).toBe(200)
      }
    }
    const read = await fetch(`${url}/api/pipeline/py-run/status`, { headers })
    expect(RunStatusResponse.parse(await read.json()).run.status).toBe('COMPLETED')
    expect((await fetch(`${url}/api/pipeline/py-run/status`)).status).toBe(401)

    child.kill('SIGINT')
    const [code] = await once(child, 'exit')
    expect(code).toBe(0)
    expect(output()).toContain('pipeline-status mock stopped')
  })

  it('reads the secret from WEBHOOK_SECRET, accepts several, and stops on SIGTERM', async () => {
    const { child, url } = await start(['mock', '--port', '0'], { WEBHOOK_SECRET: 'old-secret,new-secret' })
    for (const secret of ['old-secret', 'new-secret']) {
      const created = await fetch(`${url}/api/pipeline/runs`, { method: 'POST', headers: { 'X-Webhook-Secret': secret } })
      expect(created.status).toBe(201)
    }
    child.kill('SIGTERM')
    expect((await once(child, 'exit'))[0]).toBe(0)
  })

  it('explains what is wrong with its arguments', async () => {
    const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, WEBHOOK_SECRET: '', ...env } })
        let output = ''
        child.stdout.on('data', (c: Buffer) => (output += c))
        child.stderr.on('data', (c: Buffer) => (output += c))
        child.on('exit', (code) => resolve({ code, output }))
      })
    expect(await run(['mock', '--port', '0'])).toMatchObject({ code: 2, output: expect.stringContaining('--secret or WEBHOOK_SECRET') })
    expect(await run(['mock', '--port', 'x', '--secret', 's'])).toMatchObject({ code: 2, output: expect.stringContaining('--port must be') })
    expect(await run(['serve'])).toMatchObject({ code: 2, output: expect.stringContaining('Unknown command: serve') })
    expect(await run(['--help'])).toMatchObject({ code: 0, output: expect.stringContaining('Usage: pipeline-status mock') })
  })
})
