/**
 * The per-test set-up of the client's outbox tests: a fresh test server and a fresh outbox
 * directory before each test, stopped and removed after it, and a run to report on.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PrismaAPIClient, type PrismaAPIClientOptions, silentLogger } from 'pipeline-status-sdk/client'
import { afterEach, beforeEach } from 'vitest'
import { clientFactory } from './client-factory.js'
import { TEST_SECRET, type TestServer, startTestServer } from './test-server.js'
import { nearCeiling } from './outbox-jitter.js'

/** What {@link useServerAndOutbox} gives a test file; `server` and `dir` are the current test's. */
export interface ServerAndOutbox {
  /** The test's server, started before each test and stopped after it. */
  readonly server: TestServer
  /** The test's empty outbox directory, removed after it. */
  readonly dir: string
  /** A client on the file's defaults plus `overrides`, closed after the test (before the server stops). */
  makeClient(overrides?: PrismaAPIClientOptions): PrismaAPIClient
  /** Creates run `id` on the test's server (see {@link createRunOn}). */
  createRun(id?: string): Promise<string>
}

/**
 * The outbox tests' client defaults: quick network retries (one), silent, and an outbox with long
 * background delays, so that the tests flush explicitly unless they test the timer.
 */
export function outboxClientDefaults({ server, dir }: { server: TestServer; dir: string }): PrismaAPIClientOptions {
  return {
    baseUrl: server.origin,
    secret: TEST_SECRET,
    logger: silentLogger,
    retry: { limit: 1, baseDelayMs: 5, maxDelayMs: 5 },
    outbox: { dir, retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling },
  }
}

/**
 * Registers the file's set-up: a server and an outbox directory per test
 * ({@link startServerAndOutbox}, {@link stopServerAndOutbox}), and clients made on
 * `defaults` (read when a client is made), closed after each test before the server stops.
 */
export function useServerAndOutbox(
  defaults: (fixture: { server: TestServer; dir: string }) => PrismaAPIClientOptions = outboxClientDefaults,
): ServerAndOutbox {
  let current: { server: TestServer; dir: string } | undefined
  const now = () => {
    if (!current) throw new Error('useServerAndOutbox: no test is running')
    return current
  }
  beforeEach(async () => {
    current = await startServerAndOutbox()
  })
  afterEach(async () => {
    const { server, dir } = now()
    current = undefined
    await stopServerAndOutbox(server, dir)
  })
  // After the afterEach above, so that clients close before the server stops.
  const clients = clientFactory(() => defaults(now()))
  return {
    get server() {
      return now().server
    },
    get dir() {
      return now().dir
    },
    makeClient: (overrides) => clients.make(overrides),
    createRun: (id) => createRunOn(now().server, id),
  }
}

/** Starts a test server and makes an empty outbox directory for one test. */
export async function startServerAndOutbox(): Promise<{ server: TestServer; dir: string }> {
  return { server: await startTestServer(), dir: mkdtempSync(join(tmpdir(), 'pipeline-outbox-')) }
}

/** Stops what {@link startServerAndOutbox} started. */
export async function stopServerAndOutbox(server: TestServer, dir: string): Promise<void> {
  await server.stop()
  rmSync(dir, { recursive: true, force: true })
}

/** Creates run `id` on `server` with a client of its own, then forgets the requests that took. */
export async function createRunOn(server: TestServer, id = 'run_1'): Promise<string> {
  await new PrismaAPIClient({ baseUrl: server.origin, secret: TEST_SECRET }).createRun(id)
  server.requests.length = 0
  return id
}
