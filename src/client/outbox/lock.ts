/**
 * One writer per outbox directory: a lock file holding the owner's pid. A lock left by a
 * process that no longer runs (a crash, a kill -9) is taken over. Internal.
 */
import { closeSync, openSync, readFileSync, realpathSync, rmSync, writeSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { OutboxLockedError } from '../errors.js'

/** The lock file's name inside the outbox directory. */
const LOCK_FILE = 'outbox.lock'

/** Directories locked by this process, so two clients in one process cannot share one either. */
const held = new Set<string>()

/** A held lock; `release()` is idempotent and synchronous so it can run in an `exit` handler. */
export interface OutboxLock {
  release(): void
}

/** Takes the lock of `dir` (which must exist) or throws {@link OutboxLockedError}. */
export function acquireOutboxLock(dir: string): OutboxLock {
  const key = realpathSync(dir)
  const path = join(dir, LOCK_FILE)
  if (held.has(key)) throw new OutboxLockedError(dir, process.pid)
  const token = `${process.pid}-${crypto.randomUUID()}`
  for (let attempt = 0; ; attempt++) {
    let fd: number
    try {
      fd = openSync(path, 'wx')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new OutboxLockedError(dir, readOwner(path)?.pid)
        throw error
      }
      const owner = readOwner(path)
      if (owner && isAlive(owner)) throw new OutboxLockedError(dir, owner.pid)
      rmSync(path, { force: true })
      continue
    }
    try {
      writeSync(fd, JSON.stringify({ pid: process.pid, hostname: hostname(), token, since: new Date().toISOString() }))
    } finally {
      closeSync(fd)
    }
    held.add(key)
    let released = false
    return {
      release() {
        if (released) return
        released = true
        held.delete(key)
        // Only remove the file if it is still ours (a human may have deleted and reassigned it).
        if (readOwner(path)?.token === token) rmSync(path, { force: true })
      },
    }
  }
}

interface LockOwner {
  pid: number
  hostname?: string
  token?: string
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(readFileSync(path, 'utf8')) as LockOwner
    return typeof owner.pid === 'number' ? owner : undefined
  } catch {
    // An empty or half-written lock file: its writer crashed between create and write.
    return undefined
  }
}

function isAlive(owner: LockOwner): boolean {
  // A lock from another host name is most often a previous container of this runner on the
  // same volume; its pid means nothing here, so it is taken over (one host per outbox dir).
  if (owner.hostname !== undefined && owner.hostname !== hostname()) return false
  // Our own pid on a lock we do not hold: a previous process with the same pid (containers
  // often run the runner as pid 1 on every start).
  if (owner.pid === process.pid) return false
  try {
    process.kill(owner.pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
