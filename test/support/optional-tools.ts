/**
 * Tests that need a program a fresh machine may not have: the Next.js end-to-end test drives
 * Chromium, and the Python runner and client tests need Python 3.9+ (nothing else: the client is
 * standard library only). Without the program they are skipped, and `npm test` ends with one
 * line saying what was skipped and how to enable it (test/setup/skipped-tools-reporter.ts). CI sets {@link REQUIRE_ALL_VARIABLE}, which makes a
 * missing program fail those tests instead, so CI never skips them.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'

/** `PIPELINE_STATUS_REQUIRE_ALL=1` turns a missing program into a failing test (`.ci/run` sets it). */
export const REQUIRE_ALL_VARIABLE = 'PIPELINE_STATUS_REQUIRE_ALL'

/** A program some tests need, looked up on this machine. */
export interface OptionalTool {
  /** Which tests need it, for people. */
  tests: string
  /** The test file that holds them, relative to the repository. */
  file: string
  /** The program to run, or `undefined` when this machine lacks it. */
  path: string | undefined
  /** What is missing, when it is. */
  missing: string
  /** How to get it. */
  enable: string
}

/** Whether a missing program fails its tests instead of skipping them. */
export function requireAllTools(): boolean {
  const value = process.env[REQUIRE_ALL_VARIABLE]
  return value !== undefined && value !== '' && value !== '0'
}

/** Chromium for the browser tests: `CHROMIUM_PATH`, else Debian's `/usr/bin/chromium`. */
export function chromiumTool(file = 'test/e2e/nextjs.test.ts', tests = 'the Next.js example in Chromium'): OptionalTool {
  return programAt({ variable: 'CHROMIUM_PATH', fallback: '/usr/bin/chromium', name: 'Chromium', enable: 'apt-get install -y chromium, or set CHROMIUM_PATH to a Chromium or Chrome binary' }, file, tests)
}

/** The first Python 3.9+ (pyenv's or Debian's): the Python example runner and client need nothing else. */
export function pythonTool(file = 'test/examples/runners.test.ts', tests = 'the Python example runner'): OptionalTool {
  const found = ['python3', '/usr/bin/python3'].find(
    (candidate) => spawnSync(candidate, ['-c', 'import sys; sys.exit(sys.version_info < (3, 9))'], { stdio: 'ignore' }).status === 0,
  )
  return {
    tests,
    file,
    path: found,
    missing: 'no python3 (3.9 or later)',
    enable: 'apt-get install -y python3',
  }
}

/** Python 3.9+ for the Python client's unittest suite (clients/python). */
export function pythonClientTool(): OptionalTool {
  return pythonTool('test/clients/python-client.test.ts', 'the Python client (clients/python)')
}

/** Python 3.9+ for the Python client's tests against the real handlers (test/client/python-runner.test.ts). */
export function pythonHandlersTool(): OptionalTool {
  return pythonTool('test/client/python-runner.test.ts', 'the Python client against the real handlers')
}

/** Debian's PgBouncer binary for the pooler tests: `PGBOUNCER_PATH`, else `/usr/sbin/pgbouncer`. */
export function pgbouncerTool(file = 'test/prisma/pgbouncer.test.ts', tests = 'the tests behind PgBouncer'): OptionalTool {
  return programAt({ variable: 'PGBOUNCER_PATH', fallback: '/usr/sbin/pgbouncer', name: 'PgBouncer', enable: 'apt-get install -y pgbouncer, or set PGBOUNCER_PATH' }, file, tests)
}

/** A program at the path in the environment variable `variable`, else at `fallback`; `name` says which in the message when it is missing. */
function programAt(program: { variable: string; fallback: string; name: string; enable: string }, file: string, tests: string): OptionalTool {
  const path = process.env[program.variable] || program.fallback
  return { tests, file, path: existsSync(path) ? path : undefined, missing: `no ${program.name} at ${path}`, enable: program.enable }
}

/** PgBouncer for the LISTEN-through-a-pooler test (test/live/listen-liveness.test.ts). */
export function listenThroughPgBouncerTool(): OptionalTool {
  return pgbouncerTool('test/live/listen-liveness.test.ts', 'LISTEN through PgBouncer in transaction mode')
}

/**
 * Real PostgreSQL for tests that PGlite cannot stand in for (two sessions, LISTEN/NOTIFY across
 * connections, a pooler in front): its "path" is `DATABASE_URL`. Without it those tests are
 * skipped on every machine, CI's PGlite pass included, and named in the closing SKIPPED line.
 */
