/**
 * The dashboard's routes (docs/dashboard.md): `GET {base}/dashboard`, its page shell, and
 * `GET {base}/dashboard/{asset}`, its files; 404 `route_not_found` while the `dashboard` option is
 * off. Public: the shell and the files hold no data. The page's data requests go to the other
 * routes, authorized like lists (`list-access.ts`, `authenticate.ts`). Internal.
 */
import { ROUTE_TABLE } from '../../contract/routes.js'
import { dashboardAssetResponse, dashboardShellResponse, type DashboardSettings } from '../dashboard/dashboard-page.js'
import type { Plumbing, RouteHandler } from '../http/exchange.js'
import { HttpProblemError } from '../http/problem-response.js'

/** The dashboard's handlers, by route name. */
export interface DashboardRoutes {
  readonly dashboard: RouteHandler
  readonly dashboardAsset: RouteHandler
}

const notServed = (detail: string) => new HttpProblemError('route_not_found', { detail })
const OFF = 'The dashboard is off; turn it on with the handlers\' `dashboard` option'

/** Builds the dashboard's routes of one handlers instance. */
export function createDashboardRoutes(settings: { readonly dashboard: DashboardSettings | undefined }, plumbing: Plumbing): DashboardRoutes {
  const { dashboard } = settings
  const suffix = ROUTE_TABLE.dashboard.path

  const page = plumbing.route('dashboard', async (exchange) => {
    if (!dashboard) throw notServed(OFF)
    // Where the page is, as the request reached the app (an Express mount point included): its
    // files are under it and the routes it reads beside it.
    const pathname = new URL(exchange.request.url).pathname.replace(/\/+$/, '')
    const apiBase = pathname.endsWith(suffix) ? pathname.slice(0, -suffix.length) : pathname
    return dashboardShellResponse(exchange.request, { assetBase: `${apiBase}${suffix}`, apiBase }, dashboard)
  })

  const asset = plumbing.route('dashboardAsset', async (exchange, { asset: name }) => {
    if (!dashboard) throw notServed(OFF)
    const response = await dashboardAssetResponse(exchange.request, name)
    if (!response) throw notServed('The dashboard has no file of this name')
    return response
  })

  return { dashboard: page, dashboardAsset: asset }
}
