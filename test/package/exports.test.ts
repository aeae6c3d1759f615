/**
 * Tests what users install: the built package (global setup builds it), imported every subpath by its public
 * name with both `import()` and `require()` from a folder outside the repo, and checks that
 * the runner's entry pulls in no Prisma, pg, server or framework code.
 */
import { execFile } from 'node:child_process'
import { cp, mkdtemp, mkdir, readFile, rm, stat, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { build } from 'esbuild'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENT_SOURCE_GRAPH } from '../support/client-graph.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))
const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, unknown>
}
const subpaths = Object.keys(pkg.exports)
  .filter((key) => key !== './package.json' && !key.endsWith('.json') && !key.endsWith('.css'))
  .map((key) => (key === '.' ? 'pipeline-status-sdk' : `pipeline-status-sdk/${key.slice(2)}`))

/**
 * Every entry point's runtime exports, sorted. Each name is a promise to users: a change here is
 * a deliberate change of the public API (types are pinned by the entries' explicit `export type`
 * lists and typedoc). Internal helpers live under src/internal or src/core, never in these lists.
 */
const PUBLIC_EXPORTS: Record<string, string[]> = {
  'pipeline-status-sdk': [
    'CancelRun', 'CancelRunResponse', 'CatalogueEntry', 'CompleteRun', 'CompleteRunResponse', 'CreateRun',
    'CreateRunResponse', 'DEFAULT_BASE_PATH', 'DEFAULT_LIST_LIMIT', 'DEFAULT_MAX_RECONNECT_DELAY_MS',
    'DEFAULT_MAX_STREAMED_OUTPUT_BYTES', 'DEFAULT_PIPELINE', 'DEFAULT_POLL_INTERVAL_MS',
    'DEFAULT_RECONNECT_DELAY_MS', 'DEFAULT_SERVER_KEEP_ALIVE_MS', 'DEFAULT_STAGES', 'DEFAULT_STATS_DAYS',
    'ENV_WEBHOOK_SECRET', 'ENV_WEBHOOK_URL', 'FieldError', 'FinalStatus', 'HEADERS', 'Heartbeat',
    'HeartbeatOutcome', 'HeartbeatResponse', 'LIVE_EVENTS', 'MAX_CANCEL_REASON_LENGTH',
    'MAX_HEARTBEAT_INTERVAL_MS', 'MAX_LIST_LIMIT', 'MAX_METADATA_BYTES', 'MAX_OUTPUT_CHUNK_BYTES',
    'MAX_OUTPUT_SEQ', 'MAX_PROGRESS_MESSAGE_LENGTH', 'MAX_REQUEST_TARGET_LENGTH', 'MAX_SET_STREAM_RUNS',
    'MAX_STATS_DAYS', 'MAX_SUMMARY_ERROR_LENGTH', 'MAX_TAGS', 'MAX_TAG_LENGTH', 'MIN_HEARTBEAT_INTERVAL_MS',
    'OPENAPI_VERSION', 'PROBLEM_CODES', 'PROBLEM_CONTENT_TYPE', 'PROBLEM_TITLES', 'PayloadValidationError',
    'PipelineName', 'PipelineRunRecord', 'Problem', 'ProblemCode', 'ROUTE_METHODS', 'RUN_COUNTS_GROUP_BY',
    'RunCounts', 'RunEndEvent', 'RunEndReason', 'RunId', 'RunLabelsResponse', 'RunLeaveEvent', 'RunListPage',
    'RunMetadata', 'RunMetadataPatch', 'RunPollTimeoutError', 'RunSnapshotEvent', 'RunStatsResponse',
    'RunStatus', 'RunStatusResponse', 'RunStreamClosedError', 'RunStreamSilentError', 'RunSubscriptionError', 'RunSummary',
    'RunTagsChange', 'RunUpdateEvent', 'RunUpdateStage', 'SET_STREAM_VIEWS', 'SILENT_KEEP_ALIVES',
    'SetStreamReadyEvent', 'StageDefinition', 'StageOutputChunk', 'StageOutputChunkResponse',
    'StageOutputEvent', 'StageOutputRecord', 'StageProgress', 'StageStats', 'StageStatus', 'StageUpdate',
    'StageUpdateResponse', 'StageUpdateStatus', 'TIMESTAMP_FORMAT', 'Tag', 'Tags', 'Timestamp',
    'UpdateOutcome', 'allowedMethods', 'applyOutputChunk', 'assertStageCatalogue', 'createOpenApiDocument',
    'createProblem', 'defineStages', 'heartbeatSchemaFor', 'isFinalStatus', 'isPayloadValidationError',
    'isRunId', 'isRunPollTimeoutError', 'isRunStreamClosedError', 'isRunStreamSilentError', 'isRunSubscriptionError', 'isTimestamp',
    'lastStageNumber', 'matchRoute', 'mergeRunUpdate', 'metadataBytes', 'normalizeBasePath', 'parseCancelRun',
    'parseCompleteRun', 'parseCreateRun', 'parseHeartbeat', 'parseRunId', 'parseStageOutputChunk',
    'parseStageUpdate', 'problemType', 'routePath', 'runEventsPath', 'runListQuery', 'safeParseCancelRun',
    'safeParseCompleteRun', 'safeParseCreateRun', 'safeParseHeartbeat', 'safeParseStageUpdate',
    'stageUpdateSchemaFor', 'subscribeToRun', 'subscribeToRuns', 'timestampToDate', 'toFieldErrors',
  ],
  'pipeline-status-sdk/client': [
    'CatalogueMismatchError', 'ClientClosedError', 'ConfigurationError', 'DEFAULT_RETRY_POLICY',
    'DEFAULT_STAGES', 'OutboxLockedError', 'PayloadValidationError', 'PipelineStatusError', 'PrismaAPIClient',
    'RunDeletedError', 'RunFinishedError', 'StatusHttpError', 'StatusNetworkError', 'StatusTimeoutError', 'TRUNCATION_MARKER',
    'UNSERIALISABLE_OUTPUT_PREFIX', 'consoleLogger', 'defineStages', 'isCatalogueMismatchError',
    'isClientClosedError', 'isConfigurationError', 'isOutboxLockedError', 'isPayloadValidationError',
    'isPipelineStatusError', 'isQueuedDelivery', 'isRetriableStatus', 'isRunDeletedError', 'isRunFinishedError',
    'isStatusHttpError', 'isStatusNetworkError', 'isStatusTimeoutError', 'outputJsonReplacer',
    'parseRetryAfter', 'runPipeline', 'silentLogger',
  ],
  'pipeline-status-sdk/server': [
    'DEFAULT_MAX_BODY_BYTES', 'DEFAULT_MAX_REPLAYED_OUTPUT_CHUNKS', 'DEFAULT_READ_TOKEN_EXPIRES_IN_SECONDS', 'DEFAULT_RETRY_AFTER_SECONDS',
    'DEFAULT_WEBHOOK_TOLERANCE_SECONDS', 'HttpProblemError', 'MIN_READ_TOKEN_SECRET_LENGTH', 'MemoryStore',
    'ServerConfigurationError', 'StoreUnavailableError', 'WEBHOOK_SECRET_PREFIX', 'createDashboardHandler', 'createMemoryReplayStore',
    'createPipelineStatusHandlers', 'createPostgresReplayStore', 'createPrismaStore', 'createRun',
    'createRunReadToken', 'createStaleRunSweeper', 'createWebhookSignatureHeaders', 'isHttpProblemError',
    'isServerConfigurationError', 'isStoreUnavailableError', 'nextRunVersion', 'problemResponse',
    'resolveWebhookSecrets', 'signWebhook', 'toRunListItem', 'updateRunMetadata', 'updateRunTags',
    'verifyRunReadToken', 'verifyWebhookSignature', 'webhookMessageId', 'webhookRoute',
  ],
  'pipeline-status-sdk/next': [
    'createNextRouteHandlers',
  ],
  'pipeline-status-sdk/express': [
    'createExpressRouter', 'loadPipelinesFile', 'parsePipelines',
  ],
  'pipeline-status-sdk/msw': [
    'MOCK_DEFAULT_SECRET', 'createPipelineMock', 'startMockServer',
  ],
  'pipeline-status-sdk/react': [
    'RunList', 'RunTimeline', 'SafeMarkdown', 'createRunStatusStore', 'createRunsStore', 'runListQuery', 'useAppliedFilters', 'useRunStatus', 'useRuns',
  ],
  'pipeline-status-sdk/pg': [
    'DEFAULT_NOTIFY_CHANNEL', 'MigrationError', 'applyMigrations', 'createPgConnections', 'createPgRunListener',
  ],
  'pipeline-status-sdk/otel': [
    'ATTRIBUTES', 'METRICS', 'pipelineStatusInstrumentation', 'registerPipelineStatusTracing',
  ],
}

