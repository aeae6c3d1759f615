import { createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  createWebhookSignatureHeaders,
  decodeWebhookSecret,
  signWebhook,
  timingSafeEqualBytes,
  verifyWebhookSignature,
  webhookMessageId,
  webhookRoute,
} from './webhook-signature.js'

// The test vector published with the Standard Webhooks reference libraries.
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
} as const

// Computed once with this module and checked below against node:crypto: a plain (non-whsec) secret.
const RAW_VECTOR = {
  secret: 'pipeline-status-raw-secret',
  id: 'msg_stage_1',
  timestamp: 1761400991,
  body: '{"stageNumber":1,"stageName":"Input Processing","status":"COMPLETED","completedAt":"2025-10-25T14:03:11.123456Z"}',
  signature: 'v1,z9gT2mc21vH7JkPxdsg27MDa1HkJfUtl/mQbqFasBHU=',
} as const

const independent = (key: Buffer, id: string, timestamp: number, body: string) =>
  `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`

describe('Standard Webhooks signatures', () => {
  it('reproduces the published known-answer vector', async () => {
    expect(await signWebhook(VECTOR)).toBe(VECTOR.signature)
    const key = Buffer.from(VECTOR.secret.slice('whsec_'.length), 'base64')
    expect(independent(key, VECTOR.id, VECTOR.timestamp, VECTOR.body)).toBe(VECTOR.signature)
  })

  it('signs with a raw secret exactly as node:crypto does', async () => {
    const signature = await signWebhook(RAW_VECTOR)
    expect(signature).toBe(RAW_VECTOR.signature)
    expect(independent(Buffer.from(RAW_VECTOR.secret, 'utf8'), RAW_VECTOR.id, RAW_VECTOR.timestamp, RAW_VECTOR.body)).toBe(
      signature,
    )
  })

  it('signs bytes and strings alike', async () => {
    const bytes = new TextEncoder().encode(VECTOR.body)
    expect(await signWebhook({ ...VECTOR, body: bytes })).toBe(VECTOR.signature)
  })

  it('verifies the vector within the tolerance and refuses it outside', async () => {
    const headers = { 'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.timestamp), 'webhook-signature': VECTOR.signature }
    const at = (seconds: number) => new Date((VECTOR.timestamp + seconds) * 1000)
    expect(await verifyWebhookSignature({ secrets: VECTOR.secret, headers, body: VECTOR.body, now: at(0) })).toEqual({
      valid: true,
      id: VECTOR.id,
      timestamp: VECTOR.timestamp,
    })
    expect(await verifyWebhookSignature({ secrets: VECTOR.secret, headers, body: VECTOR.body, now: at(300) })).toMatchObject({
      valid: true,
    })
    expect(await verifyWebhookSignature({ secrets: VECTOR.secret, headers, body: VECTOR.body, now: at(301) })).toMatchObject({
      valid: false,
      reason: 'timestamp_too_old',
    })
    expect(await verifyWebhookSignature({ secrets: VECTOR.secret, headers, body: VECTOR.body, now: at(-301) })).toMatchObject({
      valid: false,
      reason: 'timestamp_too_new',
    })
    expect(
      await verifyWebhookSignature({ secrets: VECTOR.secret, headers, body: VECTOR.body, now: at(3600), toleranceSeconds: 3600 }),
    ).toMatchObject({ valid: true })
  })

  it('refuses a changed body, id or timestamp, and a wrong secret', async () => {
    const now = new Date(VECTOR.timestamp * 1000)
    const base = { 'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.timestamp), 'webhook-signature': VECTOR.signature }
    const cases = [
      { headers: base, body: '{"test": 2432232315}', secrets: VECTOR.secret },
      { headers: { ...base, 'webhook-id': 'msg_other' }, body: VECTOR.body, secrets: VECTOR.secret },
      { headers: { ...base, 'webhook-timestamp': String(VECTOR.timestamp + 1) }, body: VECTOR.body, secrets: VECTOR.secret },
      { headers: base, body: VECTOR.body, secrets: 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    ]
    for (const c of cases) {
      expect(await verifyWebhookSignature({ ...c, now })).toMatchObject({ valid: false, reason: 'no_matching_signature' })
    }
  })

  it('accepts any matching signature among several, and several secrets', async () => {
    const now = new Date(VECTOR.timestamp * 1000)
    const headers = new Headers({
      'webhook-id': VECTOR.id,
      'webhook-timestamp': String(VECTOR.timestamp),
      'webhook-signature': `v1,AAAA v2,${VECTOR.signature.slice(3)} ${VECTOR.signature}`,
    })
    expect(await verifyWebhookSignature({ secrets: ['whsec_AAAA', VECTOR.secret], headers, body: VECTOR.body, now })).toMatchObject({
      valid: true,
    })
  })

  it('reports missing headers and malformed timestamps', async () => {
    expect(await verifyWebhookSignature({ secrets: 'x', headers: {}, body: '' })).toMatchObject({ reason: 'missing_headers' })
    const headers = { 'webhook-id': 'a', 'webhook-timestamp': '12.5', 'webhook-signature': 'v1,AAAA' }
    expect(await verifyWebhookSignature({ secrets: 'x', headers, body: '' })).toMatchObject({ reason: 'invalid_timestamp' })
  })

  it('creates headers that verify', async () => {
    const body = '{"status":"COMPLETED"}'
    const headers = await createWebhookSignatureHeaders({ secret: 'raw-secret', body, id: 'msg_1' })
    expect(headers['webhook-id']).toBe('msg_1')
    expect(await verifyWebhookSignature({ secrets: ['raw-secret'], headers, body })).toMatchObject({ valid: true, id: 'msg_1' })
  })

  it('decodes whsec_ secrets as base64 and others as UTF-8, refusing bad ones', () => {
    expect(decodeWebhookSecret('whsec_AQID')).toEqual(new Uint8Array([1, 2, 3]))
    expect(decodeWebhookSecret('abc')).toEqual(new TextEncoder().encode('abc'))
    expect(() => decodeWebhookSecret('whsec_!!')).toThrow(TypeError)
    expect(() => decodeWebhookSecret('')).toThrow(TypeError)
  })

  it('compares bytes without an early exit on length-equal inputs', () => {
    expect(timingSafeEqualBytes(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3]))).toBe(true)
    expect(timingSafeEqualBytes(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4]))).toBe(false)
    expect(timingSafeEqualBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3]))).toBe(false)
  })
})

