/**
 * The contract shared by runners and web apps: zod schemas and types of every payload,
 * the status enums, the default stage catalogue, route paths, header names and error codes.
 * It has no dependency on Prisma, ky or msw.
 *
 * @example
 * ```ts
 * import { parseStageUpdate, DEFAULT_STAGES } from 'pipeline-status-sdk'
 * const update = parseStageUpdate(JSON.parse(body), DEFAULT_STAGES)
 * ```
 *
 * @module pipeline-status-sdk
 */
export * from './contract/index.js'
