/**
 * Where a subscriber's URLs point: a base path made absolute once, against the page in a browser
 * (as `fetch` would resolve it), or refused where there is no page (Node, edge runtimes). Shared by
 * `subscribeToRun`, `subscribeToRuns` and the page's shared connections.
 */
import { suggestScheme } from '../internal/missing-scheme.js'
import { RunSubscriptionError } from './subscription-errors.js'

/** The page's base URL in a browser (or a worker's location); `undefined` in Node and edge runtimes. */
export function pageUrl(): string | undefined {
  try {
    const scope = globalThis as { document?: { baseURI?: string }; location?: { href?: string } }
    return scope.document?.baseURI ?? scope.location?.href
  } catch {
    // Deno without --location throws on reading `location`.
    return undefined
  }
}

/**
 * `relative` (built from the subscriber's `url` option) made absolute: resolved against the page
 * where there is one. The error to stop with when that cannot be done: every attempt would fail
 * the same way.
 *
 * @param who the function named in the message, e.g. `subscribeToRuns`
 */
export function absoluteUrl(who: string, url: string, relative: string): string | RunSubscriptionError {
  // `localhost:3000/api/pipeline` is a URL whose scheme is `localhost:`: every fetch would fail.
  const meant = suggestScheme(url)
  if (meant !== undefined) return new RunSubscriptionError(`${who}: url '${url}' has no http:// or https://; did you mean ${meant}?`)
  const page = pageUrl()
  try {
    return new URL(relative, page).href
  } catch (cause) {
    const message =
      page === undefined
        ? `${who} needs an absolute url here: '${url}' is relative, and this runtime (Node, an edge runtime) has no page to resolve it against. Give the routes' full address, e.g. url: 'https://app.example.com/api/pipeline'`
        : `${who} cannot build a URL from url '${url}' (resolved against ${page})`
    return new RunSubscriptionError(message, { cause })
  }
}
