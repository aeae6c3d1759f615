import type { CompleteRun, StageUpdate } from 'pipeline-status-sdk'
import { DEFAULT_STAGES } from 'pipeline-status-sdk'

/**
 * The one fixture builder for stage updates: a valid update for `stageNumber` (default 1)
 * with the catalogue's name, overridable field by field.
 */
export function makeStageUpdate(overrides: Partial<StageUpdate> = {}): StageUpdate {
  const stageNumber = overrides.stageNumber ?? 1
  const name = DEFAULT_STAGES[stageNumber - 1]?.name ?? `Stage ${stageNumber}`
  return { stageNumber, stageName: name, status: 'PROCESSING', ...overrides }
}

/** A valid `/complete` body, overridable field by field. */
export function makeCompleteRun(overrides: Partial<CompleteRun> = {}): CompleteRun {
  return { status: 'COMPLETED', ...overrides }
}

/**
 * Payloads exactly as the original Python runner sends them (`requests.post(json=...)`),
 * including microsecond timestamps and output both as a JSON string and as markdown.
 */
export const PYTHON_RUNNER_PAYLOADS = {
  processing: { stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING', output: '' },
  completedJson: {
    stageNumber: 1,
    stageName: 'Input Processing',
    status: 'COMPLETED',
    output: '{"signals": [{"id": 1, "text": "Gen Z wants \\u00e9clairs"}], "count": 1}',
    completedAt: '2025-10-25T14:03:11.123456Z',
  },
  completedMarkdown: {
    stageNumber: 5,
    stageName: 'Opportunity Generation',
    status: 'COMPLETED',
    output: '# Opportunities\n\n1. **Pastry pop-ups** — high fit\n2. Limited drops\n',
    completedAt: '2025-10-25T14:09:58.000001Z',
  },
  failed: {
    stageNumber: 3,
    stageName: 'General Translation',
    status: 'FAILED',
    output: 'Error: upstream model timed out after 120s',
    completedAt: '2025-10-25T14:05:00.5Z',
  },
  complete: {
    status: 'COMPLETED',
    completedAt: '2025-10-25T14:10:00.654321Z',
    duration: 409.53,
    opportunities: [{ title: 'Pastry pop-ups', score: 0.92 }],
    fullReportMarkdown: '# Report\n\nAll good.',
    stageOutputs: { '1': '{"count": 1}' },
  },
} as const
