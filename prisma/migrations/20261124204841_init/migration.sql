-- CreateEnum
CREATE TYPE "RunStatus" AS ENUM ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED');

-- CreateTable
CREATE TABLE "PipelineRun" (
    "id" TEXT NOT NULL,
    "status" "RunStatus" NOT NULL DEFAULT 'PENDING',
    "error" TEXT,
    "completedAt" TIMESTAMPTZ(3),
    "completionReceivedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "PipelineRun_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "StageOutput" (
    "id" TEXT NOT NULL,
    "runId" TEXT NOT NULL,
    "stageNumber" INTEGER NOT NULL,
    "stageName" TEXT NOT NULL,
    "status" "RunStatus" NOT NULL,
    "output" TEXT,
    "completedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "StageOutput_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "StageOutput_runId_idx" ON "StageOutput"("runId");

-- CreateIndex
CREATE UNIQUE INDEX "StageOutput_runId_stageNumber_key" ON "StageOutput"("runId", "stageNumber");

-- AddForeignKey
ALTER TABLE "StageOutput" ADD CONSTRAINT "StageOutput_runId_fkey" FOREIGN KEY ("runId") REFERENCES "PipelineRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;
