/**
 * Streamed stage output (DESIGN.md "Timing, attempts and streamed output"): which chunk of
 * `POST {base}/{runId}/stages/{stageNumber}/output` is applied, and what a stage shows as its
 * output. Pure: callers pass `now` and the stored chunk's text; both stores call it, so the
 * in-memory store and PostgreSQL agree.
 */
import type { StageOutputChunk } from '../contract/output-chunks.js'
import type { StageCatalogue } from '../contract/stages.js'
import { isFinalStatus } from '../contract/status.js'
import { stageNumberOutside } from './run-catalogue.js'
import type { OutputChunkRow, RunState, StageState } from './state.js'

/** The length of `text` in UTF-8 bytes (what the chunk and stage bounds count). */
export function utf8Bytes(text: string): number {
  // Counted without allocating: 1 byte below U+0080, 2 below U+0800, 4 for a surrogate pair, else 3.
  let bytes = 0
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index)
    if (code < 0x80) bytes += 1
    else if (code < 0x800) bytes += 2
    else if (code >= 0xd800 && code <= 0xdbff && index + 1 < text.length && (text.charCodeAt(index + 1) & 0xfc00) === 0xdc00) {
      bytes += 4
      index++
    } else bytes += 3
  }
  return bytes
}

/** Why a chunk is refused: the problem code, its detail and, for two of them, the member the problem carries. */
export type OutputChunkRefusal =
  | { outcome: 'refused'; code: 'run_finished' | 'stage_not_started' | 'stage_finished'; detail: string }
  | { outcome: 'refused'; code: 'output_out_of_order'; detail: string; expectedSeq: number }
  | { outcome: 'refused'; code: 'output_too_large'; detail: string; maxBytes: number }
  /** `stageNumber` outside the run's catalogue: 400 naming `stageNumber`, as a stage update's refusal. */
  | { outcome: 'invalid'; field: 'stageNumber'; message: string }

/** What one chunk does to its stage. */
export type OutputChunkDecision =
  | {
      /** The next `seq`: stored as a row, the stage's `outputSeq` and byte total advance, the run gets a new version. */
      outcome: 'applied'
      stage: StageState
      /** The run with `updatedAt` now (a chunk is activity for the stale-run sweep). */
      run: RunState
    }
  | {
      /**
       * A `seq` already applied: `duplicate` with the same text, `conflict` with another (the
       * stored text stays). Nothing changes.
       */
      outcome: 'duplicate' | 'conflict'
      stage: StageState
      run: RunState
    }
  | {
      /**
       * A `seq` already applied, but the stored chunk's text was not given: the caller reads it
       * (`Store.getOutputChunk`) and decides again.
       */
      outcome: 'repeat'
    }
  | OutputChunkRefusal

/** Inputs of {@link decideOutputChunk}. */
export interface OutputChunkInput {
  /** The run as stored. */
  run: RunState
  /** The stage's number. */
  stageNumber: number
  /**
   * The run's catalogue (`catalogueOfRun`), `undefined` when it has none and its pipeline is not
   * configured (then any number is taken, and a stage without a row is `stage_not_started`).
   */
  catalogue: StageCatalogue | undefined
  /** The stage as stored, `undefined` when it has no row. */
  stage: StageState | undefined
  /** The chunk, validated (`text` storable, at most `MAX_OUTPUT_CHUNK_BYTES`). */
  chunk: StageOutputChunk
  /** The most UTF-8 bytes one stage attempt's streamed text may hold. */
  maxBytes: number
  /** The stored text of chunk `chunk.seq`, when it is a repeat and the caller read it. */
  stored?: string | undefined
  /** The current time. */
  now: Date
}

/**
 * Decides one streamed output chunk, in this order: a `stageNumber` outside the run's catalogue is
 * `invalid` (400 naming `stageNumber`, the rule of a stage update: `stageNumberOutside`); a
 * finished run is 409 `run_finished`; a stage without a row 409 `stage_not_started`; a final stage 409 `stage_finished`; a `seq` already
 * applied is `duplicate` (same text) or `conflict` (other text); a `seq` past the next one 409
 * `output_out_of_order` with `expectedSeq`; a chunk that takes the attempt's text past `maxBytes`
 * 413 `output_too_large`; otherwise applied. Chunk 0 also clears an output a `PROCESSING` update
 * stored: from then on the stage shows its streamed text ({@link showsStreamedOutput}).
 */
