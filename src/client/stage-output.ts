/**
 * Making a stage's output storable and small enough, so that its status always reaches the
 * server: an output JSON cannot hold is replaced by a placeholder, characters PostgreSQL cannot
 * store are replaced before sending, and an output the server refuses as too large (413) is cut
 * to fit and sent again as a new update.
 */
import type { StageUpdate } from '../contract/stage-update.js'
import type { StageDefinition } from '../contract/stages.js'
import type { StageUpdateStatus } from '../contract/status.js'
import { toStorableText } from '../contract/storable-text.js'
import type { StatusHttpError } from './errors.js'
import type { Logger } from './logger.js'

/**
 * What ends an output the client cut to fit the server's body limit (see
 * {@link OutputAlteration}). It appears once, at the very end; check for it with
 * `output.endsWith(TRUNCATION_MARKER)`.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient, TRUNCATION_MARKER } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient()
 * await client.createRun('run_1')
 * await client.markStageComplete('run_1', 1, 'x'.repeat(2_000_000)) // over the 1 MiB limit: cut
 * const status = await client.getStatus('run_1')
 * const cut = status.stages.filter((stage) => stage.output?.endsWith(TRUNCATION_MARKER))
 * console.log(cut.map((stage) => stage.stageNumber)) // [1]
 * ```
 */
export const TRUNCATION_MARKER = '\n…[truncated by pipeline-status-sdk]'

/**
 * How a stage's output that is not a string becomes its text: `JSON.stringify(output,
 * outputJsonReplacer)`. The replacer turns a `BigInt` (e.g. a raw-SQL `count(*)`) into its
 * decimal string (`12n` → `"12"`), which `JSON.stringify` alone refuses with a TypeError.
 */
export function outputJsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value
}

/**
 * What starts the placeholder sent instead of an output that cannot become JSON even with
 * {@link outputJsonReplacer} (a circular object, a `toJSON` that throws): the placeholder is
 * `[output not serialisable as JSON: <reason>]`, the reason being the first line of the error
 * (at most 200 characters), e.g. `[output not serialisable as JSON: TypeError: Converting
 * circular structure to JSON]`. The stage's status is sent with it (see {@link OutputAlteration}).
 */
export const UNSERIALISABLE_OUTPUT_PREFIX = '[output not serialisable as JSON: '

/**
 * A stage's output as the text sent: a string as it is, `undefined` as no output, anything else
 * as JSON (see {@link outputJsonReplacer}); when that throws, the placeholder described at
 * {@link UNSERIALISABLE_OUTPUT_PREFIX} and the reason.
 */
export function serialiseOutput(output: unknown): { text: string | undefined; unserialisable?: string } {
  if (output === undefined || typeof output === 'string') return { text: output }
  try {
    // Without a replacer first: a replacer function makes every stringify several times slower,
    // and only a BigInt needs it.
    return { text: JSON.stringify(output) }
  } catch {
    // Retried below with the replacer (a BigInt), else the placeholder with the reason.
  }
  try {
    return { text: JSON.stringify(output, outputJsonReplacer) }
  } catch (error) {
    const described = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
    const reason = (described.split('\n')[0] ?? '').slice(0, 200)
    return { text: `${UNSERIALISABLE_OUTPUT_PREFIX}${reason}]`, unserialisable: reason }
  }
}

/**
 * How the client changed a stage's output so that the stage's status could be stored:
 * - `unserialisable`: the output could not become JSON (a circular object, a throwing `toJSON`);
 *   the placeholder `[output not serialisable as JSON: <reason>]` (see
 *   {@link UNSERIALISABLE_OUTPUT_PREFIX}) was sent instead;
 * - `replaced`: NUL characters and lone UTF-16 surrogates (which PostgreSQL cannot store, so the
 *   server refuses them with 400) were each replaced with U+FFFD before sending;
 * - `truncated`: the server refused the update as too large (413); the output was cut to fit
 *   the limit the server stated and ended with {@link TRUNCATION_MARKER}, then sent as a new
 *   update (a new `Idempotency-Key`).
 */
export interface OutputAlteration {
  /** The run. */
  runId: string
  /** The stage whose output was changed. */
  stageNumber: number
  /** What was done; see the interface notes. */
  kind: 'unserialisable' | 'replaced' | 'truncated'
  /** For `unserialisable`: why the output could not become JSON (the error's first line). */
  reason?: string
  /** For `replaced`: how many characters were replaced with U+FFFD. */
  replacedCharacters?: number
  /** For `truncated`: UTF-8 bytes of the output before it was cut. */
  originalBytes?: number
  /** For `truncated`: UTF-8 bytes of the output as sent, marker included. */
  sentBytes?: number
  /** For `truncated`: the body limit the server stated in its 413 problem (`maxBytes`), in bytes. */
  maxBodyBytes?: number
}

const encoder = new TextEncoder()

/** UTF-8 length of a string in bytes. */
export function utf8Bytes(text: string): number {
  return encoder.encode(text).byteLength
}

/**
 * The body limit a 413 states: the problem's `maxBytes` (what the handlers send), or
 * `maxBodyBytes`; else, for a 413 from something in between (a proxy), half of what was sent.
 */
export function statedBodyLimit(error: StatusHttpError, sentBytes: number): { limit: number; stated: boolean } {
  const problem = error.problem as Record<string, unknown> | undefined
  for (const key of ['maxBytes', 'maxBodyBytes']) {
    const value = problem?.[key]
    if (typeof value === 'number' && Number.isInteger(value) && value > 0) return { limit: value, stated: true }
  }
  return { limit: Math.floor(sentBytes / 2), stated: false }
}

