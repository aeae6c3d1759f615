/**
 * The runnable Express example: in-process through `startExpressExample` (on the test
 * database), and as `npm run example:express` runs it, in a child process on embedded PGlite
 * with the demo secret, stopped with SIGTERM: to the server, and to the npm process itself, which
 * leaves no process of the script running and nothing listening on its port.
 */
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { collectionFromEnv, type ExpressExample, startExpressExample } from '../../examples/express/app.js'
import { createRunReadToken } from 'pipeline-status-sdk/server'
import { listMigrations, MigrationHistoryError, openDatabase } from '../../examples/shared/database.js'
import { PGlite } from '@electric-sql/pglite'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'
import { makeCompleteRun, makeStageUpdate, PYTHON_RUNNER_PAYLOADS } from '../support/fixtures.js'
import { Api, buildRequest, expectProblem } from '../contract/suite/harness.js'
import { until } from '../support/until.js'
import { useChildProcesses, whenClosed } from '../support/child-processes.js'
import { useTempDirs } from '../support/temp-dirs.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

/**
 * A data folder that PGlite has initialized (its initdb, WebAssembly work that was most of the
 * example's start-up: about 10 s of the 13 s on an idle 2-core machine, and most of the 104-112 s
 * such a test took on a loaded CI machine), with no table in it yet. Made once for the file and
 * copied for each test that starts the example on PGlite, which then opens it (about 1 s) and
 * applies the migrations as on a first run. Opening a fresh folder is openDatabase's own code
 * (test/prisma/database.test.ts).
 */
let initialized: Promise<string> | undefined
function initializedPglite(): Promise<string> {
  initialized ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pss-pglite-initialized-'))
    const pglite = new PGlite(dir)
    await pglite.waitReady
    await pglite.close()
    return dir
  })()
  return initialized
}
afterAll(async () => {
  if (initialized) await rm(await initialized, { recursive: true, force: true })
})

/** A copy of {@link initializedPglite} in `dir` (an empty folder). */
async function initializedDataDir(dir: string): Promise<string> {
  await cp(await initializedPglite(), dir, { recursive: true })
  return dir
}

/** The live processes of the system (`ps`, on Linux and macOS): pid, parent pid, and whether it is a zombie (exited, not yet reaped). */
function processTable(): Array<{ pid: number; ppid: number; zombie: boolean }> {
  return execFileSync('ps', ['-A', '-o', 'pid=,ppid=,stat='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((line) => {
      const [pid, ppid, stat = ''] = line.trim().split(/\s+/)
      return { pid: Number(pid), ppid: Number(ppid), zombie: stat.startsWith('Z') }
    })
}

/** Every process below `pid` (its children, theirs, ...), now. */
function descendantsOf(pid: number): number[] {
  const table = processTable()
  const found: number[] = []
  for (let parents = [pid]; parents.length > 0; ) {
    parents = table.filter((row) => parents.includes(row.ppid) && !row.zombie).map((row) => row.pid)
    found.push(...parents)
  }
  return found
}

/** Those of `pids` still running (a zombie has exited). */
function stillRunning(pids: readonly number[]): number[] {
  const running = new Set(processTable().filter((row) => !row.zombie).map((row) => row.pid))
  return pids.filter((pid) => running.has(pid))
}

/** What connecting to 127.0.0.1:`port` gives: `'connected'`, or the error's code (`'ECONNREFUSED'`). */
function connectTo(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
  })
}

describe('examples/express in-process', () => {
  let db: TestDatabase
  let example: ExpressExample
  const logs: string[] = []
  const log = { info: (m: string) => void logs.push(m), warn: (m: string) => void logs.push(m), error: (m: string) => void logs.push(m) }

  beforeAll(async () => {
    db = await createTestDatabase()
    example = await startExpressExample({ port: 0, secret: 'example-secret', databaseUrl: db.url, log })
  })
  afterAll(async () => {
    await example?.close()
    await db?.close()
  })

  it('serves the contract routes under /api/pipeline and reports completed runs', async () => {
    const api = new Api({ send: (spec) => fetch(buildRequest(example.url, { secret: 'example-secret', ...spec })), close: async () => {} })
    const id = await api.createRun()
    await api.stageOk(id, PYTHON_RUNNER_PAYLOADS.processing)
    await api.stageOk(id, PYTHON_RUNNER_PAYLOADS.completedJson)
    for (const n of [2, 3, 4, 5]) await api.stageOk(id, makeStageUpdate({ stageNumber: n, status: 'COMPLETED' }))
    expect((await api.completeOk(id, PYTHON_RUNNER_PAYLOADS.complete)).outcome).toBe('applied')
    expect((await api.status(id)).run.status).toBe('COMPLETED')
    expect(logs).toContain(`[express-example] run ${id} COMPLETED with opportunities, fullReportMarkdown, stageOutputs`)
    await expectProblem(await api.complete(id, makeCompleteRun(), { secret: 'nope' }), 401, 'unauthorized')
    expect(example.database).toBe(db.kind)
  })
})

