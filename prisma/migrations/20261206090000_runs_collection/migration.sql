-- Runs as a collection (docs/design.md, "Runs as a collection"): a run records its pipeline, a
-- snapshot of that pipeline's stage catalogue, tags and metadata, and when it started. Additive:
-- existing rows get the pipeline 'default', no catalogue (= the default pipeline's current one),
-- no tags and {} (constant defaults, so PostgreSQL 11+ rewrites no rows).
-- AlterTable
ALTER TABLE "PipelineRun" ADD COLUMN     "pipeline" TEXT NOT NULL DEFAULT 'default',
ADD COLUMN     "catalogue" JSONB,
ADD COLUMN     "tags" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "metadata" JSONB NOT NULL DEFAULT '{}',
ADD COLUMN     "startedAt" TIMESTAMPTZ(3);
