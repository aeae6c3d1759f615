/**
 * An example pipeline runner: five stages of simulated work, reported with `runPipeline` and
 * `PrismaAPIClient`, with a durable outbox so no update is lost while the web app is down.
 *
 * Run it against any server that speaks the contract (the real handlers, `pipeline-status mock`):
 *
 *   FRONTEND_WEBHOOK_URL=http://127.0.0.1:3000 WEBHOOK_SECRET=dev-secret npx tsx examples/runner/runner.ts [runId]
 *
 * STAGE_DELAY_MS sets the simulated work per stage (default 200 ms); PIPELINE_DEBUG_DIR saves
 * each stage's output there.
 * It creates the run (idempotent), runs it, prints each stage as it goes, the final status as
 * read back from `GET /status`, any warning of the run (an output it had to change, an update
 * not delivered) and whether every update was delivered, and exits 0 when the run COMPLETED
 * with every update delivered. FRONTEND_WEBHOOK_URL may end with `/api/pipeline`.
 */
import { pathToFileURL } from 'node:url'
import {
  type CloseResult,
  PrismaAPIClient,
  type PipelineProgressEvent,
  type PipelineSummary,
  type PrismaAPIClientOptions,
  type RunStatusResponse,
  type StageFunction,
  runPipeline,
} from 'pipeline-status-sdk/client'

/** Options of {@link runExamplePipeline}. */
export interface ExampleRunOptions {
  /** The run id; a new one from the server when omitted. */
  runId?: string | undefined
  /** Client options; `baseUrl` and `secret` default to FRONTEND_WEBHOOK_URL and WEBHOOK_SECRET. */
  client?: PrismaAPIClientOptions | undefined
  /** Simulated work per stage, in milliseconds. */
  stageDelayMs?: number | undefined
  /** Where to save each stage's output (`<debugDir>/<runId>/stage_<N>_output.json`). */
  debugDir?: string | undefined
  /** Cancels the run. */
  signal?: AbortSignal | undefined
  /** Progress of each stage, e.g. to print it. */
  onProgress?: ((event: PipelineProgressEvent) => void) | undefined
}

/** What the example run did, and the status the server stored. */
export interface ExampleRunResult {
  summary: PipelineSummary
  status: RunStatusResponse
  /** Whether every update of the run was delivered by the time the client closed. */
  delivered: boolean
}

/** The last stage's report: markdown, as an LLM would write it. */
export function opportunitiesReport(stagesBefore: number): string {
  return [
    '# Opportunities',
    '',
    `Drawn from ${stagesBefore} earlier stages: the survey, the amplified signals, the translation and the brand fit.`,
    '',
    '1. **Pastry pop-ups**: small, premium treats where Gen Z already queues; high brand fit.',
    '2. **Limited drops**: one flavour a month, announced a week ahead, sold out by design.',
    '3. **Éclair subscriptions**: a box every Friday, for offices and for regulars.',
    '',
  ].join('\n')
}

/**
 * The example's five stages: each waits `delayMs` (honouring the abort signal) and returns a
 * small output. The last one writes its markdown report word by word with `write`, like an LLM
 * streaming tokens over three times `delayMs`, so a live page shows the text growing before the
 * stage completes.
 */
export function createExampleStages(delayMs = 200): StageFunction[] {
  const work = (signal: AbortSignal, ms = delayMs) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, ms)
      signal.addEventListener('abort', () => {
        clearTimeout(timer)
        reject(signal.reason)
      }, { once: true })
    })
  return [
    async ({ signal }) => {
      await work(signal)
      return { inputs: ['survey.csv', 'interviews.md'], rows: 1280 }
    },
    async ({ signal }) => {
      await work(signal)
      return { signals: [{ id: 1, text: 'Gen Z wants éclairs', strength: 0.82 }] }
    },
    async ({ signal }) => {
      await work(signal)
      return '## Translation\n\nDemand for small, premium pastry treats is rising.'
    },
    async ({ signal }) => {
      await work(signal)
      return { brand: 'Maison Example', fit: 'high' }
    },
    async ({ signal, previousOutputs, write }) => {
      const report = opportunitiesReport(previousOutputs.length)
      const words = report.match(/\S+\s*|\s+/g) ?? [report]
      for (const word of words) {
        await work(signal, (3 * delayMs) / words.length)
        write(word)
      }
      // The final output replaces the streamed text (they are the same here).
      return report
    },
  ]
}