/**
 * A stage update whose output is cut so that the whole JSON body is at most `maxBytes` UTF-8
 * bytes, ending with {@link TRUNCATION_MARKER} once. `undefined` when it cannot fit (no output,
 * or the rest of the body alone is too large) or would not get smaller.
 */
export function fitStageUpdate(
  body: StageUpdate,
  maxBytes: number,
): { json: string; originalBytes: number; sentBytes: number } | undefined {
  if (typeof body.output !== 'string') return undefined
  // A body cut before keeps one marker: cut what came before it again.
  const original = body.output.endsWith(TRUNCATION_MARKER) ? body.output.slice(0, -TRUNCATION_MARKER.length) : body.output
  const before = utf8Bytes(JSON.stringify(body))
  const fixed = utf8Bytes(JSON.stringify({ ...body, output: TRUNCATION_MARKER }))
  let budget = maxBytes - fixed
  if (budget < 0) return undefined
  for (;;) {
    const output = prefixWithin(original, budget) + TRUNCATION_MARKER
    const json = JSON.stringify({ ...body, output })
    const bytes = utf8Bytes(json)
    if (bytes <= maxBytes) {
      return bytes < before ? { json, originalBytes: utf8Bytes(original), sentBytes: utf8Bytes(output) } : undefined
    }
    // Not reached for well-formed text (the cost below is exact); shrink rather than trust it.
    budget -= bytes - maxBytes
  }
}

/** The longest prefix of `text` whose JSON string form (without quotes) takes at most `budget` bytes. */
function prefixWithin(text: string, budget: number): string {
  let used = 0
  let end = 0
  while (end < text.length) {
    const cost = jsonCost(text.charCodeAt(end))
    if (used + cost > budget) break
    used += cost
    end++
  }
  // Never split a surrogate pair.
  const last = text.charCodeAt(end - 1)
  if (end > 0 && end < text.length && last >= 0xd800 && last <= 0xdbff) end--
  return text.slice(0, end)
}

/** Bytes one UTF-16 code unit takes inside a JSON string in UTF-8 (a surrogate pair: 2 + 2). */
function jsonCost(code: number): number {
  if (code < 0x20) return code === 0x08 || code === 0x09 || code === 0x0a || code === 0x0c || code === 0x0d ? 2 : 6
  if (code === 0x22 || code === 0x5c) return 2
  if (code < 0x80) return 1
  if (code < 0x800) return 2
  if (code >= 0xd800 && code <= 0xdfff) return 2
  return 3
}

/**
 * A stage update's body, built field by field in the contract's order, with its output
 * serialised (a placeholder for one JSON cannot hold, logged). `completedAt` is fixed now, so a
 * redelivery from the outbox tells the server when the stage really finished.
 */
/**
 * The attempt fields of a PROCESSING update of a stage that retries (docs/contract.md "Timing,
 * attempts and streamed output"): the attempt running or about to run, of how many, the last
 * attempt's error (at most 2,000 characters) and when the next starts (`null`: it runs now).
 */
export interface StageAttemptFields {
  attempt: number
  maxAttempts: number
  lastError?: string
  nextRetryAt: string | null
}

export function buildStageUpdate(
  runId: string,
  stage: Pick<StageDefinition, 'number' | 'name'>,
  status: StageUpdateStatus,
  output: unknown,
  logger: Logger,
  attempt?: StageAttemptFields,
): { body: StageUpdate; alterations: OutputAlteration[] } {
  const { text, unserialisable } = serialiseOutput(output)
  const alterations: OutputAlteration[] = []
  if (unserialisable !== undefined) {
    alterations.push({ runId, stageNumber: stage.number, kind: 'unserialisable', reason: unserialisable })
    logger.warn(`Run ${runId}: stage ${stage.number} ${status}: the output cannot be serialised as JSON (${unserialisable}); a placeholder was sent instead`, {
      runId,
      stageNumber: stage.number,
      reason: unserialisable,
    })
  }
  const body: StageUpdate = { stageNumber: stage.number, stageName: stage.name, status }
  if (text !== undefined) body.output = text
  if (status !== 'PROCESSING') body.completedAt = new Date().toISOString()
  // Attempt fields go only with PROCESSING (the contract refuses them otherwise).
  if (attempt !== undefined && status === 'PROCESSING') Object.assign(body, attempt)
  return { body, alterations }
}

/** The body with characters PostgreSQL cannot store (NUL, lone surrogates) in its output replaced, logged. */
export function storableStageUpdate(runId: string, body: StageUpdate, logger: Logger): { body: StageUpdate; alterations: OutputAlteration[] } {
  if (typeof body.output !== 'string') return { body, alterations: [] }
  const storable = toStorableText(body.output)
  if (storable.replaced === 0) return { body, alterations: [] }
  logger.warn(
    `Run ${runId}: stage ${body.stageNumber} ${body.status}: replaced ${storable.replaced} character(s) PostgreSQL cannot store (NUL, lone UTF-16 surrogates) in the output with U+FFFD`,
    { runId, stageNumber: body.stageNumber, replacedCharacters: storable.replaced },
  )
  return { body: { ...body, output: storable.text }, alterations: [{ runId, stageNumber: body.stageNumber, kind: 'replaced', replacedCharacters: storable.replaced }] }
}
