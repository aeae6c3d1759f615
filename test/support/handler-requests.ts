/** Requests for handlers called in memory (`handlers.fetch(request)`), under the usual base path. */

/** The base URL the in-memory handler tests send to. */
export const HANDLER_BASE_URL = 'http://app.test/api/pipeline'

/**
 * `get(path)` and `post(path, json)`: requests to `base` + `path` carrying `secret` as
 * `X-Webhook-Secret` (and a JSON body for `post`).
 */
export function handlerRequests(secret: string, base = HANDLER_BASE_URL): { get(path: string): Request; post(path: string, json: unknown): Request } {
  return {
    get: (path) => new Request(`${base}${path}`, { headers: { 'X-Webhook-Secret': secret } }),
    post: (path, json) =>
      new Request(`${base}${path}`, { method: 'POST', headers: { 'X-Webhook-Secret': secret, 'Content-Type': 'application/json' }, body: JSON.stringify(json) }),
  }
}