/**
 * Creates the run, runs the five example stages against the configured server, and reads the
 * final status back. The client is closed (its outbox flushed) before this resolves.
 */
export async function runExamplePipeline(options: ExampleRunOptions = {}): Promise<ExampleRunResult> {
  const client = new PrismaAPIClient({
    outbox: { dir: '.pipeline-outbox' },
    ...options.client,
  })
  let result: Omit<ExampleRunResult, 'delivered'>
  let closed: CloseResult
  try {
    const { run } = await client.createRun(options.runId)
    const summary = await runPipeline({
      runId: run.id,
      client,
      stages: createExampleStages(options.stageDelayMs),
      signal: options.signal,
      debugDir: options.debugDir,
      onProgress: options.onProgress,
      results: (outputs, status) => ({ fullReportMarkdown: status === 'COMPLETED' ? String(outputs.at(-1)) : null }),
    })
    await client.flush()
    const status = await client.getStatus(run.id)
    result = { summary, status }
  } finally {
    closed = await client.close({ timeoutMs: 5_000 })
  }
  // An update still queued at the end of the run may have been delivered by the flush since.
  return { ...result, delivered: closed.undelivered[result.status.run.id] === undefined }
}

/** One line per progress event, for a terminal. */
export function formatProgress(event: PipelineProgressEvent): string {
  switch (event.type) {
    case 'stage-started':
      return `  stage ${event.stageNumber} ${event.stageName}: PROCESSING`
    case 'stage-skipped':
      return `  stage ${event.stageNumber} ${event.stageName}: skipped, already COMPLETED by an earlier run of this runner (read from the ${event.from})`
    case 'stage-finished':
      return `  stage ${event.stageNumber} ${event.stageName}: ${event.status} (${Math.round(event.durationMs)} ms)${event.error ? ` ${event.error}` : ''}`
    case 'stage-retrying':
      return `  stage ${event.stageNumber} ${event.stageName}: attempt ${event.attempt - 1} failed (${event.error}); attempt ${event.attempt} of ${event.maxAttempts} at ${event.nextRetryAt}`
    case 'run-finished':
      return `run ${event.runId}: ${event.status} in ${Math.round(event.durationMs)} ms${event.error ? ` (${event.error})` : ''}`
    case 'run-finished-elsewhere':
      return `run ${event.runId} was ${event.status} by the web app${event.reason ? ` (${event.reason})` : ''}; stopping`
  }
}

async function main(): Promise<void> {
  const controller = new AbortController()
  process.once('SIGINT', () => controller.abort(new Error('interrupted')))
  const { summary, status, delivered } = await runExamplePipeline({
    runId: process.argv[2],
    signal: controller.signal,
    debugDir: process.env.PIPELINE_DEBUG_DIR,
    stageDelayMs: process.env.STAGE_DELAY_MS ? Number(process.env.STAGE_DELAY_MS) : undefined,
    onProgress: (event) => console.log(formatProgress(event)),
  })
  console.log(`\nGET /status: run ${status.run.id} is ${status.run.status}`)
  for (const stage of status.stages) console.log(`  ${stage.stageNumber}. ${stage.stageName}: ${stage.status}`)
  for (const warning of summary.warnings) console.log(`  warning: ${warning}`)
  console.log(`every update delivered: ${delivered ? 'yes' : 'no'}`)
  process.exitCode = summary.status === 'COMPLETED' && status.run.status === 'COMPLETED' && delivered ? 0 : 1
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error)
    process.exitCode = 1
  })
}
