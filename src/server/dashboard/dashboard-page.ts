/**
 * The dashboard's answers (docs/dashboard.md): its page shell, which holds no data (the title,
 * where the routes are and how often to refresh, in one `<meta>`; a script and a stylesheet of
 * the same origin) and its files, built from `src/dashboard` into `src/generated/dashboard-assets.ts`
 * by `scripts/build-dashboard.mjs` and shipped in the package (no CDN). Loaded on the first
 * request, so handlers without the dashboard never load its bytes. Every answer carries the
 * security headers of DESIGN.md. Internal.
 */
import { DASHBOARD_ASSET_PATTERN } from '../../contract/routes.js'
import { ServerConfigurationError } from '../configuration-error.js'
// `PipelineStatusHandlersSettings` is linked by name in the docs below, not imported.
import type { DashboardOptions } from '../handler-options.js'

/** The page's policy: its own script and stylesheet only, no inline script, never in a frame. */
export const DASHBOARD_CSP = "default-src 'self'; script-src 'self'; frame-ancestors 'none'"

/** The headers of every dashboard answer. */
export const DASHBOARD_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Security-Policy': DASHBOARD_CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
})

/** The dashboard's settings, resolved. */
export interface DashboardSettings {
  readonly title: string
  readonly refreshIntervalMs: number
  /** The page's reads need no credential (the mock on loopback). */
  readonly open: boolean
}

const DEFAULT_TITLE = 'Pipeline runs'
const DEFAULT_REFRESH_INTERVAL_MS = 30_000
const MIN_REFRESH_INTERVAL_MS = 500

/** The `dashboard` option resolved: `undefined` when off; throws {@link ServerConfigurationError} for one that cannot work. */
export function resolveDashboard(option: boolean | DashboardOptions | undefined): DashboardSettings | undefined {
  if (option === undefined || option === false) return undefined
  const options: DashboardOptions = option === true ? {} : option
  const title = options.title ?? DEFAULT_TITLE
  if (typeof title !== 'string' || title.length === 0 || title.length > 200) {
    throw new ServerConfigurationError('dashboard.title must be a string of 1 to 200 characters')
  }
  const refreshIntervalMs = options.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS
  if (!Number.isSafeInteger(refreshIntervalMs) || refreshIntervalMs < MIN_REFRESH_INTERVAL_MS) {
    throw new ServerConfigurationError(`dashboard.refreshIntervalMs must be a whole number of milliseconds, ${MIN_REFRESH_INTERVAL_MS} or more`)
  }
  return { title, refreshIntervalMs, open: options.open === true }
}

/** One file of the dashboard as the build wrote it. */
interface DashboardFile {
  readonly contentType: string
  readonly etag: string
  readonly body: string
  /** The body gzipped at build time, base64. */
  readonly gzip: string
}

let files: Promise<Readonly<Record<string, DashboardFile>>> | undefined

/** The dashboard's files, loaded once, on first use. */
function dashboardFiles(): Promise<Readonly<Record<string, DashboardFile>>> {
  files ??= import('../../generated/dashboard-assets.js').then((module) => module.DASHBOARD_ASSETS)
  return files
}

/** The script and stylesheet the shell names. */
const SCRIPT = 'dashboard.js'
const STYLESHEET = 'dashboard.css'
const ICON = 'favicon.svg'

/** A file's version in its URL (`?v=`): its ETag without the quotes. */
const versionOf = (file: DashboardFile | undefined): string => (file?.etag ?? '').replaceAll('"', '')

/** A hashed URL's file never changes: a year, immutable. Any other URL revalidates. */
const IMMUTABLE = 'public, max-age=31536000, immutable'

/** Each file's gzip as bytes, decoded from base64 once. */
const gzipBytes = new Map<string, Uint8Array>()
function gzipOf(name: string, file: DashboardFile): Uint8Array {
  let bytes = gzipBytes.get(name)
  if (bytes === undefined) {
    const binary = atob(file.gzip)
    bytes = new Uint8Array(binary.length)
    for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index)
    gzipBytes.set(name, bytes)
  }
  return bytes
}