export function postgresTool(file: string, tests: string): OptionalTool {
  return {
    tests,
    file,
    path: process.env['DATABASE_URL'] || undefined,
    missing: 'no DATABASE_URL (they need a PostgreSQL server; PGlite has a single session)',
    enable: 'set DATABASE_URL=postgresql://USER@HOST:5432/DATABASE',
  }
}

/**
 * The PostgreSQL server binaries for a throwaway primary and its streaming standby
 * (test/support/replica.ts): `PG_BIN_DIR`, else Debian's `/usr/lib/postgresql/15/bin`.
 */
export function replicaTool(file = 'test/server/read-replica.test.ts', tests = 'reads from a streaming replica'): OptionalTool {
  const dir = process.env['PG_BIN_DIR'] || '/usr/lib/postgresql/15/bin'
  const ok = ['initdb', 'pg_ctl', 'pg_basebackup'].every((name) => existsSync(join(dir, name)))
  return {
    tests,
    file,
    path: ok ? dir : undefined,
    missing: `no initdb, pg_ctl and pg_basebackup in ${dir}`,
    enable: 'apt-get install -y postgresql-15, or set PG_BIN_DIR to the folder of its server binaries',
  }
}

/**
 * Every requirement a test file may skip for, so the closing SKIPPED line can say why each
 * skipped group was skipped. A file that skips for a reason listed nowhere is still named there.
 */
export function knownRequirements(): OptionalTool[] {
  return [
    chromiumTool(),
    chromiumTool('test/e2e/shared-connection.test.ts', 'a page following 20 runs in Chromium'),
    chromiumTool('test/react/components.test.ts', 'RunTimeline and RunList in Chromium'),
    chromiumTool('test/react/use-settled.test.ts', 'useSettled (RunList\'s typing pause) in Chromium'),
    chromiumTool('test/e2e/dashboard.test.ts', 'the dashboard in Chromium'),
    pythonTool(),
    pythonClientTool(),
    pythonHandlersTool(),
    postgresTool('test/live/across-instances.test.ts', 'live status across two instances'),
    postgresTool('test/live/default-listen.test.ts', 'the live mode on real PostgreSQL over real HTTP'),
    postgresTool('test/live/listen-liveness.test.ts', 'the LISTEN connection proven alive and delivering'),
    postgresTool('test/live/notify-after-commit.test.ts', 'LISTEN notifications sent after commit, in batches'),
    postgresTool('test/live/notify-connection.test.ts', 'notification batches on their own connection'),
    postgresTool('test/live/safety-poll.test.ts', 'the safety poll in LISTEN mode'),
    postgresTool('test/prisma/apply-migrations.test.ts', 'applyMigrations on a PostgreSQL server'),
    postgresTool('test/prisma/database.test.ts', 'openDatabase behind PgBouncer'),
    postgresTool('test/prisma/heartbeat-hot.test.ts', 'heap-only heartbeats on PostgreSQL'),
    postgresTool('test/prisma/non-utc-database.test.ts', 'databases in a non-UTC TimeZone'),
    postgresTool('test/prisma/pgbouncer.test.ts', 'PrismaStore behind PgBouncer'),
    listenThroughPgBouncerTool(),
    pgbouncerTool('test/prisma/apply-migrations.test.ts', 'applyMigrations behind PgBouncer'),
    pgbouncerTool('test/server/express-example-two-urls.test.ts', 'the Express example with a pooled and a direct URL'),
    pgbouncerTool('test/live/pg-connections.test.ts', 'createPgConnections behind PgBouncer'),
    postgresTool('test/live/pg-connections.test.ts', 'createPgConnections behind PgBouncer'),
    postgresTool('test/server/express-example-two-urls.test.ts', 'the Express example with a pooled and a direct URL'),
    replicaTool(),
  ]
}

/**
 * The program's path for a test file: `undefined` when it is missing (skip the tests), or
 * throws when it is missing and {@link REQUIRE_ALL_VARIABLE} is set.
 */
export function toolForTests(tool: OptionalTool): string | undefined {
  if (tool.path === undefined && requireAllTools()) {
    throw new Error(`${tool.tests} cannot run: ${tool.missing}. ${tool.enable} (${REQUIRE_ALL_VARIABLE} requires it).`)
  }
  return tool.path
}
