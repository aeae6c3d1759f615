/**
 * Express 5 router.
 *
 * @module pipeline-status-sdk/express
 */
export {}