let consumer: string

// test/setup/global-setup.ts has built dist/ before any test runs.
beforeAll(async () => {
  consumer = await mkdtemp(join(tmpdir(), 'pss-consumer-'))
  await mkdir(join(consumer, 'node_modules'))
  await symlink(root, join(consumer, 'node_modules/pipeline-status-sdk'), 'dir')
}, 180_000)

afterAll(async () => {
  if (consumer) await rm(consumer, { recursive: true, force: true })
})

/** Bundles an entry as a runner's bundler would, keeping the list of every module it pulled in. */
function bundle(entry: string) {
  return build({
    entryPoints: [join(root, entry)],
    bundle: true,
    write: false,
    metafile: true,
    platform: 'node',
    format: 'esm',
    logLevel: 'silent',
  })
}

async function node(code: string, type: 'module' | 'commonjs') {
  const { stdout } = await run(process.execPath, [`--input-type=${type}`, '-e', code], { cwd: consumer })
  return JSON.parse(stdout) as Record<string, string[]>
}

describe('the entry points (source)', () => {
  it('export exactly the pinned names', async () => {
    const entries: Record<string, () => Promise<object>> = {
      'pipeline-status-sdk': () => import('pipeline-status-sdk'),
      'pipeline-status-sdk/client': () => import('pipeline-status-sdk/client'),
      'pipeline-status-sdk/server': () => import('pipeline-status-sdk/server'),
      'pipeline-status-sdk/next': () => import('pipeline-status-sdk/next'),
      'pipeline-status-sdk/express': () => import('pipeline-status-sdk/express'),
      'pipeline-status-sdk/msw': () => import('pipeline-status-sdk/msw'),
      'pipeline-status-sdk/react': () => import('pipeline-status-sdk/react'),
      'pipeline-status-sdk/pg': () => import('pipeline-status-sdk/pg'),
      'pipeline-status-sdk/otel': () => import('pipeline-status-sdk/otel'),
    }
    expect(Object.keys(entries)).toEqual(subpaths)
    for (const [subpath, load] of Object.entries(entries)) {
      expect(Object.keys(await load()).sort(), subpath).toEqual(PUBLIC_EXPORTS[subpath])
    }
  })

  it('name every export: no `export *` in an entry point', async () => {
    const entries = ['src/index.ts', 'src/client/index.ts', 'src/server/index.ts', 'src/next/index.ts', 'src/express/index.ts']
    for (const entry of [...entries, 'mock-server/index.ts', 'src/react/index.ts', 'src/pg/index.ts', 'src/otel/index.ts']) {
      expect(await readFile(join(root, entry), 'utf8'), entry).not.toMatch(/^export \*/m)
    }
  })
})

