import { describe, expect, it } from 'vitest'
import { MemoryStore } from '../../core/memory-store.js'
import type { RunSnapshot } from '../../core/state.js'
import type { Store } from '../../core/store.js'
import { createReadSource, type ServedRead } from './read-source.js'

/** A replica that holds the copies `replicate()` took of the primary: it lags until told. */
function laggingReplica(primary: MemoryStore) {
  const copies = new Map<string, RunSnapshot>()
  let failing: Error | undefined
  const store: Store<unknown> = {
    transaction: () => Promise.reject(new Error('read-only')),
    insertRun: () => Promise.reject(new Error('read-only')),
    getRun: async (runId) => {
      if (failing) throw failing
      return copies.get(runId) ?? null
    },
  }
  return {
    store,
    replicate: async (runId: string) => {
      const snapshot = await primary.getRun(runId)
      if (snapshot) copies.set(runId, snapshot)
    },
    fail: (error: Error | undefined) => {
      failing = error
    },
  }
}

async function createRun(store: MemoryStore, id: string): Promise<void> {
  const now = new Date('2026-12-06T00:00:00Z')
  await store.insertRun({ id, status: 'PENDING', error: null, completedAt: null, completionReceivedAt: null, createdAt: now, updatedAt: now })
}

async function bump(store: MemoryStore, id: string): Promise<number> {
  const read = await store.readRun(id)
  if (!read) throw new Error('no run')
  const version = read.version + 1
  await store.writeRun({ run: { ...read.run, updatedAt: new Date() }, expectedVersion: read.version, version })
  return version
}

function setUp(now = () => 0) {
  const primary = new MemoryStore()
  const replica = laggingReplica(primary)
  const warnings: string[] = []
  const served: ServedRead[] = []
  const reads = createReadSource({
    primary,
    replica: replica.store,
    retryAfterMs: 1_000,
    logger: { warn: (message) => void warnings.push(message), error: () => {} },
    served: (read) => void served.push(read),
    now,
  })
  return { primary, replica, reads, warnings, served }
}

describe('createReadSource', () => {
  it("reads the replica unless its copy is older than this process's own write or the client's version", async () => {
    const { primary, replica, reads, served } = setUp()
    await createRun(primary, 'r')
    await replica.replicate('r')
    expect((await reads.getRun('r', 'status'))?.version).toBe(0)
    await bump(primary, 'r') // the replica still has 0
    expect((await reads.getRun('r', 'status'))?.version).toBe(1)
    await replica.replicate('r')
    expect((await reads.getRun('r', 'status'))?.version).toBe(1)
    expect(served).toEqual([
      { kind: 'status', source: 'replica' },
      { kind: 'status', source: 'primary', reason: 'behind' },
      { kind: 'status', source: 'replica' },
    ])
  })

  it('honours a presented version and versions told by note(), and never answers 404 from the replica', async () => {
    const { primary, replica, reads } = setUp()
    await createRun(primary, 'r')
    await replica.replicate('r')
    reads.close() // stop hearing the primary's writes: as if another instance wrote
    await bump(primary, 'r')
    expect((await reads.getRun('r', 'status'))?.version).toBe(0) // the documented limit
    expect((await reads.getRun('r', 'snapshot', 1))?.version).toBe(1)
    await bump(primary, 'r')
    reads.note('r', 2)
    expect((await reads.getRun('r', 'status'))?.version).toBe(2)
    await createRun(primary, 'new')
    expect((await reads.getRun('new', 'status'))?.version).toBe(0)
    expect(reads.stats()).toMatchObject({ replicaReads: 1, primaryFallbacks: { behind: 2, missing: 1, replica_error: 0 } })
  })

  it('falls back to the primary while the replica fails, logs once per outage, and tries again after retryAfterMs', async () => {
    let clock = 0
    const { primary, replica, reads, warnings } = setUp(() => clock)
    await createRun(primary, 'r')
    await replica.replicate('r')
    replica.fail(new Error('connect ECONNREFUSED 127.0.0.1:5499'))
    expect((await reads.getRun('r', 'status'))?.version).toBe(0)
    expect((await reads.getRun('r', 'status'))?.version).toBe(0)
    clock = 2_000
    expect((await reads.getRun('r', 'status'))?.version).toBe(0)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain('ECONNREFUSED')
    replica.fail(undefined)
    clock = 4_000
    expect((await reads.getRun('r', 'status'))?.version).toBe(0)
    expect(reads.stats()).toMatchObject({ replicaReads: 1, primaryFallbacks: { replica_error: 3 } })
    // The outage's end, at `warn` like its start: a logger of `warn` and `error` only (the default's) sees it.
    expect(warnings).toHaveLength(2)
    expect(warnings[1]).toBe('pipeline-status: the read replica answers again; status reads, lists and snapshots use it again')
    replica.fail(new Error('down again'))
    clock = 6_000
    await reads.getRun('r', 'status')
    expect(warnings).toHaveLength(3)
    expect(warnings[2]).toContain('down again')
  })
})
