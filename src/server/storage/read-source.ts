/**
 * Where the handlers' reads go (DESIGN.md "Scale"): the one place that chooses between the read
 * replica and the primary. `GET /status`, the live stream's snapshot, `GET /runs` and
 * `GET /runs/counts` read the replica; a read of one run goes to the primary instead when the
 * replica's copy is behind the newest version this process knows ({@link KnownVersions}) or the
 * client presents, when the replica does not have the run, or when the replica fails. Writes, the
 * live streams' updates and the run watcher's version polls always use the primary. Internal.
 */
import { DEFAULT_MAX_KNOWN_RUNS, KnownVersions } from '../../core/known-versions.js'
import type { RunCountRequest, RunListItem, RunListRequest } from '../../core/run-list.js'
import type { RunSnapshot } from '../../core/state.js'
import type { Store } from '../../core/store.js'
import type { Logger } from '../../internal/logger.js'

/** What a read served: `GET /status`, a stream's snapshot, a page of `GET /runs`, `GET /runs/counts`. */
export type ReadKind = 'status' | 'snapshot' | 'list' | 'count'

/**
 * Why a read went to the primary although a replica is configured: `behind` (the replica's copy
 * is older than a version this process knows or the client presented), `missing` (the replica
 * does not have the run: never answered 404 from a replica), `replica_error` (the replica failed,
 * or failed less than `readReplica.retryAfterMs` ago).
 */
export type ReplicaFallbackReason = 'behind' | 'missing' | 'replica_error'

/** What {@link PipelineStatusHandlers.readStats} returns. */
export interface ReadStats {
  /** Whether a read replica is configured (all zeros without one). */
  replica: boolean
  /** Reads answered from the replica since the handlers were created (status, snapshots, lists, counts). */
  replicaReads: number
  /** Reads that went to the primary instead, by {@link ReplicaFallbackReason}. */
  primaryFallbacks: { behind: number; missing: number; replica_error: number }
  /** Runs whose newest version this process remembers now (at most `readReplica.maxKnownRuns`). */
  knownRuns: number
}

/** One served read, as the instrumentation's `readServed` receives it. */
export interface ServedRead {
  /** What was read. */
  kind: ReadKind
  /** Who answered it. */
  source: 'replica' | 'primary'
  /** Set when `source` is `primary`. */
  reason?: ReplicaFallbackReason | undefined
}

/** The handlers' reads; see the module comment. */
export interface ReadSource {
  /**
   * A run with its stages, at least at the newest version known and at `presented` (the client's
   * `If-None-Match` or `Last-Event-ID`), when the primary has it.
   */
  getRun(runId: string, kind: 'status' | 'snapshot', presented?: number): Promise<RunSnapshot | null>
  /** A page of runs (may lag the primary by the replica's lag). Requires `Store.listRuns` on the primary. */
  listRuns(request: RunListRequest): Promise<RunListItem[]>
  /** Counts (may lag like lists). Requires `Store.countRuns` on the primary. */
  countRuns(request: RunCountRequest): Promise<Record<string, number>>
  /** Something (the run watcher) learned that `runId` has at least `version`. */
  note(runId: string, version: number): void
  stats(): ReadStats
  /** Stops listening to the primary's writes. */
  close(): void
}

/** Options of {@link createReadSource}. */
export interface ReadSourceOptions {
  primary: Store<unknown>
  /** The replica's store; `undefined`: every read goes to the primary, nothing is tracked. */
  replica: Store<unknown> | undefined
  /** The bound of the known-versions map. */
  maxKnownRuns?: number | undefined
  /** After a replica failure, how long reads skip it, in milliseconds. */
  retryAfterMs: number
  logger: Logger
  /** Told of every read served while a replica is configured. */
  served: (read: ServedRead) => void
  now?: () => number
}

/** The stats of handlers without a replica (or not created yet): all zeros. */
export function emptyReadStats(): ReadStats {
  return { replica: false, replicaReads: 0, primaryFallbacks: { behind: 0, missing: 0, replica_error: 0 }, knownRuns: 0 }
}

/** The default of `readReplica.retryAfterMs`. */
export const DEFAULT_REPLICA_RETRY_AFTER_MS = 5_000

