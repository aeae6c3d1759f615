import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { PYTHON_RUNNER_PAYLOADS } from '../../test/support/fixtures.js'
import { STREAM_CLOSED_CAUSES, closedStops, parseStreamClosedComment, type StreamClosedCause } from './live-status.js'
import {
  CreateRun,
  DEFAULT_STAGES,
  PayloadValidationError,
  Problem,
  createProblem,
  defineStages,
  assertStageCatalogue,
  isPayloadValidationError,
  matchRoute,
  parseCompleteRun,
  parseCreateRun,
  parseStageUpdate,
  routePath,
  safeParseCompleteRun,
  safeParseStageUpdate,
  timestampToDate,
  allowedMethods,
  isRunId,
  isTimestamp,
  parseRunId,
  RunId,
  Timestamp,
} from '../index.js'

describe('stage update', () => {
  it('accepts every payload the Python runner sends, unchanged', () => {
    for (const payload of [
      PYTHON_RUNNER_PAYLOADS.processing,
      PYTHON_RUNNER_PAYLOADS.completedJson,
      PYTHON_RUNNER_PAYLOADS.completedMarkdown,
      PYTHON_RUNNER_PAYLOADS.failed,
    ]) {
      expect(parseStageUpdate(payload, DEFAULT_STAGES)).toEqual(payload)
    }
  })

  it('keeps output byte for byte, as a JSON string and as markdown', () => {
    const json = parseStageUpdate(PYTHON_RUNNER_PAYLOADS.completedJson)
    expect(JSON.parse(json.output ?? '')).toEqual({ signals: [{ id: 1, text: 'Gen Z wants éclairs' }], count: 1 })
    expect(parseStageUpdate(PYTHON_RUNNER_PAYLOADS.completedMarkdown).output).toBe(
      PYTHON_RUNNER_PAYLOADS.completedMarkdown.output,
    )
  })

  it('accepts microsecond timestamps and reads ones without an offset as UTC', () => {
    expect(timestampToDate('2025-10-25T14:03:11.123456Z').toISOString()).toBe('2025-10-25T14:03:11.123Z')
    const naive = parseStageUpdate({ ...PYTHON_RUNNER_PAYLOADS.completedJson, completedAt: '2025-10-25T14:03:11.123456' })
    expect(timestampToDate(naive.completedAt ?? '').toISOString()).toBe('2025-10-25T14:03:11.123Z')
    expect(timestampToDate('2025-10-25T16:03:11+02:00').toISOString()).toBe('2025-10-25T14:03:11.000Z')
  })

  it('accepts null output and completedAt, as Python None serialises', () => {
    expect(parseStageUpdate({ stageNumber: 2, stageName: 'x', status: 'PROCESSING', output: null, completedAt: null }).output).toBeNull()
  })

  it('names each failing field and why', () => {
    const result = safeParseStageUpdate({ stageNumber: 0, stageName: '', status: 'DONE', completedAt: 'yesterday' })
    expect(result.success).toBe(false)
    const fields = result.error?.issues.map((i) => i.path.join('.')).sort()
    expect(fields).toEqual(['completedAt', 'stageName', 'stageNumber', 'status'])
  })

  it('checks stageNumber against the catalogue only when one is given', () => {
    const six = { stageNumber: 6, stageName: 'Extra', status: 'PROCESSING' }
    expect(parseStageUpdate(six).stageNumber).toBe(6)
    expect(() => parseStageUpdate(six, DEFAULT_STAGES)).toThrow('Invalid stage update: stageNumber must be a whole number from 1 to 5')
    // Below the catalogue, the same words as above it.
    expect(() => parseStageUpdate({ ...six, stageNumber: 0 }, DEFAULT_STAGES)).toThrow('Invalid stage update: stageNumber must be a whole number from 1 to 5')
  })

  it('throws a PayloadValidationError with field errors', () => {
    let caught: unknown
    try {
      parseStageUpdate({ stageNumber: 1.5, stageName: 'x', status: 'PROCESSING' })
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(PayloadValidationError)
    expect(isPayloadValidationError(caught)).toBe(true)
    expect((caught as PayloadValidationError).fieldErrors).toEqual([
      { field: 'stageNumber', message: 'stageNumber must be a whole number from 1 to 2147483647' },
    ])
  })

  it('rejects a body that is not an object', () => {
    for (const body of [null, [], 'x', 3]) expect(safeParseStageUpdate(body).success).toBe(false)
  })

  it('takes the attempt fields only with PROCESSING, the last three only with attempt, and names the field', () => {
    const processing = { stageNumber: 2, stageName: 'x', status: 'PROCESSING' }
    const retrying = { ...processing, attempt: 2, maxAttempts: 3, lastError: 'model timed out', nextRetryAt: '2026-01-01T00:00:30Z' }
    expect(parseStageUpdate(retrying, DEFAULT_STAGES)).toEqual(retrying)
    expect(parseStageUpdate({ ...processing, attempt: 2, nextRetryAt: null, lastError: null })).toMatchObject({ attempt: 2, nextRetryAt: null })
    const cases: Array<[Record<string, unknown>, string[]]> = [
      [{ ...retrying, status: 'COMPLETED' }, ['attempt', 'lastError', 'maxAttempts', 'nextRetryAt']],
      [{ ...processing, status: 'FAILED', attempt: 1 }, ['attempt']],
      [{ ...processing, maxAttempts: 3, lastError: 'x', nextRetryAt: null }, ['lastError', 'maxAttempts', 'nextRetryAt']],
      [{ ...processing, attempt: 0 }, ['attempt']],
      [{ ...processing, attempt: 1.5 }, ['attempt']],
      [{ ...processing, attempt: 2 ** 31 }, ['attempt']],
      [{ ...processing, attempt: 3, maxAttempts: 2 }, ['maxAttempts']],
      [{ ...processing, attempt: 2, lastError: 'x'.repeat(2001) }, ['lastError']],
      [{ ...processing, attempt: 2, nextRetryAt: 'soon' }, ['nextRetryAt']],
    ]
    for (const [body, fields] of cases) {
      const result = safeParseStageUpdate(body, DEFAULT_STAGES)
      expect(result.error?.issues.map((issue) => issue.path.join('.')).sort(), JSON.stringify(body)).toEqual(fields)
    }
  })
})

describe('completion and creation', () => {
  it('keeps app-specific fields of the original /complete body', () => {
    const body = parseCompleteRun(PYTHON_RUNNER_PAYLOADS.complete)
    expect(body.opportunities).toEqual([{ title: 'Pastry pop-ups', score: 0.92 }])
    expect(body.fullReportMarkdown).toBe('# Report\n\nAll good.')
  })

  it('rejects PROCESSING and negative durations', () => {
    expect(safeParseCompleteRun({ status: 'PROCESSING' }).success).toBe(false)
    expect(safeParseCompleteRun({ status: 'FAILED', duration: -1 }).success).toBe(false)
  })

  it('allows an empty creation body and restricts ids to URL-safe characters', () => {
    expect(parseCreateRun({})).toEqual({})
    expect(parseCreateRun({ id: 'run_2025-10-25:a.b~c' }).id).toBe('run_2025-10-25:a.b~c')
    expect(CreateRun.safeParse({ id: 'a/b' }).success).toBe(false)
    expect(CreateRun.safeParse({ id: 'x'.repeat(129) }).success).toBe(false)
  })
})

describe('stages', () => {
  it('has the original five-stage catalogue', () => {
    expect(DEFAULT_STAGES.map((s) => s.name)).toEqual([
      'Input Processing',
      'Signal Amplification',
      'General Translation',
      'Brand Contextualization',
      'Opportunity Generation',
    ])
    expect(DEFAULT_STAGES.map((s) => s.number)).toEqual([1, 2, 3, 4, 5])
  })

  it('builds and checks catalogues', () => {
    expect(defineStages(['a', 'b'])).toEqual([{ number: 1, name: 'a' }, { number: 2, name: 'b' }])
    expect(() => defineStages([])).toThrow(TypeError)
    expect(() => defineStages(['a', ' '])).toThrow(/Stage 2/)
    expect(() => assertStageCatalogue([{ number: 2, name: 'a' }])).toThrow(/entry 0/)
  })
})

describe('routes', () => {
  it('builds and matches every route, under any base path', () => {
    for (const base of ['/api/pipeline', '/hooks/status/', 'x']) {
      expect(matchRoute(routePath('createRun', undefined, base), base)).toEqual({ route: 'createRun' })
      for (const route of ['stageUpdate', 'status', 'complete'] as const) {
        expect(matchRoute(routePath(route, 'run/1 ü', base), base)).toEqual({ route, runId: 'run/1 ü' })
      }
    }
  })

  it('matches nothing outside the routes', () => {
    for (const path of ['/api/pipeline', '/api/pipeline/', '/api/pipelines/r/status', '/api/pipeline/r/other', '/api/pipeline/r/status/x', '/api/pipeline/%E0%A4%A/status', '/api/pipeline//status']) {
      expect(matchRoute(path)).toBeUndefined()
    }
  })
})

describe('problems', () => {
  it('builds problem bodies with a stable type and code', () => {
    const problem = createProblem('run_finished', { detail: 'Run r is COMPLETED' })
    expect(Problem.parse(problem)).toEqual({
      type: 'urn:pipeline-status-sdk:problem:run-finished',
      title: 'The run is finished and cannot take this update',
      status: 409,
      code: 'run_finished',
      detail: 'Run r is COMPLETED',
    })
  })
})

describe('input rules', () => {
  it('run ids: 1 to 128 of A-Z a-z 0-9 . _ ~ : -, not only dots', () => {
    for (const id of ['a', 'run_1', 'a.b', '.a', 'a..', '~:-_.', 'x'.repeat(128)]) expect(isRunId(id), id).toBe(true)
    for (const id of ['', '.', '..', '....', 'a b', 'a/b', 'é', 'a%20', 'x'.repeat(129), 7, null]) expect(isRunId(id), String(id)).toBe(false)
    expect(RunId.safeParse('..').success).toBe(false)
    expect(parseRunId('run_1')).toBe('run_1')
    expect(() => parseRunId('a b')).toThrow(PayloadValidationError)
    const error = (() => {
      try {
        return parseRunId('..')
      } catch (thrown) {
        return thrown
      }
    })()
    expect(isPayloadValidationError(error) && error.fieldErrors.map((e) => e.field)).toEqual(['runId'])
  })

  it('timestamps: the grammar, real dates, cut to the millisecond, years 1 to 9999 UTC', () => {
    expect(timestampToDate('2025-10-25T14:03:11.9999999-00:30').toISOString()).toBe('2025-10-25T14:33:11.999Z')
    expect(timestampToDate('0050-01-01T00:00:00Z').toISOString()).toBe('0050-01-01T00:00:00.000Z')
    expect(timestampToDate('0000-12-31T23:30:00-00:30').toISOString()).toBe('0001-01-01T00:00:00.000Z')
    for (const value of ['0001-01-01T00:00:00+00:01', '9999-12-31T23:59:59-00:01', '2025-10-25T14:03', '2025-10-25T14:03:60Z', '2023-02-29T00:00:00Z']) {
      expect(isTimestamp(value), value).toBe(false)
      expect(() => timestampToDate(value), value).toThrow(RangeError)
    }
    // The table the Python client is tested against too (clients/python/tests/test_unit.py).
    const table = JSON.parse(readFileSync(new URL('../../clients/python/tests/timestamps.json', import.meta.url), 'utf8')) as {
      cases: Array<{ value: string; reason: 'grammar' | 'range' | null }>
    }
    for (const { value, reason } of table.cases) {
      const issue = Timestamp.safeParse(value).error?.issues[0]?.message
      expect(issue === undefined ? null : /years 0001 to 9999/.test(issue) ? 'range' : 'grammar', value).toBe(reason)
    }
    const [range] = Timestamp.safeParse('9999-12-31T23:59:59-01:00').error?.issues ?? []
    expect(range?.message).toMatch(/years 0001 to 9999/)
    const [grammar] = Timestamp.safeParse('2025-10-25T14:03Z').error?.issues ?? []
    expect(grammar?.message).toMatch(/YYYY-MM-DDTHH:MM:SS/)
  })

  it('a GET route also allows HEAD', () => {
    expect(allowedMethods('status')).toEqual(['GET', 'HEAD'])
    expect(allowedMethods('stageUpdate')).toEqual(['POST'])
  })
})

describe('runner control contract', () => {
  it('builds and matches the heartbeat and cancel routes', async () => {
    const { routePath, matchRoute, allowedMethods } = await import('./routes.js')
    expect(routePath('heartbeat', 'run:1')).toBe('/api/pipeline/run%3A1/heartbeat')
    expect(routePath('cancel', 'run_1', '/x')).toBe('/x/run_1/cancel')
    expect(matchRoute('/api/pipeline/run_1/heartbeat')).toEqual({ route: 'heartbeat', runId: 'run_1' })
    expect(matchRoute('/api/pipeline/run_1/cancel/')).toEqual({ route: 'cancel', runId: 'run_1' })
    expect(allowedMethods('cancel')).toEqual(['POST'])
  })

  it('parses heartbeats (an empty body is a bare one) and names the failing field', async () => {
    const { parseHeartbeat, safeParseHeartbeat, parseCancelRun } = await import('./parse.js')
    const { DEFAULT_STAGES: stages } = await import('./stages.js')
    expect(parseHeartbeat(undefined)).toEqual({})
    expect(parseHeartbeat({ stageNumber: 2, intervalMs: 10_000, progress: { seq: 0, message: 'go' }, extra: 1 })).toEqual({
      stageNumber: 2,
      intervalMs: 10_000,
      progress: { seq: 0, message: 'go' },
    })
    const fields = (input: unknown) => {
      const result = safeParseHeartbeat(input, stages)
      return result.success ? [] : result.error.issues.map((issue) => issue.path.join('.'))
    }
    expect(fields({ stageNumber: 6 })).toEqual(['stageNumber'])
    expect(fields({ intervalMs: 999 })).toEqual(['intervalMs'])
    expect(fields({ progress: { seq: 1 } })).toEqual(['stageNumber'])
    expect(fields({ stageNumber: 1, progress: { seq: 1.5, percent: -1 } })).toEqual(['progress.seq', 'progress.percent'])
    expect(parseCancelRun({ reason: 'user' })).toEqual({ reason: 'user' })
    expect(() => parseCancelRun({ reason: 'x'.repeat(2001) })).toThrow(/reason/)
  })
})

describe('the live stream\'s `: closed` comments, shared with the Python client', () => {
  it('parses the comments and stops on the same causes as clients/python/tests/stream_closed.json', () => {
    const table = JSON.parse(readFileSync(new URL('../../clients/python/tests/stream_closed.json', import.meta.url), 'utf8')) as {
      causes: string[]
      comments: Array<{ comment: string; cause: string | null; runId: string | null }>
      stops: Array<{ cause: StreamClosedCause; authorization: string | null; stops: boolean }>
    }
    expect(Object.keys(STREAM_CLOSED_CAUSES).sort()).toEqual([...table.causes].sort())
    for (const { comment, cause, runId } of table.comments) {
      const parsed = parseStreamClosedComment(comment)
      expect(parsed === undefined ? { cause: null, runId: null } : { cause: parsed.cause, runId: parsed.runId ?? null }, comment).toEqual({ cause, runId })
    }
    for (const { cause, authorization, stops } of table.stops) expect(closedStops(cause, authorization), `${cause} ${authorization}`).toBe(stops)
  })
})
