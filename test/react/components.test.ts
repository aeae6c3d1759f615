/**
 * RunTimeline and RunList in Chromium, used as a person uses them: a page of the components
 * (components-page.tsx, bundled with esbuild) served beside the real handlers on a MemoryStore.
 * A runner's updates go through HTTP and show up without a reload, a running stage's streamed
 * text (chunks through the output route) grows on screen; the list (useRuns, one set stream)
 * filters with the keyboard and follows runs joining, changing and leaving; hostile stored text renders as text and runs nothing; axe-core
 * finds no serious or critical violation; the list fits its container, as a table or as cards, at
 * every width from 320 to 1400 px, its cards in two columns from 42em to 64em of list width, and
 * without container queries (the stylesheet an older browser keeps) the viewport picks the cards.
 * Screenshots at 1280 and 390 px (and the list at each width of its sweeps, components-list-cards-*
 * at 700 and 900 px of list, components-list-no-container-queries-*) go to test/.artifacts
 * (components-*.png); the timeline's long unbroken runner text at both (components-long-text-*.png).
 */
import { readFile, mkdir } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineStages } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers, MemoryStore, type PipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { readSmallBody, toWebRequest, writeWebResponse } from '../../src/server/http/node-bridge.js'
import { postOk } from '../support/handler-requests.js'
import { bundleTestPage } from '../support/browser-page.js'
import { chromiumTool, toolForTests } from '../support/optional-tools.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const artifacts = join(root, 'test', '.artifacts')
const require = createRequire(import.meta.url)
const CHROMIUM = toolForTests(chromiumTool('test/react/components.test.ts', 'RunTimeline and RunList in Chromium'))
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const SECRET = 'components-test-secret'

let server: Server | undefined
let handlers: PipelineStatusHandlers | undefined
let browser: Browser | undefined
let origin = ''
/** Every request the handlers were asked, in the order the server received them: path and query. */
const apiRequests: { path: string; query: URLSearchParams }[] = []

// Legal, unbroken and as long as allowed: each must wrap inside its box, never widen the page.
const LONG_TAG = 'B'.repeat(128)
const LONG_PIPELINE = 'P'.repeat(128)

/** POSTs JSON to a route with the secret, as a runner does; returns the parsed answer. */
async function post(path: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await postOk(SECRET, `${origin}/api/pipeline`, path, body)
  return (await response.json()) as Record<string, unknown>
}

const stage = (runId: string, stageNumber: number, fields: Record<string, unknown>) =>
  post(`/${encodeURIComponent(runId)}/stage-update`, { stageNumber, stageName: REPORT[stageNumber - 1], ...fields })

const REPORT = ['Fetch', 'Summarise', 'Publish']
let runCounter = 0
function newRunId(prefix: string): string {
  runCounter += 1
  return `${prefix}-${Date.now().toString(36)}-${runCounter}`
}

/**
 * Opens the page with the problems it reports collected (page errors, console errors, dialogs) and
 * its console warnings; `beforeLoad` runs in the page before its own scripts. `fakeClock`
 * installs Playwright's clock before the page loads (time flows until the test pauses it).
 */
async function open(query: string, width = 1280, beforeLoad?: () => void, fakeClock = false): Promise<{ page: Page; problems: string[]; warnings: string[] }> {
  const page = await browser!.newPage({ viewport: { width, height: 900 } })
  if (fakeClock) await page.clock.install()
  const problems: string[] = []
  const warnings: string[] = []
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`)
    if (message.type() === 'warning') warnings.push(message.text())
  })
  page.on('dialog', (dialog) => {
    problems.push(`dialog: ${dialog.message()}`)
    void dialog.dismiss()
  })
  if (beforeLoad) await page.addInitScript(beforeLoad)
  await page.goto(`${origin}/?secret=${SECRET}&${query}`)
  return { page, problems, warnings }
}

/**
 * The stylesheet as a browser without container queries keeps it: each `@container` block dropped
 * whole (an unknown at-rule) and `container`, `container-type` unknown properties (so `@supports
 * (container-type: …)` is false). Chromium cannot switch container queries off
 * (`--disable-blink-features=CSSContainerQueries` no longer exists: `CSS.supports` stays true).
 */
function withoutContainerQueries(stylesheet: string): string {
  const css = stylesheet.replace(/\/\*[\s\S]*?\*\//g, '') // comments, which may name `@container`
  let kept = ''
  let from = 0
  for (let at = css.indexOf('@container', from); at !== -1; at = css.indexOf('@container', from)) {
    let depth = 0
    let end = css.indexOf('{', at)
    for (; end < css.length; end += 1) {
      if (css[end] === '{') depth += 1
      else if (css[end] === '}' && --depth === 0) break
    }
    if (depth !== 0) throw new Error(`unbalanced braces after offset ${at} of styles.css`)
    kept += css.slice(from, at)
    from = end + 1
  }
  return (kept + css.slice(from)).replace(/\bcontainer(-type|-name)?(?=\s*:)/g, '-unsupported-$&')
}

/** What the timeline shows, as a reader sees it. */
function readTimeline(page: Page) {
  return page.evaluate(() => ({
    run: document.querySelector('[data-testid="run-status"]')?.getAttribute('data-status') ?? null,
    live: document.querySelector('[data-testid="run-view"]')?.getAttribute('data-live') ?? null,
    stages: [...document.querySelectorAll('[data-testid="stage"]')].map((element) => ({
      status: element.getAttribute('data-status'),
      neverRan: element.getAttribute('data-never-ran') === 'true',
      progress: (element.querySelector('[data-testid="stage-progress"]') as HTMLElement | null)?.innerText ?? null,
      output: (element.querySelector('[data-testid="stage-output"]') as HTMLElement | null)?.innerText ?? null,
      attempt: element.querySelector('[data-testid="stage-attempt"]')?.textContent ?? null,
      lastError: (element.querySelector('[data-testid="stage-last-error"]') as HTMLElement | null)?.innerText ?? null,
      text: (element as HTMLElement).innerText,
    })),
    error: (document.querySelector('[data-testid="run-error"]') as HTMLElement | null)?.innerText ?? null,
  }))
}

/** Ids of the list's rows, in order. */
function listedIds(page: Page): Promise<string[]> {
  return page.evaluate(() => [...document.querySelectorAll('[data-testid="run-row"]')].map((row) => row.getAttribute('data-run-id') ?? ''))
}

/** The label of the focused control (or its tag name). */
function focusedLabel(page: Page): Promise<string> {
  return page.evaluate(() => {
    const active = document.activeElement as HTMLInputElement | null
    return active?.labels?.[0]?.textContent ?? active?.textContent ?? active?.tagName ?? ''
  })
}

/** Presses `key` until the control labelled `label` has the focus (at most 12 presses). */
async function tabTo(page: Page, label: string, key: 'Tab' | 'Shift+Tab'): Promise<void> {
  for (let index = 0; index < 12; index += 1) {
    if ((await focusedLabel(page)) === label) return
    await page.keyboard.press(key)
  }
  throw new Error(`${key} never reached ${label}; the focus is on ${await focusedLabel(page)}`)
}

/** Nothing sticks out sideways at the current width. */
async function expectNoSidewaysScroll(page: Page): Promise<void> {
  const { viewport, pageWidth } = await page.evaluate(() => ({ viewport: window.innerWidth, pageWidth: document.documentElement.scrollWidth }))
  // On failure, name what sticks out.
  const wide = pageWidth <= viewport ? '' : await page.evaluate(() => [...document.querySelectorAll('*')].filter((e) => e.getBoundingClientRect().right > window.innerWidth).slice(0, 12).map((e) => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().width)}`).join(' | '))
  expect(pageWidth, wide).toBeLessThanOrEqual(viewport)
}

/** axe-core's serious and critical violations on the page (WCAG 2.x A and AA rules, best practices). */
async function axeViolations(page: Page): Promise<string[]> {
  await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') })
  const violations = await page.evaluate(async () => {
    const result = await (window as unknown as { axe: { run: (context: Document, options: object) => Promise<{ violations: { id: string; impact: string | null; nodes: { target: string[] }[] }[] }> } }).axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    })
    return result.violations.map((violation) => ({ id: violation.id, impact: violation.impact, targets: violation.nodes.map((node) => node.target.join(' ')) }))
  })
  return violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical').map((violation) => `${violation.id} (${violation.impact}): ${violation.targets.join(', ')}`)
}

