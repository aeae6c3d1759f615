/**
 * The timestamp rule against the database (real PostgreSQL with DATABASE_URL, else PGlite):
 * generated strings in and around the grammar `YYYY-MM-DDTHH:MM:SS[.1–9 digits][Z|±HH:MM]` go
 * through the handlers on a PrismaStore. Every string the contract accepts must be stored and read
 * back (through Prisma, and as PostgreSQL's own text) as the millisecond instant the contract
 * computed; every string it refuses must get 400 naming `completedAt` and be, by an independent
 * reference (integer calendar arithmetic, no `Date`), outside the grammar or outside years 1–9999.
 *
 * Reproduce a failure with the seed and path fast-check prints:
 *   TIMESTAMP_SEED=<seed> TIMESTAMP_PATH=<path> npx vitest run test/prisma/timestamp-roundtrip.test.ts
 */
import fc from 'fast-check'
import { Problem, RunStatusResponse, Timestamp, timestampToDate } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers, createPrismaStore, type PipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'

const SEED = Number(process.env['TIMESTAMP_SEED'] ?? 20251025)
const PATH = process.env['TIMESTAMP_PATH']
const NUM_RUNS = Number(process.env['TIMESTAMP_RUNS'] ?? 400)
const SECRET = 'timestamp-secret-3c1e'
const BASE = 'http://app.test/api/pipeline'

let db: TestDatabase
let handlers: PipelineStatusHandlers

beforeAll(async () => {
  db = await createTestDatabase()
  // Runs are created at the first instant of year 1 and the tolerance reaches year 9999, so the
  // runner-clock clamp (docs/contract.md, "Runner clocks") keeps every accepted instant as sent:
  // this property is about storage, the clamp has its own tests.
  handlers = createPipelineStatusHandlers({
    store: createPrismaStore({ prisma: db.prisma }),
    secret: SECRET,
    clock: () => new Date('0001-01-01T00:00:00.000Z'),
    clockSkewToleranceMs: Date.parse('9999-12-31T23:59:59.999Z') - Date.parse('0001-01-01T00:00:00.000Z'),
    logger: { warn: () => {}, error: () => {} },
  })
})
afterAll(() => db?.close())

// ---- the independent reference ------------------------------------------------------------

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil, integers only). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

const DAY_MS = 86_400_000
const FIRST_MS = daysFromCivil(1, 1, 1) * DAY_MS
const END_MS = daysFromCivil(10000, 1, 1) * DAY_MS

/** The UTC millisecond a string names if it is in the grammar (fields in range), else `undefined`. */
function reference(value: string): number | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?$/.exec(value)
  if (!match) return undefined
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
  const monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
  if (monthDays === undefined || day < 1 || day > monthDays || hour > 23 || minute > 59 || second > 59) return undefined
  const zone = match[8] ?? 'Z'
  let offset = 0
  if (zone !== 'Z') {
    const [hours, minutes] = zone.slice(1).split(':').map(Number) as [number, number]
    if (hours > 23 || minutes > 59) return undefined
    offset = (zone.startsWith('-') ? -1 : 1) * (hours * 60 + minutes)
  }
  const ms = Number((match[7] ?? '.').slice(1, 4).padEnd(3, '0'))
  return ((daysFromCivil(year, month, day) * 24 + hour) * 60 + minute - offset) * 60_000 + second * 1000 + ms
}

// ---- what is generated ----------------------------------------------------------------------

const pad = (n: number, width: number) => String(Math.abs(n)).padStart(width, '0')
const weighted = <T,>(...pairs: Array<[number, fc.Arbitrary<T>]>) => fc.oneof(...pairs.map(([weight, arbitrary]) => ({ weight, arbitrary })))

const zone = weighted<string>(
  [3, fc.constant('')],
  [3, fc.constant('Z')],
  [6, fc.tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 14 }), fc.constantFrom(0, 30, 45, 59)).map(([s, h, m]) => `${s}${pad(h, 2)}:${pad(m, 2)}`)],
  [
    1,
    fc.oneof(
      fc.tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 99 }), fc.integer({ min: 0, max: 99 })).map(([s, h, m]) => `${s}${pad(h, 2)}:${pad(m, 2)}`),
      fc.constantFrom('z', '+0200', '+02', '-1', 'UTC', ' Z', '+02:00:00'),
    ),
  ],
)

const fraction = weighted<string>(
  [4, fc.constant('')],
  [6, fc.integer({ min: 1, max: 9 }).chain((digits) => fc.stringMatching(new RegExp(`^[0-9]{${digits}}$`))).map((d) => `.${d}`)],
  [1, fc.constantFrom('.', '.1234567890', '.9999999999', ',5')],
)

const year = weighted<number>(
  [6, fc.integer({ min: 1, max: 9999 })],
  [4, fc.constantFrom(0, 1, 2, 99, 100, 1899, 1900, 1970, 9998, 9999)],
  [1, fc.integer({ min: 10000, max: 99999 })],
)

