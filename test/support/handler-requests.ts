/**
 * Requests for handlers called in memory (`handlers.fetch(request)`), under the usual base path,
 * and the same POST sent over real HTTP to a server the test started ({@link postOk}).
 */

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

/**
 * POSTs `json` to `base` + `path` over real HTTP with `secret` as `X-Webhook-Secret`; the answer
 * when it is a 2xx, else an Error naming the path, the status and the answer's body.
 */
export async function postOk(secret: string, base: string, path: string, json: unknown): Promise<Response> {
  const response = await fetch(handlerRequests(secret, base).post(path, json))
  if (!response.ok) throw new Error(`POST ${path} answered ${response.status}: ${await response.text()}`)
  return response
}
