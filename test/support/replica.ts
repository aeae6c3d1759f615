/**
 * A real streaming replica for the read-replica tests: a throwaway PostgreSQL 15 primary made
 * with `initdb` in a temporary folder (`wal_level=replica`, a `replication` entry with trust in
 * its `pg_hba.conf`) on a free port, and a standby made from it with
 * `pg_basebackup -R -X stream` on another free port. Both run as the `postgres` user with
 * `pg_ctl`; the system's cluster on 5432 is never touched. `stop()` stops both
 * (`pg_ctl stop -m immediate`) and removes their folders. Replication can be paused and resumed
 * on the standby (`pg_wal_replay_pause()` / `pg_wal_replay_resume()`).
 *
 * It needs the PostgreSQL server binaries (Debian's `postgresql-15`): see {@link replicaTool}.
 */
import { spawnSync } from 'node:child_process'
import { appendFileSync, chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort } from './pgbouncer.js'

// The requirement lives beside the others (the closing SKIPPED line reads them there).
export { replicaTool } from './optional-tools.js'

/** A running primary and its streaming standby. */
export interface ReplicaCluster {
  /** The primary's `postgres` database. */
  primaryUrl: string
  /** The standby's `postgres` database (read-only). */
  replicaUrl: string
  /** Stops replaying WAL on the standby (it keeps receiving it); resolves once paused. */
  pause(): Promise<void>
  /** Resumes replay; resolves once the standby has replayed everything the primary wrote before the call (at most 15 s). */
  resume(): Promise<void>
  /** Resolves once the standby has replayed everything the primary wrote so far (at most 15 s). */
  caughtUp(): Promise<void>
  /** The primary's postmaster process id (for a benchmark that measures its CPU). */
  primaryPid(): number
  /** Stops both servers and removes their folders. */
  stop(): Promise<void>
}

/** Runs a program as `postgres` (when the tests run as root), throwing with its output on failure. */
function run(binary: string, args: string[], timeoutMs = 60_000): void {
  const asRoot = process.getuid?.() === 0
  const result = asRoot
    ? spawnSync('runuser', ['-u', 'postgres', '--', binary, ...args], { encoding: 'utf8', timeout: timeoutMs })
    : spawnSync(binary, args, { encoding: 'utf8', timeout: timeoutMs })
  if (result.status !== 0) {
    throw new Error(`${binary} ${args.join(' ')} failed (${result.status ?? result.signal}): ${result.stdout}${result.stderr}${result.error ? String(result.error) : ''}`)
  }
}

async function query<Row>(url: string, sql: string): Promise<Row[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 })
  await client.connect()
  try {
    return (await client.query(sql)).rows as Row[]
  } finally {
    await client.end()
  }
}

/** Retries `check` every 100 ms until it resolves truthy, or throws after `ms`. */
async function waitFor(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms
  let last: unknown
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (error) {
      last = error
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${what} within ${ms} ms${last ? `: ${String(last)}` : ''}`)
}

/**
 * Makes the primary and the standby and waits until the standby accepts connections (at most
 * 30 s). The caller migrates the primary (the standby follows).
 */
export async function startReplicaCluster(binDir: string): Promise<ReplicaCluster> {
  const root = mkdtempSync(join(tmpdir(), 'pss-replica-'))
  chmodSync(root, 0o777)
  const primaryDir = join(root, 'primary')
  const standbyDir = join(root, 'standby')
  const [primaryPort, standbyPort] = [await freePort(), await freePort()]
  const bin = (name: string) => join(binDir, name)
  const started: string[] = []
  // A test process that dies without stop() would leave both servers running: stop them on exit too.
  const onExit = () => stopNow()
  process.once('exit', onExit)
  const stopNow = () => {
    process.off('exit', onExit)
    for (const dir of started.splice(0).reverse()) {
      try {
        run(bin('pg_ctl'), ['stop', '-D', dir, '-m', 'immediate', '-w', '-t', '20'], 30_000)
      } catch {
        // Already stopped, or never came up: the folder goes anyway.
      }
    }
    rmSync(root, { recursive: true, force: true })
  }
  const stop = async () => stopNow()
  try {
    run(bin('initdb'), ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'])
    appendFileSync(
      join(primaryDir, 'postgresql.conf'),
      [
        `port = ${primaryPort}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${root}'`,
        'wal_level = replica',
        'max_wal_senders = 4',
        'fsync = off',
        'shared_buffers = 16MB',
        'max_connections = 60',
        '',
      ].join('\n'),
    )
    appendFileSync(join(primaryDir, 'pg_hba.conf'), 'host replication all 127.0.0.1/32 trust\n')
    run(bin('pg_ctl'), ['start', '-D', primaryDir, '-w', '-t', '30', '-l', join(root, 'primary.log')])
    started.push(primaryDir)
    run(bin('pg_basebackup'), ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', standbyDir, '-R', '-X', 'stream'])
    // The standby's own port and socket; everything else (and standby.signal, primary_conninfo) came with the backup.
    appendFileSync(join(standbyDir, 'postgresql.conf'), `port = ${standbyPort}\nhot_standby = on\n`)
    run(bin('pg_ctl'), ['start', '-D', standbyDir, '-w', '-t', '30', '-l', join(root, 'standby.log')])
    started.push(standbyDir)
  } catch (error) {
    await stop()
    throw error
  }
  const primaryUrl = `postgresql://postgres@127.0.0.1:${primaryPort}/postgres`
  const replicaUrl = `postgresql://postgres@127.0.0.1:${standbyPort}/postgres`
  const caughtUp = async () => {
    const [row] = await query<{ lsn: string }>(primaryUrl, 'SELECT pg_current_wal_insert_lsn()::text AS lsn')
    const lsn = row?.lsn ?? '0/0'
    await waitFor('the standby did not replay the primary\'s WAL', 15_000, async () => {
      const [row] = await query<{ done: boolean }>(replicaUrl, `SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn AS done`)
      return row?.done === true
    })
  }
  try {
    await waitFor('the standby did not accept connections', 30_000, async () => (await query(replicaUrl, 'SELECT 1')).length === 1)
  } catch (error) {
    await stop()
    throw error
  }
  return {
    primaryUrl,
    replicaUrl,
    caughtUp,
    pause: async () => {
      await query(replicaUrl, 'SELECT pg_wal_replay_pause()')
      await waitFor('the standby did not pause replay', 10_000, async () => {
        const [row] = await query<{ state: string }>(replicaUrl, 'SELECT pg_get_wal_replay_pause_state() AS state')
        return row?.state === 'paused'
      })
    },
    resume: async () => {
      await query(replicaUrl, 'SELECT pg_wal_replay_resume()')
      await caughtUp()
    },
    primaryPid: () => Number(readFileSync(join(primaryDir, 'postmaster.pid'), 'utf8').split('\n')[0]),
    stop,
  }
}
