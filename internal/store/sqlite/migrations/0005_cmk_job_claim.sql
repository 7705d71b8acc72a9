-- Claiming walks pending (or lease-expired running) jobs in id order and
-- stops at the first ready one, instead of scanning every finished job.
CREATE INDEX cmk_jobs_state_id ON cmk_jobs (state, id);
