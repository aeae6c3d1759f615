-- Streamed stage output (docs/design.md, "Timing, attempts and streamed output"): each applied chunk
-- of POST /{runId}/stages/{stageNumber}/output is one row, assembled in seq order on read, so a
-- growing text is never rewritten per chunk; the stage keeps the last applied seq and the running
-- byte total its bound is checked against. Rows go with their run (ON DELETE CASCADE, also for the
-- retention sweep). Additive and nullable: existing stages have no streamed output (no rows rewritten).
-- AlterTable
ALTER TABLE "StageOutput" ADD COLUMN     "outputSeq" INTEGER,
ADD COLUMN     "outputBytes" INTEGER;

-- CreateTable
CREATE TABLE "StageOutputChunk" (
    "runId" TEXT NOT NULL,
    "stageNumber" INTEGER NOT NULL,
    "seq" INTEGER NOT NULL,
    "version" INTEGER NOT NULL,
    "text" TEXT NOT NULL,

    CONSTRAINT "StageOutputChunk_pkey" PRIMARY KEY ("runId","stageNumber","seq")
);

-- CreateIndex
CREATE INDEX "StageOutputChunk_runId_version_idx" ON "StageOutputChunk"("runId", "version");

-- AddForeignKey
ALTER TABLE "StageOutputChunk" ADD CONSTRAINT "StageOutputChunk_runId_fkey" FOREIGN KEY ("runId") REFERENCES "PipelineRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;
