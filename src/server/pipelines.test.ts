import { describe, expect, it } from 'vitest'
import { DEFAULT_STAGES, defineStages } from '../contract/stages.js'
import { newRun } from '../core/state-machine.js'
import { isServerConfigurationError } from './configuration-error.js'
import { resolvePipelines, runCatalogues } from './pipelines.js'

const REPORT = defineStages(['Fetch', 'Publish'])

describe('resolvePipelines', () => {
  it('always has default: the stages option, else pipelines.default, else the original five stages', () => {
    expect([...resolvePipelines({ pipelines: { report: REPORT } })]).toEqual([
      ['default', DEFAULT_STAGES],
      ['report', REPORT],
    ])
    expect(resolvePipelines({ stages: REPORT }).get('default')).toBe(REPORT)
    expect(resolvePipelines({ pipelines: { default: REPORT } }).get('default')).toBe(REPORT)
  })

  it('refuses stages together with pipelines.default, naming both, and invalid catalogues or names', () => {
    const both = (() => {
      try {
        resolvePipelines({ stages: REPORT, pipelines: { default: REPORT } })
      } catch (error) {
        return error
      }
    })()
    expect(isServerConfigurationError(both)).toBe(true)
    expect((both as Error).message).toMatch(/stages.*pipelines\.default/)
    expect(() => resolvePipelines({ pipelines: { report: [] } })).toThrow(/pipelines\.report/)
    expect(() => resolvePipelines({ pipelines: { '': REPORT } })).toThrow(/pipeline name/)
  })
})

describe('runCatalogues', () => {
  it("answers with the run's own catalogue, serialised once per catalogue object", () => {
    const catalogues = runCatalogues(resolvePipelines({ pipelines: { report: REPORT } }))
    const run = { ...newRun('r', new Date(0)), pipeline: 'report' }
    const first = catalogues.entriesOf(run)
    expect(first).toEqual([
      { stageNumber: 1, stageName: 'Fetch' },
      { stageNumber: 2, stageName: 'Publish' },
    ])
    expect(catalogues.entriesOf({ ...run, catalogue: REPORT })).toBe(first)
    expect(catalogues.entriesOf({ ...run, pipeline: 'gone' })).toBeUndefined()
    const json = catalogues.statusJson({ run, stages: [] })
    expect(JSON.parse(json)).toEqual(catalogues.statusDocument({ run, stages: [] }))
  })
})
