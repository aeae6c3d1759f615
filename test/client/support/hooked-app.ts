/**
 * The real handlers on a `MemoryStore` behind a test server, with an `onRunCompleted` hook that
 * records each call, and an outbox folder: both new for each test. Call it before
 * `clientFactory` in a file, so that clients close (its `afterEach`, registered later, runs
 * first) before the server stops.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryStore, createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { afterEach, beforeEach } from 'vitest'
import { TEST_SECRET, type TestServer, startTestServer } from './test-server.js'

/** One call of the app's `onRunCompleted` hook: the run id and the `/complete` body. */
export interface HookCall {
  runId: string
  payload: Record<string, unknown>
}

/** The current test's server, outbox folder and hook calls (read them inside a test). */
export interface HookedApp {
  readonly app: TestServer
  readonly dir: string
  readonly hooked: HookCall[]
}

/** Registers the `beforeEach` that starts the app and makes the folder, and the `afterEach` that stops and removes them. */
export function useHookedApp(folderPrefix: string): HookedApp {
  let app: TestServer | undefined
  let dir = ''
  let hooked: HookCall[] = []
  beforeEach(async () => {
    hooked = []
    const calls = hooked
    const handlers = createPipelineStatusHandlers({
      store: new MemoryStore(),
      secret: TEST_SECRET,
      logger: { error: () => undefined, warn: () => undefined },
      onRunCompleted: (_tx, run, payload) => void calls.push({ runId: run.id, payload }),
    })
    app = await startTestServer({ handler: handlers.fetch })
    dir = mkdtempSync(join(tmpdir(), folderPrefix))
  })
  afterEach(async () => {
    await app?.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  return {
    get app() {
      if (!app) throw new Error('useHookedApp: the app exists only inside a test')
      return app
    },
    get dir() {
      return dir
    },
    get hooked() {
      return hooked
    },
  }
}
