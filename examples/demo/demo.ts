/**
 * `npm run demo`: the whole system on one machine with nothing installed. Starts the real
 * handlers (the Express example) on an embedded PostgreSQL (PGlite, in memory) on a free port,
 * runs the example five-stage pipeline against it with `runPipeline` and `PrismaAPIClient` (the
 * last stage streams its markdown report word by word with `write`), shows each stage as it
 * goes, and the last stage's text as it grows, as a page that reads the run's status sees it,
 * and prints the run as read back from `GET /status`.
 *
 * DEMO_STAGE_DELAY_MS sets the simulated work per stage (default 400 ms).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RunStatusResponse } from 'pipeline-status-sdk'
import type { PipelineProgressEvent } from 'pipeline-status-sdk/client'
import { startExpressExample } from '../express/app.js'
import { runExamplePipeline } from '../runner/runner.js'
import { withGutter } from './gutter.js'

const color = process.stdout.isTTY && !process.env['NO_COLOR']
const paint = (code: number, text: string) => (color ? `\u001b[${code}m${text}\u001b[0m` : text)
const STATUS_COLORS: Record<string, number> = { PROCESSING: 33, COMPLETED: 32, FAILED: 31, CANCELLED: 35, PENDING: 90 }
const badge = (status: string) => paint(STATUS_COLORS[status] ?? 0, status.padEnd(10))

function show(event: PipelineProgressEvent): void {
  switch (event.type) {
    case 'stage-started':
      console.log(`  [${event.stageNumber}/5] ${event.stageName.padEnd(26)} ${badge('PROCESSING')}`)
      break
    case 'stage-finished':
      console.log(
        `  [${event.stageNumber}/5] ${event.stageName.padEnd(26)} ${badge(event.status)} ${Math.round(event.durationMs)} ms${event.error ? `  ${event.error}` : ''}`,
      )
      break
    case 'run-finished':
      console.log(`  run ${badge(event.status)} in ${Math.round(event.durationMs)} ms`)
      break
  }
}

/**
 * The live view of the last stage: reads the run's status as a page that polls does (every
 * 150 ms, each read with a 2 s deadline, 60 s in all) and prints the text the stage has
 * streamed so far as it grows (while a stage runs, its `output` in `GET /status` is the
 * streamed text), until the stage is no longer PROCESSING. `done` resolves then.
 */
function followStreamedText(url: string, secret: string, runId: string, lastStage: number): { done: Promise<void> } {
  let shown = ''
  const show = (text: string) => {
    if (text.length <= shown.length || !text.startsWith(shown)) return
    const fresh = text.slice(shown.length)
    process.stdout.write(withGutter(shown, fresh))
    shown = text
  }
  const follow = async () => {
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      try {
        const response = await fetch(`${url}/${encodeURIComponent(runId)}/status`, { headers: { 'X-Webhook-Secret': secret }, signal: AbortSignal.timeout(2_000) })
        const stage = response.ok ? ((await response.json()) as RunStatusResponse).stages.find((s) => s.stageNumber === lastStage) : undefined
        // Its final output replaces the streamed text; here they are the same.
        show(stage?.output ?? '')
        if (stage !== undefined && stage.status !== 'PROCESSING') break
      } catch {
        // The next read tries again.
      }
      await new Promise((resolve) => setTimeout(resolve, 150))
    }
    if (shown !== '' && !shown.endsWith('\n')) process.stdout.write('\n')
  }
  return { done: follow() }
}

async function main(): Promise<number> {
  const secret = `demo-${crypto.randomUUID()}`
  const quiet = { info: () => {}, warn: console.warn, error: console.error }
  console.log('pipeline-status-sdk demo\n')
  console.log('Starting the web app: the real handlers (Express) on embedded PostgreSQL (PGlite)...')
  const server = await startExpressExample({ port: 0, secret, log: quiet })
  const outbox = await mkdtemp(join(tmpdir(), 'pipeline-demo-outbox-'))
  let live: { done: Promise<void> } | undefined
  const held: PipelineProgressEvent[] = []
  try {
    console.log(`Web app listening on ${server.url} (database: ${server.database})\n`)
    console.log('Running a five-stage pipeline; every stage change is POSTed to the web app:')
    const { summary, status } = await runExamplePipeline({
      client: { baseUrl: new URL(server.url).origin, secret, outbox: { dir: outbox } },
      stageDelayMs: Number(process.env['DEMO_STAGE_DELAY_MS'] ?? 400),
      onProgress: (event) => {
        if (event.type === 'stage-started' && event.stageNumber === 5) live = followStreamedText(server.url, secret, event.runId, 5)
        // What follows the last stage is shown after its text.
        if (live && (held.length > 0 || (event.type === 'stage-finished' && event.stageNumber === 5))) held.push(event)
        else show(event)
      },
    })
    await live?.done
    for (const event of held) show(event)

    console.log(`\nGET /api/pipeline/${status.run.id}/status  (what the web app stored)`)
    console.log(`  run ${status.run.id}: ${badge(status.run.status)} completedAt ${status.run.completedAt}`)
    for (const stage of status.stages) {
      const preview = (stage.output ?? '').replace(/\s+/g, ' ').slice(0, 48)
      console.log(`  ${stage.stageNumber}. ${stage.stageName.padEnd(26)} ${badge(stage.status)} ${preview}`)
    }
    const ok = summary.status === 'COMPLETED' && status.run.status === 'COMPLETED'
    console.log(ok ? '\nDemo finished: the run is COMPLETED.' : `\nDemo finished with the run ${status.run.status}.`)
    return ok ? 0 : 1
  } finally {
    await server.close()
    await rm(outbox, { recursive: true, force: true })
  }
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.stack : error)
    process.exitCode = 1
  },
)
