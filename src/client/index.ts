/**
 * The runner side: `PrismaAPIClient` and `runPipeline`. Imports no Prisma, pg or server code.
 *
 * @module pipeline-status-sdk/client
 */
export * from '../contract/index.js'
