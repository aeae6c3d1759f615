/**
 * MSW request handlers that behave exactly like the real handlers, because they run them on an
 * in-memory store, plus fault injection and a runnable mock server (`pipeline-status mock`).
 *
 * @example
 * ```ts
 * import { setupServer } from 'msw/node'
 * import { createPipelineMock } from 'pipeline-status-sdk/msw'
 *
 * const mock = createPipelineMock({ baseUrl: 'http://app.test', secret: 'test-secret' })
 * setupServer(...mock.handlers).listen({ onUnhandledFrame: 'error' })
 * ```
 *
 * @module pipeline-status-sdk/msw
 */
export { createPipelineMock, MOCK_DEFAULT_SECRET } from './pipeline-mock.js'
export type { PipelineMock, PipelineMockOptions, RecordedRequest } from './pipeline-mock.js'
export type { Fault, FaultAction } from './faults.js'
export { startMockServer } from './mock-http-server.js'
export type { MockServer, MockServerOptions, MockServerRequestEntry } from './mock-http-server.js'