/** Layout facts of the list (`fixture=runs`), measured on the line boxes Chromium drew (Range rects of each text node). */
function measureList(page: Page) {
  return page.evaluate(() => {
    /** Lines the text nodes under `element` occupy: distinct tops of their line boxes. */
    const lines = (element: Element): number => {
      const tops: number[] = []
      const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT)
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const range = document.createRange()
        range.selectNodeContents(node)
        for (const rect of range.getClientRects()) if (rect.width > 0 && !tops.some((top) => Math.abs(top - rect.top) < 3)) tops.push(rect.top)
      }
      return tops.length
    }
    /** Words (letters and digits) whose characters sit on more than one line. */
    const brokenWords = (element: Element): string[] => {
      const broken: string[] = []
      const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT)
      for (let node = walker.nextNode() as Text | null; node; node = walker.nextNode() as Text | null) {
        for (const match of node.data.matchAll(/[\p{L}\p{N}]+/gu)) {
          const range = document.createRange()
          range.setStart(node, match.index)
          range.setEnd(node, match.index + match[0].length)
          const tops = new Set([...range.getClientRects()].filter((rect) => rect.width > 0).map((rect) => Math.round(rect.top)))
          if (tops.size > 1) broken.push(match[0])
        }
      }
      return broken
    }
    const rows = [...document.querySelectorAll<HTMLElement>('[data-testid="run-row"]')]
    return {
      pageScrolls: document.documentElement.scrollWidth > window.innerWidth,
      rows: rows.map((row) => {
        const link = row.querySelector<HTMLElement>('.ps-run-link')!
        const cell = row.querySelector<HTMLElement>('.ps-cell-run')!
        // The badge, then each piece of the list's own words that must stay whole ("not started", "2026-12-07", "57 s").
        const cells = [...row.querySelectorAll<HTMLElement>('[data-label="Status"] .ps-badge, [data-label="Stage"] .ps-nowrap, [data-label="Created"] .ps-nowrap, [data-label="Duration"] .ps-nowrap')]
        return {
          id: row.getAttribute('data-run-id'),
          idLines: lines(link),
          // A line box the link is not taller than: one line of its own font.
          idHeight: link.getBoundingClientRect().height,
          lineHeight: parseFloat(getComputedStyle(link).lineHeight),
          ellipsised: link.scrollWidth > link.clientWidth,
          textOverflow: getComputedStyle(link).textOverflow,
          // How much of the id shows: in a card at least its first 26 characters ("report-2026-12-07-8f3a9c1e").
          visibleWidth: link.clientWidth,
          title: (cell.closest('[title]') ?? link.closest('[title]') ?? cell.querySelector('[title]'))?.getAttribute('title') ?? null,
          timing: cells.map((element) => ({ label: element.closest('[data-label]')!.getAttribute('data-label'), text: element.textContent, lines: lines(element) })),
          stage: row.querySelector('[data-label="Stage"]')!.textContent,
          stageLines: lines(row.querySelector('[data-label="Stage"]')!),
          durationLines: lines(row.querySelector('[data-label="Duration"]')!),
          // A failed run's error under its badge: where it is cut, and what says so.
          error: (() => {
            const element = row.querySelector<HTMLElement>('.ps-row-error')
            if (!element) return null
            const style = getComputedStyle(element)
            return {
              text: element.textContent,
              title: element.getAttribute('title'),
              clipped: element.scrollHeight > element.clientHeight + 1,
              lineClamp: style.webkitLineClamp,
              overflowY: style.overflowY,
              lines: element.getBoundingClientRect().height / parseFloat(style.lineHeight),
            }
          })(),
          // Each tag's chip: its lines, its corner radius against its height, and whether its text fits on one line there.
          chips: [...row.querySelectorAll<HTMLElement>('.ps-tag')].map((chip) => {
            const style = getComputedStyle(chip)
            const px = (value: string) => parseFloat(value) || 0
            const probe = chip.cloneNode(true) as HTMLElement
            probe.style.cssText = 'position:absolute;visibility:hidden;white-space:nowrap;max-width:none;width:max-content'
            chip.parentElement!.append(probe)
            const natural = probe.getBoundingClientRect().width
            probe.remove()
            const list = chip.parentElement!.getBoundingClientRect().width
            return {
              text: chip.textContent,
              lines: lines(chip),
              height: chip.getBoundingClientRect().height,
              oneLineHeight: px(style.lineHeight) + px(style.paddingTop) + px(style.paddingBottom) + px(style.borderTopWidth) + px(style.borderBottomWidth),
              radius: px(style.borderTopLeftRadius),
              fits: natural <= Math.min(style.maxWidth.endsWith('px') ? px(style.maxWidth) : list, list) + 0.5,
            }
          }),
          brokenWords: brokenWords(row),
          inside: row.getBoundingClientRect().right <= (row.closest('.ps-run-list') as HTMLElement).getBoundingClientRect().right + 1,
        }
      }),
      // Sideways overflow of the page, the list's container (the example's <main>) and the list itself.
      overflow: (() => {
        const list = document.querySelector<HTMLElement>('.ps-run-list')!
        const box = (element: Element) => ({ scroll: element.scrollWidth, client: element.clientWidth })
        return { document: box(document.documentElement), container: box(list.parentElement!), list: box(list) }
      })(),
      cards: getComputedStyle(document.querySelector('.ps-table')!).display !== 'table',
      // What the table's id column may narrow to: --ps-run-id-min (22ch) of the id's font.
      idMinWidth: (() => {
        const link = document.querySelector<HTMLElement>('.ps-run-link')!
        const probe = document.createElement('span')
        link.parentElement!.append(probe)
        probe.style.cssText = 'position:absolute;display:block;width:var(--ps-run-id-min, 22ch);font:inherit'
        const width = probe.getBoundingClientRect().width
        probe.remove()
        return width
      })(),
      charWidth: (() => {
        const link = document.querySelector<HTMLElement>('.ps-run-link')!
        const probe = document.createElement('span')
        probe.textContent = 'x'.repeat(26)
        link.parentElement!.append(probe)
        probe.style.cssText = 'position:absolute;white-space:nowrap;font:inherit'
        const width = probe.getBoundingClientRect().width
        probe.remove()
        return width
      })(),
    }
  })
}

/** Each row reads: its id on one line (ellipsised with the whole id in its title and name), inside the list, no word broken, stage and duration on one line, a clipped error clamped at a whole line, chips pills or rounded boxes. */
async function expectReadableRows(page: Page, shown: Awaited<ReturnType<typeof measureList>>, width: number): Promise<void> {
  for (const row of shown.rows) {
    const at = `${row.id} at ${width} px`
    expect(row.idLines, at).toBe(1)
    expect(row.idHeight, at).toBeLessThanOrEqual(row.lineHeight + 1)
    expect(row.inside, at).toBe(true)
    if (row.ellipsised) {
      expect(row.textOverflow, at).toBe('ellipsis')
      expect(row.title, at).toBe(row.id)
      // Enough shows to tell runs apart: the date and the first block of the hash (26 characters),
      // or in a table at its narrowest what --ps-run-id-min promises (22 characters by default).
      expect(row.visibleWidth, at).toBeGreaterThanOrEqual(shown.cards ? shown.charWidth : Math.min(shown.charWidth, shown.idMinWidth) - 0.5)
    }
    expect(row.brokenWords, at).toEqual([])
    for (const cell of row.timing) expect(cell.lines, `${cell.label} "${cell.text}" of ${at}`).toBe(1)
    // "took 12 min 43 s" and "stage 2 of 5" read on one line, in the table as in a card.
    expect(row.durationLines, `duration of ${at}`).toBe(1)
    expect(row.stageLines, `stage of ${at}`).toBe(1)
    if (row.error) {
      // The whole error is its title (and its text, for screen readers and copy) however much shows.
      expect(row.error.title, at).toBe(row.error.text)
      if (row.error.clipped) {
        // Cut at a whole line, by a line clamp (which ends the last line shown with an ellipsis), not mid-line by a height.
        expect(Number(row.error.lineClamp), `line clamp of the error of ${at}`).toBeGreaterThanOrEqual(1)
        expect(row.error.overflowY, at).toBe('hidden')
        expect(Math.abs(row.error.lines - Math.round(row.error.lines)), `lines shown of the error of ${at}`).toBeLessThan(0.05)
        expect(Math.round(row.error.lines), at).toBe(Number(row.error.lineClamp))
      }
    }
    for (const chip of row.chips) {
      const tag = `tag "${chip.text}" of ${at}`
      // A pill on one line where its text fits there.
      if (chip.fits) expect(chip.lines, tag).toBe(1)
      // The corners are those of a one-line pill whatever the height: a wrapped chip is a rounded box, not an oval.
      expect(chip.radius, tag).toBeLessThanOrEqual(chip.oneLineHeight / 2 + 0.5)
      if (chip.lines === 1) expect(chip.radius, tag).toBeGreaterThanOrEqual(chip.height / 2 - 0.5)
    }
    // Its accessible name is the whole id, however much of it shows.
    expect(await page.getByRole('link', { name: row.id!, exact: true }).count(), at).toBe(1)
  }
}

