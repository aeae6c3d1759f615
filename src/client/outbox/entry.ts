/**
 * The outbox's records and options; the queue itself is `outbox.ts`.
 *
 * On disk (all JSON Lines, see `journal.ts`):
 * - `journal.jsonl`: every queued update, in the order it was queued (a replacement, e.g. an
 *   update whose output was cut after a 413, names the entry it `replaces` and takes its place;
 *   an entry that `replaces` itself, same id, is that entry as it now is, e.g. marked `unanswered`);
 * - `acks.jsonl`: the ids that left the queue (delivered, dead-lettered or replaced);
 * - `dead-letters.jsonl`: updates no retry can fix (refused with 400, 404, 409, 413 after
 *   truncation, 415, 422, ..., or older than `maxAgeMs`), kept for a human to look at;
 * - `outbox.lock`: the pid of the one process that owns the directory.
 * An update is pending while its id is in the journal and not in the acks. When nothing is
 * pending both files are emptied; when many acks pile up the journal is rewritten atomically.
 */
import { z } from 'zod'
import type { RetryPolicy } from '../retry-policy.js'

/**
 * Where and how the client keeps updates it could not deliver.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient({ outbox: { dir: './.pipeline-outbox' } })
 * ```
 */
export interface OutboxOptions {
  /**
   * Directory of the outbox files, created if missing. One process per directory: a second
   * live process gets an `OutboxLockedError`; a lock left by a dead process is taken over.
   */
  dir: string
  /**
   * Backoff base of the background redelivery, in milliseconds: after `n` consecutive failed
   * passes it waits a random time in `[0, retryDelayMs * 2^(n-1)]` (full jitter, the client's
   * {@link RetryPolicy} formula), at most `maxRetryDelayMs`; a `Retry-After` is waited exactly.
   * @default 1_000
   */
  retryDelayMs?: number | undefined
  /**
   * Longest wait between background redeliveries, in milliseconds; also caps a `Retry-After`.
   * An update refused with 401 or 403 (a secret that does not match the web app's) is retried
   * this slowly from the start, with an error logged each time, until the secret is fixed.
   * @default 60_000
   */
  maxRetryDelayMs?: number | undefined
  /**
   * How long an update may stay undelivered, in milliseconds, counted from its first attempt
   * (an update queued behind earlier ones without being tried: from when it was queued). Past
   * it, the update is dead-lettered like one the server refused, and the run's later updates
   * go on. Like the retry windows of Svix and Stripe. The default is 72 hours.
   * @default 259_200_000
   */
  maxAgeMs?: number | undefined
  /**
   * The source of the background redelivery's jitter, uniform numbers in `[0, 1)`; for tests,
   * e.g. `() => 0.99` to keep every wait near its ceiling, so that a redelivery never starts in
   * the middle of a test that flushes by itself.
   * @default Math.random
   */
  random?: (() => number) | undefined
}

/** A pending entry as {@link Outbox.append}'s `takesPlaceOf` sees it. */
export interface PendingEntry {
  entry: OutboxEntry
  /** Being delivered right now: it can no longer be replaced. */
  inFlight: boolean
}

/** Which route a queued update goes to; `stageOutput` is a chunk of a stage's streamed output (its entry names the stage). */
export type OutboxRoute = 'stageUpdate' | 'complete' | 'stageOutput'

/** One queued update, exactly as it will be sent again. */
export const OutboxEntry = z.object({
  v: z.literal(1),
  /** The update's idempotency key, sent unchanged on every delivery. */
  id: z.string().min(1),
  runId: z.string().min(1),
  route: z.enum(['stageUpdate', 'complete', 'stageOutput']),
  /** The stage of a `stageOutput` chunk (its URL names it; the body `{ seq, text }` does not). */
  stageNumber: z.number().int().min(1).optional(),
  /** The JSON body as first sent, byte for byte (its `completedAt` included). */
  body: z.string(),
  /** When the update entered the outbox (ISO 8601). */
  queuedAt: z.string(),
  /** When it was first attempted (ISO 8601); absent for one queued behind earlier updates. */
  firstAttemptAt: z.string().optional(),
  /** The id of the entry this one replaces and whose place in the queue it takes. */
  replaces: z.string().optional(),
  /**
   * For a completion: the cause of an attempt of it that got no definite answer (a timeout, a
   * reset, a gateway's 502/504), so the server may have received it; its later `duplicate`
   * answer may then be the server's to that attempt. Set when it was queued, or by a redelivery
   * (an entry replacing itself); an older client ignores it.
   */
  unanswered: z.string().optional(),
})
/** One queued update, exactly as it will be sent again. */
export type OutboxEntry = z.infer<typeof OutboxEntry>

