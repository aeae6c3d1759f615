/**
 * React bindings of the live status subscribers: {@link useRunStatus} renders a run and its stages
 * and keeps them live with `subscribeToRun` (the page's runs share one connection; polling when
 * the server has no stream); {@link useRuns} renders a live list of runs with `subscribeToRuns`;
 * {@link RunTimeline} and {@link RunList} are components built on them; {@link useAppliedFilters}
 * gives the filters a list's runs are read with while a tag is typed (a `RunList` fed by the app's
 * own `useRuns`).
 * React is an optional peer dependency, imported only from this entry.
 *
 * @example
 * ```tsx
 * 'use client'
 * import type { RunStatusResponse } from 'pipeline-status-sdk'
 * import { useRunStatus } from 'pipeline-status-sdk/react'
 *
 * export function RunView({ runId, token, initial }: { runId: string; token: string; initial?: RunStatusResponse }) {
 *   const { run, stages, state } = useRunStatus(runId, { url: '/api/pipeline', token, initial })
 *   return <p>{run?.status} ({state}), {stages.length} stages reported</p>
 * }
 * ```
 *
 * @module pipeline-status-sdk/react
 */
export {
  createRunStatusStore,
  type RunStatusState,
  type RunStatusStore,
  useRunStatus,
  type UseRunStatusOptions,
} from './run-status.js'
export {
  RunTimeline,
  type RunTimelineDataProps,
  type RunTimelineDisplayProps,
  type RunTimelineLiveProps,
  type RunTimelineProps,
  type RunTimelineSlot,
} from './run-timeline.js'
export {
  RunList,
  type RunLinkProps,
  type RunListDataProps,
  type RunListDisplayProps,
  type RunListFilters,
  type RunListLiveProps,
  type RunListProps,
  type RunListSlot,
  runListQuery,
  useAppliedFilters,
} from './run-list.js'
export { createRunsStore, type RunsState, type RunsStore, useRuns, type UseRunsOptions } from './runs.js'
export { SafeMarkdown, type SafeMarkdownProps } from './markdown.js'
