-- CreateIndex
CREATE INDEX "PipelineRun_status_updatedAt_idx" ON "PipelineRun"("status", "updatedAt");