// The route-bound scheme of docs/security.md ("What is signed"), whose table quotes these values.
const ROUTE_VECTORS = [
  {
    method: 'POST',
    route: webhookRoute('stageUpdate', 'run_1'),
    unique: '5f0e8a43-8c1d-4b6a-9d2e-7a1c3b9e4f20',
    body: '{"stageNumber":1,"stageName":"Input Processing","status":"COMPLETED","output":"café"}',
    signature: 'v1,osrKrL8goNVTONY+V4qcSr7u0wkrXskYy3BaByktCrk=',
  },
  {
    method: 'GET',
    route: webhookRoute('status', 'run_1'),
    unique: '0b9d6c1e-3f2a-4e5b-8c7d-6a5f4e3d2c1b',
    body: '',
    signature: 'v1,WrV8ytNC7/pL1S6s/9qJZkk3xk/6Mliwl23wM7fGtlI=',
  },
] as const

describe('route-bound webhook-id (docs/security.md)', () => {
  it('names the method, the route with the run id as it is, and the unique part', () => {
    expect(webhookMessageId({ method: 'post', route: webhookRoute('stageUpdate', 'run:7'), unique: 'k1' })).toBe('POST run:7/stage-update k1')
    expect(webhookRoute('complete', 'run_1')).toBe('run_1/complete')
    expect(webhookRoute('status', 'run_1')).toBe('run_1/status')
    expect(webhookRoute('createRun')).toBe('runs')
    expect(() => webhookMessageId({ method: 'GET', route: 'run_1/status', unique: '' })).toThrow(TypeError)
  })

  it('reproduces the documented known-answer vectors, also with node:crypto', async () => {
    const docs = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8')
    const key = Buffer.from(VECTOR.secret.slice('whsec_'.length), 'base64')
    for (const vector of ROUTE_VECTORS) {
      const id = webhookMessageId(vector)
      expect(await signWebhook({ secret: VECTOR.secret, id, timestamp: 1761400991, body: vector.body })).toBe(vector.signature)
      expect(independent(key, id, 1761400991, vector.body)).toBe(vector.signature)
      // The table in the docs shows exactly these values.
      for (const text of [id, vector.signature, vector.body]) expect(docs).toContain(text)
    }
  })
})