describe('the Express example with PIPELINES_FILE and READ_TOKEN_SECRET', () => {
  const READ_SECRET = 'express-example-read-token-secret-0123456789'
  let db: TestDatabase
  let dir: string
  let example: ExpressExample | undefined
  const quiet = { info: () => {}, warn: () => {}, error: () => {} }

  beforeAll(async () => {
    db = await createTestDatabase()
    dir = await mkdtemp(join(tmpdir(), 'pss-express-pipelines-'))
    await writeFile(join(dir, 'pipelines.json'), JSON.stringify({ report: ['Fetch', 'Summarise'], ingest: ['Load'] }))
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ report: 'Fetch' }))
    example = await startExpressExample({
      port: 0,
      secret: 'example-secret',
      databaseUrl: db.url,
      log: quiet,
      ...collectionFromEnv({ PIPELINES_FILE: join(dir, 'pipelines.json'), READ_TOKEN_SECRET: READ_SECRET }),
    })
  })
  afterAll(async () => {
    await example?.close()
    await db?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('reads both from the environment with the shared loadPipelinesFile, naming the file and the bad key', () => {
    expect(collectionFromEnv({ PIPELINES_FILE: join(dir, 'pipelines.json'), READ_TOKEN_SECRET: 'a,b' })).toEqual({
      pipelines: {
        report: [{ number: 1, name: 'Fetch' }, { number: 2, name: 'Summarise' }],
        ingest: [{ number: 1, name: 'Load' }],
      },
      readTokenSecret: ['a', 'b'],
    })
    expect(collectionFromEnv({})).toEqual({})
    expect(() => collectionFromEnv({ PIPELINES_FILE: join(dir, 'bad.json') })).toThrow(
      `pipelines file ${join(dir, 'bad.json')}: "report" must be a non-empty list of stage names, e.g. ["Fetch", "Summarise"], got "Fetch"`,
    )
  })

  it('accepts read tokens signed with READ_TOKEN_SECRET for their run', async () => {
    const api = new Api({ send: (spec) => fetch(buildRequest(example!.url, { secret: 'example-secret', ...spec })), close: async () => {} })
    const id = await api.createRun()
    const token = await createRunReadToken({ runId: id, secret: READ_SECRET })
    expect((await fetch(`${example!.url}/${id}/status`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
  })

  // Needs the handlers' `pipelines` option (the server side of issue 24).
  it('creates runs in the pipelines of the file; runs created without one are in default', async () => {
    const create = async (body: object) => {
      const response = await fetch(`${example!.url}/runs`, { method: 'POST', headers: { 'X-Webhook-Secret': 'example-secret', 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
      return (await response.json()) as { run: { pipeline: string }; catalogue: unknown[] }
    }
    const report = await create({ pipeline: 'report' })
    expect(report.run.pipeline).toBe('report')
    expect(report.catalogue).toHaveLength(2)
    expect((await create({})).run.pipeline).toBe('default')
  })
})

describe('npm run example:express', () => {
  // Each test its own PGlite data folder and its own processes, stopped after it (process group
  // and all) before the folder goes: a test that failed or timed out with its server still up
  // once left that server on the shared folder while the next test opened it again, and every
  // later test of the file failed with it.
  const tempDir = useTempDirs('pss-express-example-')
  const spawn = useChildProcesses()
  // In the hook, not in a test's time.
  beforeAll(async () => {
    await initializedPglite()
  }, 120_000)

  it('starts on PGlite with a loud demo secret, serves requests and stops cleanly on SIGTERM', async () => {
    const dataDir = await initializedDataDir(tempDir())
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', DATA_DIR: dataDir }
    delete env['DATABASE_URL']
    delete env['WEBHOOK_SECRET']
    // As the npm script runs it: tsx as a loader, in the server's own process. tsx's CLI would be
    // a parent that relays SIGTERM and SIGKILLs the server (exit 143) unless the server confirms
    // the signal within 30 ms, which a busy server on a loaded machine does not always do.
    const started = spawn(process.execPath, ['--import', 'tsx', 'examples/express/server.ts'], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    started.stdout?.on('data', (chunk: Buffer) => void (output += chunk.toString()))
    started.stderr?.on('data', (chunk: Buffer) => void (output += chunk.toString()))
    // At 'close', not 'exit': only then has all its output been read.
    const closed = whenClosed(started)
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setInterval(() => {
        const match = /listening on (http:\/\/\S+)/.exec(output)
        if (match?.[1]) {
          clearInterval(timer)
          resolve(match[1])
        }
      }, 50)
      void closed.then(({ code }) => {
        clearInterval(timer)
        reject(new Error(`The example exited with ${code}:\n${output}`))
      })
    })
    expect(output).toContain('WEBHOOK_SECRET is not set')
    expect(output).toContain(`embedded PGlite in ${dataDir}`)

    const secret = /X-Webhook-Secret: (\S+)/.exec(output)?.[1] as string
    const api = new Api({ send: (spec) => fetch(buildRequest(url, { secret, ...spec })), close: async () => {} })
    const id = await api.createRun()
    await api.stageOk(id, makeStageUpdate())
    expect((await api.status(id)).stages).toHaveLength(1)

    started.kill('SIGTERM')
    expect((await closed).code).toBe(0)
    expect(output).toContain('SIGTERM: stopping')
  }, 120_000)

  it('as a user runs it: SIGTERM to the npm process stops the server, leaving no process of the script running and nothing listening on its port', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', DATA_DIR: await initializedDataDir(tempDir()), WEBHOOK_SECRET: 'example-secret' }
    delete env['DATABASE_URL']
    const npm = spawn('npm', ['run', 'example:express'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
    // The server and what it starts write to npm's pipes too: they close once all of those exited.
    const closed = whenClosed(npm)
    let output = ''
    const url = await new Promise<string>((resolve, reject) => {
      const read = (chunk: Buffer) => {
        output += chunk.toString()
        const match = /listening on (http:\/\/\S+)/.exec(output)
        if (match?.[1]) resolve(match[1])
      }
      npm.stdout?.on('data', read)
      npm.stderr?.on('data', read)
      void closed.then(({ code }) => reject(new Error(`npm run example:express exited with ${code}:\n${output}`)))
    })
    const port = Number(new URL(url).port)
    expect(await connectTo(port)).toBe('connected')
    // Everything the script started, while it runs: the server, and whatever it started.
    const scriptProcesses = descendantsOf(npm.pid!)
    expect(scriptProcesses.length).toBeGreaterThan(0)

    npm.kill('SIGTERM')
    const [code, signal] = (await once(npm, 'exit')) as [number | null, NodeJS.Signals | null]
    // npm passed the signal on to the server, which stopped cleanly (exit 0), and npm with it.
    expect({ code, signal }).toEqual({ code: 0, signal: null })
    // The server's own deadline for stopping is 15 s; it takes well under one.
    await until(`the processes the script started (${scriptProcesses.join(', ')}) to exit`, () => stillRunning(scriptProcesses).length === 0, 20_000)
    await closed
    expect(output).toContain('[express-example] SIGTERM: stopping')
    expect(await connectTo(port)).toBe('ECONNREFUSED')
  }, 120_000)

  it('stops with one line naming PIPELINES_FILE and the file when it cannot use it, and exits 1', async () => {
    const dataDir = tempDir()
    const missing = join(dataDir, 'missing.json')
    const started = spawn(process.execPath, ['--import', 'tsx', 'examples/express/server.ts'], {
      cwd: root,
      env: { ...process.env, PORT: '0', DATA_DIR: dataDir, WEBHOOK_SECRET: 's', PIPELINES_FILE: missing },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    started.stderr?.on('data', (chunk: Buffer) => void (stderr += chunk.toString()))
    const { code } = await whenClosed(started)
    expect({ code, stderr }).toEqual({ code: 1, stderr: `[express-example] PIPELINES_FILE: pipelines file ${missing} cannot be read (ENOENT)\n` })
  }, 60_000)
})

describe('a database whose migrations were applied with psql (no _prisma_migrations)', () => {
  let dataDir: string
  const names = listMigrations().map((migration) => migration.name)
  const first = names[0] as string
  const spawn = useChildProcesses()

  beforeAll(async () => {
    dataDir = await initializedDataDir(await mkdtemp(join(tmpdir(), 'pss-psql-migrated-')))
    // What `psql -f migration.sql` leaves: the tables, and no migration history.
    const pglite = new PGlite(dataDir)
    for (const migration of listMigrations()) await pglite.exec(migration.sql)
    await pglite.close()
  })
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true })
  })

  it('openDatabase refuses it with one line that says what is wrong and what to do', async () => {
    const error = await openDatabase({ dataDir }).then(
      () => undefined,
      (thrown: unknown) => thrown,
    )
    expect(error).toBeInstanceOf(MigrationHistoryError)
    const { message, migration, unrecorded } = error as MigrationHistoryError
    expect([migration, unrecorded]).toEqual([first, names])
    expect(message).not.toContain('\n')
    expect(message).toContain(`The database already has the tables of migration ${first} (`)
    expect(message).toContain('no Prisma migration history for it in "_prisma_migrations"')
    expect(message).toContain('use an empty database, or record each migration already applied with `npx prisma migrate resolve --applied <name>`')
    expect(message).toContain(`(not recorded: ${names.join(', ')})`)
    // Refused before anything is kept: no empty history left behind for the next tool to misread.
    const pglite = new PGlite(dataDir)
    try {
      expect((await pglite.query(`SELECT to_regclass('"_prisma_migrations"')::text AS t`)).rows).toEqual([{ t: null }])
    } finally {
      await pglite.close()
    }
  })

  it('npm run example:express prints that line, no stack, and exits 1', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', DATA_DIR: dataDir, WEBHOOK_SECRET: 'example-secret' }
    delete env['DATABASE_URL']
    const started = spawn(process.execPath, ['--import', 'tsx', 'examples/express/server.ts'], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    started.stderr?.on('data', (chunk: Buffer) => void (stderr += chunk.toString()))
    const { code } = await whenClosed(started)
    expect(code).toBe(1)
    const lines = stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^\[express-example\] The database already has the tables of migration /)
    expect(stderr).not.toContain('    at ')
  }, 120_000)
})
