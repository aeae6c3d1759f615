/**
 * `pipeline-status migrate` as a user runs it: the built bin (global setup builds it) in a child
 * process. A fresh database migrated by the command serves the examples' database layer and the
 * handlers; a database with an app's own history is refused; `--into` writes one folder into an
 * app's migrations that then deploys after the app's own tables, and refuses a folder that does not
 * exist; `--schema` beside an app's own history, with the handlers on it (the engine-free set-up);
 * `--print`, `--print --after` and usage errors.
 */
import { spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import { PrismaPGlite } from 'pglite-prisma-adapter'
import { PrismaPg } from '@prisma/adapter-pg'
import { applyMigrations } from 'pipeline-status-sdk/pg'
import { createPipelineStatusHandlers, createPrismaStore } from 'pipeline-status-sdk/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDatabase } from '../../examples/shared/database.js'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { usesPostgres } from '../setup/test-database.js'
import { PACKAGE_VERSION } from '../../src/contract/package-info.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const pkg = JSON.parse(await readFile(`${root}/package.json`, 'utf8')) as { bin: Record<string, string> }
const bin = `${root}/${pkg.bin['pipeline-status']}`
const PACKAGE_MIGRATIONS = (await readdir(join(root, 'prisma/migrations'), { withFileTypes: true }))
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort()

/** Runs the bin to its end (killed after 30 s, so a hang fails the test with exit code null). */
function run(args: string[], env: NodeJS.ProcessEnv = {}, cwd = root, script = bin) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd,
      env: { ...process.env, DATABASE_URL: '', DIRECT_DATABASE_URL: '', ...env },
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

let scratch: string
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'pss-migrate-cli-'))
})
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true })
})

/** An app with its own migration history: one migration that creates its "User" table. */
async function appWithOwnMigrations(name: string): Promise<string> {
  const dir = join(scratch, name, 'prisma/migrations')
  await mkdir(join(dir, '20250101000000_app_init'), { recursive: true })
  await writeFile(join(dir, 'migration_lock.toml'), 'provider = "postgresql"\n')
  await writeFile(
    join(dir, '20250101000000_app_init/migration.sql'),
    '-- CreateTable\nCREATE TABLE "User" (\n    "id" TEXT NOT NULL,\n\n    CONSTRAINT "User_pkey" PRIMARY KEY ("id")\n);\n',
  )
  return join(scratch, name)
}