/** Whether an `Accept-Encoding` takes gzip (a `q=0` refuses it). */
function acceptsGzip(header: string | null): boolean {
  if (header === null) return false
  return header.split(',').some((part) => {
    const [coding, ...params] = part.split(';').map((piece) => piece.trim().toLowerCase())
    if (coding !== 'gzip' && coding !== 'x-gzip') return false
    const q = params.find((param) => param.startsWith('q='))
    return q === undefined || Number(q.slice(2)) > 0
  })
}

/** Text for an HTML attribute or element: the five characters HTML gives meaning escaped. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)
}

/** Where the shell's page finds things: its files and the routes it reads. */
export interface DashboardLocation {
  /** The path the files are under (`/api/pipeline/dashboard`), no trailing slash; `''` for the root. */
  readonly assetBase: string
  /** The base path (or URL) of the routes the page reads (`/api/pipeline`). */
  readonly apiBase: string
}

/** What the page reads from its `<meta name="pipeline-status-dashboard">`: no data, only where and how. */
export interface DashboardConfig {
  readonly apiBase: string
  readonly title: string
  readonly refreshIntervalMs: number
}

/**
 * `GET …/dashboard`: the page shell. The file URLs carry their hashes (`?v=`), so a new version
 * of the package is loaded at once, while the files themselves are revalidated with their ETag.
 */
