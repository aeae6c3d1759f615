/**
 * Streamed stage output, the wire shapes (docs/design.md, "Timing, attempts and streamed
 * output"): `POST {base}/{runId}/stages/{stageNumber}/output` with `{ seq, text }`, its answer,
 * and the limits. A runner sends a stage's text as it is produced (an LLM's tokens, batched);
 * the server stores each chunk as a row and assembles the text on read.
 */
import { z } from 'zod'
import { safeParseContract } from './field-messages.js'
import { MAX_STORED_INTEGER } from './stored-integer.js'
import { PayloadValidationError } from './parse.js'
import { PipelineRunRecord, UpdateOutcome } from './records.js'
import { isStorableText } from './storable-text.js'

/** The largest `seq`: a PostgreSQL `integer`. */
export const MAX_OUTPUT_SEQ = MAX_STORED_INTEGER

const encoder = new TextEncoder()
/** UTF-8 length; only called on text that may be long, once per chunk. */
function utf8Length(text: string): number {
  // A string of n code units is at most 3n bytes: short ones need no encoding.
  return text.length * 3 <= MAX_OUTPUT_CHUNK_BYTES ? text.length : encoder.encode(text).byteLength
}

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
  /** The chunk's number within the stage's attempt, from 0 (at most 2,147,483,647, a PostgreSQL `integer`). */
  seq: z.number().int().min(0).max(MAX_OUTPUT_SEQ),
  /** The text to append (storable text, at most 64 KiB as UTF-8; may be empty). */
  text: z
    .string()
    .refine((text) => isStorableText(text), { message: 'must not contain NUL characters or unpaired UTF-16 surrogates' })
    .refine((text) => utf8Length(text) <= MAX_OUTPUT_CHUNK_BYTES, {
      message: `must be at most ${MAX_OUTPUT_CHUNK_BYTES} bytes as UTF-8 (send a longer text as several chunks)`,
    }),
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

/**
 * Parses the body of a streamed output chunk (`{ seq, text }`, no other member): `text` storable
 * and at most {@link MAX_OUTPUT_CHUNK_BYTES} as UTF-8. Throws `PayloadValidationError` naming
 * the field.
 *
 * @example
 * ```ts
 * import { parseStageOutputChunk } from 'pipeline-status-sdk'
 * parseStageOutputChunk({ seq: 0, text: '# Report\n' }) // { seq: 0, text: '# Report\n' }
 * ```
 */
export function parseStageOutputChunk(input: unknown): StageOutputChunk {
  const result = safeParseContract(StageOutputChunk, input)
  if (!result.success) throw new PayloadValidationError('stage output chunk', result.error.issues)
  return result.data
}

/**
 * The `{stageNumber}` of the output route's path as a number: a whole number from 1 (no sign,
 * no leading zero, at most 9 digits); `undefined` otherwise (a 400 naming `stageNumber`).
 */
export function parseStageNumberParam(value: string): number | undefined {
  return /^[1-9][0-9]{0,8}$/.test(value) ? Number(value) : undefined
}
