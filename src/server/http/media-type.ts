/**
 * Whether a `Content-Type` is JSON: `application/json` or any `+json` type, with any
 * parameters (`; charset=utf-8`), in any letter case.
 */
export function isJsonMediaType(contentType: string | null): boolean {
  if (contentType === null) return false
  const essence = contentType.split(';', 1)[0]?.trim().toLowerCase() ?? ''
  const [type, subtype] = essence.split('/')
  if (type !== 'application' || subtype === undefined) return false
  return subtype === 'json' || (subtype.endsWith('+json') && subtype.length > '+json'.length)
}
