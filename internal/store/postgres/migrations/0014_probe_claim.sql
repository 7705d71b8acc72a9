-- 0014_probe_claim: the index a probe claim walks in its own order.
--
-- A claim takes the first due orgs in (probe_due_at NULLS FIRST, org_id)
-- order among the states that are probed. With an index on probe_due_at
-- alone, orgs that share a due time (every org activated or probed in one
-- batch) were sorted again by org_id on every claim: a sort of all the due
-- orgs for each batch of 256. This index is in the claim's order and holds
-- only the probed states, so a claim reads just the rows it takes.
CREATE INDEX cmk_orgs_probe_claim ON cmk_orgs (probe_due_at NULLS FIRST, org_id) WHERE state IN ('active', 'revoked', 'lost');
DROP INDEX cmk_orgs_probe_due;
