/**
 * The dashboard's serving and its authorization, in memory (docs/dashboard.md): off by default,
 * the shell and files with their headers, the page's reads asking `authorize` with
 * `action: 'dashboard'` then `listScope`, the loopback `open` mode, and `createDashboardHandler`.
 * The page itself is tested in Chromium (test/e2e/dashboard.test.ts).
 */
import { type AuthorizeInput, createDashboardHandler, createPipelineStatusHandlers, MemoryStore } from 'pipeline-status-sdk/server'
import { gunzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'

const BASE = 'http://app.test/api/pipeline'
/** Open mode needs a loopback Host (and Origin, when sent): the mock's page on this machine. */
const LOOP = 'http://127.0.0.1:4319/api/pipeline'
const SECRET = 'dashboard-unit-secret'
const CSP = "default-src 'self'; script-src 'self'; frame-ancestors 'none'"
const page = { 'X-Pipeline-Status-Dashboard': '1' }

async function withRuns(options: Parameters<typeof createPipelineStatusHandlers>[0]) {
  const handlers = createPipelineStatusHandlers(options)
  for (const [id, tags] of [['mine', ['team-a']], ['theirs', ['team-b']]] as const) {
    const response = await handlers.fetch(new Request(`${BASE}/runs`, { method: 'POST', headers: { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' }, body: JSON.stringify({ id, tags }) }))
    expect(response.status).toBe(201)
  }
  return handlers
}

/**
 * Handlers with the dashboard on, `mine` (team-a) and `theirs` (team-b) created, an `authorize`
 * that allows the action 'dashboard' only and records what it was asked, and a `listScope` of team-a.
 */
async function scopedDashboard() {
  const asked: { action: string; runId: string | undefined }[] = []
  const handlers = await withRuns({
    store: new MemoryStore(),
    secret: SECRET,
    dashboard: true,
    authorize: ({ action, runId }: AuthorizeInput) => {
      asked.push({ action, runId })
      return action === 'dashboard'
    },
    listScope: () => ({ tags: ['team-a'] }),
    logger: { warn: () => {}, error: () => {} },
  })
  return { asked, handlers }
}

describe('the dashboard routes', () => {
  it('are 404 route_not_found while the option is off', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, logger: { warn: () => {}, error: () => {} } })
    for (const path of ['/dashboard', '/dashboard/dashboard.js']) {
      const response = await handlers.fetch(new Request(`${BASE}${path}`))
      expect(response.status).toBe(404)
      expect(await response.json()).toMatchObject({ code: 'route_not_found' })
    }
  })

  it('serve the shell (no data, where the routes are) and the files, with the CSP, nosniff and ETags', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, dashboard: { title: 'Ops <runs>' } })
    const shell = await handlers.fetch(new Request(`${BASE}/dashboard/`))
    expect(shell.status).toBe(200)
    expect(Object.fromEntries(shell.headers)).toMatchObject({ 'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'content-type': 'text/html; charset=utf-8' })
    const html = await shell.text()
    expect(html).toContain('<title>Ops &#60;runs&#62;</title>')
    expect(html).toContain('/api/pipeline/dashboard/dashboard.js?v=')
    expect(html).toContain('&#34;apiBase&#34;:&#34;/api/pipeline&#34;')
    expect(html).not.toMatch(/<script>|<script [^>]*>[^<]/)
    const js = await handlers.fetch(new Request(`${BASE}/dashboard/dashboard.js`))
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    expect(js.headers.get('content-security-policy')).toBe(CSP)
    const etag = js.headers.get('etag') as string
    expect((await handlers.fetch(new Request(`${BASE}/dashboard/dashboard.js`, { headers: { 'If-None-Match': etag } }))).status).toBe(304)
    const head = await handlers.fetch(new Request(`${BASE}/dashboard/dashboard.css`, { method: 'HEAD' }))
    expect([head.status, await head.text()]).toEqual([200, ''])
    expect((await handlers.fetch(new Request(`${BASE}/dashboard/dashboard.js`, { method: 'POST' }))).status).toBe(405)
  })

  it('serve the hashed URLs immutable for a year, others no-cache; gzip when accepted, its body the file', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, dashboard: {} })
    const html = await (await handlers.fetch(new Request(`${BASE}/dashboard`))).text()
    const urls = [...html.matchAll(/(?:src|href)="(\/api\/pipeline\/dashboard\/[^"]+)"/g)].map((match) => (match[1] as string).replaceAll('&#38;', '&'))
    expect(urls.map((url) => url.replace(/\?v=.*/, ''))).toEqual(['/api/pipeline/dashboard/favicon.svg', '/api/pipeline/dashboard/dashboard.css', '/api/pipeline/dashboard/dashboard.js'])
    expect(html).toContain('<link rel="icon" type="image/svg+xml"')
    for (const url of urls) {
      const plain = await handlers.fetch(new Request(`http://app.test${url}`))
      expect(plain.status).toBe(200)
      expect(plain.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
      expect(plain.headers.get('vary')).toBe('Accept-Encoding')
      expect(plain.headers.get('content-encoding')).toBeNull()
      const text = await plain.text()
      const zipped = await handlers.fetch(new Request(`http://app.test${url}`, { headers: { 'Accept-Encoding': 'gzip, deflate, br' } }))
      expect(zipped.headers.get('content-encoding')).toBe('gzip')
      expect(zipped.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
      expect(zipped.headers.get('vary')).toBe('Accept-Encoding')
      expect(zipped.headers.get('content-type')).toBe(plain.headers.get('content-type'))
      expect(zipped.headers.get('etag')).not.toBe(plain.headers.get('etag'))
      const bytes = new Uint8Array(await zipped.arrayBuffer())
      expect(bytes.length).toBeLessThan(Buffer.byteLength(text))
      expect(gunzipSync(bytes).toString('utf8')).toBe(text)
      // A 304 for the gzip's own ETag keeps the caching headers.
      const again = await handlers.fetch(new Request(`http://app.test${url}`, { headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': zipped.headers.get('etag') as string } }))
      expect([again.status, again.headers.get('cache-control')]).toEqual([304, 'public, max-age=31536000, immutable'])
    }
    // An old or missing hash revalidates; gzip;q=0 is a refusal.
    for (const path of ['/dashboard/dashboard.js', '/dashboard/dashboard.js?v=old']) {
      expect((await handlers.fetch(new Request(`${BASE}${path}`))).headers.get('cache-control')).toBe('no-cache')
    }
    expect((await handlers.fetch(new Request(`${BASE}/dashboard/dashboard.js`, { headers: { 'Accept-Encoding': 'gzip;q=0, identity' } }))).headers.get('content-encoding')).toBeNull()
    const icon = await handlers.fetch(new Request(`${BASE}/dashboard/favicon.svg`))
    expect(icon.headers.get('content-type')).toBe('image/svg+xml')
    expect(await icon.text()).toMatch(/^<svg /)
  })

  it("asks authorize with action 'dashboard' for the page's reads, then listScope, which narrows lists and single runs", async () => {
    const { asked, handlers } = await scopedDashboard()
    const list = await handlers.fetch(new Request(`${BASE}/runs`, { headers: page }))
    expect((await list.json()).runs.map((run: { id: string }) => run.id)).toEqual(['mine'])
    expect((await handlers.fetch(new Request(`${BASE}/runs/stats`, { headers: page }))).status).toBe(200)
    expect((await handlers.fetch(new Request(`${BASE}/mine/status`, { headers: page }))).status).toBe(200)
    expect((await handlers.fetch(new Request(`${BASE}/theirs/status`, { headers: page }))).status).toBe(404)
    // Without the page's mark, the same caller is judged as a list and a read: refused here.
    expect((await handlers.fetch(new Request(`${BASE}/runs`))).status).toBe(403)
    expect((await handlers.fetch(new Request(`${BASE}/mine/status`))).status).toBe(403)
    expect(asked).toEqual([
      { action: 'dashboard', runId: undefined },
      { action: 'dashboard', runId: undefined },
      { action: 'dashboard', runId: 'mine' },
      { action: 'dashboard', runId: 'theirs' },
      { action: 'list', runId: undefined },
      { action: 'read', runId: 'mine' },
    ])
  })

  it("ignores the page's mark while the dashboard is off, and opens only the page's reads in open mode", async () => {
    const asked: string[] = []
    const off = await withRuns({ store: new MemoryStore(), secret: SECRET, authorize: ({ action }: AuthorizeInput) => (asked.push(action), true) })
    expect((await off.fetch(new Request(`${BASE}/runs`, { headers: page }))).status).toBe(200)
    expect(asked).toEqual(['list'])
    const open = await withRuns({ store: new MemoryStore(), secret: SECRET, dashboard: { open: true }, logger: { warn: () => {}, error: () => {} } })
    expect((await open.fetch(new Request(`${LOOP}/runs`, { headers: page }))).status).toBe(200)
    expect((await open.fetch(new Request(`${LOOP}/mine/status`, { headers: page }))).status).toBe(200)
    expect((await open.fetch(new Request(`${LOOP}/runs`))).status).toBe(401)
    expect((await open.fetch(new Request(`${LOOP}/runs`, { method: 'POST', headers: { ...page, 'Content-Type': 'application/json' }, body: '{}' }))).status).toBe(401)
  })

  it('open mode lets through only requests whose Host and Origin are loopback names (no DNS rebinding)', async () => {
    const open = await withRuns({ store: new MemoryStore(), secret: SECRET, dashboard: { open: true }, logger: { warn: () => {}, error: () => {} } })
    const status = async (url: string, headers: Record<string, string> = {}) => (await open.fetch(new Request(url, { headers: { ...page, ...headers } }))).status
    for (const host of ['127.0.0.1:4319', 'localhost:4319', 'LOCALHOST', '[::1]:4319', '127.0.0.1']) {
      expect(await status(`${BASE}/runs`, { Host: host }), host).toBe(200)
      expect(await status(`${BASE}/mine/status`, { Host: host }), host).toBe(200)
    }
    expect(await status(`${LOOP}/mine/status`, { Origin: 'http://localhost:4319' })).toBe(200)
    expect(await status(`${LOOP}/runs`, { Origin: 'http://[::1]:4319' })).toBe(200)
    // A rebound name, another site's page, an opaque origin, a look-alike name: the sign-in rules.
    for (const [url, headers] of [
      [`${BASE}/runs`, {}],
      [`${LOOP}/runs`, { Host: 'evil.example:4319' }],
      [`${LOOP}/mine/status`, { Host: 'evil.example:4319' }],
      [`${LOOP}/runs`, { Host: 'localhost.evil.example' }],
      [`${LOOP}/runs`, { Host: '127.0.0.1.evil.example' }],
      [`${LOOP}/runs`, { Origin: 'https://evil.example' }],
      [`${LOOP}/mine/status`, { Origin: 'https://evil.example' }],
      [`${LOOP}/runs`, { Origin: 'null' }],
    ] as const) {
      expect(await status(url, headers), JSON.stringify(headers)).toBe(401)
    }
    // With a credential, a remote page reads as ever.
    expect(await status(`${BASE}/runs`, { 'X-Webhook-Secret': SECRET })).toBe(200)
    await open.close()
  })

  it('refuses options that cannot work', () => {
    expect(() => createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, dashboard: { refreshIntervalMs: 10 } })).toThrow(/refreshIntervalMs/)
    expect(() => createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, dashboard: { title: '' } })).toThrow(/title/)
  })
})

