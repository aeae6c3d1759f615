/**
 * MSW request handlers that behave exactly like the real handlers, over an in-memory store.
 *
 * @module pipeline-status-sdk/msw
 */
export {}
