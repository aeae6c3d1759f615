import type { Metadata } from 'next'
import { notFound } from 'next/navigation'
import { connection } from 'next/server'
import { Suspense } from 'react'
import { DEFAULT_BASE_PATH, routePath, type RunStatusResponse } from 'pipeline-status-sdk'
import { RunTimeline } from 'pipeline-status-sdk/react'
import { pipelineRoutes } from '@/lib/pipeline-routes'
import { mintRunReadToken } from '@/lib/run-read-token'
import { stages } from '@/lib/stages'

// Every request reads the run as stored and mints a fresh token. This app builds with
// `cacheComponents` (next.config.ts), so that work sits in <Suspense> after `await connection()`
// instead of an `export const dynamic = 'force-dynamic'`, which Next.js then refuses.

interface RunPageProps {
  params: Promise<{ runId: string }>
}

export async function generateMetadata({ params }: RunPageProps): Promise<Metadata> {
  const { runId } = await params
  return { title: `Run ${runId} · Pipeline status` }
}

export default function RunPage({ params }: RunPageProps) {
  return (
    <Suspense fallback={<div className="card muted">Loading the run…</div>}>
      <Run params={params} />
    </Suspense>
  )
}

async function Run({ params }: RunPageProps) {
  await connection()
  const { runId } = await params
  // A real app checks here that the signed-in user may see this run (see lib/run-read-token.ts).
  const readToken = await mintRunReadToken(runId)
  const statusUrl = routePath('status', runId)

  // The run as stored, read through the same status handler (in-process, with the page's own
  // token), so the first HTML already shows it: a finished run is rendered finished, and its
  // page opens no stream. An unfinished one then goes live with useRunStatus.
  const response = await pipelineRoutes().status(
    new Request(new URL(statusUrl, 'http://localhost'), { headers: { authorization: `Bearer ${readToken}` } }),
    { params: { runId } },
  )
  if (response.status === 404) notFound()
  if (!response.ok) throw new Error(`Reading run ${runId} failed with HTTP ${response.status}: ${await response.text()}`)
  const initial = (await response.json()) as RunStatusResponse
  // The clocks of the first HTML read the server's time; the browser's takes over after hydration.
  const renderedAt = Date.now()

  return (
    // RunTimeline is a client component (the package's React entry is marked 'use client'): the
    // server renders `initial` into the first HTML, the browser then follows the run with
    // useRunStatus over the events stream until it is finished.
    <RunTimeline
      runId={runId}
      url={DEFAULT_BASE_PATH}
      token={readToken}
      initial={initial}
      renderedAt={renderedAt}
      headingLevel={1}
      // Plain objects: props that cross into a client component are serialized.
      catalogue={stages.map(({ number, name }) => ({ stageNumber: number, stageName: name }))}
    />
  )
}