/** One line of `acks.jsonl`: an id that left the queue, and how. */
export const Ack = z.object({ id: z.string(), result: z.enum(['delivered', 'rejected', 'replaced', 'superseded']), at: z.string() })

/**
 * An update that left the outbox's queue undelivered, because no retry could fix it: the
 * server refused it (400, 404, 409, 413 after truncation, 415, 422, ...) or it was older than
 * the outbox's `maxAgeMs`. Kept in `dead-letters.jsonl` in the outbox directory; read them with
 * `client.deadLetters()`.
 */
export interface DeadLetter {
  /** The update's idempotency key. */
  id: string
  /** The run it belongs to. */
  runId: string
  /** The route it was sent to. */
  route: OutboxRoute
  /** The stage of a streamed output chunk (`route: 'stageOutput'`). */
  stageNumber?: number | undefined
  /** The JSON body, byte for byte as it was sent. */
  body: string
  /** When it was queued (ISO 8601), or first attempted when it never was queued. */
  queuedAt: string
  /** When it was first attempted (ISO 8601), when known. */
  firstAttemptAt?: string | undefined
  /** When it was dead-lettered (ISO 8601). */
  deadLetteredAt: string
  /** The HTTP status of the refusal; absent for an expired update. */
  status?: number | undefined
  /** The problem `code` of the refusal, when the server sent one. */
  code?: string | undefined
  /** Why, for people. */
  reason: string
  /**
   * `superseded`: not an undelivery but the end of the run elsewhere: the server refused the
   * update (409 `run_finished`/`stage_finished`) because the run was cancelled, failed by the
   * stale-run sweeper or completed by someone else while it waited in the outbox. Kept for
   * inspection, not counted as undelivered (see `PrismaAPIClient.close`). Absent for a dead
   * letter proper (refused for good or expired).
   */
  kind?: 'superseded' | undefined
}

/** What one redelivery attempt came to. */
export type DeliveryResult =
  /** `answer`: the server's answer's text, handed to the outbox's owner when the entry leaves the queue. */
  | { result: 'delivered'; answer?: string | undefined }
  /** No retry can fix it (a 4xx other than 401/403): it leaves the queue as a dead letter. */
  | { result: 'rejected'; status?: number | undefined; code?: string | undefined; reason: string }
  /**
   * The server refused it because the run ended elsewhere (409 `run_finished`/`stage_finished`):
   * it leaves the queue and is kept with `kind: 'superseded'`, not counted as undelivered.
   */
  | { result: 'superseded'; status?: number | undefined; code?: string | undefined; reason: string }
  /** The server refused this body but takes `entry` instead (same place in the queue). */
  | { result: 'replace'; entry: OutboxEntry; reason: string }
  /**
   * Try again later; `retryAfterMs` is the server's `Retry-After`. `slow` (401, 403) waits the
   * longest delay and logs an error each time. `unanswered`: the attempt got no definite answer
   * (its cause), so the server may have received it: kept with the entry ({@link OutboxEntry}).
   */
  | { result: 'retry'; reason: string; retryAfterMs?: number | undefined; slow?: boolean | undefined; unanswered?: string | undefined }

/**
 * How a queued entry left the queue, once that is on disk: delivered (with the server's answer),
 * dead-lettered (`rejected`: refused for good or expired), or superseded (its run ended elsewhere).
 */
export type LeftQueue =
  | { result: 'delivered'; answer: string | undefined }
  | { result: 'rejected'; letter: DeadLetter }
  | { result: 'superseded'; reason: string }

