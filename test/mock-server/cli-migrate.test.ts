/**
 * `pipeline-status migrate` as a user runs it: the built bin (global setup builds it) in a child
 * process. A fresh database migrated by the command serves the examples' database layer and the
 * handlers; a database with an app's own history is refused; `--into` writes one folder into an
 * app's migrations that then deploys after the app's own tables; `--print` and usage errors.
 */
import { spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import { PrismaPGlite } from 'pglite-prisma-adapter'
import { applyMigrations } from 'pipeline-status-sdk/pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDatabase } from '../../examples/shared/database.js'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { usesPostgres } from '../setup/test-database.js'

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
      `pipeline-status migrate: wrote prisma/migrations/${written} (${PACKAGE_MIGRATIONS.join(', ')}); deploy it with your migrations (npx prisma migrate deploy)\n`,
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
    expect(plain.stdout).not.toContain('search_path')

    const inSchema = await run(['migrate', '--print', '--schema', 'status'])
    expect(inSchema.stdout).toContain('\nCREATE SCHEMA IF NOT EXISTS "status";\nSET search_path TO "status";\n')
    // The printed script creates the tables when run as one script.
    const pglite = new PGlite()
    try {
      await pglite.exec(inSchema.stdout)
      expect((await pglite.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'status' ORDER BY 1`)).rows).toEqual([
        { tablename: 'PipelineRun' },
        { tablename: 'StageOutput' },
        { tablename: 'WebhookMessage' },
      ])
    } finally {
      await pglite.close()
    }
  }, 180_000)

  it('answers wrong arguments with exit code 2 and the fix', async () => {
    for (const [args, message] of [
      [['migrate', '--into', 'x', '--print'], 'give --into or --print, not both'],
      [['migrate'], 'give the database with --database-url or DIRECT_DATABASE_URL (or DATABASE_URL): a session connection, not a transaction pooler'],
      [['migrate', '--into', 'x', '--schema', 's'], '--into writes unqualified SQL'],
      [['migrate', '--print', '--database-url', 'postgresql://x/y'], '--print touches no database: drop --database-url'],
      [['migrate', '--database-url', 'mysql://x/y'], "--database-url must be a postgresql:// URL, got 'mysql:…'"],
      [['migrate', '--int', 'x'], "unknown option '--int'; did you mean '--into'?"],
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

  it("refuses a database with an app's own history, exit code 1, naming --into; --schema migrates a schema of its own there", async () => {
    const url = await emptyDatabase()
    const app = await appWithOwnMigrations('app-db')
    await applyMigrations(url, { migrationsDir: join(app, 'prisma/migrations') })
    const refused = await run(['migrate', '--database-url', url])
    expect(refused.code).toBe(1)
    expect(refused.stdout).toBe('')
    expect(refused.stderr).toMatch(/^pipeline-status: The migration history of schema "public" holds migrations that are not pipeline-status-sdk's \(20250101000000_app_init\)/)
    expect(refused.stderr).toContain('pipeline-status migrate --into prisma/migrations')

    const own = await run(['migrate', '--database-url', url, '--schema', 'pipeline_status'])
    expect(own.stderr).toBe('')
    expect(own.stdout).toContain(`applied ${PACKAGE_MIGRATIONS.length} migrations to schema "pipeline_status"`)
  })
})
