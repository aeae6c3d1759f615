/**
 * The per-test set-up of the client's outbox tests: a fresh test server and a fresh outbox
 * directory before each test, stopped and removed after it, and a run to report on.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PrismaAPIClient } from 'pipeline-status-sdk/client'
import { TEST_SECRET, type TestServer, startTestServer } from './test-server.js'

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
