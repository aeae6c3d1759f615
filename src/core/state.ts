import type { StageProgress } from '../contract/runner-control.js'
import type { StageCatalogue } from '../contract/stages.js'
import type { FinalStatus, RunStatus, StageStatus } from '../contract/status.js'

/** A run as the state machine and the stores see it. */
export interface RunState {
  /** The run's id (`PipelineRun.id`). */
  id: string
  /** The run's status. */
  status: RunStatus
  /** Why the run failed or was cancelled; `null` otherwise. */
  error: string | null
  /** When the run finished; `null` while it is not finished. */
  completedAt: Date | null
  /** When the first accepted `/complete` was stored; `null` until then. */
  completionReceivedAt: Date | null
  /** When the run was created. */
  createdAt: Date
  /** When the run last changed. */
  updatedAt: Date
  /**
   * When the last heartbeat arrived; `null` or absent before the first. Written only by a
   * heartbeat (`Store.touchRun`), without a new run version; other writes leave it alone.
   */
  lastActivityAt?: Date | null
  /** The heartbeat interval the runner announced, in milliseconds; `null` or absent when never. */
  heartbeatIntervalMs?: number | null
  /** The pipeline the run belongs to; absent = `'default'` (see `runPipelineName`). */
  pipeline?: string
  /**
   * The run's own stage catalogue, snapshotted when it was created; `null` or absent = the
   * current catalogue of its pipeline, written into the run by its first applied update.
   */
  catalogue?: StageCatalogue | null
  /** The run's tags (at most 20, each 1–128 characters); absent = none. */
  tags?: readonly string[]
  /** The app's JSON object for the run (at most 16 KiB); absent = `{}`. */
  metadata?: Readonly<Record<string, unknown>>
  /** When the run's first stage started (its first applied update); `null` or absent before. */
  startedAt?: Date | null
}

/** A stored stage as the state machine and the stores see it. */
export interface StageState {
  /** 1-based number of the stage. */
  stageNumber: number
  /** The name the last applied update sent. */
  stageName: string
  /** The stage's status; never `PENDING` for a stored row. */
  status: StageStatus
  /** The stage's output as sent (a JSON string or markdown); `null` when none. */
  output: string | null
  /** When the stage finished; `null` while it is `PROCESSING`. */
  completedAt: Date | null
  /** The stage's progress with the highest `seq` so far; `null` or absent when none. */
  progress?: StageProgress | null
  /** When the first update of the stage was stored. */
  createdAt: Date
  /** When the stage last changed. */
  updatedAt: Date
  /**
   * When the stage started (see `StageOutputRecord.startedAt`): the receipt of its first applied
   * update, or that update's `completedAt` when it was final; never moved afterwards, not by a
   * retry either. Absent (a store of your own that does not keep it) reads as `createdAt`.
   */
  startedAt?: Date | null
  /** The attempt running or about to run (1 for the first); `null` or absent when never sent. */
  attempt?: number | null
  /** How many attempts the runner will make in all; `null` or absent when never sent. */
  maxAttempts?: number | null
  /** Why the previous attempt failed (at most 2,000 characters); `null` or absent when none. */
  lastError?: string | null
  /** When the next attempt starts; `null` or absent while an attempt runs or none is planned. */
  nextRetryAt?: Date | null
  /** The last applied streamed output chunk's `seq` of the current attempt; `null`/absent when none. */
  outputSeq?: number | null
  /**
   * The UTF-8 bytes of the current attempt's streamed chunks so far (the running total the
   * `maxStreamedOutputBytes` bound is checked against); `null`/absent when none.
   */
  outputBytes?: number | null
  /**
   * Set by `Store.getRun` when `output` is the stage's streamed text assembled from its chunks
   * (see `showsStreamedOutput`), not an output a stage update sent: live `update` events leave
   * such text out (it travels as `output` events). Never stored.
   */
  streamedOutput?: boolean
  /**
   * The W3C `traceparent` of the stage's first report that carried one: the parent of the
   * stage's span (DESIGN.md "Observability"); `null` or absent when none did.
   */
  traceparent?: string | null
  /** The `traceparent`s of the reports that started a later attempt: the span's links; absent = none. */
  traceLinks?: readonly string[] | null
}

/** A run with its stored stages, ordered by stage number. */
export interface RunSnapshot {
  /** The run. */
  run: RunState
  /** Its stored stages; stages without a row (`PENDING`) are absent. */
  stages: StageState[]
  /**
   * The run's version (see `nextRunVersion`): raised by one with every applied change to the
   * run or its stages. The handlers send it as the `ETag` of `GET /status`. A store of your own
   * that leaves it out gets no `ETag`.
   */
  version?: number
  /**
   * `false` when the snapshot was read without streamed text (`Store.getRun` with
   * `{ streamedText: false }`): a stage marked `streamedOutput` then has `output: null`.
   */
  streamedText?: false
}

