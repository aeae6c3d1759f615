/**
 * The one rule for a URL written without its scheme (`localhost:5120`, `app.example.com/api`),
 * which `new URL` reads as a URL whose scheme is `localhost:` or refuses: what was meant, so that
 * the runner's client and the live subscriber say the same thing.
 *
 * @returns the URL with `http://` for a host on this machine (where TLS is rare) or `https://`
 * for any other host; `undefined` when `url` has a scheme or does not look like host[:port][/path].
 */
export function suggestScheme(url: string): string | undefined {
  const text = url.trim()
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return undefined
  if (!/^(?:[\w.-]+|\[[\d:a-f]+\])(?::\d+)?(?:[/?#]\S*)?$/i.test(text)) return undefined
  // A path such as `/api/pipeline` or `api/pipeline` is relative, not a host without a scheme.
  const host = text.split(/[/:?#]/, 1)[0]?.toLowerCase() ?? ''
  if (host === '' || (!host.includes('.') && host !== 'localhost' && !text.startsWith('[') && !/^[^/]*:\d+/.test(text))) return undefined
  const local = host === 'localhost' || host.endsWith('.localhost') || host.startsWith('127.') || host === '0.0.0.0' || text.startsWith('[::1]')
  return `${local ? 'http' : 'https'}://${text}`
}