describe('pipeline-status migrate --into and --print', () => {
  it("--into writes the package schema as one folder of the app's history, once; the app's migrations then deploy on an empty database", async () => {
    const app = await appWithOwnMigrations('app-into')
    const first = await run(['migrate', '--into', 'prisma/migrations'], {}, app)
    expect(first.stderr).toBe('')
    expect(first.code).toBe(0)
    const folders = (await readdir(join(app, 'prisma/migrations'))).sort()
    expect(folders).toHaveLength(3)
    const written = folders[1]!
    expect(folders).toEqual(['20250101000000_app_init', written, 'migration_lock.toml'])
    expect(written).toMatch(/^\d{14}_pipeline_status$/)
    expect(first.stdout).toBe(
      `pipeline-status migrate: wrote prisma/migrations/${written} (${PACKAGE_MIGRATIONS.join(', ')}).\n` +
        "Next: apply it with your app's migrations: npx prisma migrate deploy (npx prisma migrate dev in development).\n" +
        "Both run Prisma's schema engine, which the Prisma CLI downloads first. Where that download is blocked, delete the\n" +
        "folder again and keep the package's tables in a PostgreSQL schema of their own, which needs no engine:\n" +
        'npx pipeline-status migrate --schema pipeline (docs/operations.md, "When the Prisma engine cannot be downloaded").\n',
    )
    const sql = await readFile(join(app, 'prisma/migrations', written, 'migration.sql'), 'utf8')
    expect([...sql.matchAll(/^-- pipeline-status-sdk migration: (\S+)$/gm)].map((match) => match[1])).toEqual(PACKAGE_MIGRATIONS)

    const again = await run(['migrate', '--into', 'prisma/migrations'], {}, app)
    expect(again).toMatchObject({ code: 0, stderr: '' })
    expect(again.stdout).toBe(`pipeline-status migrate: nothing to write: prisma/migrations holds all ${PACKAGE_MIGRATIONS.length} migrations of pipeline-status-sdk\n`)
    expect((await readdir(join(app, 'prisma/migrations'))).sort()).toEqual(folders)

    // The app deploys its own history (here with applyMigrations over the app's folder, as
    // prisma migrate deploy would): its table first, then the package's, and both work.
    const pglite = new PGlite()
    const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) })
    try {
      const result = await applyMigrations(pglite, { migrationsDir: join(app, 'prisma/migrations') })
      expect(result.applied).toEqual(['20250101000000_app_init', written])
      await pglite.query(`INSERT INTO "User" (id) VALUES ('u1')`)
      await prisma.pipelineRun.create({ data: { id: 'after-into' } })
      expect(await prisma.pipelineRun.findUnique({ where: { id: 'after-into' } })).toMatchObject({ status: 'PENDING', version: 0 })
      expect((await pglite.query(`SELECT count(*)::int AS n FROM "WebhookMessage"`)).rows).toEqual([{ n: 0 }])
    } finally {
      await prisma.$disconnect()
      await pglite.close()
    }
  }, 180_000)

  it('--into refuses a folder that does not exist (a typo), naming it and the fix, and creates nothing', async () => {
    const app = await appWithOwnMigrations('app-typo')
    const result = await run(['migrate', '--into', 'prisma/migration'], {}, app)
    expect(result).toMatchObject({ code: 1, stdout: '' })
    expect(result.stderr).toBe(
      'pipeline-status: The folder prisma/migration does not exist: create it (mkdir -p prisma/migration) or check the path. ' +
        "--into writes into your app's migrations folder (usually prisma/migrations, next to prisma/schema.prisma)\n",
    )
    expect((await readdir(join(app, 'prisma'))).sort()).toEqual(['migrations'])
  })

  it('--into refuses a history whose own migration already creates PipelineRun, and writes nothing', async () => {
    const app = await appWithOwnMigrations('app-own-copy')
    await mkdir(join(app, 'prisma/migrations/20250102000000_pipeline_status'))
    await writeFile(join(app, 'prisma/migrations/20250102000000_pipeline_status/migration.sql'), 'CREATE TABLE "PipelineRun" ("id" TEXT NOT NULL);\n')
    const result = await run(['migrate', '--into', 'prisma/migrations'], {}, app)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('20250102000000_pipeline_status/migration.sql already creates "PipelineRun"')
    expect((await readdir(join(app, 'prisma/migrations'))).length).toBe(3)
  })

  it('--print writes every migration in order for a DBA; --schema selects a schema first', async () => {
    const plain = await run(['migrate', '--print'])
    expect(plain).toMatchObject({ code: 0, stderr: '' })
    expect([...plain.stdout.matchAll(/^-- pipeline-status-sdk migration: (\S+)$/gm)].map((match) => match[1])).toEqual(PACKAGE_MIGRATIONS)
    for (const name of PACKAGE_MIGRATIONS) {
      expect(plain.stdout).toContain((await readFile(join(root, 'prisma/migrations', name, 'migration.sql'), 'utf8')).trimEnd())
    }
    // Before anything is created, the search_path is narrowed to current_schema() (where the tables
    // go), so the functions' SET search_path FROM CURRENT pins that schema, not "$user", public.
    const pin = plain.stdout.indexOf("PERFORM pg_catalog.set_config('search_path', pg_catalog.quote_ident(pg_catalog.current_schema()), false);")
    expect(pin).toBeGreaterThan(0)
    expect(pin).toBeLessThan(plain.stdout.indexOf('-- pipeline-status-sdk migration: '))
    expect(plain.stdout).not.toMatch(/^SET search_path/m)

    const inSchema = await run(['migrate', '--print', '--schema', 'status'])
    expect(inSchema.stdout).toContain('\nCREATE SCHEMA IF NOT EXISTS "status";\nSET search_path TO "status";\n\n-- pipeline-status-sdk migration: ')
    expect(inSchema.stdout).not.toContain('set_config')
    // The printed script creates the tables when run as one script.
    const pglite = new PGlite()
    try {
      await pglite.exec(inSchema.stdout)
      expect((await pglite.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'status' ORDER BY 1`)).rows).toEqual([
        { tablename: 'PipelineCatalogue' },
        { tablename: 'PipelineRun' },
        { tablename: 'StageOutput' },
        { tablename: 'StageOutputChunk' },
        { tablename: 'WebhookMessage' },
      ])
    } finally {
      await pglite.close()
    }
  }, 180_000)

  it('--print --after writes only the later migrations, for a DBA upgrading a database printed before', async () => {
    const [, second, ...later] = PACKAGE_MIGRATIONS
    const last = PACKAGE_MIGRATIONS.at(-1)!
    const full = await run(['migrate', '--print'])
    // Every script ends naming its last migration and the command for the next upgrade.
    expect(full.stdout.endsWith(`\n-- The last migration of pipeline-status-sdk here is ${last}: after upgrading pipeline-status-sdk, print only what is new with\n-- npx pipeline-status migrate --print --after ${last}\n`)).toBe(true)

    const upgrade = await run(['migrate', '--print', '--after', second!])
    expect(upgrade).toMatchObject({ code: 0, stderr: '' })
    expect([...upgrade.stdout.matchAll(/^-- pipeline-status-sdk migration: (\S+)$/gm)].map((match) => match[1])).toEqual(later)
    expect(upgrade.stdout).toContain(`the SQL of its ${later.length} migrations after ${second}`)

    // A database that ran the first two migrations, upgraded with the script, equals one that ran all.
    const upgraded = new PGlite()
    const fresh = new PGlite()
    try {
      for (const name of PACKAGE_MIGRATIONS.slice(0, 2)) await upgraded.exec(await readFile(join(root, 'prisma/migrations', name, 'migration.sql'), 'utf8'))
      await upgraded.exec(upgrade.stdout)
      await fresh.exec(full.stdout)
      const shape = `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2`
      expect((await upgraded.query(shape)).rows).toEqual((await fresh.query(shape)).rows)
      expect((await upgraded.query(shape)).rows.length).toBeGreaterThan(0)
    } finally {
      await upgraded.close()
      await fresh.close()
    }

    // Nothing newer: comments only, saying so; not one statement (no search_path, no schema).
    for (const args of [[], ['--schema', 'status']]) {
      const current = await run(['migrate', '--print', '--after', last, ...args])
      expect(current).toMatchObject({ code: 0, stderr: '' })
      expect(current.stdout).toContain(`-- pipeline-status-sdk ${PACKAGE_VERSION}: nothing is newer than ${last}, so there is nothing to run.\n`)
      expect(current.stdout.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('--'))).toEqual([])
      expect(current.stdout).not.toContain('the SQL of')
    }
  }, 180_000)

  it('--print --after --schema (an upgrade) creates no schema: it stops first, naming the schema, unless it exists and holds "PipelineRun"', async () => {
    const [first, second, ...later] = PACKAGE_MIGRATIONS
    const upgrade = await run(['migrate', '--print', '--after', second!, '--schema', 'status'])
    expect(upgrade).toMatchObject({ code: 0, stderr: '' })
    expect(upgrade.stdout).not.toContain('CREATE SCHEMA')
    const check = upgrade.stdout.indexOf('SET search_path TO "status";\n-- An upgrade runs on the schema that holds the tables')
    expect(check).toBeGreaterThan(0)
    expect(check).toBeLessThan(upgrade.stdout.indexOf('-- pipeline-status-sdk migration: '))
    expect(upgrade.stdout).toContain('psql -1 -v ON_ERROR_STOP=1 -f pipeline-status.sql')
    const schemas = `SELECT nspname AS name FROM pg_namespace WHERE nspname IN ('status', 'statu') ORDER BY 1`
    const db = new PGlite()
    try {
      // A mistyped schema: stopped before anything, and no empty schema is left behind.
      const mistyped = await run(['migrate', '--print', '--after', second!, '--schema', 'statu'])
      await expect(db.exec(mistyped.stdout)).rejects.toThrow('pipeline-status-sdk: schema statu does not exist: an upgrade (--print --after) runs on the schema that holds the package\'s tables')
      expect((await db.query(schemas)).rows).toEqual([])
      // A schema without the tables: stopped too, naming it.
      await db.exec('CREATE SCHEMA status')
      await expect(db.exec(upgrade.stdout)).rejects.toThrow('pipeline-status-sdk: schema status has no table "PipelineRun"')
      expect((await db.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'status'`)).rows).toEqual([{ n: 0 }])
      // The schema that has the first two migrations: upgraded.
      for (const name of [first!, second!]) {
        await db.exec(`SET search_path TO status;\n${await readFile(join(root, 'prisma/migrations', name, 'migration.sql'), 'utf8')}`)
      }
      await db.exec(upgrade.stdout)
      expect(later.length).toBeGreaterThan(0)
      expect((await db.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'status'`)).rows).toEqual([{ n: 5 }])
    } finally {
      await db.close()
    }
    // Without --schema, the same check on the session's current schema: a database without the
    // tables stops first, naming it, instead of failing on a missing table further on.
    const plain = await run(['migrate', '--print', '--after', second!])
    expect(plain.stdout.indexOf('-- An upgrade runs on the schema that holds the tables')).toBeLessThan(plain.stdout.indexOf('-- pipeline-status-sdk migration: '))
    const empty = new PGlite()
    try {
      await expect(empty.exec(plain.stdout)).rejects.toThrow('pipeline-status-sdk: schema public has no table "PipelineRun"')
      expect((await empty.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`)).rows).toEqual([{ n: 0 }])
    } finally {
      await empty.close()
    }
  }, 180_000)

  it('answers wrong arguments with exit code 2 and the fix', async () => {
    for (const [args, message] of [
      [['migrate', '--into', 'x', '--print'], 'give --into or --print, not both'],
      [['migrate'], 'give the database with --database-url or DIRECT_DATABASE_URL (or DATABASE_URL): a session connection, not a transaction pooler'],
      [['migrate', '--into', 'x', '--schema', 's'], '--into writes unqualified SQL'],
      [['migrate', '--print', '--database-url', 'postgresql://x/y'], '--print touches no database: drop --database-url'],
      [['migrate', '--database-url', 'mysql://x/y'], 'migrate: --database-url (DIRECT_DATABASE_URL) must be a postgresql:// (or postgres://) URL, got "mysql://x/y": its scheme is \'mysql:\'. Fix: set DIRECT_DATABASE_URL to postgresql://USER:PASSWORD@HOST:5432/DATABASE'],
      // pg ignores the scheme, so a typo would connect by accident: the same rule as createPgConnections, and no password shown.
      [['migrate', '--database-url', 'postgressql://app:hunter2@db:5432/app'], 'migrate: --database-url (DIRECT_DATABASE_URL) must be a postgresql:// (or postgres://) URL, got "postgressql://app:***@db:5432/app"'],
      [['migrate', '--int', 'x'], "unknown option '--int'; did you mean '--into'?"],
      [['migrate', '--after', PACKAGE_MIGRATIONS[0]!], '--after goes with --print'],
      [['migrate', '--print', '--after', '20990101000000_nope'], `--after 20990101000000_nope is not a migration of pipeline-status-sdk`],
      // 32 two-byte characters are 64 bytes: PostgreSQL would keep the first 63 and report nothing.
      [['migrate', '--schema', 'ü'.repeat(32), '--database-url', 'postgresql://x/y'], `--schema: schema name "${'ü'.repeat(32)}" is 64 bytes in UTF-8, over PostgreSQL's limit of 63 bytes for a name (NAMEDATALEN − 1)`],
      [['migrate', '--print', '--schema', 'p'.repeat(64)], `--schema: schema name "${'p'.repeat(64)}" is 64 bytes in UTF-8, over PostgreSQL's limit of 63 bytes`],
      [['migrate', '--print', '--after', PACKAGE_MIGRATIONS[0]!, '--schema', 'p'.repeat(70)], 'is 70 bytes in UTF-8'],
    ] as const) {
      const result = await run([...args])
      expect(result.code, args.join(' ')).toBe(2)
      expect(result.stderr, args.join(' ')).toContain(message)
      expect(result.stderr).toContain('Run `pipeline-status migrate --help`')
    }
    const help = await run(['migrate', '--help'])
    expect(help.code).toBe(0)
    for (const way of ['pipeline-status migrate\n', 'pipeline-status migrate --into prisma/migrations', 'pipeline-status migrate --print']) {
      expect(help.stdout).toContain(way)
    }
  })
})

