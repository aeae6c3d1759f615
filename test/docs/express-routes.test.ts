/**
 * docs/express-and-fetch.md's list of the routes the Express router serves, checked against the
 * route table (src/contract/routes.ts `ROUTE_TABLE`): every route in the table is in the list,
 * written `METHOD path` relative to the mount point, and the list names no other.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { ROUTE_TABLE } from '../../src/contract/routes.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

describe('docs/express-and-fetch.md and the route table', () => {
  it("lists every route of ROUTE_TABLE, and no other, in the router's list of routes", () => {
    const page = readFileSync(join(root, 'docs/express-and-fetch.md'), 'utf8')
    const start = page.indexOf("- The router serves the contract's routes (")
    expect(start).toBeGreaterThan(-1)
    const list = page.slice(start, page.indexOf('relative to where it is mounted', start))
    const listed = [...list.matchAll(/`(GET|POST|PUT|PATCH|DELETE) ([^`]+)`/g)].map(([, method, path]) => `${method} /${path}`)
    const table = Object.values(ROUTE_TABLE).map((route) => `${route.method} ${route.path}`)
    expect([...listed].sort()).toEqual([...table].sort())
  })
})
