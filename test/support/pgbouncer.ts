/**
 * A real PgBouncer in front of the test PostgreSQL, started by the test on a free port with its
 * own configuration in a temporary folder (the system's PgBouncer is never touched). Debian's
 * `pgbouncer` package (1.18) is what users run; `.ci/run` installs it.
 *
 * Transaction mode is the usual pooled set-up (Supavisor, Neon and most managed poolers behave
 * alike): a client's statements may run on different server connections, named prepared
 * statements and `LISTEN` do not survive across transactions, and a `NOTIFY` from another session
 * never reaches a listener behind it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { pgbouncerTool } from './optional-tools.js'

// The requirements live beside the others (the closing SKIPPED line reads them there).
export { listenThroughPgBouncerTool, pgbouncerTool } from './optional-tools.js'

/** Options of {@link startPgBouncer}. */
export interface PgBouncerOptions {
  /** The PostgreSQL server to pool, as a URL; its database name is what clients get. */
  databaseUrl: string
  /** @default 'transaction' */
  poolMode?: 'session' | 'transaction' | 'statement'
  /** Server connections per database and user. @default 5 */
  defaultPoolSize?: number
  /**
   * Startup parameters PgBouncer ignores instead of refusing the connection. PgBouncer's default
   * (empty) refuses any parameter it does not know, such as `statement_timeout` or `options`.
   * @default [] (PgBouncer's own default)
   */
  ignoreStartupParameters?: string[]
  /** The PgBouncer binary. @default pgbouncerTool().path */
  binary?: string
}

/** A running PgBouncer; `stop()` ends it and removes its folder. */
export interface PgBouncer {
  /** `databaseUrl` with its host and port replaced by the pooler's. */
  url: string
  port: number
  /** The pooler's log so far (for assertions on what it refused). */
  log(): string
  stop(): Promise<void>
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/**
 * Starts PgBouncer on a free port and waits (at most 10 s) until a query passes through it.
 * Runs it as the `postgres` user when the tests run as root (PgBouncer refuses root).
 *
 * @throws Error when the binary is missing or the pooler does not answer within 10 s (its log attached).
 */
export async function startPgBouncer(options: PgBouncerOptions): Promise<PgBouncer> {
  const binary = options.binary ?? pgbouncerTool().path
  if (!binary) throw new Error('PgBouncer is not installed: apt-get install -y pgbouncer')
  const upstream = new URL(options.databaseUrl)
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'pss-pgbouncer-'))
  chmodSync(dir, 0o777)
  const logFile = join(dir, 'pgbouncer.log')
  const users = new Set([decodeURIComponent(upstream.username || 'postgres'), 'postgres', 'root'])
  writeFileSync(join(dir, 'userlist.txt'), [...users].map((user) => `"${user}" ""`).join('\n') + '\n')
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${upstream.hostname} port=${upstream.port || '5432'}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      `pool_mode = ${options.poolMode ?? 'transaction'}`,
      `default_pool_size = ${options.defaultPoolSize ?? 5}`,
      'max_client_conn = 500',
      `logfile = ${logFile}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      ...(options.ignoreStartupParameters?.length ? [`ignore_startup_parameters = ${options.ignoreStartupParameters.join(',')}`] : []),
      '',
    ].join('\n'),
  )
  for (const file of ['userlist.txt', 'pgbouncer.ini']) chmodSync(join(dir, file), 0o644)
  const asRoot = process.getuid?.() === 0
  const args = [...(asRoot ? ['-u', 'postgres'] : []), join(dir, 'pgbouncer.ini')]
  const child: ChildProcess = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const readLog = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '') + stderr
  const url = new URL(options.databaseUrl)
  url.hostname = '127.0.0.1'
  url.port = String(port)

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGINT')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(timer)
    }
    rmSync(dir, { recursive: true, force: true })
  }

  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) {
      const log = readLog()
      await stop()
      throw new Error(`PgBouncer exited with code ${child.exitCode}:\n${log}`)
    }
    const probe = new pg.Client({ connectionString: url.href, connectionTimeoutMillis: 1_000 })
    try {
      await probe.connect()
      await probe.query('SELECT 1')
      await probe.end()
      break
    } catch (error) {
      await probe.end().catch(() => {})
      if (Date.now() > deadline) {
        const log = readLog()
        await stop()
        throw new Error(`PgBouncer did not answer on port ${port} within 10 s (${String(error)}):\n${log}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  return { url: url.href, port, log: readLog, stop }
}

/** Whether `pgbouncer --version` runs here (for a quick check in scripts). */
export function pgbouncerVersion(): string | undefined {
  const path = pgbouncerTool().path
  if (!path) return undefined
  const result = spawnSync(path, ['--version'], { encoding: 'utf8' })
  return result.status === 0 ? result.stdout.split('\n')[0] : undefined
}
