/**
 * Marks requests whose body an adapter rebuilt from a body that a framework's parser had already
 * read (`JSON.stringify(req.body)`): the JSON value is the same, the bytes may not be, so such a
 * body must never be checked against a signature. Internal: not exported from the package.
 */
const rebuilt = new WeakSet<Request>()

/** Records that `request`'s body was rebuilt, not received. */
export function markRebuiltBody(request: Request): void {
  rebuilt.add(request)
}

/** Whether `request`'s body was rebuilt by an adapter (see {@link markRebuiltBody}). */
export function hasRebuiltBody(request: Request): boolean {
  return rebuilt.has(request)
}