/** Where each card's fields sit (`fixture=runs`): the card's box, each labelled cell's box and the right edge of what it shows. */
function measureCards(page: Page) {
  return page.evaluate(() => {
    const list = document.querySelector<HTMLElement>('.ps-run-list')!
    return {
      listWidth: list.getBoundingClientRect().width,
      cards: [...document.querySelectorAll<HTMLElement>('[data-testid="run-row"]')].map((row) => {
        const card = row.getBoundingClientRect()
        const cells = [...row.querySelectorAll<HTMLElement>(':scope > [data-label]')].map((cell) => {
          const box = cell.getBoundingClientRect()
          // What the cell shows: its text's line boxes, its badge and chips (an ellipsised id's range runs past its clip: only its box counts).
          let contentRight = 0
          const tops = new Set<number>()
          const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT)
          for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const range = document.createRange()
            range.selectNodeContents(node)
            for (const rect of range.getClientRects()) {
              if (rect.width === 0) continue
              contentRight = Math.max(contentRight, rect.right)
              tops.add(Math.round(rect.top))
            }
          }
          for (const element of cell.querySelectorAll('.ps-badge, .ps-tag, .ps-run-id-line')) contentRight = Math.max(contentRight, element.getBoundingClientRect().right)
          if (cell.dataset.label === 'Run') contentRight = cell.querySelector('.ps-run-id-line')!.getBoundingClientRect().right
          return { label: cell.dataset.label!, left: box.left, right: box.right, top: box.top, bottom: box.bottom, contentRight, lines: tops.size }
        })
        const run = row.querySelector<HTMLElement>('.ps-cell-run')!
        return { id: row.dataset.runId!, left: card.left, right: card.right, hasError: row.querySelector('.ps-row-error') !== null, cells, runColumns: getComputedStyle(run).gridTemplateColumns.split(' ').length }
      }),
    }
  })
}

/** The cards' layout: `table`, `cards` (a labelled line per field), `cards, id under its label` (a phone), `two columns`. */
function layoutOf(shown: Awaited<ReturnType<typeof measureList>>, cards: Awaited<ReturnType<typeof measureCards>>): string {
  if (!shown.cards) return 'table'
  const lefts = new Set(cards.cards.flatMap((card) => card.cells.map((cell) => Math.round(cell.left))))
  if (lefts.size > 1) return 'two columns'
  return cards.cards.every((card) => card.runColumns === 1) ? 'cards, id under its label' : 'cards'
}

/** The two-column cards use the card's width: the id across it, status and pipeline on the left half, stage, tags, created and duration on the right, nothing overlapping or past the card. */
function expectFieldsAcross(cards: Awaited<ReturnType<typeof measureCards>>, width: number): void {
  const HALVES: Record<string, 'across' | 'left' | 'right'> = { Run: 'across', Status: 'left', Pipeline: 'left', Stage: 'right', Tags: 'right', Created: 'right', Duration: 'right' }
  for (const card of cards.cards) {
    const at = `${card.id} at ${width} px of list`
    const middle = (card.left + card.right) / 2
    expect(card.cells.map((cell) => cell.label), at).toEqual(Object.keys(HALVES))
    for (const cell of card.cells) {
      const where = `${cell.label} of ${at}`
      expect(cell.left, where).toBeGreaterThanOrEqual(card.left - 0.5)
      expect(Math.max(cell.right, cell.contentRight), where).toBeLessThanOrEqual(card.right + 0.5)
      const half = HALVES[cell.label]
      if (half === 'across') expect([cell.left < middle, cell.right > middle], where).toEqual([true, true])
      if (half === 'left') expect(cell.right, where).toBeLessThanOrEqual(middle + 0.5)
      if (half === 'right') expect(cell.left, where).toBeGreaterThanOrEqual(middle - 0.5)
    }
    // The rightmost field's content reaches into the card's right half (the defect: all of it in a narrow left column).
    const fields = card.cells.filter((cell) => cell.label !== 'Run')
    expect(Math.max(...fields.map((cell) => cell.contentRight)), at).toBeGreaterThan(middle)
    // No two fields overlap.
    for (const [index, a] of card.cells.entries())
      for (const b of card.cells.slice(index + 1)) {
        const apart = a.right <= b.left + 0.5 || b.right <= a.left + 0.5 || a.bottom <= b.top + 0.5 || b.bottom <= a.top + 0.5
        expect(apart, `${a.label} and ${b.label} of ${at} overlap`).toBe(true)
      }
    // The right column reads top to bottom, its first line beside the status; the day and time on one line.
    const top = (label: string) => card.cells.find((cell) => cell.label === label)!.top
    expect(['Stage', 'Tags', 'Created', 'Duration'].map(top), at).toEqual(['Stage', 'Tags', 'Created', 'Duration'].map(top).sort((a, b) => a - b))
    expect(Math.abs(top('Stage') - top('Status')), at).toBeLessThan(1)
    // The pipeline under the status: right under its badge, or beside the duration under a failed run's error.
    const statusBottom = card.cells.find((cell) => cell.label === 'Status')!.bottom
    if (card.hasError) expect([top('Pipeline') >= statusBottom - 0.5, Math.abs(top('Pipeline') - top('Duration')) < 1], at).toEqual([true, true])
    else expect(Math.abs(top('Pipeline') - statusBottom), at).toBeLessThan(1)
    expect(card.cells.find((cell) => cell.label === 'Created')!.lines, `created of ${at}`).toBe(1)
  }
}