describe('pipeline-status migrate against a database it cannot reach', () => {
  it('names the host and port (never the password) and what to check, exit code 1', async () => {
    // Port 1 on the loopback is closed: the connection is refused at once, no timeout involved.
    const result = await run(['migrate'], { DIRECT_DATABASE_URL: 'postgresql://app:hunter2@127.0.0.1:1/app' })
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain('pipeline-status: Could not connect to the database at 127.0.0.1:1 (within 10000 ms): ')
    expect(result.stderr).toContain('ECONNREFUSED')
    expect(result.stderr).toContain(
      "Nothing was changed. Check DIRECT_DATABASE_URL (or --database-url): that it names the database's own host and port, that the host is reachable from here (firewall, VPN, security group), and that the database is up and accepts connections.",
    )
    expect(result.stderr).not.toContain('hunter2')
  })

  it('refuses a DATABASE_URL with a mistyped scheme, naming the variable', async () => {
    const result = await run(['migrate'], { DATABASE_URL: 'postgresq://app:hunter2@db/app' })
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('pipeline-status: migrate: DATABASE_URL must be a postgresql:// (or postgres://) URL, got "postgresq://app:***@db/app": its scheme is \'postgresq:\'. Fix: set DATABASE_URL to postgresql://USER:PASSWORD@HOST:5432/DATABASE')
    expect(result.stderr).not.toContain('hunter2')
  })
})