const candidate = weighted<string>(
  [
    20,
    fc
      .record({
        year,
        month: weighted<number>([8, fc.integer({ min: 1, max: 12 })], [1, fc.constantFrom(0, 13)]),
        day: weighted<number>([8, fc.integer({ min: 1, max: 28 })], [3, fc.integer({ min: 29, max: 31 })], [1, fc.constantFrom(0, 32)]),
        hour: weighted<number>([8, fc.integer({ min: 0, max: 23 })], [3, fc.constantFrom(0, 23)], [1, fc.constant(24)]),
        minute: weighted<number>([8, fc.integer({ min: 0, max: 59 })], [3, fc.constantFrom(0, 59)], [1, fc.constant(60)]),
        second: weighted<number>([8, fc.integer({ min: 0, max: 59 })], [3, fc.constantFrom(0, 59)], [1, fc.constant(60)]),
        fraction,
        zone,
        separator: weighted<string>([12, fc.constant('T')], [1, fc.constantFrom(' ', 't', '')]),
        minutesOnly: weighted<boolean>([12, fc.constant(false)], [1, fc.constant(true)]),
      })
      .map((p) => {
        const date = `${p.year < 0 ? '-' : ''}${pad(p.year, 4)}-${pad(p.month, 2)}-${pad(p.day, 2)}`
        const time = p.minutesOnly ? `${pad(p.hour, 2)}:${pad(p.minute, 2)}` : `${pad(p.hour, 2)}:${pad(p.minute, 2)}:${pad(p.second, 2)}${p.fraction}`
        return `${date}${p.separator}${time}${p.zone}`
      }),
  ],
  // Edges of years 1 and 9999 seen from either side of UTC.
  [
    4,
    fc
      .tuple(
        fc.constantFrom('0001-01-01T00:', '0000-12-31T23:', '9999-12-31T23:', '9999-12-31T22:', '0001-01-01T01:'),
        fc.integer({ min: 0, max: 59 }),
        fc.integer({ min: 0, max: 59 }),
        fraction,
        zone,
      )
      .map(([prefix, m, s, f, z]) => `${prefix}${pad(m, 2)}:${pad(s, 2)}${f}${z}`),
  ],
  [1, fc.date({ noInvalidDate: true }).map((d) => d.toISOString())],
  [1, fc.string({ maxLength: 30 })],
)

// ---- the property ---------------------------------------------------------------------------

let counter = 0
async function send(path: string, init: { method?: string; body?: unknown } = {}): Promise<Response> {
  return handlers.fetch(
    new Request(`${BASE}${path}`, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    }),
  )
}

describe('timestamps on the database', () => {
  it(`stores every accepted timestamp as the contract's millisecond instant and refuses only what the rule excludes (${NUM_RUNS} strings)`, async () => {
    const seen = { accepted: 0, refusedGrammar: 0, refusedRange: 0 }
    await fc.assert(
      fc.asyncProperty(candidate, async (completedAt) => {
        const runId = `ts-${SEED}-${(counter += 1)}`
        expect((await send('/runs', { body: { id: runId } })).status).toBe(201)
        const response = await send(`/${runId}/stage-update`, {
          body: { stageNumber: 1, stageName: 'Input Processing', status: 'COMPLETED', completedAt },
        })
        const text = await response.text()
        const expectedMs = reference(completedAt)

        if (Timestamp.safeParse(completedAt).success) {
          seen.accepted += 1
          const computed = timestampToDate(completedAt)
          // The reference agrees on the instant, and it lies in years 1–9999.
          expect(computed.getTime(), completedAt).toBe(expectedMs)
          expect(computed.getTime() >= FIRST_MS && computed.getTime() < END_MS, completedAt).toBe(true)
          expect({ status: response.status, text }).toMatchObject({ status: 200 })

          const status = RunStatusResponse.parse(await (await send(`/${runId}/status`)).json())
          expect(status.stages[0]?.completedAt, completedAt).toBe(computed.toISOString())
          // PostgreSQL's own rendering, without Prisma or a JS Date in between.
          const [row] = await db.prisma.$queryRawUnsafe<Array<{ text: string }>>(
            `SELECT to_char("completedAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS text FROM "StageOutput" WHERE "runId" = $1`,
            runId,
          )
          expect(row?.text, completedAt).toBe(computed.toISOString())
        } else {
          // Outside the grammar, or an instant outside years 1–9999.
          if (expectedMs === undefined) seen.refusedGrammar += 1
          else {
            seen.refusedRange += 1
            expect(expectedMs < FIRST_MS || expectedMs >= END_MS, completedAt).toBe(true)
          }
          expect({ status: response.status, text }).toMatchObject({ status: 400 })
          const problem = Problem.parse(JSON.parse(text))
          expect(problem.code).toBe('validation_failed')
          expect(problem.errors?.map((e) => e.field)).toEqual(['completedAt'])
          // The run still answers, with nothing stored.
          const status = RunStatusResponse.parse(await (await send(`/${runId}/status`)).json())
          expect(status.stages).toEqual([])
        }
      }),
      { seed: SEED, numRuns: NUM_RUNS, ...(PATH ? { path: PATH } : {}) },
    )
    console.info(`[timestamps] seed ${SEED}: ${JSON.stringify(seen)}`)
    // The mix really reached each side of the rule.
    expect(seen.accepted).toBeGreaterThan(NUM_RUNS / 4)
    expect(seen.refusedGrammar).toBeGreaterThan(10)
    expect(seen.refusedRange).toBeGreaterThan(3)
  }, 300_000)
})
