/**
 * Next.js App Router route handlers.
 *
 * @module pipeline-status-sdk/next
 */
export {}
