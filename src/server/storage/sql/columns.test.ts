import { describe, expect, it } from 'vitest'
import { resolveTableNames } from '../table-names.js'
import { runColumns } from './columns.js'
import { storeFunctions } from './functions.js'
import { readRunStageSql } from './stage-update.js'

const names = resolveTableNames({}, {})

describe('runColumns', () => {
  it('builds the digest expression once; the statement text and its parameters are as before', () => {
    // The catalogue's columns of a read that leaves known catalogues out (`$3`), on every row and on the first row only.
    expect(runColumns(names, 'r', undefined, '$3')).toContain(
      'r."pipeline" AS "pipeline", CASE WHEN md5(r."catalogue"::text) = ANY($3::text[]) THEN NULL ELSE r."catalogue"::text END AS "catalogue", ' +
        'md5(r."catalogue"::text) AS "catalogueDigest", r."tags" AS "tags", ',
    )
    expect(runColumns(names, 'r', 'w', '$2')).toContain(
      'CASE WHEN w THEN CASE WHEN md5(r."catalogue"::text) = ANY($2::text[]) THEN NULL ELSE r."catalogue"::text END END AS "catalogue", ' +
        'CASE WHEN w THEN md5(r."catalogue"::text) END AS "catalogueDigest", ',
    )
    expect(runColumns(names, 'r')).toContain('r."pipeline" AS "pipeline", r."catalogue"::text AS "catalogue", r."tags" AS "tags", ')
    expect(runColumns(names, 'r')).not.toContain('md5')
    // The read that uses it takes the same parameters: the run, the stage, the known digests.
    expect([...new Set(readRunStageSql(names).match(/\$\d+/g))].sort()).toEqual(['$1', '$2', '$3'])
  })

  it('leaves the migrated functions, whose names hash the statements that use it, as they are', () => {
    expect(Object.values(storeFunctions()).map((fn) => fn.name)).toEqual([
      '"pipeline_status_read_run_stage_dc7666d2"',
      '"pipeline_status_write_run_stage_266701a1"',
      '"pipeline_status_touch_run_d0827caa"',
      '"pipeline_status_insert_run_f2ad6492"',
    ])
  })
})
