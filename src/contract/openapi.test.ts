import { Validator } from '@seriousme/openapi-schema-validator'
import { Ajv2020 } from 'ajv/dist/2020.js'
import pkg from '../../package.json' with { type: 'json' }
import { describe, expect, it } from 'vitest'
import { makeCompleteRun, PYTHON_RUNNER_PAYLOADS } from '../../test/support/fixtures.js'
import { webhookMessageId, webhookRoute } from '../signing/webhook-signature.js'
import { createOpenApiDocument } from './openapi.js'
import { PACKAGE_NAME, PACKAGE_VERSION } from './package-info.js'
import { PROBLEM_CODES } from './problem.js'
import { CONTRACT_ROUTES, type ContractRoute } from './route-registry.js'
import { buildRoutePath, ROUTE_METHODS, type RouteName } from './routes.js'

type Json = Record<string, any>

async function expectValidOpenApi31(document: unknown): Promise<void> {
  const validator = new Validator()
  expect(await validator.validate(document as Json)).toEqual({ valid: true })
  expect(validator.version).toBe('3.1')
}

/** An ajv over the document, in strict mode: every component must be a well-formed 2020-12 schema. */
function schemaValidator(document: Json) {
  const ajv = new Ajv2020({ strict: true, allErrors: true })
  for (const [name, schema] of Object.entries(document.components.schemas)) ajv.addSchema(schema as Json, `#/components/schemas/${name}`)
  return (name: string, value: unknown) => {
    const validate = ajv.getSchema(`#/components/schemas/${name}`)
    if (!validate) throw new Error(`no schema ${name}`)
    return validate(value) ? true : ajv.errorsText(validate.errors)
  }
}

