-- 0014_probe_claim: the index a probe claim walks in its own order.
--
-- A claim takes the first due orgs in (probe_due_at, org_id) order among
-- the states that are probed (SQLite sorts NULL first). With an index on
-- probe_due_at alone, orgs that share a due time were sorted again by
-- org_id on every claim; this index is in the claim's order and holds only
-- the probed states.
CREATE INDEX cmk_orgs_probe_claim ON cmk_orgs (probe_due_at, org_id) WHERE state IN ('active', 'revoked', 'lost');
DROP INDEX cmk_orgs_probe_due;
