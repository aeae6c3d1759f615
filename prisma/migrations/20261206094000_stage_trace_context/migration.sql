-- Trace context (docs/design.md, "Observability"): the W3C traceparent of each stage's first report
-- (the parent of the stage's span) and those of later attempts (its links). Additive and nullable:
-- existing rows have none (no rows rewritten).
-- AlterTable
ALTER TABLE "StageOutput" ADD COLUMN     "traceparent" TEXT,
ADD COLUMN     "traceLinks" TEXT[];