export function decideOutputChunk({ run, stageNumber, catalogue, stage, chunk, maxBytes, stored, now }: OutputChunkInput): OutputChunkDecision {
  const outside = catalogue && stageNumberOutside(stageNumber, catalogue)
  if (outside) return { outcome: 'invalid', field: 'stageNumber', message: outside }
  if (isFinalStatus(run.status)) {
    return { outcome: 'refused', code: 'run_finished', detail: `Run ${run.id} is ${run.status} and takes no more output` }
  }
  if (!stage) {
    return { outcome: 'refused', code: 'stage_not_started', detail: `Stage ${stageNumber} has no update yet: send its PROCESSING update before its output` }
  }
  if (isFinalStatus(stage.status)) {
    return { outcome: 'refused', code: 'stage_finished', detail: `Stage ${stage.stageNumber} is ${stage.status} and takes no more output` }
  }
  const last = stage.outputSeq ?? -1
  if (chunk.seq <= last) {
    if (stored === undefined) return { outcome: 'repeat' }
    return { outcome: stored === chunk.text ? 'duplicate' : 'conflict', stage, run }
  }
  const expectedSeq = last + 1
  if (chunk.seq !== expectedSeq) {
    return {
      outcome: 'refused',
      code: 'output_out_of_order',
      detail: `Stage ${stage.stageNumber} expects chunk seq ${expectedSeq} next, got ${chunk.seq}`,
      expectedSeq,
    }
  }
  const total = (stage.outputBytes ?? 0) + utf8Bytes(chunk.text)
  if (total > maxBytes) {
    return {
      outcome: 'refused',
      code: 'output_too_large',
      detail: `Stage ${stage.stageNumber}'s streamed output would be ${total} bytes, over the limit of ${maxBytes}; nothing was stored`,
      maxBytes,
    }
  }
  return {
    outcome: 'applied',
    stage: { ...stage, output: chunk.seq === 0 ? null : stage.output, outputSeq: chunk.seq, outputBytes: total },
    run: { ...run, updatedAt: now },
  }
}

/**
 * Whether a stored stage shows its streamed text as its `output` (in `GET /status`, snapshots):
 * it has applied chunks (`outputSeq` set) and either still runs or finished without an output of
 * its own. A final output sent with the final status replaces the streamed text; a final status
 * without one keeps the streamed text as the output.
 */
export function showsStreamedOutput(stage: Pick<StageState, 'status' | 'output' | 'outputSeq'>): boolean {
  return stage.outputSeq != null && (stage.status === 'PROCESSING' || stage.output === null)
}

/**
 * A stored stage as the status document shows it: with `streamed` (its chunks' text in `seq`
 * order) as its output when {@link showsStreamedOutput}, marked `streamedOutput`; else unchanged.
 * Without `streamed`, such a stage is marked and its output left out (`null`).
 */
export function withStreamedOutput(stage: StageState, streamed: (() => string) | undefined): StageState {
  if (!showsStreamedOutput(stage)) return stage
  // Without `streamed` (read with `streamedText: false`) the text is left out.
  return { ...stage, output: streamed ? streamed() : null, streamedOutput: true }
}

/**
 * Whether a write from `before` to `after` resets the stage's streamed output (an applied higher
 * attempt sets `outputSeq` back to none): the stage's chunk rows are then deleted with the write.
 */
export function resetsStreamedOutput(before: StageState | undefined, after: StageState): boolean {
  return before?.outputSeq != null && after.outputSeq == null
}

/**
 * How many of `chunks`, in version order (as stores keep and return them: each applied chunk is
 * its run's newest version), have a version up to `version`; so `chunks[count]` is the first one
 * after it. By bisection: O(log n), whatever the text's length.
 */
export function chunksUpTo(chunks: readonly Pick<OutputChunkRow, 'version'>[], version: number): number {
  let low = 0
  let high = chunks.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if ((chunks[middle] as Pick<OutputChunkRow, 'version'>).version > version) high = middle
    else low = middle + 1
  }
  return low
}
