-- Heartbeats stay heap-only (HOT) updates (issue 31): a heartbeat writes only "lastActivityAt" and
-- "heartbeatIntervalMs", which no index holds, so PostgreSQL can keep the new row version on the
-- same page without touching any index, if the page has room. Leaving 10% of each page free gives
-- it that room (bench/README.md "Issue 31" measures 100, 90 and 80). Prisma's schema cannot say a
-- fillfactor, so schema.prisma only mentions it; existing pages keep their layout until rewritten.
-- AlterTable
ALTER TABLE "PipelineRun" SET (fillfactor = 90);
