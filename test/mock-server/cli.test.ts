/**
 * `pipeline-status` as a user runs it: the built bin (global setup builds it) in a child process,
 * judged by its exit code and output; the mock driven over HTTP and stopped with SIGINT and
 * SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Validator } from '@seriousme/openapi-schema-validator'
import { createOpenApiDocument, CreateRunResponse, RunStatusResponse } from 'pipeline-status-sdk'
import { createRunReadToken } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it } from 'vitest'
import { whenClosed } from '../support/child-processes.js'
import { makeStageUpdate } from '../support/fixtures.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const pkg = JSON.parse(await readFile(`${root}/package.json`, 'utf8')) as { bin: Record<string, string> }
const bin = `${root}/${pkg.bin['pipeline-status']}`
const children: ChildProcess[] = []

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL')
})

/** Runs the bin to its end (killed after 15 s, so a hang fails the test with exit code null). */
function run(args: string[], env: NodeJS.ProcessEnv = {}, script = bin) {
  return new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { env: { ...process.env, WEBHOOK_SECRET: '', ...env } })
    children.push(child)
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    let output = ''
    child.stdout.on('data', (c: Buffer) => (output += c))
    child.stderr.on('data', (c: Buffer) => (output += c))
    // At 'close', not 'exit': only then has all its output been read.
    void whenClosed(child).then(({ code }) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

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
    void whenClosed(child).then(({ code }) => reject(new Error(`exited ${code}: ${output}`)))
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
    expect((await whenClosed(child)).code).toBe(0)
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

  it('logs each request in one line, with the problem code of a refusal; --quiet turns it off', async () => {
    const { child, url, output } = await start(['mock', '--port', '0', '--secret', 'cli-secret'])
    expect((await fetch(`${url}/api/pipeline/runs`, { method: 'POST', headers: { 'X-Webhook-Secret': 'cli-secret' } })).status).toBe(201)
    expect((await fetch(`${url}/api/pipeline/some-run/status`, { headers: { 'X-Webhook-Secret': 'wrong' } })).status).toBe(401)
    await expect.poll(() => output().split('\n').filter((line) => line.includes(' /api/pipeline/')).length).toBe(2)
    const lines = output().split('\n')
    expect(lines).toContainEqual(expect.stringMatching(/^POST \/api\/pipeline\/runs 201 \d+ms$/))
    expect(lines).toContainEqual(expect.stringMatching(/^GET \/api\/pipeline\/some-run\/status 401 unauthorized \(.+\) \d+ms$/))
    // The refusal is told once, in its request line, not again as a handler warning.
    expect(output().match(/unauthorized/g)).toHaveLength(1)
    child.kill('SIGTERM')
    await once(child, 'exit')

    const quiet = await start(['mock', '--port', '0', '--secret', 'cli-secret', '--quiet'])
    expect((await fetch(`${quiet.url}/api/pipeline/runs`, { method: 'POST', headers: { 'X-Webhook-Secret': 'cli-secret' } })).status).toBe(201)
    // Refusals print nothing either: no request line, no handler warning.
    expect((await fetch(`${quiet.url}/api/pipeline/some-run/status`, { headers: { 'X-Webhook-Secret': 'wrong' } })).status).toBe(401)
    expect((await fetch(`${quiet.url}/api/pipeline/runs`, { method: 'POST', headers: { 'X-Webhook-Secret': 'cli-secret', 'Content-Type': 'application/json' }, body: '{' })).status).toBe(400)
    quiet.child.kill('SIGTERM')
    await whenClosed(quiet.child)
    expect(quiet.output().split('\n').filter((line) => line !== '')).toEqual([
      `pipeline-status mock listening on ${quiet.url} (routes under /api/pipeline)`,
      `dashboard: ${quiet.url}/ (open on loopback, no sign-in)`,
      'pipeline-status mock stopped',
    ])
  })

  it('prints its version and lists its commands', async () => {
    const { version } = JSON.parse(await readFile(`${root}/package.json`, 'utf8')) as { version: string }
    expect(await run(['--version'])).toEqual({ code: 0, output: `${version}\n` })
    const help = await run(['--help'])
    expect(help.code).toBe(0)
    expect(help.output).toContain('Usage: pipeline-status <command> [options]')
    expect(help.output).toMatch(/Commands:\n\s+mock\s+serve the pipeline status contract over HTTP/)
    const mockHelp = await run(['mock', '--help'])
    expect(mockHelp).toMatchObject({ code: 0, output: expect.stringContaining('Usage: pipeline-status mock [options]') })
    expect(mockHelp.output).toContain('--quiet')
    expect(mockHelp.output).toMatch(/--pipelines <file>\s+named stage catalogues from a JSON file/)
    expect(mockHelp.output).toContain('--read-token-secret <s>')
  })

  it('prints the OpenAPI 3.1 document with `openapi`, and the mock serves the same at GET {base}/openapi.json', async () => {
    const help = await run(['--help'])
    expect(help.output).toMatch(/\n\s+openapi\s+print the contract's OpenAPI 3.1 document/)
    expect(await run(['openapi', '--help'])).toMatchObject({ code: 0, output: expect.stringContaining('Usage: pipeline-status openapi [options]') })

    const printed = await run(['openapi'])
    expect(printed.code).toBe(0)
    const document = JSON.parse(printed.output) as Record<string, unknown>
    const validator = new Validator()
    expect(await validator.validate(document)).toEqual({ valid: true })
    expect(validator.version).toBe('3.1')
    expect(document).toEqual(createOpenApiDocument())
    const mounted = JSON.parse((await run(['openapi', '--base-path', '/hooks'])).output) as { servers: { url: string }[] }
    expect(mounted.servers[0]?.url).toBe('/hooks')
    expect(await run(['openapi', 'extra'])).toMatchObject({ code: 2, output: expect.stringContaining("unexpected argument 'extra' after 'openapi'") })

    // The mock started by the CLI serves it without a secret, under its own base path.
    const { child, url } = await start(['mock', '--port', '0', '--secret', 'cli-secret', '--base-path', '/hooks', '--quiet'])
    const served = await fetch(`${url}/hooks/openapi.json`)
    expect(served.status).toBe(200)
    const servedDocument = (await served.json()) as Record<string, unknown>
    expect(await new Validator().validate(servedDocument)).toEqual({ valid: true })
    expect(servedDocument).toEqual(mounted)
    child.kill('SIGTERM')
    await once(child, 'exit')
  })

  it('explains what is wrong with its arguments, and exits 2', async () => {
    expect(await run(['mock', '--port', '0'])).toMatchObject({ code: 2, output: expect.stringContaining('--secret or WEBHOOK_SECRET') })
    expect(await run(['mock', '--port', 'x', '--secret', 's'])).toMatchObject({ code: 2, output: expect.stringContaining("--port must be a whole number from 0 to 65535, got 'x'") })
    expect(await run(['serve'])).toMatchObject({ code: 2, output: expect.stringContaining("unknown command 'serve'; did you mean 'mock'?") })
    expect(await run(['mock', '--prot', '4010', '--secret', 's'])).toMatchObject({
      code: 2,
      output: expect.stringContaining("unknown option '--prot'; did you mean '--port'?"),
    })
    expect((await run(['mock', '--auto-create-run', '--secret', 's'])).output).toContain("did you mean '--auto-create-runs'?")
    expect(await run([])).toMatchObject({ code: 2, output: expect.stringContaining('Commands:') })
  })

  it('refuses a secret list without a secret instead of hanging', async () => {
    expect(await run(['mock', '--port', '0', '--secret', ','])).toMatchObject({
      code: 2,
      output: expect.stringContaining('--secret holds no secret: give one or more non-empty secrets'),
    })
    expect(await run(['mock', '--port', '0'], { WEBHOOK_SECRET: ' , ' })).toMatchObject({
      code: 2,
      output: expect.stringContaining('WEBHOOK_SECRET holds no secret'),
    })
  })

  it('says to install msw when it is missing, without a stack trace', async () => {
    // The package as installed in an app without msw: its dist, package.json and its two
    // dependencies, and nothing else.
    const app = await mkdtemp(join(tmpdir(), 'pss-no-msw-'))
    try {
      const installed = join(app, 'node_modules/pipeline-status-sdk')
      await mkdir(installed, { recursive: true })
      await cp(join(root, 'dist'), join(installed, 'dist'), { recursive: true })
      await cp(join(root, 'package.json'), join(installed, 'package.json'))
      for (const dependency of ['zod', 'ky']) {
        await symlink(join(root, 'node_modules', dependency), join(app, 'node_modules', dependency), 'dir')
      }
      const result = await run(['mock', '--port', '0', '--secret', 's'], {}, join(installed, pkg.bin['pipeline-status']!))
      expect(result.code).toBe(1)
      expect(result.output).toBe('pipeline-status: `pipeline-status mock` needs msw, an optional peer dependency: npm install --save-dev msw\n')
      // Help and version need no msw.
      expect((await run(['--help'], {}, join(installed, pkg.bin['pipeline-status']!))).code).toBe(0)
    } finally {
      await rm(app, { recursive: true, force: true })
    }
  })

  describe('--pipelines and --read-token-secret', () => {
    const READ_SECRET = 'cli-read-token-secret-of-32-characters-or-more'
    let dir: string
    afterEach(async () => {
      if (dir) await rm(dir, { recursive: true, force: true })
    })
    async function pipelinesFile(text: string): Promise<string> {
      dir = await mkdtemp(join(tmpdir(), 'pss-pipelines-'))
      const file = join(dir, 'pipelines.json')
      await writeFile(file, text)
      return file
    }

    it('refuses a pipelines file it cannot use, naming the file and the bad key, and exits 2', async () => {
      const file = await pipelinesFile('{ "report": ["Fetch", "Summarise"], "ingest": [] }')
      expect(await run(['mock', '--secret', 's', '--pipelines', file])).toEqual({
        code: 2,
        output: expect.stringContaining(`pipeline-status: pipelines file ${file}: "ingest" must be a non-empty list of stage names, e.g. ["Fetch", "Summarise"], got []\n`),
      })
      await writeFile(file, '{ "report": ["Fetch", 3] }')
      expect((await run(['mock', '--secret', 's', '--pipelines', file])).output).toContain(`pipelines file ${file}: "report" stage 2 must be a name of 1 to 200 characters, got 3`)
      await writeFile(file, '["Fetch"]')
      expect((await run(['mock', '--secret', 's', '--pipelines', file])).output).toContain(`pipelines file ${file}: a pipelines file is one JSON object of pipeline names to stage names`)
      await writeFile(file, '{ "report": ')
      expect(await run(['mock', '--secret', 's', '--pipelines', file])).toMatchObject({ code: 2, output: expect.stringContaining(`pipelines file ${file} is not JSON`) })
      expect(await run(['mock', '--secret', 's', '--pipelines', join(dir, 'missing.json')])).toMatchObject({
        code: 2,
        output: expect.stringContaining(`pipelines file ${join(dir, 'missing.json')} cannot be read (ENOENT)`),
      })
    })

    it('accepts read tokens signed with --read-token-secret (or READ_TOKEN_SECRET) for their run', async () => {
      for (const [args, env] of [[['--read-token-secret', READ_SECRET], {}], [[], { READ_TOKEN_SECRET: READ_SECRET }]] as const) {
        const { child, url } = await start(['mock', '--port', '0', '--secret', 'cli-secret', '--quiet', ...args], env)
        await fetch(`${url}/api/pipeline/runs`, { method: 'POST', headers: { 'X-Webhook-Secret': 'cli-secret', 'Content-Type': 'application/json' }, body: '{"id":"tok-run"}' })
        const token = await createRunReadToken({ runId: 'tok-run', secret: READ_SECRET })
        expect((await fetch(`${url}/api/pipeline/tok-run/status`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
        child.kill('SIGTERM')
        await once(child, 'exit')
      }
      const { child, url } = await start(['mock', '--port', '0', '--secret', 'cli-secret', '--quiet'], { READ_TOKEN_SECRET: '' })
      const token = await createRunReadToken({ runId: 'tok-run', secret: READ_SECRET })
      expect((await fetch(`${url}/api/pipeline/tok-run/status`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401)
      child.kill('SIGTERM')
      await once(child, 'exit')
    })

    // Needs the handlers' `pipelines` option (the server side of issue 24).
    it('serves the pipelines of the file; a run created without one is in default', async () => {
      const file = await pipelinesFile('{ "report": ["Fetch", "Summarise"], "ingest": ["Load"] }')
      const { child, url } = await start(['mock', '--port', '0', '--secret', 'cli-secret', '--quiet', '--pipelines', file])
      const create = async (body: object) => {
        const response = await fetch(`${url}/api/pipeline/runs`, { method: 'POST', headers: { 'X-Webhook-Secret': 'cli-secret', 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
        return CreateRunResponse.parse(await response.json())
      }
      const report = await create({ id: 'in-report', pipeline: 'report' })
      expect(report.run.pipeline).toBe('report')
      expect(report.catalogue).toEqual([{ stageNumber: 1, stageName: 'Fetch' }, { stageNumber: 2, stageName: 'Summarise' }])
      const plain = await create({ id: 'in-default' })
      expect(plain.run.pipeline).toBe('default')
      expect(plain.catalogue).toHaveLength(5)
      child.kill('SIGTERM')
      await once(child, 'exit')
    })

    it('takes a "default" key of the file as the default stages, replacing the five; an existing id answers created: false unchanged', async () => {
      const file = await pipelinesFile('{ "default": ["Only"], "report": ["Fetch", "Summarise"] }')
      const { child, url } = await start(['mock', '--port', '0', '--secret', 'cli-secret', '--quiet', '--pipelines', file])
      const create = async (body: object) => {
        const response = await fetch(`${url}/api/pipeline/runs`, { method: 'POST', headers: { 'X-Webhook-Secret': 'cli-secret', 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
        return { status: response.status, answer: CreateRunResponse.parse(await response.json()) }
      }
      const plain = await create({ id: 'in-default', tags: ['a'] })
      expect(plain.answer.catalogue).toEqual([{ stageNumber: 1, stageName: 'Only' }])
      // The same id again: 200, created false, the stored run with its own pipeline and tags.
      const again = await create({ id: 'in-default', pipeline: 'report', tags: ['b'], metadata: { n: 1 } })
      expect({ status: again.status, created: again.answer.created, pipeline: again.answer.run.pipeline, tags: again.answer.run.tags, metadata: again.answer.run.metadata }).toEqual({
        status: 200,
        created: false,
        pipeline: 'default',
        tags: ['a'],
        metadata: {},
      })
      child.kill('SIGTERM')
      await once(child, 'exit')
    })
  })
})
