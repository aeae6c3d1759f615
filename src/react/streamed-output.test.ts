/**
 * A streaming stage's Markdown, block by block: where the text is split (never inside fenced
 * code, never before an indented continuation), that the blocks render as the whole text does,
 * and that a streaming output is as safe as a finished one (server rendering, the first HTML).
 * test/react/components.test.ts watches the text grow in Chromium.
 */
import { createElement } from 'react'
import { renderToStaticMarkup } from 'react-dom/server'
import { describe, expect, it } from 'vitest'
import type { RunStatusResponse } from 'pipeline-status-sdk'
import { RunTimeline, SafeMarkdown } from 'pipeline-status-sdk/react'
import { splitMarkdownBlocks, StreamedOutput } from './streamed-output.js'

const T0 = '2026-12-06T12:00:00.000Z'

describe('splitMarkdownBlocks', () => {
  it('splits at blank lines before a line in the first column, without the trailing line breaks', () => {
    expect(splitMarkdownBlocks('')).toEqual([''])
    expect(splitMarkdownBlocks('One line')).toEqual(['One line'])
    expect(splitMarkdownBlocks('First\nstill first\n\n\nSecond\n\n')).toEqual(['First\nstill first', 'Second'])
    expect(splitMarkdownBlocks('## Title\n\n- a\n- b\n\nEnd')).toEqual(['## Title', '- a\n- b', 'End'])
  })

  it('keeps fenced code whole, blank lines and all, until its closing fence (backticks or tildes, as long or longer)', () => {
    const code = '```ts\nconst a = 1\n\nconst b = 2\n````'
    expect(splitMarkdownBlocks(`Intro\n\n${code}\n\nAfter`)).toEqual(['Intro', code, 'After'])
    expect(splitMarkdownBlocks('~~~\nx\n\n```\n\ny\n~~~\n\nz')).toEqual(['~~~\nx\n\n```\n\ny\n~~~', 'z'])
    // An unclosed fence (the model is still writing the code) holds the rest of the text.
    expect(splitMarkdownBlocks('Intro\n\n```\nline 1\n\nline 2\n\n')).toEqual(['Intro', '```\nline 1\n\nline 2'])
    // Inline code that starts a line is no fence.
    expect(splitMarkdownBlocks('``` `x` ```\n\nNext')).toEqual(['``` `x` ```', 'Next'])
  })

  it('keeps an indented continuation with its block (a list item\'s second paragraph, indented code)', () => {
    expect(splitMarkdownBlocks('- item\n\n  more of the item\n\nAfter')).toEqual(['- item\n\n  more of the item', 'After'])
    expect(splitMarkdownBlocks('    code\n\n    more code\n\nText')).toEqual(['    code\n\n    more code', 'Text'])
  })

  it('gives blocks that render, one after the other, as the whole text renders', () => {
    const text = [
      '# Report',
      'A paragraph with **bold**, `code` and a [link](https://example.com).',
      '> A quote\n> on two lines',
      '1. first\n2. second',
      '```python\nprint(1)\n\nprint(2)\n```',
      '| a | b |\n| - | - |\n| 1 | 2 |',
      '---',
      'The end.',
    ].join('\n\n')
    const whole = renderToStaticMarkup(createElement(SafeMarkdown, { text }))
    const streamed = renderToStaticMarkup(createElement(StreamedOutput, { text }))
    expect(splitMarkdownBlocks(text)).toHaveLength(8)
    expect(streamed.replace('ps-markdown ps-markdown-streaming', 'ps-markdown').replaceAll('\n', '')).toBe(whole.replaceAll('\n', ''))
  })
})

describe('a streaming output in the server HTML', () => {
  it('renders the text so far as safe Markdown with the streaming marker, and a finished output without it', () => {
    const stage = (status: 'PROCESSING' | 'COMPLETED', output: string) => ({
      id: 'stage_1',
      runId: 'run_1',
      stageNumber: 1,
      stageName: 'Write',
      status,
      output,
      outputSeq: status === 'PROCESSING' ? 3 : null,
      progress: null,
      attempt: 1,
      maxAttempts: null,
      lastError: null,
      nextRetryAt: null,
      startedAt: T0,
      completedAt: status === 'COMPLETED' ? T0 : null,
      createdAt: T0,
      updatedAt: T0,
    })
    const status = (stageStatus: 'PROCESSING' | 'COMPLETED'): RunStatusResponse =>
      ({
        run: { id: 'run_1', status: stageStatus, pipeline: 'default', tags: [], metadata: {}, error: null, createdAt: T0, updatedAt: T0, startedAt: T0, completedAt: stageStatus === 'COMPLETED' ? T0 : null },
        stages: [stage(stageStatus, '## So far\n\n<script>alert(1)</script>\n\n[x](javascript:alert(2))\n\n- one')],
      }) as unknown as RunStatusResponse
    const streaming = renderToStaticMarkup(createElement(RunTimeline, { status: status('PROCESSING'), now: Date.parse(T0) }))
    expect(streaming).toContain('data-streaming="true"')
    expect(streaming).toContain('class="ps-markdown ps-markdown-streaming"><h2>So far</h2>')
    expect(streaming).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
    expect(streaming).not.toContain('<script')
    expect(streaming).not.toContain('javascript:')
    expect(streaming).toContain('<span class="ps-md-link-removed">x</span>')
    expect(streaming).toContain('<li>one</li>')
    const finished = renderToStaticMarkup(createElement(RunTimeline, { status: status('COMPLETED'), now: Date.parse(T0) }))
    expect(finished).not.toContain('data-streaming')
    expect(finished).toContain('class="ps-markdown"><h2>So far</h2>')
  })
})
