-- Stage timing and attempts (docs/design.md, "Timing, attempts and streamed output"): when a stage
-- started (its first applied update; a retry never moves it) and its attempt fields. Additive and
-- nullable: existing rows read startedAt as their createdAt and have no attempts (no rows rewritten).
-- AlterTable
ALTER TABLE "StageOutput" ADD COLUMN     "startedAt" TIMESTAMPTZ(3),
ADD COLUMN     "attempt" INTEGER,
ADD COLUMN     "maxAttempts" INTEGER,
ADD COLUMN     "lastError" TEXT,
ADD COLUMN     "nextRetryAt" TIMESTAMPTZ(3);
