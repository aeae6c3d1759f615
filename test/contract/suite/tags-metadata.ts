/**
 * Contract scenarios, tags and metadata: set at creation, changed with `POST /tags` and
 * `POST /metadata` (JSON Merge Patch), their limits, finished runs, versions and events.
 */
import { CreateRunResponse, RunLabelsResponse, RunUpdateEvent } from 'pipeline-status-sdk'
import { type AuthorizeInput, HttpProblemError } from 'pipeline-status-sdk/server'
import { describe, expect } from 'vitest'
import { makeStageUpdate } from '../../support/fixtures.js'
import { ALL_STAGES_TO_4, type Api, expectProblem, type RequestSpec, uniqueRunId } from './harness.js'
import { readEvents } from './read-events.js'
import type { ContractContext } from './use-target.js'

const tags = (runId: string, body: unknown, spec: Partial<RequestSpec> = {}) => ({ path: `/${encodeURIComponent(runId)}/tags`, json: body, ...spec })
const metadata = (runId: string, body: unknown, spec: Partial<RequestSpec> = {}) => ({ path: `/${encodeURIComponent(runId)}/metadata`, json: body, ...spec })

/** Sends a label change and returns the run it answers with (200). */
async function labelOk(api: Api, spec: RequestSpec) {
  const response = await api.send(spec)
  const text = await response.text()
  expect({ status: response.status, text }).toMatchObject({ status: 200 })
  return RunLabelsResponse.parse(JSON.parse(text)).run
}

/** The run's version, as the `ETag` of its status says it. */
async function versionOf(api: Api, runId: string): Promise<string | null> {
  return (await api.getStatus(runId)).headers.get('etag')
}

