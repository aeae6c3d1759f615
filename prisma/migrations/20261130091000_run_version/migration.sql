-- AlterTable
ALTER TABLE "PipelineRun" ADD COLUMN     "version" INTEGER NOT NULL DEFAULT 0;