describe('pipeline-status migrate in an app without pg', () => {
  it('finds the installed package\'s migrations for --print and --into, and says to install pg to migrate a database', async () => {
    // The package as installed in an app: its dist, prisma/, package.json and its two
    // dependencies, and nothing else (no pg).
    const app = join(scratch, 'app-no-pg')
    const installed = join(app, 'node_modules/pipeline-status-sdk')
    await mkdir(installed, { recursive: true })
    for (const part of ['dist', 'prisma', 'package.json']) await cp(join(root, part), join(installed, part), { recursive: true })
    for (const dependency of ['zod', 'ky']) await symlink(join(root, 'node_modules', dependency), join(app, 'node_modules', dependency), 'dir')
    const installedBin = join(installed, pkg.bin['pipeline-status']!)

    const printed = await run(['migrate', '--print'], {}, app, installedBin)
    expect(printed).toMatchObject({ code: 0, stderr: '' })
    expect([...printed.stdout.matchAll(/^-- pipeline-status-sdk migration: (\S+)$/gm)].map((match) => match[1])).toEqual(PACKAGE_MIGRATIONS)
    await mkdir(join(app, 'prisma/migrations'), { recursive: true })
    const into = await run(['migrate', '--into', 'prisma/migrations'], {}, app, installedBin)
    expect(into).toMatchObject({ code: 0, stderr: '' })
    expect((await readdir(join(app, 'prisma/migrations'))).filter((name) => name.endsWith('_pipeline_status'))).toHaveLength(1)

    const applied = await run(['migrate', '--database-url', 'postgresql://127.0.0.1:1/none'], {}, app, installedBin)
    expect(applied.code).toBe(1)
    expect(applied.stderr).toBe('pipeline-status: `pipeline-status migrate` needs pg, an optional peer dependency: npm install pg (or use --into / --print)\n')
  })
})

