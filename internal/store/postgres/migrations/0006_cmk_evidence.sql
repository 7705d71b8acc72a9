-- 0006_cmk_evidence: what the CMK probe has observed beyond the state.
--
-- purge_suspected_since, purge_checks: a key and its deleted entry were
-- both found absent, first at purge_suspected_since, on purge_checks
-- consecutive probes; the org is lost only once these prove a purge.
-- warning: a customer-readable condition that does not stop the org (a
-- newer key version orgkms does not follow), '' when none.
-- data_lost_at: when an org whose key was purged fell back to a new
-- platform root key (its older data is unrecoverable).
ALTER TABLE cmk_orgs ADD COLUMN purge_suspected_since timestamptz;
ALTER TABLE cmk_orgs ADD COLUMN purge_checks bigint NOT NULL DEFAULT 0;
ALTER TABLE cmk_orgs ADD COLUMN warning text NOT NULL DEFAULT '';
ALTER TABLE cmk_orgs ADD COLUMN data_lost_at timestamptz;