/** The first events of a stream, up to and including `until` (deadline 5 s); the stream is then cancelled. */
async function firstEvents(response: Response, until: string): Promise<string> {
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/)
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let text = ''
  const deadline = setTimeout(() => void reader.cancel(), 5000)
  try {
    while (!text.includes(`event: ${until}`)) {
      const { value, done } = await reader.read()
      if (done) break
      text += decoder.decode(value, { stream: true })
    }
  } finally {
    clearTimeout(deadline)
    await reader.cancel()
  }
  expect(text).toContain(`event: ${until}`)
  return text
}

describe("the dashboard's live streams", () => {
  it("are authorized like its JSON reads: authorize with action 'dashboard', then listScope, for the set stream, run= streams and a run's stream", async () => {
    const { asked, handlers } = await scopedDashboard()
    try {
      // The list's set stream (summary view): only the runs in scope.
      const set = await firstEvents(await handlers.fetch(new Request(`${BASE}/events?view=summary`, { headers: page })), 'ready')
      expect(set).toContain('"mine"')
      expect(set).not.toContain('"theirs"')
      // The open run: the page's shared run= stream, and a run's own stream.
      await firstEvents(await handlers.fetch(new Request(`${BASE}/events?run=mine`, { headers: page })), 'snapshot')
      await firstEvents(await handlers.fetch(new Request(`${BASE}/mine/events`, { headers: page })), 'snapshot')
      // A run outside the scope is no run at all, as for GET /status.
      expect((await handlers.fetch(new Request(`${BASE}/events?run=theirs`, { headers: page }))).status).toBe(404)
      expect((await handlers.fetch(new Request(`${BASE}/theirs/events`, { headers: page }))).status).toBe(404)
      expect(asked).toEqual([
        { action: 'dashboard', runId: undefined },
        { action: 'dashboard', runId: 'mine' },
        { action: 'dashboard', runId: 'mine' },
        { action: 'dashboard', runId: 'theirs' },
        { action: 'dashboard', runId: 'theirs' },
      ])
      // Without the page's mark the same caller is judged as a list and a stream: refused here.
      expect((await handlers.fetch(new Request(`${BASE}/events`))).status).toBe(403)
      expect((await handlers.fetch(new Request(`${BASE}/events?run=mine`))).status).toBe(403)
      expect((await handlers.fetch(new Request(`${BASE}/mine/events`))).status).toBe(403)
      // The page's credential as a header works on every stream too.
      await firstEvents(await handlers.fetch(new Request(`${BASE}/events`, { headers: { ...page, 'X-Webhook-Secret': SECRET } })), 'ready')
      await firstEvents(await handlers.fetch(new Request(`${BASE}/events?run=theirs`, { headers: { ...page, 'X-Webhook-Secret': SECRET } })), 'snapshot')
    } finally {
      await handlers.close()
    }
  })

  it('open mode lets only the marked streams through', async () => {
    const open = await withRuns({ store: new MemoryStore(), secret: SECRET, dashboard: { open: true }, logger: { warn: () => {}, error: () => {} } })
    try {
      await firstEvents(await open.fetch(new Request(`${LOOP}/events`, { headers: page })), 'ready')
      await firstEvents(await open.fetch(new Request(`${LOOP}/events?run=mine`, { headers: page })), 'snapshot')
      await firstEvents(await open.fetch(new Request(`${LOOP}/theirs/events`, { headers: page })), 'snapshot')
      expect((await open.fetch(new Request(`${LOOP}/events`))).status).toBe(401)
      expect((await open.fetch(new Request(`${LOOP}/mine/events`))).status).toBe(401)
      expect((await open.fetch(new Request(`${BASE}/events`, { headers: page }))).status).toBe(401)
      expect((await open.fetch(new Request(`${LOOP}/mine/events`, { headers: { ...page, Host: 'evil.example' } }))).status).toBe(401)
    } finally {
      await open.close()
    }
  })
})

