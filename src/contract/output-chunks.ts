/**
 * Streamed stage output, the wire shapes (docs/design.md, "Timing, attempts and streamed
 * output"): `POST {base}/{runId}/stages/{stageNumber}/output` with `{ seq, text }`, its answer,
 * and the limits. A runner sends a stage's text as it is produced (an LLM's tokens, batched);
 * the server stores each chunk as a row and assembles the text on read.
 */
import { z } from 'zod'
import { PipelineRunRecord, UpdateOutcome } from './records.js'

/** The largest `text` of one chunk, in UTF-8 bytes (64 KiB); a larger one is a 400 naming `text`. */
export const MAX_OUTPUT_CHUNK_BYTES = 64 * 1024
/**
 * The default limit of one stage attempt's streamed text, in UTF-8 bytes (1 MiB; the handlers'
 * `maxStreamedOutputBytes` option). A chunk past it is a 413 `output_too_large` with `maxBytes`.
 */
export const DEFAULT_MAX_STREAMED_OUTPUT_BYTES = 1024 * 1024

/**
 * The body of `POST {base}/{runId}/stages/{stageNumber}/output`: chunk `seq` of the stage's
 * current attempt. `seq` counts 0, 1, 2, … per stage and attempt (it restarts at 0 when a higher
 * attempt is applied); the next one is applied, a repeat of an applied one with the same text is
 * `duplicate` (different text: `conflict`, the stored text stays), a gap is 409
 * `output_out_of_order` with `expectedSeq`.
 */
export const StageOutputChunk = z.strictObject({
  /** The chunk's number within the stage's attempt, from 0. */
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** The text to append (storable text, at most 64 KiB as UTF-8; may be empty). */
  text: z.string(),
})
/**
 * The body of a streamed output chunk.
 * @interface
 */
export type StageOutputChunk = z.infer<typeof StageOutputChunk>

/** The answer of a streamed output chunk: what it did, the stage's last applied `seq`, and the run. */
export const StageOutputChunkResponse = z.object({
  /** `applied`, or `duplicate` (a repeat of an applied chunk) or `conflict` (a repeat with other text); the last two change nothing. */
  outcome: UpdateOutcome.exclude(['stale']),
  /** The stage after the chunk. */
  stage: z.object({
    /** The stage's number. */
    stageNumber: z.number().int(),
    /** The last applied `seq` of its current attempt. */
    outputSeq: z.number().int(),
  }),
  /** The run as stored after the chunk (an applied chunk is a change: a new version). */
  run: PipelineRunRecord,
})
/**
 * The answer of a streamed output chunk.
 * @interface
 */
export type StageOutputChunkResponse = z.infer<typeof StageOutputChunkResponse>