/**
 * A run as stored, with its version.
 *
 * @experimental Part of the custom-store API, which may change in a minor release until the
 *   `Store` interface settles.
 */
export interface VersionedRun {
  /** The run as stored. */
  run: RunState
  /** The run's version when it was read. */
  version: number
}

/**
 * A run read together with one of its stages, for the stage-update hot path.
 *
 * @experimental Part of the custom-store API, which may change in a minor release until the
 *   `Store` interface settles.
 */
export interface RunStageRead extends VersionedRun {
  /** The stored row of the requested stage, or `undefined` when it has none (PENDING). */
  stage: StageState | undefined
}

/**
 * A run to write only if its version is still `expectedVersion`.
 *
 * @experimental Part of the custom-store API, which may change in a minor release until the
 *   `Store` interface settles.
 */
export interface RunWrite {
  /** The run to store. */
  run: RunState
  /** The version the run was read at; the write changes nothing if the run has moved on since. */
  expectedVersion: number
  /** The version to store: `nextRunVersion(expectedVersion)`. */
  version: number
  /**
   * When set, the write also requires the run's `lastActivityAt` to still be this (the stale-run
   * sweep: a heartbeat that arrived after its read must keep the run alive, and a heartbeat
   * writes no new version).
   */
  expectedLastActivityAt?: Date | null | undefined
  /**
   * Set when the write also fills the run's catalogue (it had none when read: its first applied
   * update); a store keeps a catalogue already stored. Absent: the catalogue is left alone.
   */
  catalogue?: StageCatalogue | undefined
  /** Set when the write also stores the run's tags (a tag change); absent: left alone. */
  tags?: readonly string[] | undefined
  /** Set when the write also stores the run's metadata (a metadata change); absent: left alone. */
  metadata?: Readonly<Record<string, unknown>> | undefined
}

/** A heartbeat's write: only the run's last activity (and announced interval), never its version. */
export interface RunTouch {
  /** The run heard from. */
  runId: string
  /** When it was heard from: stored as `lastActivityAt`. */
  at: Date
  /** The interval the runner announced, stored as `heartbeatIntervalMs`; `undefined` keeps the stored one. */
  heartbeatIntervalMs?: number | undefined
  /** A stage to read back with the run (the heartbeat's `stageNumber`), if any. */
  stageNumber?: number | undefined
}

/** Finished runs to delete, for the retention sweep. */
export interface FinishedRunsDeletion {
  /** The final status of the runs to delete. */
  status: FinalStatus
  /** Only runs whose last change (`updatedAt`) is before this moment. */
  updatedBefore: Date
  /** The most runs to delete in this call. */
  limit: number
}

/**
 * A stage and its run to write together, only if the run's version is still `expectedVersion`.
 *
 * @experimental Part of the custom-store API, which may change in a minor release until the
 *   `Store` interface settles.
 */
export interface RunStageWrite extends RunWrite {
  /** The stage to store (insert or update, keyed by the run and `stageNumber`). */
  stage: StageState
  /**
   * A streamed output chunk to insert with the write, as the row `(runId, stage.stageNumber,
   * seq, version, text)` (`version` is the write's). Absent: no chunk.
   */
  chunk?: OutputChunkWrite | undefined
  /**
   * Set when the write resets the stage's streamed output (an applied higher attempt): the
   * stage's chunk rows are deleted with it. Absent: they are left alone.
   */
  dropOutputChunks?: boolean | undefined
}

/** A streamed output chunk to store: its `seq` within the stage's attempt and its text. */
export interface OutputChunkWrite {
  /** The chunk's number within the stage's current attempt, from 0. */
  seq: number
  /** Its text (storable, at most 64 KiB as UTF-8). */
  text: string
}

/**
 * A stored streamed output chunk, as `Store.getOutputChunksSince` returns it: the stage, the
 * chunk's `seq` within the stage's current attempt, the run version its write made, its text.
 *
 * @experimental Part of the custom-store API, which may change in a minor release until the
 *   `Store` interface settles.
 */
export interface OutputChunkRow {
  /** The stage's number. */
  stageNumber: number
  /** The chunk's number within the stage's current attempt, from 0. */
  seq: number
  /** The run version the chunk's write made (the `id:` of its `output` event). */
  version: number
  /** Its text. */
  text: string
}