/** Sends one queued update once. Must not throw. */
export type Deliver = (entry: OutboxEntry, signal: AbortSignal) => Promise<DeliveryResult>

/** What a flush did, and what is left. */
export interface FlushResult {
  /** Updates delivered by this flush. */
  delivered: number
  /**
   * Updates dead-lettered by this flush: refused for good (a 4xx other than 401/403) or older
   * than `maxAgeMs`; kept in `dead-letters.jsonl` (see {@link DeadLetter}).
   */
  rejected: number
  /** Updates still waiting (for all runs). */
  pending: number
}
/**
 * What a queued update is, read from its route and body: the one reading of an entry, for the
 * logs ({@link describeEntry}) and for `runPipeline`'s summary (which counts a status change or
 * the completion against `delivered`, not a progress report nor an output chunk).
 */
export type EntrySubject =
  | { kind: 'completion' }
  | { kind: 'status'; stageNumber: string; status: string }
  | { kind: 'progress'; stageNumber: string }
  | { kind: 'output'; stageNumber: string; seq: string }
  /** A stage update whose body is not JSON. */
  | { kind: 'stage-update' }

/** What `entry` is; see {@link EntrySubject}. */
export function subjectOf(entry: Pick<OutboxEntry, 'route' | 'body' | 'stageNumber'>): EntrySubject {
  if (entry.route === 'complete') return { kind: 'completion' }
  if (entry.route === 'stageOutput') return { kind: 'output', stageNumber: String(entry.stageNumber), seq: /"seq":(\d+)/.exec(entry.body)?.[1] ?? '?' }
  try {
    const body = JSON.parse(entry.body) as { stageNumber?: unknown; status?: unknown; progress?: unknown }
    return body.progress ? { kind: 'progress', stageNumber: String(body.stageNumber) } : { kind: 'status', stageNumber: String(body.stageNumber), status: String(body.status) }
  } catch {
    return { kind: 'stage-update' }
  }
}

/** An update as a person reads it: `stage 2 COMPLETED`, `stage 2 progress`, `stage 2 output chunk 3` or `completion`. */
export function describeEntry(entry: Pick<OutboxEntry, 'route' | 'body' | 'stageNumber'>): string {
  const subject = subjectOf(entry)
  switch (subject.kind) {
    case 'completion':
      return 'completion'
    case 'output':
      return `stage ${subject.stageNumber} output chunk ${subject.seq}`
    case 'progress':
      return `stage ${subject.stageNumber} progress`
    case 'status':
      return `stage ${subject.stageNumber} ${subject.status}`
    case 'stage-update':
      return 'stage update'
  }
}

/**
 * The reason of a streamed output chunk the outbox dead-letters without sending it, because an
 * earlier chunk of the same stage attempt was refused for good: the server applies a stage's
 * chunks only in order (`seq` after `seq`), so no later chunk of that attempt can be applied
 * (each would be refused `409 output_out_of_order`).
 */
export const EARLIER_CHUNK_DEAD_LETTERED = "an earlier chunk of this stage's output was dead-lettered"

/** The record kept in `dead-letters.jsonl` for an update that left the queue undelivered. */
export function toDeadLetter(
  entry: OutboxEntry,
  refusal: { status?: number | undefined; code?: string | undefined; reason: string },
  kind?: 'superseded',
): DeadLetter {
  return {
    id: entry.id,
    runId: entry.runId,
    route: entry.route,
    ...(entry.stageNumber === undefined ? {} : { stageNumber: entry.stageNumber }),
    body: entry.body,
    queuedAt: entry.queuedAt,
    ...(entry.firstAttemptAt === undefined ? {} : { firstAttemptAt: entry.firstAttemptAt }),
    deadLetteredAt: new Date().toISOString(),
    ...(refusal.status === undefined ? {} : { status: refusal.status }),
    ...(refusal.code === undefined ? {} : { code: refusal.code }),
    reason: refusal.reason,
    ...(kind === undefined ? {} : { kind }),
  }
}