/** The fields a 400 names. */
async function refusedFields(response: Response): Promise<string[] | undefined> {
  return (await expectProblem(response, 400, 'validation_failed')).errors?.map((error) => error.field)
}

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeTagsAndMetadata({ name, scenario }: ContractContext): void {
  describe(`${name}: tags and metadata`, () => {
    scenario('a run is created with tags (repeats stored once) and metadata, and shows them', async (api) => {
      const id = uniqueRunId()
      const response = await api.send({ path: '/runs', json: { id, tags: ['team:a', 'nightly', 'team:a'], metadata: { user: 'u1', n: 2 } } })
      expect(response.status).toBe(201)
      const created = CreateRunResponse.parse(await response.json())
      expect(created.run).toMatchObject({ pipeline: 'default', tags: ['team:a', 'nightly'], metadata: { user: 'u1', n: 2 } })
      expect((await api.status(id)).run).toMatchObject({ tags: ['team:a', 'nightly'], metadata: { user: 'u1', n: 2 } })
      // Without them: no tags, an empty object.
      const plain = await api.createRun()
      expect((await api.status(plain)).run).toMatchObject({ tags: [], metadata: {} })
    })

    scenario('creation refuses tags and metadata outside the rules, naming the field', async (api) => {
      const many = Array.from({ length: 21 }, (_, i) => `t${i}`)
      expect(await refusedFields(await api.send({ path: '/runs', json: { tags: many } }))).toEqual(['tags'])
      // 21 entries, 20 distinct: within the limit.
      const twenty = [...many.slice(0, 20), 't0']
      expect((await api.send({ path: '/runs', json: { tags: twenty } })).status).toBe(201)
      expect(await refusedFields(await api.send({ path: '/runs', json: { tags: [''] } }))).toEqual(['tags.0'])
      const long = await expectProblem(await api.send({ path: '/runs', json: { tags: ['ok', 'x'.repeat(129)] } }), 400, 'validation_failed')
      expect(long.errors).toEqual([{ field: 'tags.1', message: 'tags.1 must be 1 to 128 characters (UTF-16 code units), got 129' }])
      // Characters are UTF-16 code units (JS string length): 64 emoji are 128, 65 are 130.
      expect((await api.send({ path: '/runs', json: { tags: ['😀'.repeat(64)] } })).status).toBe(201)
      expect(await refusedFields(await api.send({ path: '/runs', json: { tags: ['😀'.repeat(65)] } }))).toEqual(['tags.0'])
      expect(await refusedFields(await api.send({ path: '/runs', json: { tags: 'one' } }))).toEqual(['tags'])
      expect(await refusedFields(await api.send({ path: '/runs', json: { metadata: [1] } }))).toEqual(['metadata'])
      expect(await refusedFields(await api.send({ path: '/runs', json: { metadata: null } }))).toEqual(['metadata'])
      expect(await refusedFields(await api.send({ path: '/runs', json: { metadata: { big: 'x'.repeat(16 * 1024) } } }))).toEqual(['metadata'])
      expect(await refusedFields(await api.send({ path: '/runs', json: { metadata: { text: 'a\u0000b' } } }))).toEqual(['metadata.text'])
      // Exactly 16 KiB of UTF-8 JSON is allowed.
      const exact = { k: 'x'.repeat(16 * 1024 - '{"k":""}'.length) }
      expect((await api.send({ path: '/runs', json: { metadata: exact } })).status).toBe(201)
    })

    scenario('POST /tags removes, then adds; over 20 afterwards is 400 naming tags and changes nothing', async (api) => {
      const id = uniqueRunId()
      await api.send({ path: '/runs', json: { id, tags: ['a', 'b'] } })
      expect((await labelOk(api, tags(id, { add: ['c', 'a'], remove: ['b'] }))).tags).toEqual(['a', 'c'])
      // remove applies first: a tag both removed and added stays.
      expect((await labelOk(api, tags(id, { add: ['a'], remove: ['a'] }))).tags).toEqual(['c', 'a'])
      expect((await labelOk(api, tags(id, { remove: ['not-there'] }))).tags).toEqual(['c', 'a'])
      const version = await versionOf(api, id)
      const eighteen = Array.from({ length: 18 }, (_, i) => `n${i}`)
      expect(await refusedFields(await api.send(tags(id, { add: [...eighteen, 'one-more'] })))).toEqual(['tags'])
      expect((await api.status(id)).run.tags).toEqual(['c', 'a'])
      expect(await versionOf(api, id)).toBe(version)
      expect((await labelOk(api, tags(id, { add: eighteen }))).tags).toHaveLength(20)
      // Each tag is checked; the body is an object of two optional lists.
      expect(await refusedFields(await api.send(tags(id, { add: [''] })))).toEqual(['add.0'])
      expect(await refusedFields(await api.send(tags(id, { remove: 'a' })))).toEqual(['remove'])
      expect(await refusedFields(await api.send(tags(id, [])))).toEqual([''])
      // A key other than add and remove (a misspelt `tags`) is refused, naming it; nothing changes.
      const misspelt = await expectProblem(await api.send(tags(id, { tags: ['z'] })), 400, 'validation_failed')
      expect(misspelt.errors?.map((error) => error.field)).toEqual(['tags'])
      expect(misspelt.detail).toContain('`add` and `remove`')
      expect((await api.status(id)).run.tags).toHaveLength(20)
      await expectProblem(await api.send(tags(uniqueRunId('missing'), { add: ['a'] })), 404, 'run_not_found')
      await expectProblem(await api.send(tags(id, undefined, { body: 'add=a', contentType: 'application/x-www-form-urlencoded' })), 415, 'unsupported_media_type')
      await expectProblem(await api.send(tags(id, { add: ['a'] }, { secret: null })), 401, 'unauthorized')
    })

    scenario('POST /metadata merges a JSON Merge Patch (RFC 7396)', async (api) => {
      const id = uniqueRunId()
      await api.send({ path: '/runs', json: { id, metadata: { a: 1, nested: { x: 1, y: 2 }, list: [1, 2], gone: true } } })
      const merged = await labelOk(api, metadata(id, { b: 'two', nested: { y: null, z: 3 }, list: [3], gone: null }))
      expect(merged.metadata).toEqual({ a: 1, nested: { x: 1, z: 3 }, list: [3], b: 'two' })
      // A member that is not an object replaces one that is, and an object merges into a non-object.
      expect((await labelOk(api, metadata(id, { nested: 'flat', a: { deep: { er: 1 } } }))).metadata).toEqual({
        a: { deep: { er: 1 } },
        nested: 'flat',
        list: [3],
        b: 'two',
      })
      // The body must be an object; the merged result at most 16 KiB, else nothing changes.
      expect(await refusedFields(await api.send(metadata(id, [1])))).toEqual([''])
      const before = await api.status(id)
      const versionBefore = await versionOf(api, id)
      const half = 'x'.repeat(9 * 1024)
      expect(await refusedFields(await api.send(metadata(id, { p: half, q: half })))).toEqual(['metadata'])
      expect((await api.status(id)).run.metadata).toEqual(before.run.metadata)
      expect(await versionOf(api, id)).toBe(versionBefore)
      expect((await labelOk(api, metadata(id, { p: half }))).metadata).toMatchObject({ p: half })
      await expectProblem(await api.send(metadata(uniqueRunId('missing'), { a: 1 })), 404, 'run_not_found')
    })

    scenario('a metadata key __proto__ is an own member like any other, at creation and in a merge patch', async (api) => {
      const id = uniqueRunId()
      const created = await api.send({ path: '/runs', body: '{"id":"' + id + '","metadata":{"__proto__":{"a":1},"constructor":"c"}}' })
      expect(created.status).toBe(201)
      // As the wire has it, and as the contract's response schema parses it.
      const members = async () => {
        const text = await (await api.getStatus(id)).text()
        expect(Object.entries((await api.status(id)).run.metadata)).toEqual(Object.entries(JSON.parse(text).run.metadata))
        // Sorted: PostgreSQL's jsonb keeps its own key order.
        return Object.entries(JSON.parse(text).run.metadata as object).sort(([a], [b]) => (a < b ? -1 : 1))
      }
      expect(await members()).toEqual([['__proto__', { a: 1 }], ['constructor', 'c']])
      const patched = await api.send(metadata(id, undefined, { body: '{"__proto__":{"b":2},"x":{"__proto__":3}}' }))
      expect(patched.status).toBe(200)
      expect(await members()).toEqual([['__proto__', { a: 1, b: 2 }], ['constructor', 'c'], ['x', JSON.parse('{"__proto__":3}')]])
      await api.send(metadata(id, undefined, { body: '{"__proto__":null}' }))
      expect(await members()).toEqual([['constructor', 'c'], ['x', JSON.parse('{"__proto__":3}')]])
    })

    scenario('POST /runs ignores unknown body fields (extensions are optional fields), so older servers take newer callers', async (api) => {
      const id = uniqueRunId()
      const response = await api.send({ path: '/runs', json: { id, tag: 'nightly', label: 'x' } })
      expect(response.status).toBe(201)
      expect((await api.status(id)).run).toMatchObject({ tags: [], metadata: {} })
    })

    scenario('finished runs take tags and metadata; each change is a new version and an update event', async (api) => {
      const id = await api.createRun()
      for (const update of ALL_STAGES_TO_4) await api.stageOk(id, update)
      const done = await api.stageOk(id, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED', output: 'five' }))
      expect(done.run.status).toBe('COMPLETED')
      const version = Number((await versionOf(api, id))?.replaceAll('"', ''))

      const tagged = await labelOk(api, tags(id, { add: ['reviewed'] }))
      expect(tagged).toMatchObject({ status: 'COMPLETED', tags: ['reviewed'], updatedAt: done.run.updatedAt })
      expect(await versionOf(api, id)).toBe(`"${version + 1}"`)
      const described = await labelOk(api, metadata(id, { score: 0.9 }))
      expect(described).toMatchObject({ status: 'COMPLETED', tags: ['reviewed'], metadata: { score: 0.9 } })
      expect(await versionOf(api, id)).toBe(`"${version + 2}"`)
      // A change that changes nothing writes nothing.
      await labelOk(api, tags(id, { add: ['reviewed'] }))
      await labelOk(api, metadata(id, { score: 0.9, absent: null }))
      expect(await versionOf(api, id)).toBe(`"${version + 2}"`)

      // An unfinished run's stream gets an update event with the run as changed.
      const live = await api.createRun()
      const stream = readEvents(await api.send({ path: `/${live}/events` }))
      expect((await stream.next()).event).toBe('snapshot')
      const changed = await labelOk(api, tags(live, { add: ['watched'] }))
      const event = await stream.next()
      expect(event.event).toBe('update')
      expect(RunUpdateEvent.parse(JSON.parse(event.data)).run).toEqual(changed)
      await stream.cancel()
    })

    const authorized: AuthorizeInput<unknown>[] = []
    scenario(
      "the app's authorize hook allows tags with action 'tag' and metadata with action 'metadata'",
      async (api) => {
        authorized.length = 0
        const mine = await api.createRun(`${uniqueRunId()}-mine`)
        const session = { secret: null, headers: { Cookie: 'session=alice' } }
        expect((await labelOk(api, tags(mine, { add: ['x'] }, session))).tags).toEqual(['x'])
        expect((await labelOk(api, metadata(mine, { y: 1 }, session))).metadata).toEqual({ y: 1 })
        expect(authorized.map((input) => [input.runId, input.action])).toEqual([
          [mine, 'tag'],
          [mine, 'metadata'],
        ])
        const other = await api.createRun(`${uniqueRunId()}-theirs`)
        await expectProblem(await api.send(tags(other, { add: ['x'] }, session)), 403, 'forbidden')
        await expectProblem(await api.send(metadata(other, { y: 1 }, { secret: null })), 401, 'authentication_required')
        // A form post never reaches the hook.
        authorized.length = 0
        await expectProblem(await api.send(tags(mine, undefined, { ...session, body: 'add=x', contentType: 'text/plain' })), 415, 'unsupported_media_type')
        expect(authorized).toEqual([])
      },
      {
        authorize: (input) => {
          authorized.push(input)
          if (input.request.headers.get('cookie') !== 'session=alice') throw new HttpProblemError('unauthorized', { detail: 'Sign in first' })
          return (input.action === 'tag' || input.action === 'metadata') && input.runId.endsWith('-mine')
        },
      },
    )
  })
}
