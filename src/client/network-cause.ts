/**
 * What a failed fetch's system error says, found along the `cause` chain (ky's NetworkError →
 * fetch's TypeError → the socket error). Internal.
 */

/** The system error behind `error`, or `undefined` when the chain holds no error `code`. */
function systemError(error: unknown): (Error & { code: string; address?: unknown; port?: unknown; hostname?: unknown; errors?: unknown }) | undefined {
  let current: unknown = error
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && code !== '') return current as Error & { code: string }
    current = current.cause
  }
  return undefined
}

/**
 * The system error code behind a failed fetch (`ECONNREFUSED`, `ECONNRESET`, `ENOTFOUND`), else
 * the error's message: the short cause of the retry warnings and their `details.cause`.
 */
export function networkCause(error: unknown): string {
  return systemError(error)?.code ?? (error instanceof Error ? error.message : String(error))
}

/**
 * The cause with where it happened, for a message a person reads: `ECONNREFUSED 127.0.0.1:5199`,
 * `ENOTFOUND app.example.com`; the code alone when the error names no address; `undefined` when
 * the chain holds no system error.
 */
export function networkCauseWithAddress(error: unknown): string | undefined {
  const found = systemError(error)
  if (!found) return undefined
  const where = (e: { address?: unknown; port?: unknown; hostname?: unknown }): string | undefined => {
    if (typeof e.address === 'string') return typeof e.port === 'number' ? `${e.address}:${e.port}` : e.address
    return typeof e.hostname === 'string' ? e.hostname : undefined
  }
  // Node tries each address of a name (IPv6 and IPv4) and reports them together.
  const each = Array.isArray(found.errors) ? found.errors.map((e) => where(e as object)).filter((w) => w !== undefined) : []
  const place = where(found) ?? (each.length > 0 ? each.join(', ') : undefined)
  return place === undefined ? found.code : `${found.code} ${place}`
}