export async function dashboardShellResponse(request: Request, location: DashboardLocation, settings: DashboardSettings): Promise<Response> {
  const assets = await dashboardFiles()
  const version = (name: string) => encodeURIComponent(versionOf(assets[name]))
  const config: DashboardConfig = { apiBase: location.apiBase, title: settings.title, refreshIntervalMs: settings.refreshIntervalMs }
  const html =
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    '<meta name="referrer" content="no-referrer">' +
    `<title>${escapeHtml(settings.title)}</title>` +
    `<meta name="pipeline-status-dashboard" content="${escapeHtml(JSON.stringify(config))}">` +
    `<link rel="icon" type="image/svg+xml" href="${escapeHtml(`${location.assetBase}/${ICON}?v=${version(ICON)}`)}">` +
    `<link rel="stylesheet" href="${escapeHtml(`${location.assetBase}/${STYLESHEET}?v=${version(STYLESHEET)}`)}">` +
    `<script defer src="${escapeHtml(`${location.assetBase}/${SCRIPT}?v=${version(SCRIPT)}`)}"></script>` +
    '</head><body><div id="root"></div><noscript>The dashboard needs JavaScript.</noscript></body></html>\n'
  const headers = { ...DASHBOARD_SECURITY_HEADERS, 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-cache' }
  return new Response(request.method === 'HEAD' ? null : html, { status: 200, headers })
}

/** Whether an `If-None-Match` holds this ETag (or `*`). */
function matchesETag(header: string | null, etag: string): boolean {
  if (header === null) return false
  return header.split(',').some((tag) => {
    const value = tag.trim()
    return value === '*' || value === etag || value === `W/${etag}`
  })
}

/**
 * `GET …/dashboard/{asset}`: one of its files with its content type and ETag (304 when the
 * `If-None-Match` holds it); `undefined` for a name the dashboard does not have. When the URL's
 * `v` is the file's current hash (the shell's links), `Cache-Control` is a year and immutable;
 * else `no-cache`. Gzipped (compressed at build time) when `Accept-Encoding` takes gzip, with
 * `Vary: Accept-Encoding` and its own ETag (`"…-gz"`).
 */
export async function dashboardAssetResponse(request: Request, name: string): Promise<Response | undefined> {
  const assets = await dashboardFiles()
  const file = Object.hasOwn(assets, name) ? assets[name] : undefined
  if (!file) return undefined
  const hashed = new URL(request.url).searchParams.get('v') === versionOf(file)
  const gzip = acceptsGzip(request.headers.get('accept-encoding'))
  const etag = gzip ? `${file.etag.slice(0, -1)}-gz"` : file.etag
  const cache = { 'Cache-Control': hashed ? IMMUTABLE : 'no-cache', ETag: etag, Vary: 'Accept-Encoding' }
  if (matchesETag(request.headers.get('if-none-match'), etag)) return new Response(null, { status: 304, headers: cache })
  const headers: Record<string, string> = { ...DASHBOARD_SECURITY_HEADERS, 'Content-Type': file.contentType, ...cache }
  if (gzip) headers['Content-Encoding'] = 'gzip'
  const body = request.method === 'HEAD' ? null : gzip ? gzipOf(name, file) : file.body
  return new Response(body as BodyInit | null, { status: 200, headers })
}

/** Options of {@link createDashboardHandler}: where the page is, where the routes are, and the page's own options. */
export interface DashboardHandlerOptions extends DashboardOptions {
  /**
   * The path the page is served at: `GET {path}` its shell, `GET {path}/{asset}` its files.
   * `'/'` serves the shell at the root and the files beside it.
   * @default '/dashboard'
   */
  path?: string | undefined
  /**
   * The base path (or absolute URL) of the pipeline-status routes the page reads.
   * @default '/api/pipeline'
   */
  apiBasePath?: string | undefined
}

/** A `Request` → `Response` handler, as `createDashboardHandler` returns it. */
export type DashboardHandler = (request: Request) => Promise<Response>

const notFound = (detail: string) =>
  new Response(JSON.stringify({ type: 'urn:pipeline-status-sdk:problem:route-not-found', title: 'No such route', status: 404, code: 'route_not_found', detail }), {
    status: 404,
    headers: { 'Content-Type': 'application/problem+json', 'Cache-Control': 'no-store', ...DASHBOARD_SECURITY_HEADERS },
  })

/**
 * The dashboard on its own, for an app that mounts it somewhere else than `{basePath}/dashboard`
 * (the handlers' `dashboard` option serves it there): `GET {path}` answers the page shell and
 * `GET {path}/{asset}` its files, with the same security headers; anything else is a 404
 * problem. The page reads the routes under `apiBasePath` with the same rules as the handlers'
 * own dashboard (see {@link PipelineStatusHandlersSettings.dashboard}). Throws
 * {@link ServerConfigurationError} for options that cannot work.
 *
 * @example
 * ```ts
 * import { createDashboardHandler } from 'pipeline-status-sdk/server'
 *
 * // Bun, Deno, Hono, a Next.js catch-all route at app/admin/pipelines/[[...path]]/route.ts:
 * const dashboard = createDashboardHandler({ path: '/admin/pipelines', apiBasePath: '/api/pipeline' })
 * export const GET = dashboard
 * ```
 */
export function createDashboardHandler(options: DashboardHandlerOptions = {}): DashboardHandler {
  const { path = '/dashboard', apiBasePath = '/api/pipeline', ...page } = options
  const settings = resolveDashboard(page) as DashboardSettings
  const mount = path.replace(/\/+$/, '')
  const apiBase = apiBasePath.replace(/\/+$/, '')
  return async (request) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return new Response(null, { status: 405, headers: { Allow: 'GET, HEAD', ...DASHBOARD_SECURITY_HEADERS } })
    }
    let pathname: string
    try {
      pathname = new URL(request.url).pathname
    } catch {
      return notFound('The request URL cannot be parsed')
    }
    const trimmed = pathname.replace(/\/+$/, '')
    if (trimmed === mount) return dashboardShellResponse(request, { assetBase: mount, apiBase }, settings)
    if (pathname.startsWith(`${mount}/`)) {
      const name = pathname.slice(mount.length + 1)
      const response = DASHBOARD_ASSET_PATTERN.test(name) ? await dashboardAssetResponse(request, name) : undefined
      if (response) return response
    }
    return notFound('No dashboard page or file at this path')
  }
}