describe('the OpenAPI document', () => {
  it('validates as OpenAPI 3.1, as published, strict, and under another base path', async () => {
    await expectValidOpenApi31(createOpenApiDocument())
    await expectValidOpenApi31(createOpenApiDocument({ strict: true }))
    const mounted = createOpenApiDocument({ basePath: 'hooks/pipeline/' })
    await expectValidOpenApi31(mounted)
    expect(mounted.servers).toEqual([expect.objectContaining({ url: '/hooks/pipeline' })])
    expect(createOpenApiDocument({ basePath: '' }).servers[0]?.url).toBe('/')
  })

  it("carries the package's version, from the generated package-info module that matches package.json", () => {
    // scripts/write-package-info.mjs writes the module (npm run build runs it); a stale copy fails here.
    expect({ name: PACKAGE_NAME, version: PACKAGE_VERSION }).toEqual({ name: pkg.name, version: pkg.version })
    expect(createOpenApiDocument().info.version).toBe(pkg.version)
  })

  it('describes every route the handlers serve, with the same method and path', () => {
    const routes: Record<string, ContractRoute> = CONTRACT_ROUTES
    for (const [name, method] of Object.entries(ROUTE_METHODS)) {
      const route = routes[name]
      expect(route, `the route registry has no entry for ${name}`).toBeDefined()
      expect(route?.method).toBe(method)
      expect(route?.path.replace('{runId}', 'run_1').replace('{stageNumber}', '1')).toBe(
        buildRoutePath(name as RouteName, { runId: 'run_1', stageNumber: '1' }, ''),
      )
    }
    const document = createOpenApiDocument()
    expect(Object.keys(document.paths).sort()).toEqual(['/dashboard', '/dashboard/{asset}', '/events', '/openapi.json', '/runs', '/runs/counts', '/runs/stats', '/{runId}/cancel', '/{runId}/complete', '/{runId}/events', '/{runId}/heartbeat', '/{runId}/metadata', '/{runId}/stage-update', '/{runId}/stages/{stageNumber}/output', '/{runId}/status', '/{runId}/tags'])
    // The read routes also answer a CORS preflight when the handlers have the `cors` option.
    expect(Object.keys(document.paths['/{runId}/status']!)).toEqual(['get', 'head', 'options'])
    expect(Object.keys(document.paths['/{runId}/events']!)).toEqual(['get', 'head', 'options'])
    expect(Object.keys(document.paths['/openapi.json']!)).toEqual(['get', 'head'])
  })

  it('carries the contract rules: bodies the Python runner sends validate, broken ones do not', () => {
    const check = schemaValidator(createOpenApiDocument())
    const { complete, ...stageUpdates } = PYTHON_RUNNER_PAYLOADS
    for (const payload of Object.values(stageUpdates)) expect(check('StageUpdate', payload)).toBe(true)
    expect(check('CompleteRun', complete)).toBe(true)
    expect(check('CompleteRun', makeCompleteRun({ opportunities: [1], fullReportMarkdown: '# r' }))).toBe(true)
    expect(check('CreateRun', { id: 'run_2025-10-25:a~1' })).toBe(true)
    // The run-id and timestamp rules travel as patterns.
    expect(check('CreateRun', { id: '..' })).toMatch(/pattern/)
    expect(check('CreateRun', { id: 'has space' })).toMatch(/pattern/)
    expect(check('StageUpdate', { ...PYTHON_RUNNER_PAYLOADS.completedJson, completedAt: '2025-10-25T14:03Z' })).toMatch(/pattern/)
    expect(check('StageUpdate', { ...PYTHON_RUNNER_PAYLOADS.processing, status: 'PENDING' })).toMatch(/status must be equal to one of the allowed values/)
    expect(check('CompleteRun', { status: 'COMPLETED', duration: -1 })).toMatch(/>= 0/)
  })

  it('lists each route\'s problem codes by status, every code somewhere', () => {
    const document = createOpenApiDocument() as Json
    const codesOf = (response: Json) => response.content['application/problem+json'].schema.allOf[1].properties.code.enum as string[]
    const post = document.paths['/{runId}/stage-update'].post
    expect(codesOf(post.responses['409'])).toEqual(['run_finished', 'stage_finished', 'unknown_pipeline'])
    expect(codesOf(post.responses['401'])).toEqual(['unauthorized', 'invalid_signature'])
    expect(post.responses['503'].headers['Retry-After'].required).toBe(true)
    expect(document.paths['/runs'].post.responses['409']).toBeUndefined()
    expect(codesOf(document.paths['/{runId}/status'].get.responses['403'])).toEqual(['forbidden'])

    const seen = new Set<string>()
    for (const item of Object.values(document.paths) as Json[]) {
      for (const op of Object.values(item) as Json[]) {
        for (const response of Object.values(op.responses) as Json[]) if (response.content?.['application/problem+json']) codesOf(response).forEach((c) => seen.add(c))
      }
    }
    for (const response of Object.values(document.components.responses) as Json[]) codesOf(response).forEach((c) => seen.add(c))
    expect([...seen].sort()).toEqual(Object.keys(PROBLEM_CODES).sort())
  })

  it('names the headers and security schemes: secret, signature with a route-bound webhook-id, read tokens, idempotency key, ETag', () => {
    const document = createOpenApiDocument() as Json
    expect(document.components.securitySchemes.webhookSecret).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-Webhook-Secret' })
    expect(document.components.securitySchemes.webhookSignature).toMatchObject({ type: 'apiKey', in: 'header', name: 'webhook-signature' })
    expect(document.components.securitySchemes.runReadToken).toMatchObject({ type: 'http', scheme: 'bearer' })
    expect(document.paths['/{runId}/status'].get.security).toContainEqual({ runReadToken: [] })
    expect(document.paths['/runs'].post.security).not.toContainEqual({ runReadToken: [] })
    expect(document.paths['/openapi.json'].get.security).toEqual([])
    expect(document.paths['/{runId}/complete'].post.parameters).toContainEqual({ $ref: '#/components/parameters/IdempotencyKey' })
    expect(document.paths['/{runId}/status'].get.parameters).toContainEqual({ $ref: '#/components/parameters/IfNoneMatch' })
    expect(document.paths['/{runId}/status'].get.responses['304'].headers.ETag.required).toBe(true)

    // The webhook-id pattern of each operation takes the ids the SDK signs with, and no other route's.
    const ids: [string, string, string][] = [
      ['/runs', 'post', webhookMessageId({ method: 'POST', route: webhookRoute('createRun'), unique: 'k-1' })],
      ['/{runId}/stage-update', 'post', webhookMessageId({ method: 'POST', route: webhookRoute('stageUpdate', 'run:7'), unique: 'k-2' })],
      ['/{runId}/complete', 'post', webhookMessageId({ method: 'POST', route: webhookRoute('complete', 'run_1'), unique: 'k-3' })],
      ['/{runId}/status', 'get', webhookMessageId({ method: 'GET', route: webhookRoute('status', 'run_1'), unique: 'k-4' })],
    ]
    const patternOf = (path: string, method: string) =>
      new RegExp(document.paths[path][method].parameters.find((p: Json) => p.name === 'webhook-id').schema.pattern, 'u')
    for (const [path, method, id] of ids) {
      for (const [otherPath, otherMethod] of ids) expect(patternOf(otherPath, otherMethod).test(id), `${id} on ${otherMethod} ${otherPath}`).toBe(otherPath === path)
    }
  })

  it("describes, in each stream's 200 response, the `: closed <cause>` comments that stream may end with", () => {
    const document = createOpenApiDocument() as Json
    const descriptionOf = (path: string): string => document.paths[path].get.responses['200'].description
    const run = descriptionOf('/{runId}/events')
    const set = descriptionOf('/events')
    for (const cause of ['not-admitted', 'update-unavailable', 'credential-expired', 'deleted']) expect(run).toContain(`\`: closed ${cause} <runId>\`: `)
    expect(run).not.toContain('membership-failed')
    // A set stream names the member run, except where the stream itself ended (its credential, its membership).
    for (const cause of ['not-admitted', 'update-unavailable', 'deleted']) expect(set).toContain(`\`: closed ${cause} <runId>\`: `)
    for (const cause of ['credential-expired', 'membership-failed']) expect(set).toContain(`\`: closed ${cause}\`: `)
    expect(run).toMatch(/^The event stream\. .*reconnects as after any drop/)
    expect(run).toContain('stops where reconnecting cannot help')
    expect(run).toContain("`expiresAt` its `authorize` hook answered with")
  })

  it('names the event schemas of the stream in x-sse-events, as components', () => {
    const document = createOpenApiDocument() as Json
    const media = document.paths['/{runId}/events'].get.responses['200'].content['text/event-stream']
    expect(media['x-sse-events']).toEqual({
      snapshot: { $ref: '#/components/schemas/RunSnapshotEvent' },
      update: { $ref: '#/components/schemas/RunUpdateEvent' },
      end: { $ref: '#/components/schemas/RunEndEvent' },
      output: { $ref: '#/components/schemas/StageOutputEvent' },
    })
    // The snapshot is the status document itself.
    expect(document.components.schemas.RunSnapshotEvent).toEqual({ $ref: '#/components/schemas/RunStatusResponse' })
  })
})
