-- Optimistic concurrency for CMK records: every write must name the
-- revision it read, so a slow probe cannot overwrite a configure, an enable
-- or a job's switch that happened meanwhile.
ALTER TABLE cmk_orgs ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
