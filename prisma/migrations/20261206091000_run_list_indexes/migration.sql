-- Runs as a collection, the indexes of lists and counts (docs/design.md, "Runs as a collection";
-- measured in bench/README.md, "Issue 24"). Lists are ordered newest first with ties by id in
-- code-unit order, so the id column is indexed COLLATE "C" (Prisma's schema cannot say so: the
-- @@index entries of prisma/schema.prisma name the same columns). Tag filters use @> on a GIN index.
-- CreateIndex
CREATE INDEX "PipelineRun_createdAt_id_idx" ON "PipelineRun"("createdAt" DESC, "id" COLLATE "C" DESC);

-- CreateIndex
CREATE INDEX "PipelineRun_pipeline_createdAt_id_idx" ON "PipelineRun"("pipeline", "createdAt" DESC, "id" COLLATE "C" DESC);

-- CreateIndex
CREATE INDEX "PipelineRun_tags_idx" ON "PipelineRun" USING GIN ("tags");
