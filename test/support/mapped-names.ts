/**
 * The names of test/prisma/fixtures/mapped-schema.sql (the SDK's models renamed with `@@map` /
 * `@map`, in schema "pipeline"), as `createPrismaStore({ names })` takes them for a client that
 * does not expose its data model.
 */
import type { PrismaStoreNames } from 'pipeline-status-sdk/server'

export const MAPPED_NAMES = {
  PipelineRun: {
    table: 'pipeline_runs',
    columns: {
      error: 'failure',
      completedAt: 'completed_at',
      completionReceivedAt: 'completion_received_at',
      createdAt: 'created_at',
      updatedAt: 'updated_at',
      version: 'row_version',
      lastActivityAt: 'last_activity_at',
      heartbeatIntervalMs: 'heartbeat_interval_ms',
      pipeline: 'pipeline_name',
      catalogue: 'stage_catalogue',
      tags: 'run_tags',
      metadata: 'run_metadata',
      startedAt: 'started_at',
    },
  },
  StageOutput: {
    table: 'stage_outputs',
    columns: {
      runId: 'run_id',
      stageNumber: 'stage_number',
      stageName: 'stage_name',
      status: 'stage_status',
      output: 'body',
      completedAt: 'completed_at',
      progress: 'progress_json',
      createdAt: 'created_at',
      updatedAt: 'updated_at',
      startedAt: 'started_at',
      attempt: 'attempt_number',
      maxAttempts: 'max_attempts',
      lastError: 'last_error',
      nextRetryAt: 'next_retry_at',
      traceparent: 'trace_parent',
      traceLinks: 'trace_links',
      outputSeq: 'output_seq',
      outputBytes: 'output_bytes',
    },
  },
  StageOutputChunk: {
    table: 'stage_output_chunks',
    columns: { runId: 'run_id', stageNumber: 'stage_number', seq: 'chunk_seq', version: 'run_version', text: 'chunk_text' },
  },
  PipelineCatalogue: { table: 'pipeline_catalogues', columns: { digest: 'catalogue_digest', stages: 'catalogue_stages' } },
} satisfies PrismaStoreNames