describe.skipIf(!CHROMIUM)('RunTimeline and RunList in Chromium', () => {
  beforeAll(async () => {
    const script = await bundleTestPage(join(root, 'test/react/components-page.tsx'))
    const styles = await readFile(join(root, 'src/react/styles.css'), 'utf8')
    handlers = createPipelineStatusHandlers({
      store: new MemoryStore(),
      secret: SECRET,
      pipelines: { default: defineStages(REPORT), other: defineStages(['Only']), [LONG_PIPELINE]: defineStages(['Only']) },
      logger: { info: () => {}, warn: () => {}, error: () => {} },
    })
    const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pipeline components</title><link rel="stylesheet" href="/styles.css">
<style>body{margin:0;background:#f5f6f8;font-family:system-ui,sans-serif}.page{max-width:960px;margin:0 auto;padding:20px 16px}.page-title{font-size:18px;margin:0 0 16px}.page-list{margin-top:28px}.page:has(.page-list){max-width:1120px}</style>
</head><body><div id="root"></div><script type="module" src="/app.js"></script></body></html>`
    // The Next.js example's home page as it lays the list out: its own stylesheet, its container.
    const exampleStyles = await readFile(join(root, 'examples/nextjs/app/globals.css'), 'utf8')
    // `css=no-container-queries`: the same page with the stylesheet an older browser keeps.
    const exampleHtml = (stylesheet: string) => `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Recent runs</title><link rel="stylesheet" href="${stylesheet}"><link rel="stylesheet" href="/example.css">
</head><body><div id="root"></div><script type="module" src="/app.js"></script></body></html>`
    const olderStyles = withoutContainerQueries(styles)
    server = createServer((req, res) => {
      void (async () => {
        const url = new URL(req.url ?? '/', origin)
        const path = url.pathname
        if (path.startsWith('/api/pipeline/')) {
          apiRequests.push({ path: path.slice('/api/pipeline'.length), query: url.searchParams })
          const gone = new AbortController()
          res.once('close', () => gone.abort())
          const request = toWebRequest(req, origin, { received: await readSmallBody(req), signal: gone.signal })
          await writeWebResponse(res, await handlers!.fetch(request))
          return
        }
        const [type, body] =
          path === '/app.js'
            ? ['text/javascript', script]
            : path === '/styles.css'
              ? ['text/css', styles]
              : path === '/styles-no-container-queries.css'
                ? ['text/css', olderStyles]
                : path === '/example.css'
                  ? ['text/css', exampleStyles]
                  : [
                      'text/html; charset=utf-8',
                      url.searchParams.get('fixture') !== 'runs'
                        ? html
                        : exampleHtml(url.searchParams.get('css') === 'no-container-queries' ? '/styles-no-container-queries.css' : '/styles.css'),
                    ]
        res.writeHead(200, { 'content-type': type })
        res.end(body)
      })().catch(() => res.destroy())
    })
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    browser = await chromium.launch({ executablePath: CHROMIUM!, args: CHROMIUM_ARGS })
    await mkdir(artifacts, { recursive: true })
  }, 120_000)

  afterAll(async () => {
    await browser?.close().catch(() => {})
    await handlers?.close().catch(() => {})
    server?.closeAllConnections()
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
  }, 30_000)

  it("shows a run's stages change without a reload: progress, outputs as JSON and Markdown, a retry, then the failure with its line breaks and stages that never ran", async () => {
    const runId = newRunId('timeline')
    await post('/runs', { id: runId, tags: ['nightly'] })
    const { page, problems } = await open(`run=${runId}`)
    await expect.poll(async () => (await readTimeline(page)).live, { timeout: 15_000 }).toBe('live')
    // All three catalogue stages listed before any reported.
    expect((await readTimeline(page)).stages.map((s) => s.status)).toEqual(['PENDING', 'PENDING', 'PENDING'])

    await stage(runId, 1, { status: 'COMPLETED', output: JSON.stringify({ pages: 40, source: 'https://example.com/a.pdf' }) })
    await stage(runId, 2, { status: 'PROCESSING' })
    await post(`/${runId}/heartbeat`, { stageNumber: 2, progress: { seq: 1, current: 37, total: 40, message: 'batch 37 of 40' } })
    await expect.poll(async () => (await readTimeline(page)).stages[1]?.progress, { timeout: 15_000 }).toBe('37 of 40 · batch 37 of 40')
    const shown = await readTimeline(page)
    expect(shown.run).toBe('PROCESSING')
    // JSON output, formatted.
    expect(shown.stages[0]?.output).toBe(JSON.stringify({ pages: 40, source: 'https://example.com/a.pdf' }, null, 2))

    // Streamed output (PROCESSING's text so far) is checked once streamed chunks land (issue 27);
    // here a finished stage's Markdown output is rendered as Markdown.
    // A retry: the attempt, the countdown, the last error with its line break.
    await stage(runId, 2, { status: 'PROCESSING', attempt: 2, maxAttempts: 3, lastError: 'model timed out\nafter 120 s', nextRetryAt: new Date(Date.now() + 30_000).toISOString() })
    await expect.poll(async () => (await readTimeline(page)).stages[1]?.attempt, { timeout: 15_000 }).toMatch(/^attempt 2 of 3 · retrying in \d+ s$/)
    expect((await readTimeline(page)).stages[1]?.lastError).toBe('Last error: model timed out\nafter 120 s')
    await page.screenshot({ path: join(artifacts, 'components-timeline-retry-1280.png'), fullPage: true })
    await page.setViewportSize({ width: 390, height: 844 })
    await expectNoSidewaysScroll(page)
    await page.screenshot({ path: join(artifacts, 'components-timeline-retry-390.png'), fullPage: true })
    await page.setViewportSize({ width: 1280, height: 900 })

    const error = 'Stage 2 (Summarise) failed at batch 38 of 40:\n  TimeoutError: no answer in 120 s\n  at summarise (runner.ts:42)'
    // A stage's failure output becomes the run's error.
    await stage(runId, 2, { status: 'FAILED', output: error })
    await expect.poll(async () => (await readTimeline(page)).run, { timeout: 15_000 }).toBe('FAILED')
    const failed = await readTimeline(page)
    expect(failed.stages.map((s) => [s.status, s.neverRan])).toEqual([['COMPLETED', false], ['FAILED', false], ['PENDING', true]])
    expect(failed.stages[2]?.text).toContain('Never ran: the run failed before this stage started')
    // Attempt 2 reset the stage's progress (the contract), so the failed stage shows none.
    expect(failed.stages[1]?.progress).toBeNull()
    expect(failed.error?.split('\n')).toEqual(error.split('\n'))
    // The failed stage's output is that error, its line breaks kept too (not folded as Markdown would).
    expect(failed.stages[1]?.output?.split('\n')).toEqual(error.split('\n'))
    await expect.poll(async () => (await readTimeline(page)).live, { timeout: 15_000 }).toBe('finished')
    await page.screenshot({ path: join(artifacts, 'components-timeline-failed-1280.png'), fullPage: true })
    await page.setViewportSize({ width: 390, height: 844 })
    await expectNoSidewaysScroll(page)
    await page.screenshot({ path: join(artifacts, 'components-timeline-failed-390.png'), fullPage: true })
    expect(await axeViolations(page)).toEqual([])
    expect(problems).toEqual([])
    await page.close()
  })

  it("grows a running stage's streamed text on screen without a reload, Markdown included, then shows the final output", async () => {
    const runId = newRunId('stream')
    await post('/runs', { id: runId })
    await stage(runId, 1, { status: 'COMPLETED', output: JSON.stringify({ pages: 12 }) })
    await stage(runId, 2, { status: 'PROCESSING' })
    // The page's shared connection (a set stream with run=…), which forwards output events.
    const { page, problems } = await open(`run=${runId}`)
    await expect.poll(async () => (await readTimeline(page)).live, { timeout: 15_000 }).toBe('live')
    expect((await readTimeline(page)).stages[1]?.output).toBeNull()

    // Chunks through the real route, as a runner's write() sends them.
    const chunks = [
      'The quarterly report',
      ' covers three regions.',
      '\n\nRevenue grew in',
      ' every region',
      ' except the north.',
      '\n\n## Findings\n\n- Costs fell **4 %**',
      '\n- Churn held steady\n',
    ]
    let seq = 0
    const send = async (count: number) => {
      for (const text of chunks.slice(seq, seq + count)) {
        const answer = await post(`/${encodeURIComponent(runId)}/stages/2/output`, { seq, text })
        expect(answer['outcome']).toBe('applied')
        seq += 1
      }
    }
    const sent = () => chunks.slice(0, seq).join('')
    const streamed = () => readTimeline(page).then((shown) => shown.stages[1]?.output ?? null)

    // First point: two chunks, one sentence.
    await send(2)
    await expect.poll(streamed, { timeout: 15_000 }).toBe(sent())
    expect(sent()).toBe('The quarterly report covers three regions.')
    // Second point: three more, a second paragraph; the page was never reloaded.
    await send(3)
    await expect.poll(streamed, { timeout: 15_000 }).toBe(sent())
    expect(sent()).toBe('The quarterly report covers three regions.\n\nRevenue grew in every region except the north.')
    const output = page.locator('[data-stage-number="2"] [data-testid="stage-output"]')
    expect(await output.getAttribute('data-streaming')).toBe('true')
    expect(await output.locator('p').allInnerTexts()).toEqual(['The quarterly report covers three regions.', 'Revenue grew in every region except the north.'])
    // Markdown as it streams: a heading and a list, rendered as elements.
    await send(2)
    await expect.poll(() => output.locator('li').allInnerTexts(), { timeout: 15_000 }).toEqual(['Costs fell 4 %', 'Churn held steady'])
    expect(await output.locator('h2').innerText()).toBe('Findings')
    expect(await output.locator('strong').innerText()).toBe('4 %')
    expect((await readTimeline(page)).stages[1]?.status).toBe('PROCESSING')
    await page.screenshot({ path: join(artifacts, 'components-streaming-1280.png'), fullPage: true })
    await page.setViewportSize({ width: 390, height: 844 })
    await expectNoSidewaysScroll(page)
    await page.screenshot({ path: join(artifacts, 'components-streaming-390.png'), fullPage: true })
    expect(await axeViolations(page)).toEqual([])
    await page.setViewportSize({ width: 1280, height: 900 })

    // A long stream: the box scrolls (max-height), and stays at its bottom while the text grows.
    for (let index = 1; index <= 30; index += 1) {
      await post(`/${encodeURIComponent(runId)}/stages/2/output`, { seq, text: `\n\nParagraph ${index} of the appendix.` })
      seq += 1
    }
    await expect.poll(async () => (await streamed())?.endsWith('Paragraph 30 of the appendix.'), { timeout: 15_000 }).toBe(true)
    const box = await output.evaluate((element) => ({ overflows: element.scrollHeight > element.clientHeight, gap: element.scrollHeight - element.scrollTop - element.clientHeight }))
    expect(box.overflows).toBe(true)
    expect(box.gap).toBeLessThanOrEqual(8)

    // The stage completes with its final output, which replaces the streamed text.
    await stage(runId, 2, { status: 'COMPLETED', output: '## Final report\n\nAll regions reviewed.' })
    await expect.poll(async () => (await readTimeline(page)).stages[1]?.status, { timeout: 15_000 }).toBe('COMPLETED')
    expect((await readTimeline(page)).stages[1]?.output).toBe('Final report\n\nAll regions reviewed.')
    expect(await output.getAttribute('data-streaming')).toBeNull()
    expect(problems).toEqual([])
    await page.close()
  })

  it('renders hostile stored text as text: no element, link or script from it, nothing runs', async () => {
    const runId = newRunId('hostile')
    const attack = [
      '## Summary',
      'Some **bold** text.',
      '<img src=x onerror="window.__pwned = 1; alert(1)">',
      '<script>window.__pwned = 2; alert(2)</script>',
      '[click me](javascript:window.__pwned=3) and [data](data:text/html,<script>alert(4)</script>)',
      '![tracker](https://attacker.example/leak?q=secret)',
      '<a href="javascript:alert(5)">raw link</a> <iframe src="javascript:alert(6)"></iframe>',
      '[fine](https://example.com/ok)',
    ].join('\n\n')
    const tag = '<b onmouseover=alert(7)>tag</b>'
    await post('/runs', { id: runId, tags: [tag] })
    await stage(runId, 1, { status: 'COMPLETED', output: attack })
    await stage(runId, 2, { status: 'PROCESSING', attempt: 2, maxAttempts: 2, lastError: '<img src=x onerror="window.__pwned=8">\n<script>alert(9)</script>', nextRetryAt: null })
    // The failed stage's output becomes the run's error.
    await stage(runId, 2, { status: 'FAILED', output: '<img src=x onerror="window.__pwned=11">\n<script>alert(12)</script><svg onload=alert(10)>' })

    const { page, problems } = await open(`run=${runId}&list=1`)
    await expect.poll(async () => (await readTimeline(page)).run, { timeout: 15_000 }).toBe('FAILED')
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toContain(runId)
    const output = page.locator('[data-stage-number="1"] [data-testid="stage-output"]')
    // Raw HTML shows as its text.
    expect(await output.innerText()).toContain('<img src=x onerror="window.__pwned = 1; alert(1)">')
    expect(await output.innerText()).toContain('<script>window.__pwned = 2; alert(2)</script>')
    expect((await readTimeline(page)).error).toBe('<img src=x onerror="window.__pwned=11">\n<script>alert(12)</script><svg onload=alert(10)>')
    // Markdown itself still renders: a heading and emphasis are elements React made, not parsed HTML.
    expect(await output.locator('h2').textContent()).toBe('Summary')
    expect(await output.locator('strong').textContent()).toBe('bold')
    // No element came from the stored text: no img, script, iframe, svg; only the safe link is a link.
    const found = await page.evaluate((id) => ({
      elements: document.querySelectorAll('#root img, #root script, #root iframe, #root svg, #root b').length,
      hrefs: [...document.querySelectorAll('[data-testid="stage-output"] a')].map((a) => a.getAttribute('href')),
      javascriptLinks: document.querySelectorAll('a[href^="javascript" i], a[href^="data" i]').length,
      tags: [...document.querySelectorAll(`[data-run-id="${id}"] .ps-tag`)].map((element) => element.textContent),
      pwned: (window as unknown as { __pwned?: unknown }).__pwned ?? null,
    }), runId)
    expect(found).toEqual({
      elements: 0,
      // The image is a link to its URL (not loaded), the safe link kept; javascript: and data: links lost their URL.
      hrefs: ['https://attacker.example/leak?q=secret', 'https://example.com/ok'],
      javascriptLinks: 0,
      tags: [tag],
      pwned: null,
    })
    // The unsafe links keep their text, without a URL to follow.
    expect(await page.locator('.ps-md-link-removed').allInnerTexts()).toEqual(['click me', 'data'])
    // Click what was a javascript: or data: link: still nothing runs.
    for (const element of await page.locator('[data-testid="stage-output"] .ps-md-link-removed').all()) await element.click()
    await page.hover(`[data-run-id="${runId}"] .ps-tag`)
    expect(await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned ?? null)).toBeNull()
    await page.screenshot({ path: join(artifacts, 'components-hostile-1280.png'), fullPage: true })
    expect(problems).toEqual([])
    await page.close()
  })

  it('isolates runner text (one rule), shows bidi controls in tags, and boxes long errors in named, focusable scroll regions', async () => {
    const runId = newRunId('bidi')
    const spoof = 'abc\u202Egnp.exe\u202C'
    const longError = Array.from({ length: 60 }, (_, line) => `line ${line}: ${'x'.repeat(45)}`).join('\n') // ~3,200 characters
    const longLastError = longError.slice(0, 1_990) // lastError holds at most 2,000
    await post('/runs', { id: runId, tags: [spoof] })
    await stage(runId, 1, { status: 'PROCESSING', attempt: 2, maxAttempts: 3, lastError: longLastError, nextRetryAt: null })

    const { page, problems } = await open(`run=${runId}&list=1`, 390)
    await expect.poll(async () => (await readTimeline(page)).stages[0]?.lastError ?? null, { timeout: 15_000 }).toContain('line 35')
    const lastError = page.locator('[data-testid="stage-last-error"]')
    expect(await lastError.getAttribute('role')).toBe('region')
    expect(await lastError.getAttribute('aria-label')).toBe('Last error of Fetch')
    expect(await lastError.getAttribute('tabindex')).toBe('0')
    await stage(runId, 1, { status: 'FAILED', output: longError })
    await expect.poll(async () => (await readTimeline(page)).error, { timeout: 15_000 }).toContain('line 59')
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toContain(runId)

    const seen = await page.evaluate((id) => {
      const box = document.querySelector('[data-testid="run-error"]') as HTMLElement
      const runnerText = [
        box,
        document.querySelector('.ps-run-id'),
        document.querySelector('.ps-stage-name'),
        document.querySelector('[data-testid="stage-output"]'),
        document.querySelector(`[data-run-id="${id}"] .ps-tag`),
        document.querySelector(`[data-run-id="${id}"] .ps-run-link`),
        document.querySelector(`[data-run-id="${id}"] .ps-row-error`),
      ]
      return {
        bidi: runnerText.map((element) => (element ? getComputedStyle(element).unicodeBidi : 'missing')),
        tag: document.querySelector(`[data-run-id="${id}"] .ps-tag`)?.textContent,
        box: {
          role: box.getAttribute('role'),
          label: box.getAttribute('aria-label'),
          tabindex: box.getAttribute('tabindex'),
          scrolls: box.scrollHeight > box.clientHeight,
          height: box.getBoundingClientRect().height,
          overflowY: getComputedStyle(box).overflowY,
        },
      }
    }, runId)
    expect(seen.bidi).toEqual(Array(7).fill('isolate'))
    // The override shows as characters instead of turning "gnp.exe" into "exe.png".
    expect(seen.tag).toBe('abc⟨U+202E⟩gnp.exe⟨U+202C⟩')
    expect(seen.box).toMatchObject({ role: 'region', label: 'Run error', tabindex: '0', scrolls: true, overflowY: 'auto' })
    expect(seen.box.height).toBeLessThanOrEqual(170) // 10rem, not two screens
    // The keyboard scrolls it.
    await page.locator('[data-testid="run-error"]').focus()
    await page.keyboard.press('PageDown')
    await expect.poll(() => page.evaluate(() => (document.querySelector('[data-testid="run-error"]') as HTMLElement).scrollTop), { timeout: 5_000 }).toBeGreaterThan(0)
    expect(await axeViolations(page)).toEqual([])
    await page.screenshot({ path: join(artifacts, 'components-long-error-390.png'), fullPage: true })
    expect(problems).toEqual([])
    await page.close()
  })

  it("wraps the timeline's long unbroken runner text (a 400-character progress message, a last error, a 200-character stage name, an output) inside its card at 390 and 1280 px: no sideways scroll", async () => {
    for (const width of [390, 1280]) {
      const { page, problems } = await open('fixture=long-text', width)
      await page.getByTestId('stage-progress').waitFor({ timeout: 15_000 })
      const seen = await page.evaluate(() => {
        /** The rightmost and leftmost edges of the text drawn under `element` (its line boxes). */
        const textEdges = (element: Element) => {
          const range = document.createRange()
          range.selectNodeContents(element)
          const rects = [...range.getClientRects()].filter((rect) => rect.width > 0)
          return { left: Math.min(...rects.map((rect) => rect.left)), right: Math.max(...rects.map((rect) => rect.right)), lines: new Set(rects.map((rect) => Math.round(rect.top))).size }
        }
        const inCard = (selector: string) => {
          const element = document.querySelector(selector)
          if (!element) return `missing ${selector}`
          const card = element.closest('.ps-card')!.getBoundingClientRect()
          const text = textEdges(element)
          return { inside: text.left >= card.left - 0.5 && text.right <= card.right + 0.5, wraps: text.lines > 1, text: (element as HTMLElement).innerText.replace(/\s+/g, '').length }
        }
        return {
          pageWidth: document.documentElement.scrollWidth,
          viewport: window.innerWidth,
          progress: inCard('[data-stage-number="2"] [data-testid="stage-progress"]'),
          lastError: inCard('[data-stage-number="2"] [data-testid="stage-last-error"] .ps-runner-text'),
          name: inCard('[data-stage-number="2"] .ps-stage-name'),
          output: inCard('[data-stage-number="1"] [data-testid="stage-output"]'),
        }
      })
      expect(seen.pageWidth, `page at ${width}`).toBe(seen.viewport)
      // Every character shown (none cut off), on several lines, all of it inside the stage's card.
      // The progress line is "37 of 40 · " then the 400 characters: 7 characters besides spaces, plus 400.
      expect(seen.progress, `progress at ${width}`).toEqual({ inside: true, wraps: true, text: 407 })
      expect(seen.lastError, `last error at ${width}`).toEqual({ inside: true, wraps: true, text: 600 })
      // The name's "Stage 2: " is visually hidden text, read by screen readers.
      expect(seen.name, `stage name at ${width}`).toEqual({ inside: true, wraps: true, text: 207 })
      expect(seen.output, `output at ${width}`).toEqual({ inside: true, wraps: true, text: 400 })
      await expectNoSidewaysScroll(page)
      expect(await axeViolations(page)).toEqual([])
      await page.screenshot({ path: join(artifacts, `components-long-text-${width}.png`), fullPage: true })
      expect(problems).toEqual([])
      await page.close()
    }
  })

  it("lays the list out as the Next.js example's home page shows it, at 1280 and 390 px: each id on one line (whole, or ellipsised with the whole id in its title and name), no word broken, a long error clamped with an ellipsis, a wrapped tag a rounded box (not an oval), stage and duration on one line", async () => {
    const { page, problems } = await open('fixture=runs')
    await page.locator('[data-testid="run-row"]').first().waitFor({ timeout: 15_000 })
    const ids = await listedIds(page)
    expect(ids).toHaveLength(5)
    const measure = () => measureList(page)
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: width === 1280 ? 900 : 844 })
      const shown = await measure()
      // Taken before the checks, so a failure leaves the picture of what failed.
      await page.screenshot({ path: join(artifacts, `components-list-layout-${width}.png`), fullPage: true })
      expect(shown.pageScrolls, `page scrolls sideways at ${width}`).toBe(false)
      await expectReadableRows(page, shown, width)
      // "not started" is one line box, never "starte / d".
      expect(shown.rows.find((row) => row.id === ids[0])).toMatchObject({ stage: 'not started', stageLines: 1 })
      // The fixture's long error is cut at both widths, so the clamp above was checked.
      expect(shown.rows.filter((row) => row.error?.clipped).map((row) => row.id), `clipped errors at ${width}`).toHaveLength(1)
      // Its long tag wraps in the table's chip (past --ps-word-max) and fits a card's line.
      const wrapped = shown.rows.flatMap((row) => row.chips).filter((chip) => chip.lines > 1).map((chip) => chip.text)
      expect(wrapped, `wrapped tags at ${width}`).toEqual(width === 1280 ? ['customer-onboarding-eu'] : [])
      // At 1280 px a short id shows whole.
      if (width === 1280) expect(shown.rows.find((row) => row.id === 'done-1')?.ellipsised).toBe(false)
      expect(await axeViolations(page), `axe at ${width} px`).toEqual([])
    }
    // An app's wider id column (--ps-run-id-min) still fits a phone: the card's width is the id's room.
    await page.evaluate(() => (document.querySelector('.ps-run-list') as HTMLElement).style.setProperty('--ps-run-id-min', '40ch'))
    const widened = await measure()
    await page.screenshot({ path: join(artifacts, 'components-list-layout-390-id-min-40ch.png'), fullPage: true })
    expect(widened.pageScrolls, 'page scrolls sideways at 390 px with --ps-run-id-min: 40ch').toBe(false)
    for (const row of widened.rows) expect([row.id, row.idLines, row.inside]).toEqual([row.id, 1, true])
    expect(problems).toEqual([])
    await page.close()
  })

  it("fits the list in its container at every width from 320 to 1400 px, no sideways scroll of the page, its container or the list: a table where the list has room for one (64em), cards below, also in a narrow sidebar of a wide page", async () => {
    const { page, problems } = await open('fixture=runs')
    await page.locator('[data-testid="run-row"]').first().waitFor({ timeout: 15_000 })
    // 641–1007 px: the table's columns need about 846 px at their narrowest (about 950 with stage
    // and duration on one line), more than the list's width there (the viewport less the example's
    // 2 × 24 px padding); the cards used to start only at a 640 px viewport.
    const layouts: string[] = []
    for (const width of [320, 390, 640, 641, 700, 768, 850, 1007, 1008, 1024, 1280, 1400]) {
      await page.setViewportSize({ width, height: 900 })
      const shown = await measureList(page)
      // Taken before the checks, so a failure leaves the picture of what failed.
      await page.screenshot({ path: join(artifacts, `components-list-width-${width}.png`), fullPage: true })
      for (const [name, box] of Object.entries(shown.overflow)) expect(box.scroll, `${name} scrolls sideways at ${width} px`).toBeLessThanOrEqual(box.client)
      await expectReadableRows(page, shown, width)
      layouts.push(`${width}: ${shown.cards ? 'cards' : 'table'}`)
      if (width === 768) expect(await axeViolations(page), `axe at ${width} px`).toEqual([])
    }
    // The list's own width decides (a container query): cards below 64em (960 px at its 15 px), so
    // a 1008 px viewport (a 960 px list) is the first with the table.
    expect(layouts).toEqual(['320: cards', '390: cards', '640: cards', '641: cards', '700: cards', '768: cards', '850: cards', '1007: cards', '1008: table', '1024: table', '1280: table', '1400: table'])

    // A narrow sidebar on a wide page: the list is cards because it is narrow, whatever the viewport.
    await page.setViewportSize({ width: 1280, height: 900 })
    await page.evaluate(() => ((document.querySelector('.ps-run-list') as HTMLElement).parentElement!.style.maxWidth = '360px'))
    const sidebar = await measureList(page)
    await page.screenshot({ path: join(artifacts, 'components-list-sidebar-1280.png'), fullPage: true })
    expect(sidebar.cards, 'cards in a 360 px sidebar at 1280 px').toBe(true)
    for (const [name, box] of Object.entries(sidebar.overflow)) expect(box.scroll, `${name} scrolls sideways in a 360 px sidebar`).toBeLessThanOrEqual(box.client)
    await expectReadableRows(page, sidebar, 1280)
    expect(problems).toEqual([])
    await page.close()
  })

  it("uses a card's whole width from 42em (630 px) of list to the table's 64em: the id across the card, status and pipeline on the left, stage, tags, created and duration on the right; one column below, the id under its label on a phone", async () => {
    const { page, problems } = await open('fixture=runs')
    await page.locator('[data-testid="run-row"]').first().waitFor({ timeout: 15_000 })
    const layouts: string[] = []
    // The list's width: the example's <main> pads it 24 px on each side of the viewport.
    for (const listWidth of [629, 630, 640, 680, 700, 750, 800, 850, 900, 959, 960]) {
      await page.setViewportSize({ width: listWidth + 48, height: 900 })
      const shown = await measureList(page)
      const cards = await measureCards(page)
      // Taken before the checks, so a failure leaves the picture of what failed.
      if (listWidth === 700 || listWidth === 900) await page.screenshot({ path: join(artifacts, `components-list-cards-${listWidth}.png`), fullPage: true })
      expect(cards.listWidth).toBe(listWidth)
      for (const [name, box] of Object.entries(shown.overflow)) expect(box.scroll, `${name} scrolls sideways at ${listWidth} px of list`).toBeLessThanOrEqual(box.client)
      await expectReadableRows(page, shown, listWidth)
      layouts.push(`${listWidth}: ${layoutOf(shown, cards)}`)
      if (layoutOf(shown, cards) === 'two columns') expectFieldsAcross(cards, listWidth)
      if (listWidth === 700 || listWidth === 900) expect(await axeViolations(page), `axe at ${listWidth} px of list`).toEqual([])
    }
    expect(layouts).toEqual([
      '629: cards',
      ...[630, 640, 680, 700, 750, 800, 850, 900, 959].map((width) => `${width}: two columns`),
      '960: table',
    ])
    // Phones, as before: one column (390 px, a 366 px list: the example pads it 12 px there), the id
    // under its label below 24em (320 px, a 296 px list).
    for (const [width, listWidth, layout] of [[390, 366, 'cards'], [320, 296, 'cards, id under its label']] as const) {
      await page.setViewportSize({ width, height: 844 })
      const phone = await measureList(page)
      const phoneCards = await measureCards(page)
      await page.screenshot({ path: join(artifacts, `components-list-cards-${width}.png`), fullPage: true })
      expect([phoneCards.listWidth, layoutOf(phone, phoneCards)]).toEqual([listWidth, layout])
      expect(phone.pageScrolls).toBe(false)
      await expectReadableRows(page, phone, width)
    }
    expect(problems).toEqual([])
    await page.close()
  })

  it('without container queries (an older browser: its stylesheet without them, CSS.supports saying so), the viewport picks the cards, logged once; the fallback repeats the container queries rule for rule', async () => {
    const { page, problems, warnings } = await open('fixture=runs&css=no-container-queries', 1280, () => {
      const supports = CSS.supports.bind(CSS)
      CSS.supports = ((...args: [string, string?]) =>
        args.join(' ').includes('container') ? false : args[1] === undefined ? supports(args[0]) : supports(args[0], args[1])) as typeof CSS.supports
    })
    await page.locator('[data-testid="run-row"]').first().waitFor({ timeout: 15_000 })
    // The page has what such a browser keeps: no container rule, no size container.
    expect(
      await page.evaluate(() => {
        const containerRules = (rules: CSSRuleList): number =>
          [...rules].reduce((count, rule) => count + (rule instanceof CSSContainerRule ? 1 : 0) + ('cssRules' in rule ? containerRules((rule as CSSGroupingRule).cssRules) : 0), 0)
        return { containerRules: [...document.styleSheets].reduce((count, sheet) => count + containerRules(sheet.cssRules), 0), containerType: getComputedStyle(document.querySelector('.ps-run-list')!).containerType }
      }),
    ).toEqual({ containerRules: 0, containerType: 'normal' })
    const layouts: string[] = []
    for (const width of [390, 700, 900, 1008, 1024, 1280]) {
      await page.setViewportSize({ width, height: 900 })
      const shown = await measureList(page)
      const cards = await measureCards(page)
      if (width === 390 || width === 900) await page.screenshot({ path: join(artifacts, `components-list-no-container-queries-${width}.png`), fullPage: true })
      for (const [name, box] of Object.entries(shown.overflow)) expect(box.scroll, `${name} scrolls sideways at ${width} px`).toBeLessThanOrEqual(box.client)
      await expectReadableRows(page, shown, width)
      layouts.push(`${width}: ${layoutOf(shown, cards)}`)
      if (layoutOf(shown, cards) === 'two columns') expectFieldsAcross(cards, width)
      if (width === 900) expect(await axeViolations(page), `axe at ${width} px`).toEqual([])
    }
    // Cards below a 64em (1,024 px) viewport, two columns from 48em (768 px), the id under its label below 26em (416 px).
    expect(layouts).toEqual(['390: cards, id under its label', '700: cards', '900: two columns', '1008: two columns', '1024: table', '1280: table'])
    // What the warning says: a narrow list on a wide page stays a table there.
    await page.evaluate(() => ((document.querySelector('.ps-run-list') as HTMLElement).parentElement!.style.maxWidth = '360px'))
    expect((await measureList(page)).cards).toBe(false)
    const logged = warnings.filter((warning) => warning.includes('no CSS container queries'))
    expect(logged).toHaveLength(1)
    expect(logged[0]).toContain('Fix:')
    expect(problems).toEqual([])
    await page.close()

    // This Chromium has container queries: the real stylesheet's fallback stays off, nothing is logged,
    // and each fallback block holds exactly the rules of its container query.
    const real = await open('fixture=runs', 1280)
    await real.page.locator('[data-testid="run-row"]').first().waitFor({ timeout: 15_000 })
    const blocks = await real.page.evaluate(() => {
      const sheet = [...document.styleSheets].find((candidate) => candidate.href?.endsWith('/styles.css'))!
      const rules = [...sheet.cssRules]
      const texts = (rule: CSSGroupingRule) => [...rule.cssRules].map((inner) => inner.cssText)
      const fallback = rules.find((rule): rule is CSSSupportsRule => rule instanceof CSSSupportsRule && rule.conditionText.includes('container-type'))!
      return {
        fallbackApplies: CSS.supports(fallback.conditionText),
        container: Object.fromEntries(rules.filter((rule): rule is CSSContainerRule => rule instanceof CSSContainerRule).map((rule) => [rule.containerQuery, texts(rule)])),
        media: Object.fromEntries([...fallback.cssRules].filter((rule): rule is CSSMediaRule => rule instanceof CSSMediaRule).map((rule) => [rule.media.mediaText, texts(rule)])),
      }
    })
    expect(blocks.fallbackApplies).toBe(false)
    expect(Object.keys(blocks.container)).toEqual(['(width < 64em)', '(42em <= width < 64em)', '(width < 24em)'])
    expect(Object.keys(blocks.media)).toEqual(['not all and (min-width: 64em)', '(min-width: 48em) and (max-width: 63.999em)', '(max-width: 26em)'])
    expect(Object.values(blocks.media)).toEqual(Object.values(blocks.container))
    expect(real.warnings.filter((warning) => warning.includes('container queries'))).toEqual([])
    expect(real.problems).toEqual([])
    await real.page.close()
  })

  it('filters the list with the keyboard, follows runs as they join, change and leave a filter, and links each run', async () => {
    const tag = `kb-${Date.now().toString(36)}`
    const [first, second, third] = [newRunId('list-a'), newRunId('list-b'), newRunId('list-c')]
    await post('/runs', { id: first, tags: [tag, 'nightly'] })
    await post('/runs', { id: second, tags: [tag], pipeline: 'other' })
    await post('/runs', { id: third, tags: [tag] })
    await stage(first, 1, { status: 'COMPLETED', output: 'done' })
    await stage(first, 2, { status: 'PROCESSING' })

    const { page, problems } = await open('list=1')
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual(expect.arrayContaining([first, second, third]))

    // Keyboard only: Tab reaches the filters in order (a date input takes a Tab per part), typing a tag filters the list.
    await page.locator('body').focus()
    const focusOrder: string[] = []
    for (let index = 0; index < 12 && focusOrder.length < 5; index += 1) {
      await page.keyboard.press('Tab')
      const label = await focusedLabel(page)
      if (label !== focusOrder.at(-1)) focusOrder.push(label)
    }
    expect(focusOrder).toEqual(['Pipeline', 'Status', 'Tag', 'Created from', 'Created to'])
    await tabTo(page, 'Tag', 'Shift+Tab')
    await page.keyboard.type(tag)
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual([third, second, first])
    // Follows: a run created with the tag joins at the top, without a reload; one without it does not.
    const [other, joined] = [newRunId('list-d'), newRunId('list-e')]
    await post('/runs', { id: other, tags: ['another-tag'] })
    await post('/runs', { id: joined, tags: [tag] })
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual([joined, third, second, first])
    // Status by keyboard: Shift+Tab to the status select, choose Processing.
    await tabTo(page, 'Status', 'Shift+Tab')
    await page.locator(':focus').selectOption('PROCESSING')
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual([first])
    const row = await page.evaluate(() => {
      const element = document.querySelector('[data-testid="run-row"]') as HTMLElement
      return element.innerText
    })
    expect(row).toContain('PROCESSING')
    expect(row).toContain('stage 2 of 3')
    expect(row).toMatch(/running \d+ s/)

    // Follows: the run leaves the PROCESSING filter when it completes, without a reload.
    await stage(first, 2, { status: 'COMPLETED' })
    await stage(first, 3, { status: 'COMPLETED' })
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual([])
    expect(await page.locator('.ps-empty').innerText()).toBe('No run matches these filters.')
    await page.locator(':focus').selectOption('')
    // The pipeline filter.
    await page.getByLabel('Pipeline').selectOption('other')
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual([second])
    await page.getByRole('button', { name: 'Clear filters' }).click()
    await expect.poll(async () => (await listedIds(page)).length, { timeout: 15_000 }).toBeGreaterThanOrEqual(3)
    // A date range that ends before today holds none of them.
    await page.getByLabel('Created to').fill('2020-01-01')
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual([])
    // Keyboard: Tab to Clear filters, Enter. Focus stays on the button (now aria-disabled, not
    // disabled, which would drop focus to <body>); the filters are empty.
    await page.getByLabel('Created to').fill('2020-01-01')
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual([])
    await page.getByLabel('Created to').focus()
    await tabTo(page, 'Clear filters', 'Tab')
    await page.keyboard.press('Enter')
    await expect.poll(async () => (await listedIds(page)).length, { timeout: 15_000 }).toBeGreaterThanOrEqual(3)
    const focused = await page.evaluate(() => {
      const element = document.activeElement as HTMLElement
      return { tag: element.tagName, text: element.textContent, ariaDisabled: element.getAttribute('aria-disabled'), disabled: (element as HTMLButtonElement).disabled }
    })
    expect(focused).toEqual({ tag: 'BUTTON', text: 'Clear filters', ariaDisabled: 'true', disabled: false })
    expect(await page.getByLabel('Created to').inputValue()).toBe('')
    // Enter again on the dimmed button does nothing and keeps focus.
    await page.keyboard.press('Enter')
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Clear filters')
    await page.getByRole('searchbox', { name: 'Tag' }).fill(tag)
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual([joined, third, second, first])

    await page.screenshot({ path: join(artifacts, 'components-list-1280.png'), fullPage: true })
    expect(await axeViolations(page)).toEqual([])
    // A 128-character unbroken tag and pipeline name wrap inside the table, at 1280 and at 390 px.
    const long = newRunId('list-long')
    await post('/runs', { id: long, tags: [tag, LONG_TAG], pipeline: LONG_PIPELINE })
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual([long, joined, third, second, first])
    await expectNoSidewaysScroll(page)
    const table = await page.evaluate(() => {
      const element = document.querySelector('.ps-table') as HTMLElement
      return { table: element.getBoundingClientRect().right, list: (element.closest('.ps-run-list') as HTMLElement).getBoundingClientRect().right }
    })
    expect(table.table).toBeLessThanOrEqual(table.list + 1)
    await page.setViewportSize({ width: 390, height: 844 })
    await expectNoSidewaysScroll(page)
    await page.screenshot({ path: join(artifacts, 'components-list-390.png'), fullPage: true })
    expect(await axeViolations(page)).toEqual([])

    // The link the app rendered: reached by Tab, followed with Enter, opens the run's timeline.
    await page.locator(`a.ps-run-link:text-is("${first}")`).focus()
    await page.keyboard.press('Enter')
    await page.waitForURL((url) => url.searchParams.get('run') === first)
    await expect.poll(async () => (await readTimeline(page)).run, { timeout: 15_000 }).toBe('COMPLETED')
    expect((await readTimeline(page)).stages.map((s) => s.status)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED'])
    expect(problems).toEqual([])
    await page.close()
  })

  it('follows a tag typed key by key once typing pauses: one stream for the whole tag, not one per key; Clear filters and a select apply at once', async () => {
    const tag = `nightly-${Date.now().toString(36)}`
    const [first, second, untagged] = [newRunId('typed-a'), newRunId('typed-b'), newRunId('typed-c')]
    await post('/runs', { id: first, tags: [tag] })
    await post('/runs', { id: second, tags: [tag, 'eu-west'] })
    await post('/runs', { id: untagged, tags: ['weekly'] })
    // The set streams this page opened, as the server saw them: each one's tag and status filters.
    const from = apiRequests.length
    const streams = () => apiRequests.slice(from).filter((request) => request.path === '/events').map((request) => ({ tag: request.query.getAll('tag'), status: request.query.getAll('status') }))

    const { page, problems } = await open('list=1', 1280, undefined, true)
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual(expect.arrayContaining([first, second, untagged]))
    expect(streams()).toEqual([{ tag: [], status: [] }])

    // The page's clock stops: no timer of the page runs while the tag is typed, however slowly the
    // keys arrive, so nothing here rests on typing being quicker than the pause.
    await page.clock.pauseAt((await page.evaluate(() => Date.now())) + 1000)
    const field = page.getByRole('searchbox', { name: 'Tag' })
    await field.focus()
    for (const [index, key] of [...tag].entries()) {
      await page.keyboard.type(key)
      // The field shows each key at once.
      await expect.poll(() => field.inputValue(), { timeout: 15_000 }).toBe(tag.slice(0, index + 1))
    }
    // Until typing pauses the rows have not followed the tag: the untagged run is still listed.
    expect(await listedIds(page)).toEqual(expect.arrayContaining([first, second, untagged]))

    // Typing pauses (the clock runs again): one stream for the whole tag, and its runs alone are listed.
    await page.clock.resume()
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual([second, first])
    await expect.poll(() => streams().length, { timeout: 15_000 }).toBe(2)
    expect(streams()).toEqual([
      { tag: [], status: [] },
      { tag: [tag], status: [] },
    ])

    // Clear filters takes no pause: with the clock stopped again (no timer can run), the next
    // stream opens without the tag and the untagged run is back.
    await page.clock.pauseAt((await page.evaluate(() => Date.now())) + 1000)
    await page.getByRole('button', { name: 'Clear filters' }).click()
    await expect.poll(() => streams().length, { timeout: 15_000 }).toBe(3)
    expect(streams().at(-1)).toEqual({ tag: [], status: [] })
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual(expect.arrayContaining([first, second, untagged]))
    expect(await field.inputValue()).toBe('')

    // A select applies at once too (the clock still stopped), and takes the tag typed before it along.
    await field.focus()
    await page.keyboard.type(tag)
    await page.getByLabel('Status').selectOption('PENDING')
    await expect.poll(() => streams().length, { timeout: 15_000 }).toBe(4)
    expect(streams().at(-1)).toEqual({ tag: [tag], status: ['PENDING'] })
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual([second, first])
    expect(streams()).toHaveLength(4)
    expect(problems).toEqual([])
    await page.close()
  })

  it("keeps a data-form list's rows while a tag is typed into its controlled filters (the app's useRuns on useAppliedFilters, given as appliedFilters), then follows the tag once typing pauses", async () => {
    const tag = `nightly-${Date.now().toString(36)}`
    const [first, second, untagged] = [newRunId('data-a'), newRunId('data-b'), newRunId('data-c')]
    await post('/runs', { id: first, tags: [tag] })
    await post('/runs', { id: second, tags: [tag, 'eu-west'] })
    await post('/runs', { id: untagged, tags: ['weekly'] })
    const from = apiRequests.length
    const streams = () => apiRequests.slice(from).filter((request) => request.path === '/events').map((request) => request.query.getAll('tag'))

    const { page, problems } = await open('list=data', 1280, undefined, true)
    await page.locator('[data-testid="data-list"][data-state="live"]').waitFor({ timeout: 15_000 })
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual(expect.arrayContaining([first, second, untagged]))
    const everyRun = await listedIds(page)
    expect(streams()).toEqual([[]])

    // Every row the list removes from now on, as the DOM saw it (a MutationObserver keeps each
    // removal, however briefly a row was gone).
    await page.evaluate(() => {
      const removed: string[] = []
      ;(window as unknown as { removedRows: string[] }).removedRows = removed
      new MutationObserver((records) => {
        for (const record of records)
          for (const node of record.removedNodes) if (node instanceof HTMLElement && node.dataset.testid === 'run-row') removed.push(node.dataset.runId ?? '')
      }).observe(document.querySelector('[data-testid="run-list"] tbody')!, { childList: true })
    })
    const removedRows = () => page.evaluate(() => (window as unknown as { removedRows: string[] }).removedRows)

    // The page's clock stops: its timers run only when the test moves it, so the typing pause
    // (useAppliedFilters' 300 ms) cannot end while the keys arrive, however slowly.
    await page.clock.pauseAt((await page.evaluate(() => Date.now())) + 1000)
    const field = page.getByRole('searchbox', { name: 'Tag' })
    await field.focus()
    for (const [index, key] of [...tag].entries()) {
      await page.keyboard.type(key)
      const typed = tag.slice(0, index + 1)
      // The controlled field shows each key (the app passed the new filters back) ...
      await expect.poll(() => field.inputValue(), { timeout: 15_000 }).toBe(typed)
      // ... and the rows, rendered with it, are still those of the applied filters: no prefix ("n",
      // "ni", …, each naming no run's tag) hid one.
      expect(await listedIds(page), `the rows after typing "${typed}"`).toEqual(everyRun)
    }
    expect(await removedRows()).toEqual([])
    // 1 ms short of the pause: nothing applied yet.
    await page.clock.runFor(299)
    expect(await listedIds(page)).toEqual(everyRun)
    expect(await removedRows()).toEqual([])

    // The pause over: the app's one stream for the whole tag, and the rows follow the tag (the
    // untagged run leaves; the observer saw that removal).
    await page.clock.runFor(1)
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual([second, first])
    await expect.poll(() => streams().length, { timeout: 15_000 }).toBe(2)
    expect(streams()).toEqual([[], [tag]])
    expect(await removedRows()).toContain(untagged)

    // "Clear filters" applies at once, the clock still stopped: the untagged run is back.
    await page.getByRole('button', { name: 'Clear filters' }).click()
    expect(await field.inputValue()).toBe('')
    await expect.poll(() => listedIds(page), { timeout: 15_000 }).toEqual(expect.arrayContaining([first, second, untagged]))
    await expect.poll(() => streams().length, { timeout: 15_000 }).toBe(3)
    expect(streams().at(-1)).toEqual([])
    expect(problems).toEqual([])
    await page.close()
  })
})
