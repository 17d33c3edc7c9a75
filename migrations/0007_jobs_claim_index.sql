-- Claiming a job reads the first queued row in (run_after, id) order. With the id in the
-- index, that is one seek, however deep the queue; without it, every due row was read and
-- sorted on each claim.
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (status, run_after, id);
