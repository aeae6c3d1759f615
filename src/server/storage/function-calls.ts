/**
 * When a `PrismaStore` calls the hot path's functions (`sql/functions.ts`) instead of sending its
 * statements inline, and what it says about it. One rule: a store whose statements reach the
 * database unnamed calls the functions while the database has them. It asks once, the first time
 * it matters; while they are missing it asks again at most every
 * {@link STORE_FUNCTIONS_RECHECK_MS}, so a migration applied while the app runs takes effect
 * without a restart; a call the database answers with "no such function" (SQLSTATE 42883,
 * dropped since) is sent inline at once and the functions are asked for again later. Each change
 * between the two is logged once, `warn`, with its cause and, going inline, the fix. Internal.
 */
import { errorMessage } from '../../internal/error-message.js'
import type { Logger } from '../../internal/logger.js'
import { hasSqlState } from '../database-errors.js'
import type { SqlExecutor } from './adapters/sql-executor.js'
import { RecheckedPresence } from './rechecked-presence.js'
import { STORE_FUNCTIONS_MIGRATION, STORE_FUNCTIONS_PROBE, type StoreFunction, type StoreFunctions } from './sql/functions.js'

/** While the functions are missing, how often a store asks the database for them again, in milliseconds. */
export const STORE_FUNCTIONS_RECHECK_MS = 60_000

/** SQLSTATE undefined_function: the database has no function of that name and arguments. */
const UNDEFINED_FUNCTION = '42883'

const INLINE = 'pipeline-status: stage updates, heartbeats and run creations send their statements inline, parsed and planned on every call, because'

/** The calls of one store; see the module's description. */
export class FunctionCalls {
  readonly #sql: SqlExecutor
  /** The functions for the store's names, `undefined` when its names are not the defaults. */
  readonly #functions: StoreFunctions | undefined
  /** Their names, as the messages name them. */
  readonly #names: string[]
  /** Their signatures, as the probe asks for them (`StoreFunction.signature`). */
  readonly #signatures: string[]
  /** The package's types those signatures name (the probe asks for them first). */
  readonly #types: string[]
  readonly #logger: () => Logger
  readonly #presence: RecheckedPresence
  /** Whether the statements going inline for names other than the defaults was said. */
  #saidInline = false

  constructor(sql: SqlExecutor, functions: StoreFunctions | undefined, logger: () => Logger, now: () => number = Date.now) {
    this.#sql = sql
    this.#functions = functions
    this.#names = functions ? Object.values(functions).map((fn) => fn.name) : []
    this.#signatures = functions ? Object.values(functions).map((fn) => fn.signature) : []
    this.#types = [...new Set(functions ? Object.values(functions).flatMap((fn) => fn.packageTypes) : [])]
    this.#logger = logger
    this.#presence = new RecheckedPresence({
      what: 'its functions',
      recheckMs: STORE_FUNCTIONS_RECHECK_MS,
      now,
      probe: async () => {
        const rows = await this.#sql.query<{ ok: boolean }>(STORE_FUNCTIONS_PROBE, [this.#signatures, this.#types])
        return rows[0]?.ok === true || `the database lacks one of the functions ${this.#names.join(', ')} on the search_path`
      },
      onPresentAgain: () =>
        this.#logger().warn(`pipeline-status: the database has the functions ${this.#names.join(', ')} now; stage updates, heartbeats and run creations call them again`, {
          migration: STORE_FUNCTIONS_MIGRATION,
        }),
      onMissing: (cause) =>
        this.#logger().warn(
          `${INLINE} ${cause}. The functions come with the package's migration ${STORE_FUNCTIONS_MIGRATION}: apply it (npx pipeline-status migrate, ` +
            'or --into or --print where your own migrations run); the store asks for them again every minute. ' +
            `If that migration is recorded as applied but they are missing, create them again from its migration.sql (${this.#names.join(', ')})`,
          { migration: STORE_FUNCTIONS_MIGRATION },
        ),
    })
  }

  /**
   * The rows of `pick(functions).call` with `values` when the store calls the functions now;
   * `undefined` when the caller must send its own statement inline. Throws what the call throws,
   * except "no such function", and `StoreUnavailableError` when asking for them found the
   * database unreachable.
   */
  async call<Row>(pick: (functions: StoreFunctions) => StoreFunction, values: unknown[]): Promise<Row[] | undefined> {
    // Named statements are planned once per connection already.
    if (this.#sql.prepares) return undefined
    const functions = this.#functions
    if (!functions) {
      this.#sayInline(
        "the tables or columns have other names than the defaults (@@map, @map), and the package's functions are made for those. " +
          'For these statements prepared once per connection, give createPrismaStore a pool on a direct URL',
      )
      return undefined
    }
    if (!(await this.#presence.present())) return undefined
    try {
      return await this.#sql.query<Row>(pick(functions).call, values)
    } catch (error) {
      if (!hasSqlState(error, UNDEFINED_FUNCTION)) throw error
      // Refused before it ran: the caller's inline statement does the work instead.
      this.#presence.missing(`a call found no such function (${errorMessage(error)})`)
      return undefined
    }
  }

  #sayInline(why: string): void {
    if (this.#saidInline) return
    this.#saidInline = true
    this.#logger().warn(`${INLINE} ${why}`, { migration: STORE_FUNCTIONS_MIGRATION })
  }
}
