/**
 * Progress within a running stage: the client's `seq`, the checks, and the coalescing of reports
 * that wait in the run's lane. Internal.
 */
import { safeParseContract } from '../contract/field-messages.js'
import { PayloadValidationError } from '../contract/parse.js'
import { StageProgress } from '../contract/runner-control.js'
import type { StageUpdate } from '../contract/stage-update.js'
import type { Delivered, Delivery, PendingUpdate } from './delivery.js'

/**
 * Progress within a running stage, for {@link PrismaAPIClient.reportProgress}: the contract's
 * `StageProgress` without `seq`, which the client assigns. A number that is not finite (`NaN`,
 * `Infinity`) is refused, never sent nor left out: the report is not sent.
 */
export interface ProgressReport {
  /** Units done so far (a non-negative number, at most `total`). */
  current?: number | undefined
  /** Units in all (a non-negative number). */
  total?: number | undefined
  /** Percent done, 0 to 100. */
  percent?: number | undefined
  /** A short status line (at most 500 characters). */
  message?: string | undefined
}

/** Builds, numbers and coalesces the progress reports of one client. */
export class ProgressReports {
  readonly #delivery: Delivery
  /** Per run and stage, the last progress `seq` assigned. */
  readonly #seq = new Map<string, number>()
  /** Per run and stage, a report waiting in the run's lane (not yet sent): newer reports replace its body. */
  readonly #waiting = new Map<string, { update: PendingUpdate; result: Promise<Delivered> }>()

  constructor(delivery: Delivery) {
    this.#delivery = delivery
  }

  /**
   * Delivers a report of a stage the caller checked is in the catalogue. Throws
   * `PayloadValidationError` for a report the contract refuses (not sent). While a report of
   * the stage waits behind the update in flight, a newer one takes its place (same idempotency
   * key), and both calls resolve with its result.
   */
  report(runId: string, stageNumber: number, stageName: string, report: ProgressReport): Promise<Delivered> {
    const key = `${runId}\u0000${stageNumber}`
    // Never below now: a later process redelivering or reporting the same stage still wins.
    const seq = Math.max((this.#seq.get(key) ?? -1) + 1, Date.now())
    const parsed = safeParseContract(StageProgress, { ...withoutUndefined(report), seq })
    // Refused naming the field (`current must be a finite number` for NaN); the Python client refuses the same way.
    if (!parsed.success) throw new PayloadValidationError('progress', parsed.error.issues)
    this.#seq.set(key, seq)
    const body: StageUpdate = { stageNumber, stageName, status: 'PROCESSING', progress: parsed.data }
    const json = JSON.stringify(body)
    const waiting = this.#waiting.get(key)
    if (waiting) {
      // Not sent yet: the newer report takes its place, with the same idempotency key.
      waiting.update.json = json
      return waiting.result
    }
    const update: PendingUpdate = {
      runId,
      route: 'stageUpdate',
      json,
      id: crypto.randomUUID(),
      what: `stage ${stageNumber} progress`,
      finishing: false,
      onStart: () => {
        if (this.#waiting.get(key)?.update === update) this.#waiting.delete(key)
      },
    }
    // In the map before delivering: with an idle lane it starts at once and takes it out again.
    const entry: { update: PendingUpdate; result: Promise<Delivered> } = { update, result: Promise.resolve({ state: 'failed', id: update.id, error: undefined, alterations: [] }) }
    this.#waiting.set(key, entry)
    entry.result = this.#delivery.deliver(update)
    return entry.result
  }
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}