describe.runIf(usesPostgres())('pipeline-status migrate on PostgreSQL', () => {
  const server = process.env['DATABASE_URL']!
  const created: string[] = []
  async function emptyDatabase(): Promise<string> {
    const name = `pss_migrate_cli_${Math.random().toString(16).slice(2, 10)}`
    const admin = new pg.Client({ connectionString: server })
    await admin.connect()
    try {
      await admin.query(`CREATE DATABASE "${name}"`)
    } finally {
      await admin.end()
    }
    created.push(name)
    const url = new URL(server)
    url.pathname = `/${name}`
    return url.toString()
  }
  afterAll(async () => {
    const admin = new pg.Client({ connectionString: server })
    await admin.connect()
    try {
      for (const name of created) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    } finally {
      await admin.end()
    }
  })

  it('migrates a fresh database from DIRECT_DATABASE_URL, then the examples run on it; a second run changes nothing', async () => {
    const url = await emptyDatabase()
    const first = await run(['migrate'], { DIRECT_DATABASE_URL: url, DATABASE_URL: 'postgresql://unused.invalid/db' })
    expect(first.stderr).toBe('')
    expect(first.stdout).toBe(`pipeline-status migrate: applied ${PACKAGE_MIGRATIONS.length} migrations to schema "public" (${PACKAGE_MIGRATIONS.join(', ')})\n`)
    expect(first.code).toBe(0)
    const second = await run(['migrate', '--database-url', url])
    expect(second).toMatchObject({ code: 0, stderr: '' })
    expect(second.stdout).toBe(`pipeline-status migrate: nothing to apply: all ${PACKAGE_MIGRATIONS.length} migrations of pipeline-status-sdk are applied to schema "public"\n`)

    // examples/shared/database.ts (the Express example and the demo) finds nothing left to apply.
    const db = await openDatabase({ url })
    try {
      await db.prisma.pipelineRun.create({ data: { id: 'cli-migrated' } })
      expect(await db.prisma.pipelineRun.count()).toBe(1)
      expect(await db.prisma.$queryRawUnsafe('SELECT count(*)::int AS n FROM "_prisma_migrations"')).toEqual([{ n: PACKAGE_MIGRATIONS.length }])
    } finally {
      await db.close()
    }
  })

  it('--print without --schema pins the store functions to the schema its tables go to, not the session\'s "$user", public; --schema keeps its own', async () => {
    const url = await emptyDatabase()
    const functions = `SELECT n.nspname AS schema, p.proname AS name, p.proconfig AS config FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname LIKE 'pipeline\\_status\\_%' ORDER BY 2`
    const tables = `SELECT schemaname AS schema, count(*)::int AS n FROM pg_tables WHERE tablename IN ('PipelineCatalogue', 'PipelineRun', 'StageOutput', 'StageOutputChunk', 'WebhookMessage') GROUP BY 1`
    const plain = await run(['migrate', '--print'])
    const inSchema = await run(['migrate', '--print', '--schema', 'status'])
    expect(plain).toMatchObject({ code: 0, stderr: '' })
    expect(inSchema).toMatchObject({ code: 0, stderr: '' })

    // A DBA session as psql opens it: "$user" first (no schema of that name exists yet), then a
    // schema whose name needs quoting, then public. Unqualified CREATE TABLE goes to the first
    // existing one, current_schema(); the script is sent as one simple query, as psql -1 would.
    const dba = new pg.Client({ connectionString: url })
    await dba.connect()
    try {
      await dba.query('CREATE SCHEMA "Pipeline Status"')
      await dba.query('SET search_path TO "$user", "Pipeline Status", public')
      await dba.query(plain.stdout)
      expect((await dba.query(tables)).rows).toEqual([{ schema: 'Pipeline Status', n: 5 }])
      const pinned = (await dba.query<{ schema: string; name: string; config: string[] }>(functions)).rows
      expect(pinned.map((fn) => fn.name.replace(/_[0-9a-f]{8}$/, ''))).toEqual([
        'pipeline_status_insert_run',
        'pipeline_status_read_run_stage',
        'pipeline_status_touch_run',
        'pipeline_status_write_run_stage',
      ])
      for (const fn of pinned) expect(fn, fn.name).toMatchObject({ schema: 'Pipeline Status', config: ['search_path="Pipeline Status"'] })

      // The --schema script, in a second schema of the same database: its own SET, as before.
      await dba.query('SET search_path TO "$user", public')
      await dba.query(inSchema.stdout)
      const inStatus = (await dba.query<{ schema: string; config: string[] }>(functions)).rows.filter((fn) => fn.schema === 'status')
      expect(inStatus.map((fn) => fn.config)).toEqual([['search_path=status'], ['search_path=status'], ['search_path=status'], ['search_path=status']])

      // No existing schema on the path: the script stops at its head, naming the path and the fix.
      await dba.query('SET search_path TO "$user", nowhere')
      await expect(dba.query(plain.stdout)).rejects.toThrow(
        'pipeline-status-sdk: no schema to create the tables in: no schema of search_path "$user", nowhere exists. Set search_path to an existing schema, or print the script with --schema NAME',
      )
    } finally {
      await dba.end()
    }
  })

  it("refuses a database with an app's own history, exit code 1, naming --into; --schema pipeline gives the package a schema of its own there, on which the handlers work with the adapter's and the store's schema option", async () => {
    const url = await emptyDatabase()
    const app = await appWithOwnMigrations('app-db')
    await applyMigrations(url, { migrationsDir: join(app, 'prisma/migrations') })
    const refused = await run(['migrate', '--database-url', url])
    expect(refused.code).toBe(1)
    expect(refused.stdout).toBe('')
    expect(refused.stderr).toMatch(/^pipeline-status: The migration history of schema "public" holds migrations that are not pipeline-status-sdk's \(20250101000000_app_init\)/)
    expect(refused.stderr).toContain('pipeline-status migrate --into prisma/migrations')

    const own = await run(['migrate', '--database-url', url, '--schema', 'pipeline'])
    expect(own.stderr).toBe('')
    expect(own.stdout).toBe(`pipeline-status migrate: applied ${PACKAGE_MIGRATIONS.length} migrations to schema "pipeline" (${PACKAGE_MIGRATIONS.join(', ')})\n`)

    // The engine-free set-up of docs/operations.md: the app's client on schema "pipeline" (the
    // adapter's schema option) and the store told the same; the app's own history is untouched.
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url }, { schema: 'pipeline' }) })
    const pool = new pg.Pool({ connectionString: url, max: 2 })
    try {
      for (const store of [createPrismaStore({ prisma, schema: 'pipeline' }), createPrismaStore({ prisma, schema: 'pipeline', pool })]) {
        const handlers = createPipelineStatusHandlers({ store, secret: 'schema-secret', logger: { warn: () => {}, error: () => {} } })
        const runId = `in-schema-${Math.random().toString(16).slice(2, 10)}`
        const send = (path: string, body?: unknown) =>
          handlers.fetch(
            new Request(`http://app.test/api/pipeline${path}`, {
              method: body === undefined ? 'GET' : 'POST',
              headers: { 'x-webhook-secret': 'schema-secret', 'content-type': 'application/json' },
              ...(body === undefined ? {} : { body: JSON.stringify(body) }),
            }),
          )
        expect((await send('/runs', { id: runId })).status).toBe(201)
        expect((await send(`/${runId}/stage-update`, { stageNumber: 1, stageName: 'Input Processing', status: 'COMPLETED', output: '{}' })).status).toBe(200)
        expect(((await (await send(`/${runId}/status`)).json()) as { stages: Array<{ status: string }> }).stages.map((stage) => stage.status)).toEqual(['COMPLETED'])
        expect(await prisma.pipelineRun.findUnique({ where: { id: runId } })).toMatchObject({ status: 'PROCESSING' })
      }
    } finally {
      await pool.end()
      await prisma.$disconnect()
    }
    const direct = new pg.Client({ connectionString: url })
    await direct.connect()
    try {
      expect((await direct.query(`SELECT migration_name FROM public._prisma_migrations`)).rows).toEqual([{ migration_name: '20250101000000_app_init' }])
      expect((await direct.query(`SELECT count(*)::int AS n FROM pipeline."PipelineRun"`)).rows).toEqual([{ n: 2 }])
      expect((await direct.query(`SELECT to_regclass('public."PipelineRun"') AS t`)).rows).toEqual([{ t: null }])
    } finally {
      await direct.end()
    }
  })
})
