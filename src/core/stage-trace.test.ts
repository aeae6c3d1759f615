import { describe, expect, it } from 'vitest'
import { decideStageUpdate } from './state-machine.js'
import { MAX_TRACE_LINKS, nextTraceFields, parseTraceparent } from './stage-trace.js'
import { newRun } from './state-machine.js'
import { DEFAULT_STAGES } from '../contract/stages.js'
import type { StageState } from './state.js'

const A = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
const B = '00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01'
const now = new Date('2026-12-06T08:00:00.000Z')

describe('parseTraceparent', () => {
  // The examples of https://www.w3.org/TR/trace-context/#examples-of-http-traceparent-headers
  const W3C = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const W3C_NOT_SAMPLED = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'

  it('keeps a valid version-00 value, trimmed, and ignores anything else', () => {
    expect(parseTraceparent(W3C)).toBe(W3C)
    expect(parseTraceparent(W3C_NOT_SAMPLED)).toBe(W3C_NOT_SAMPLED)
    expect(parseTraceparent(` ${A} `)).toBe(A)
    expect(parseTraceparent(null)).toBeUndefined()
    expect(parseTraceparent('00-00000000000000000000000000000000-b7ad6b7169203331-01')).toBeUndefined()
    expect(parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01')).toBeUndefined()
    expect(parseTraceparent('00-0af7651916cd43dd-b7ad6b7169203331-01')).toBeUndefined()
    // Version 00 has exactly four fields; version ff is invalid.
    expect(parseTraceparent(`${W3C}-extra`)).toBeUndefined()
    expect(parseTraceparent('ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).toBeUndefined()
  })

  it('refuses uppercase hex (W3C: the fields are lowercase hex)', () => {
    expect(parseTraceparent(W3C.toUpperCase())).toBeUndefined()
    expect(parseTraceparent('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01')).toBeUndefined()
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01')).toBeUndefined()
    expect(parseTraceparent('0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).toBeUndefined()
  })

  it('reads a later version by its first 55 characters, further fields allowed, and keeps it as version 00', () => {
    expect(parseTraceparent('cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).toBe(W3C)
    expect(parseTraceparent('cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like')).toBe(W3C)
    expect(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x')).toBe(W3C_NOT_SAMPLED)
    expect(parseTraceparent('cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what')).toBeUndefined()
    expect(parseTraceparent('cc-00000000000000000000000000000000-00f067aa0ba902b7-01')).toBeUndefined()
  })
})

describe('the trace context a stage keeps', () => {
  const stage = (fields: Partial<StageState>): StageState => ({
    stageNumber: 1, stageName: 'one', status: 'PROCESSING', output: null, completedAt: null, createdAt: now, updatedAt: now, ...fields,
  })

  it('keeps the first report’s as the parent and links each later attempt’s once', () => {
    expect(nextTraceFields(undefined, A, false)).toEqual({ traceparent: A, traceLinks: [] })
    expect(nextTraceFields(stage({ traceparent: A }), B, false)).toEqual({ traceparent: A, traceLinks: [] })
    expect(nextTraceFields(stage({ traceparent: A }), B, true)).toEqual({ traceparent: A, traceLinks: [B] })
    expect(nextTraceFields(stage({ traceparent: A, traceLinks: [B] }), B, true)).toEqual({ traceparent: A, traceLinks: [B] })
    expect(nextTraceFields(stage({ traceparent: A }), A, true)).toEqual({ traceparent: A, traceLinks: [] })
    // A stage whose first report had none takes the first one that has.
    expect(nextTraceFields(stage({}), B, true)).toEqual({ traceparent: B, traceLinks: [] })
    expect(nextTraceFields(stage({ traceparent: A, traceLinks: [B] }), undefined, true)).toEqual({ traceparent: A, traceLinks: [B] })
  })

  it('keeps at most MAX_TRACE_LINKS links', () => {
    const links = Array.from({ length: MAX_TRACE_LINKS }, (_, i) => `00-${'1'.repeat(31)}${(i % 10).toString()}-${i.toString(16).padStart(16, 'a')}-01`)
    expect(nextTraceFields(stage({ traceparent: A, traceLinks: links }), B, true).traceLinks).toEqual(links)
  })

  it('is applied by the state machine: the parent on the first update, a link on a higher attempt, kept on the final one', () => {
    const run = newRun('r', now)
    const update = { stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING' as const, attempt: 1 }
    const first = decideStageUpdate({ run, stage: undefined, update, stages: DEFAULT_STAGES, now, traceparent: A })
    if (first.outcome !== 'applied') throw new Error(first.outcome)
    expect(first.stage).toMatchObject({ traceparent: A, traceLinks: [] })
    const retry = decideStageUpdate({ run: first.run, stage: first.stage, update: { ...update, attempt: 2 }, stages: DEFAULT_STAGES, now, traceparent: B })
    if (retry.outcome !== 'applied') throw new Error(retry.outcome)
    expect(retry.stage).toMatchObject({ traceparent: A, traceLinks: [B] })
    const done = decideStageUpdate({ run: retry.run, stage: retry.stage, update: { ...update, status: 'COMPLETED', attempt: undefined }, stages: DEFAULT_STAGES, now })
    if (done.outcome !== 'applied') throw new Error(done.outcome)
    expect(done.stage).toMatchObject({ status: 'COMPLETED', traceparent: A, traceLinks: [B] })
  })
})