describe('the built package', () => {
  it('lists nine entry points', () => {
    expect(subpaths).toEqual([
      'pipeline-status-sdk',
      'pipeline-status-sdk/client',
      'pipeline-status-sdk/server',
      'pipeline-status-sdk/next',
      'pipeline-status-sdk/express',
      'pipeline-status-sdk/msw',
      'pipeline-status-sdk/react',
      'pipeline-status-sdk/pg',
      'pipeline-status-sdk/otel',
    ])
  })

  it('imports every subpath with import() and require(), with the same exports', async () => {
    const names = JSON.stringify(subpaths)
    const esm = await node(
      `const out = {}; for (const s of ${names}) out[s] = Object.keys(await import(s)).sort(); console.log(JSON.stringify(out))`,
      'module',
    )
    const cjs = await node(
      `const out = {}; for (const s of ${names}) out[s] = Object.keys(require(s)).filter(k => k !== '__esModule').sort(); console.log(JSON.stringify(out))`,
      'commonjs',
    )
    expect(cjs).toEqual(esm)
    expect(esm).toEqual(PUBLIC_EXPORTS)
  })

  it('exports the OpenAPI document as pipeline-status-sdk/openapi.json, the one createOpenApiDocument() builds', async () => {
    const loaded = await node(
      `const { createOpenApiDocument } = await import('pipeline-status-sdk');
       const { default: file } = await import('pipeline-status-sdk/openapi.json', { with: { type: 'json' } });
       const required = require('pipeline-status-sdk/openapi.json');
       console.log(JSON.stringify({ same: [String(JSON.stringify(file) === JSON.stringify(createOpenApiDocument()) && JSON.stringify(required) === JSON.stringify(file))], version: [file.openapi] }))`.replace(
        'const required',
        "const { createRequire } = await import('node:module'); const require = createRequire(process.cwd() + '/'); const required",
      ),
      'module',
    )
    expect(loaded).toEqual({ same: ['true'], version: ['3.1.1'] })
  })

  it('writes openapi.json into the folder the package was built into (tsup --out-dir, as the Next.js example installs it), never into dist/', async () => {
    // The example's scripts/install-sdk.mjs builds into the app's node_modules with --out-dir;
    // tsup's onSuccess then ran scripts/write-openapi.mjs, which read and wrote the repository's
    // dist/ (missing on a fresh checkout: `npm run example:nextjs` failed with ERR_MODULE_NOT_FOUND).
    // Inside the repository (as the app's node_modules is inside the app), so that the built
    // chunks find their dependencies.
    await mkdir(join(root, 'node_modules', '.cache'), { recursive: true })
    const outDir = await mkdtemp(join(root, 'node_modules', '.cache', 'pss-out-dir-'))
    try {
      await cp(join(root, 'dist'), outDir, { recursive: true })
      await rm(join(outDir, 'openapi.json'))
      const before = (await stat(join(root, 'dist', 'openapi.json'))).mtimeMs
      await run(process.execPath, [join(root, 'scripts', 'write-openapi.mjs'), outDir])
      const written = JSON.parse(await readFile(join(outDir, 'openapi.json'), 'utf8')) as { openapi: string }
      expect(written).toEqual(JSON.parse(await readFile(join(root, 'dist', 'openapi.json'), 'utf8')))
      expect(written.openapi).toBe('3.1.1')
      expect((await stat(join(root, 'dist', 'openapi.json'))).mtimeMs).toBe(before)
    } finally {
      await rm(outDir, { recursive: true, force: true })
    }
  })

  it('ships the stylesheet as pipeline-status-sdk/react/styles.css, and marks the React entry a client module', async () => {
    const resolved = await node(
      `const { createRequire } = await import('node:module'); const require = createRequire(process.cwd() + '/');
       console.log(JSON.stringify({ css: [require.resolve('pipeline-status-sdk/react/styles.css')] }))`,
      'module',
    )
    expect(resolved.css?.[0]?.endsWith('/dist/react/styles.css')).toBe(true)
    expect(await readFile(join(root, 'dist/react/styles.css'), 'utf8')).toContain('.ps-timeline')
    // Next.js reads the directive from the built files: the first statement of both formats.
    for (const file of ['dist/react/index.js', 'dist/react/index.cjs']) {
      expect((await readFile(join(root, file), 'utf8')).startsWith("'use client';\n"), file).toBe(true)
    }
    for (const file of ['dist/index.js', 'dist/client/index.js', 'dist/server/index.js']) {
      expect(await readFile(join(root, file), 'utf8'), file).not.toContain("'use client'")
    }
    // A bundler must keep `import 'pipeline-status-sdk/react/styles.css'`.
    expect(JSON.parse(await readFile(join(root, 'package.json'), 'utf8')).sideEffects).toEqual(['*.css'])
  })

  it('shares one copy of the contract between entries', async () => {
    const same = await node(
      `const a = await import('pipeline-status-sdk'); const b = await import('pipeline-status-sdk/client');
       console.log(JSON.stringify({ same: [String(a.PayloadValidationError === b.PayloadValidationError)] }))`,
      'module',
    )
    expect(same).toEqual({ same: ['true'] })
  })

  it('keeps Prisma, pg, frameworks and server code out of the runner bundle', async () => {
    const result = await bundle('dist/client/index.js')
    const inputs = Object.keys(result.metafile.inputs).map((file) => relative(root, join(root, file)))
    expect(inputs.filter((file) => /node_modules\/(@prisma|prisma|pg|express|msw|@electric-sql|@opentelemetry)\//.test(file))).toEqual([])
    const code = result.outputFiles.map((file) => file.text).join('\n')
    // Markers that exist only in server-side code.
    for (const marker of ['FOR UPDATE', '$transaction', 'createPipelineStatusHandlers', 'MemoryStore']) {
      expect(code).not.toContain(marker)
    }
  })

  it('bundles the root and React entries for browsers and edge runtimes: no Node built-ins', async () => {
    for (const entry of ['dist/index.js', 'dist/react/index.js']) {
      const result = await build({
        entryPoints: [join(root, entry)],
        bundle: true,
        write: false,
        metafile: true,
        platform: 'browser',
        format: 'esm',
        external: ['react'],
        logLevel: 'silent',
      })
      const inputs = Object.keys(result.metafile.inputs)
      expect(inputs.filter((file) => /node_modules\/(@prisma|prisma|pg|express|msw|ky)\//.test(file))).toEqual([])
      expect(inputs.some((file) => file.includes('node_modules/eventsource-parser/'))).toBe(true)
    }
  })

  it('keeps the runner source graph free of server modules', async () => {
    const result = await bundle('src/client/index.ts')
    const inputs = Object.keys(result.metafile.inputs)
    const local = inputs.filter((file) => !file.includes('node_modules'))
    expect(local.length).toBeGreaterThan(0)
    expect(local.filter((file) => !CLIENT_SOURCE_GRAPH.test(file))).toEqual([])
    expect(dirname(local[0]!)).toMatch(/^src\//)
  })
})
