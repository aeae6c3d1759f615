-- Trace context (docs/design.md, "Observability"): the W3C traceparent of each stage's first report
-- (the parent of the stage's span) and those of later attempts (its links). Additive: existing rows
-- have no traceparent and no links (a constant default, so PostgreSQL 11+ rewrites no rows).
-- AlterTable
ALTER TABLE "StageOutput" ADD COLUMN     "traceparent" TEXT,
ADD COLUMN     "traceLinks" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[];
