/**
 * Child processes that live for one test. A test that fails or times out while its child runs
 * (a server waiting for SIGTERM, say) would otherwise leave it running into the next tests,
 * holding its port and its PGlite data folder while the next test opens that folder again.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process'
import { once } from 'node:events'
import { afterEach } from 'vitest'

/**
 * Returns a `spawn` whose children are stopped after each test: each one started in its own
 * process group (`detached`), and every group whose leader has not exited is sent SIGKILL after
 * the test, so what the child started (npm's script, tsx's own child) goes with it; the hook
 * waits for each leader's exit, so the next test starts with none of them running. Register it
 * after `useTempDirs`: after-hooks run last registered first, so the processes are gone before
 * their folders are removed.
 */
export function useChildProcesses(): (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess {
  const children: ChildProcess[] = []
  afterEach(async () => {
    await Promise.all(children.splice(0).map(stop))
  })
  return (command, args, options) => {
    const child = spawn(command, args, { ...options, detached: true })
    children.push(child)
    return child
  }
}

/** Whether `child` has not exited yet (its `exit` event not emitted). */
function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

async function stop(child: ChildProcess): Promise<void> {
  if (!running(child) || child.pid === undefined) return
  const exited = once(child, 'exit')
  try {
    // The whole group: the leader's pid is its group id (detached).
    process.kill(-child.pid, 'SIGKILL')
  } catch {
    child.kill('SIGKILL')
  }
  await exited
}

/** How a child ended: its exit code, or the signal that ended it. */
export interface ChildEnd {
  code: number | null
  signal: NodeJS.Signals | null
}

/**
 * Resolves at the child's `close`: it has exited and its output streams have ended, so every
 * `data` listener has had all it wrote. A test that reads a child's output once it ended waits
 * for this, not for `exit`, which Node may emit before the last of the output has been read.
 * Call it before the child can have closed (right after `spawn`, or in the same turn as the
 * signal that stops it): a `close` already emitted is never seen. Never rejects: a child that
 * could not be spawned emits `error`, then `close` with a negative code (`-2` for ENOENT).
 */
export function whenClosed(child: ChildProcess): Promise<ChildEnd> {
  return new Promise((resolve) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }))
  })
}
