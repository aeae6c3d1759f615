import { describe, expect, it } from 'vitest'
import { MAX_IDENTIFIER_BYTES, schemaNameProblem } from '../internal/quote-identifier.js'
import { type MigrationFile, renderMigrationScript } from './migration-files.js'

const file = (name: string, sql: string): MigrationFile => ({ name, sql, checksum: '' })
const MIGRATIONS = [file('20260101000000_a', 'CREATE TABLE "PipelineRun" (id text);'), file('20260102000000_b', 'ALTER TABLE "PipelineRun" ADD x int;')]

describe('renderMigrationScript', () => {
  it('says to run the script in one transaction, unless it holds CREATE INDEX CONCURRENTLY, which cannot run in one', () => {
    expect(renderMigrationScript(MIGRATIONS, { version: '1.0.0' })).toContain('in one transaction: psql -1 -v ON_ERROR_STOP=1 -f pipeline-status.sql')
    const concurrent = [...MIGRATIONS, file('20260103000000_c', 'CREATE INDEX CONCURRENTLY "i" ON "PipelineRun" (x);')]
    const script = renderMigrationScript(concurrent, { version: '1.0.0', after: '20260101000000_a' })
    expect(script).toContain('psql -v ON_ERROR_STOP=1 -f pipeline-status.sql (not in one transaction:')
    expect(script).not.toContain('psql -1')
  })

  it('refuses a schema name PostgreSQL would truncate (over 63 bytes of UTF-8)', () => {
    expect(MAX_IDENTIFIER_BYTES).toBe(63)
    expect(schemaNameProblem('日'.repeat(21))).toBeUndefined()
    expect(schemaNameProblem(`${'日'.repeat(21)}x`)).toContain('is 64 bytes in UTF-8')
    expect(() => renderMigrationScript(MIGRATIONS, { version: '1.0.0', schema: 's'.repeat(64) })).toThrow(RangeError)
  })
})
