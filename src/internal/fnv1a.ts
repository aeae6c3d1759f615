/**
 * FNV-1a, 32 bits, over `text`'s UTF-16 code units: a short, stable name for a piece of SQL (a
 * prepared statement's, a store function's), not a security hash.
 */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0
  return hash
}
