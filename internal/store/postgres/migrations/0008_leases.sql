-- 0008_leases: fencing tokens for jobs and cluster-wide probe leases.
--
-- cmk_jobs.fence: raised by every claim; a step is stored only while the
-- job's fence is still the one its runner claimed, checked in the step's own
-- transaction, so a runner that lost its lease can never commit a step.
--
-- cmk_orgs.probe_due_at, probe_owner: when the org is next due for a probe
-- (NULL: due now) and the node that last claimed it. A node claims due
-- orgs (FOR UPDATE SKIP LOCKED) by moving probe_due_at one probe interval
-- ahead, so each org is probed once per interval by the whole cluster.
-- Record writes leave both columns alone.
ALTER TABLE cmk_jobs ADD COLUMN fence bigint NOT NULL DEFAULT 0;
ALTER TABLE cmk_orgs ADD COLUMN probe_due_at timestamptz;
ALTER TABLE cmk_orgs ADD COLUMN probe_owner text NOT NULL DEFAULT '';

CREATE INDEX cmk_orgs_probe_due ON cmk_orgs (probe_due_at NULLS FIRST);
