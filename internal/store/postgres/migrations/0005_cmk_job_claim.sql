-- 0005_cmk_job_claim: claiming walks the open (pending or running) jobs in
-- id order and stops at the first ready one it can lock (FOR UPDATE SKIP
-- LOCKED), instead of scanning every finished job.
CREATE INDEX cmk_jobs_open_id ON cmk_jobs (id) WHERE state IN ('pending', 'running');