describe('createDashboardHandler', () => {
  it('serves the page at its own path over the routes of apiBasePath; anything else is 404', async () => {
    const dashboard = createDashboardHandler({ path: '/admin/pipelines/', apiBasePath: '/api/pipeline' })
    const shell = await dashboard(new Request('http://app.test/admin/pipelines'))
    expect(shell.status).toBe(200)
    expect(shell.headers.get('content-security-policy')).toBe(CSP)
    const html = await shell.text()
    expect(html).toContain('src="/admin/pipelines/dashboard.js?v=')
    expect(html).toContain('&#34;apiBase&#34;:&#34;/api/pipeline&#34;')
    expect((await dashboard(new Request('http://app.test/admin/pipelines/dashboard.css'))).headers.get('content-type')).toBe('text/css; charset=utf-8')
    for (const path of ['/admin/pipelines/secret.txt', '/admin/pipelines/a/b.js', '/admin', '/other']) {
      expect((await dashboard(new Request(`http://app.test${path}`))).status).toBe(404)
    }
    expect((await dashboard(new Request('http://app.test/admin/pipelines', { method: 'POST' }))).status).toBe(405)
    const root = createDashboardHandler({ path: '/' })
    expect((await root(new Request('http://app.test/'))).status).toBe(200)
    expect((await root(new Request('http://app.test/dashboard.js'))).status).toBe(200)
  })
})
