-- 0004_cmk_revision: optimistic concurrency for CMK records: every write
-- must name the revision it read, so a slow probe cannot overwrite a
-- configure, an enable or a job's switch that happened meanwhile.
ALTER TABLE cmk_orgs ADD COLUMN revision bigint NOT NULL DEFAULT 0;
-- Rows stored before this migration are at revision 1: a stored record is
-- never at revision 0, which means "not stored yet".
UPDATE cmk_orgs SET revision = 1;
