import type { Metadata } from 'next'
import { notFound } from 'next/navigation'
import { routePath } from 'pipeline-status-sdk'
import { prisma } from '@/lib/prisma'
import { mintRunReadToken } from '@/lib/run-read-token'
import { stages } from '@/lib/stages'
import { RunStatusView } from './run-status-view'

// Every request mints a fresh token and checks the run exists.
export const dynamic = 'force-dynamic'

interface RunPageProps {
  params: Promise<{ runId: string }>
}

export async function generateMetadata({ params }: RunPageProps): Promise<Metadata> {
  const { runId } = await params
  return { title: `Run ${runId} · Pipeline status` }
}

export default async function RunPage({ params }: RunPageProps) {
  const { runId } = await params
  // A real app checks here that the signed-in user may see this run (see lib/run-read-token.ts).
  const run = await prisma.pipelineRun.findUnique({ where: { id: runId }, select: { id: true } })
  if (!run) notFound()

  return (
    <RunStatusView
      runId={runId}
      statusUrl={routePath('status', runId)}
      readToken={mintRunReadToken(runId)}
      // Plain objects: props that cross into a client component are serialized.
      stages={stages.map(({ number, name }) => ({ number, name }))}
    />
  )
}
