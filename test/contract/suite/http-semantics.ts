/** Contract scenarios, HTTP semantics: HEAD, 405 with Allow, content codings, body limits on keep-alive connections. */
import { Problem, PROBLEM_CONTENT_TYPE, StageUpdateResponse } from 'pipeline-status-sdk'
import { Agent } from 'node:http'
import { deflateSync, gzipSync } from 'node:zlib'
import { describe, expect } from 'vitest'
import { makeCompleteRun, makeStageUpdate } from '../../support/fixtures.js'
import { expectProblem, paddedStageUpdate, rawRequest, SECRET, uniqueRunId } from './harness.js'
import type { ContractContext } from './use-target.js'

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeHttpSemantics({ name, scenario, socketScenario, transport }: ContractContext): void {
  describe(`${name}: HTTP semantics`, () => {
    scenario('HEAD on the status route answers like GET without a body; Allow names GET, HEAD', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate())
      const get = await api.getStatus(id)
      const head = await api.send({ path: `/${id}/status`, method: 'HEAD' })
      expect(head.status).toBe(200)
      expect(head.headers.get('content-type')).toBe(get.headers.get('content-type'))
      // The same validators and caching as the GET it stands for (RFC 9110 §9.3.2).
      expect(head.headers.get('cache-control')).toBe('private, no-cache')
      expect(head.headers.get('etag')).toBe(get.headers.get('etag'))
      expect(head.headers.get('etag')).toMatch(/^"\d+"$/)
      // What docs/contract.md says: every header of the GET except Content-Length.
      expect(head.headers.get('content-length')).toBeNull()
      expect(await head.text()).toBe('')
      await get.text()

      for (const [spec, status] of [
        [{ path: `/${uniqueRunId('missing')}/status`, method: 'HEAD' }, 404],
        [{ path: `/${id}/status`, method: 'HEAD', secret: 'wrong' }, 401],
        [{ path: `/${id}/nope`, method: 'HEAD' }, 404],
      ] as const) {
        const response = await api.send(spec)
        expect(response.status, spec.path).toBe(status)
        expect(response.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE)
        expect(await response.text()).toBe('')
      }
      const headWrite = await api.send({ path: `/${id}/stage-update`, method: 'HEAD' })
      expect([headWrite.status, headWrite.headers.get('allow'), await headWrite.text()]).toEqual([405, 'POST', ''])
      const postRead = await api.send({ path: `/${id}/status`, json: {} })
      expect(postRead.headers.get('allow')).toBe('GET, HEAD')
      await expectProblem(postRead, 405, 'method_not_allowed')
    })

    if (transport !== 'next') {
      // A Next.js route answers the methods its file does not export itself.
      scenario('other methods answer 405 with Allow on every route', async (api) => {
        const id = await api.createRun()
        for (const method of ['OPTIONS', 'PROPFIND', 'PURGE']) {
          for (const [path, allow] of [
            [`/${id}/status`, 'GET, HEAD'],
            [`/${id}/stage-update`, 'POST'],
            [`/${id}/complete`, 'POST'],
            ['/runs', 'POST, GET, HEAD'],
          ] as const) {
            const response = await api.send({ path, method })
            expect(response.headers.get('allow'), `${method} ${path}`).toBe(allow)
            await expectProblem(response, 405, 'method_not_allowed')
          }
        }
      })
    }

    socketScenario('TRACE answers 405 with Allow (or 404 off the routes), as problem+json', async (api, baseUrl) => {
      const id = await api.createRun()
      for (const [path, status, allow] of [
        [`/${id}/status`, 405, 'GET, HEAD'],
        [`/${id}/stage-update`, 405, 'POST'],
        ['/runs', 405, 'POST, GET, HEAD'],
        [`/${id}/nope`, 404, undefined],
      ] as const) {
        const response = await rawRequest(`${baseUrl}${path}`, { method: 'TRACE', headers: { 'X-Webhook-Secret': SECRET } })
        expect([response.status, response.headers['allow']], path).toEqual([status, allow])
        expect(response.headers['content-type']).toBe(PROBLEM_CONTENT_TYPE)
        expect(Problem.parse(JSON.parse(response.text)).status).toBe(status)
      }
      expect((await api.status(id)).run.status).toBe('PENDING')
    })

    scenario('gzip and deflate bodies are inflated; any other Content-Encoding answers 415', async (api) => {
      const id = await api.createRun()
      const body = (n: number, output: string) => JSON.stringify(makeStageUpdate({ stageNumber: n, status: 'COMPLETED', output }))
      const encoded: Array<[string, Uint8Array | string, number, string]> = [
        ['gzip', gzipSync(body(1, 'gzip')), 1, 'gzip'],
        ['deflate', deflateSync(body(2, 'deflate')), 2, 'deflate'],
        ['X-GZIP', gzipSync(body(3, 'x-gzip')), 3, 'x-gzip'],
        ['deflate, gzip', gzipSync(deflateSync(body(4, 'twice'))), 4, 'twice'],
        ['identity', body(5, 'identity'), 5, 'identity'],
      ]
      for (const [coding, bytes, stageNumber, output] of encoded) {
        const response = await api.stage(id, undefined, { body: bytes, headers: { 'Content-Encoding': coding } })
        const text = await response.text()
        expect({ coding, status: response.status, text }).toMatchObject({ status: 200 })
        expect(StageUpdateResponse.parse(JSON.parse(text)).stage).toMatchObject({ stageNumber, output })
      }
      const completion = await api.complete(id, undefined, { body: gzipSync(JSON.stringify(makeCompleteRun())), headers: { 'Content-Encoding': 'gzip' } })
      expect(completion.status).toBe(200)
      await completion.text()

      const other = await api.createRun()
      const plain = body(1, 'labelled')
      for (const coding of ['br', 'compress', 'zstd', 'made-up', 'gzip, br']) {
        const response = await api.stage(other, undefined, { body: coding === 'gzip, br' ? gzipSync(plain) : plain, headers: { 'Content-Encoding': coding } })
        expect(response.headers.get('accept-encoding'), coding).toBe('gzip, deflate')
        const problem = await expectProblem(response, 415, 'unsupported_media_type')
        expect(problem.detail).toContain(coding.split(', ').at(-1))
      }
      await expectProblem(await api.send({ path: '/runs', json: {}, headers: { 'Content-Encoding': 'br' } }), 415, 'unsupported_media_type')
      await expectProblem(await api.stage(other, undefined, { body: plain, headers: { 'Content-Encoding': 'gzip' } }), 400, 'invalid_json')
      await expectProblem(await api.stage(other, undefined, { body: gzipSync(plain).subarray(0, 20), headers: { 'Content-Encoding': 'gzip' } }), 400, 'invalid_json')
      expect((await api.status(other)).stages).toEqual([])
    })

    scenario(
      'maxBodyBytes counts the inflated bytes: a gzip bomb answers 413',
      async (api) => {
        const id = await api.createRun()
        const fits = await api.stage(id, undefined, { body: gzipSync(paddedStageUpdate(4096)), headers: { 'Content-Encoding': 'gzip' } })
        expect(fits.status).toBe(200)
        await fits.text()
        const over = gzipSync(paddedStageUpdate(4097))
        expect(over.byteLength).toBeLessThan(4096)
        await expectProblem(await api.stage(id, undefined, { body: over, headers: { 'Content-Encoding': 'gzip' } }), 413, 'payload_too_large')
        const bomb = gzipSync(JSON.stringify(makeStageUpdate({ output: ' '.repeat(2 * 1024 * 1024) })))
        expect(bomb.byteLength).toBeLessThan(4096)
        const problem = await expectProblem(await api.stage(id, undefined, { body: bomb, headers: { 'Content-Encoding': 'gzip' } }), 413, 'payload_too_large')
        expect(problem['maxBytes']).toBe(4096)
        await expectProblem(await api.stage(id, undefined, { body: deflateSync(paddedStageUpdate(64 * 1024)), headers: { 'Content-Encoding': 'deflate' } }), 413, 'payload_too_large')
      },
      { maxBodyBytes: 4096 },
    )

    socketScenario(
      'after an early 413 the server closes the connection, so the next request on a keep-alive connection is answered; a small refused body keeps it',
      async (api, baseUrl) => {
        const id = await api.createRun()
        const agent = new Agent({ keepAlive: true, maxSockets: 1 })
        const write = { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' }
        const read = () => rawRequest(`${baseUrl}/${id}/status`, { headers: { 'X-Webhook-Secret': SECRET }, agent })
        try {
          const kept = await rawRequest(`${baseUrl}/${id}/stage-update`, { method: 'POST', headers: write, body: Buffer.from(JSON.stringify(makeStageUpdate())), agent })
          expect([kept.status, kept.headers['connection']]).toEqual([200, 'keep-alive'])

          // Refused by its Content-Length, before the body is read.
          const declared = await rawRequest(`${baseUrl}/${id}/stage-update`, { method: 'POST', headers: write, body: new Uint8Array(256 * 1024).fill(0x20), agent })
          expect([declared.status, declared.headers['connection']]).toEqual([413, 'close'])
          expect((await read()).status).toBe(200)

          // Chunked, with no length: refused once the count passes the limit.
          const chunks = Array.from({ length: 16 }, () => new Uint8Array(16 * 1024).fill(0x20))
          const streamed = await rawRequest(`${baseUrl}/${id}/stage-update`, { method: 'POST', headers: write, chunks, agent })
          expect([streamed.status, streamed.headers['connection']]).toEqual([413, 'close'])
          expect((await read()).status).toBe(200)

          // Refused before the body is read at all.
          const unread = await rawRequest(`${baseUrl}/${id}/stage-update`, { method: 'POST', headers: { ...write, 'X-Webhook-Secret': 'wrong' }, chunks, agent })
          expect(unread.status).toBe(401)
          expect((await read()).status).toBe(200)

          // A body that declares a small length is read whole before the handlers run, so a
          // refused one leaves nothing unread and the connection stays open.
          const small = await rawRequest(`${baseUrl}/${id}/stage-update`, {
            method: 'POST',
            headers: { ...write, 'X-Webhook-Secret': 'wrong' },
            body: Buffer.from(JSON.stringify(makeStageUpdate())),
            agent,
          })
          expect([small.status, small.headers['connection']]).toEqual([401, 'keep-alive'])
          expect((await read()).status).toBe(200)
        } finally {
          agent.destroy()
        }
      },
      { maxBodyBytes: 1024 },
    )
  })
}
