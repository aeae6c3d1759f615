-- AlterTable
ALTER TABLE "PipelineRun" ADD COLUMN     "heartbeatIntervalMs" INTEGER,
ADD COLUMN     "lastActivityAt" TIMESTAMPTZ(3);

-- AlterTable
ALTER TABLE "StageOutput" ADD COLUMN     "progress" JSONB;
