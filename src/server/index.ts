/**
 * The web-app side: the store interface, the in-memory and Prisma stores, and the
 * Web-standard (`Request` → `Response`) handlers that every framework adapter wraps.
 *
 * @module pipeline-status-sdk/server
 */
export * from '../core/index.js'
export * from './prisma-store.js'