/** Builds the read source of one handlers instance. */
export function createReadSource(options: ReadSourceOptions): ReadSource {
  const { primary, replica, logger, served, retryAfterMs } = options
  const now = options.now ?? Date.now
  if (!replica) {
    return {
      getRun: (runId) => primary.getRun(runId),
      listRuns: (request) => (primary.listRuns as NonNullable<Store['listRuns']>).call(primary, request),
      countRuns: (request) => (primary.countRuns as NonNullable<Store['countRuns']>).call(primary, request),
      note: () => {},
      stats: emptyReadStats,
      close: () => {},
    }
  }

  const known = new KnownVersions(options.maxKnownRuns ?? DEFAULT_MAX_KNOWN_RUNS)
  // This process's own writes, at once (the run watcher adds notifications and polls through note()).
  const unsubscribe = primary.onRunChange?.((change) => known.note(change.runId, change.version))
  let replicaReads = 0
  const fallbacks = { behind: 0, missing: 0, replica_error: 0 }
  /** Until when reads skip the replica after it failed (epoch ms); 0 while it answers. */
  let downUntil = 0
  let outageLogged = false

  const fromReplica = (kind: ReadKind): void => {
    replicaReads++
    served({ kind, source: 'replica' })
  }
  const fromPrimary = (kind: ReadKind, reason: ReplicaFallbackReason): void => {
    fallbacks[reason]++
    served({ kind, source: 'primary', reason })
  }

  /** The replica's answer, or `failed` after logging (once per outage) and arming the skip window. */
  const tryReplica = async <T>(read: () => Promise<T>): Promise<T | typeof failed> => {
    if (downUntil !== 0 && now() < downUntil) return failed
    try {
      const value = await read()
      if (outageLogged) {
        outageLogged = false
        // At `warn`, as the outage's start: the handlers log nothing at `info`, which the default logger has not (src/internal/logger.ts).
        logger.warn('pipeline-status: the read replica answers again; status reads, lists and snapshots use it again')
      }
      downUntil = 0
      return value
    } catch (error) {
      downUntil = now() + retryAfterMs
      if (!outageLogged) {
        outageLogged = true
        logger.warn(
          `pipeline-status: a read from the read replica failed (${errorText(error)}); reads go to the primary, and the replica is tried again every ${retryAfterMs} ms (readReplica.retryAfterMs). ` +
            'Check that the replica is up and reachable with the URL or pool given as readReplica (a replica refuses connections while it starts or catches up), or remove readReplica. Logged once per outage',
          { error },
        )
      }
      return failed
    }
  }

  const getRun = async (runId: string, kind: 'status' | 'snapshot', presented?: number): Promise<RunSnapshot | null> => {
    const knownVersion = known.get(runId)
    const needed = Math.max(knownVersion ?? -1, presented ?? -1)
    const copy = await tryReplica(() => replica.getRun(runId))
    let reason: ReplicaFallbackReason
    if (copy === failed) reason = 'replica_error'
    else if (copy === null) reason = 'missing'
    else if (copy.version === undefined || copy.version < needed) reason = 'behind'
    else {
      known.note(runId, copy.version)
      fromReplica(kind)
      return copy
    }
    fromPrimary(kind, reason)
    const snapshot = await primary.getRun(runId)
    if (snapshot?.version !== undefined) known.note(runId, snapshot.version)
    return snapshot
  }

  /** A list or count from the replica, the primary when the replica fails or lacks the method. */
  const collection = async <T>(kind: 'list' | 'count', onReplica: (() => Promise<T>) | undefined, onPrimary: () => Promise<T>): Promise<T> => {
    if (onReplica) {
      const value = await tryReplica(onReplica)
      if (value !== failed) {
        fromReplica(kind)
        return value
      }
    }
    fromPrimary(kind, 'replica_error')
    return onPrimary()
  }

  return {
    getRun,
    listRuns: async (request) => {
      const items = await collection(
        'list',
        replica.listRuns ? () => (replica.listRuns as NonNullable<Store['listRuns']>).call(replica, request) : undefined,
        () => (primary.listRuns as NonNullable<Store['listRuns']>).call(primary, request),
      )
      // A run opened from this list is then never older than the list showed it.
      for (const item of items) if (item.version !== undefined) known.note(item.run.id, item.version)
      return items
    },
    countRuns: (request) =>
      collection(
        'count',
        replica.countRuns ? () => (replica.countRuns as NonNullable<Store['countRuns']>).call(replica, request) : undefined,
        () => (primary.countRuns as NonNullable<Store['countRuns']>).call(primary, request),
      ),
    note: (runId, version) => known.note(runId, version),
    stats: () => ({ replica: true, replicaReads, primaryFallbacks: { ...fallbacks }, knownRuns: known.size }),
    close: () => unsubscribe?.(),
  }
}

/** Marks a replica read that failed (distinct from every value a store returns). */
const failed: unique symbol = Symbol('replica read failed')

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause
    return cause instanceof Error && cause.message !== error.message ? `${error.message}: ${cause.message}` : error.message
  }
  return String(error)
}
