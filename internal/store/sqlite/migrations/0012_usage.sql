-- 0010_usage (issue #11 "usage"; the coordinator may renumber it): key-use
-- transparency. A usage record per org, key, op,
-- principal, outcome and minute, with the times of the first and last call
-- in the minute. outcome is 'ok' or the stable error code of a refused or
-- failed call. It replaces usage_counters (0001), whose rows are copied as
-- outcome 'ok'; usage_counters is no longer written.
--
-- usage_cleanup: the cluster-wide retention cleanup claim (one row), as
-- cmk_orgs.probe_due_at (0008): a node claims the cleanup by moving due_at
-- one interval ahead.

CREATE TABLE usage_records (
	org_id    TEXT NOT NULL,
	minute    TEXT NOT NULL,
	key_name  TEXT NOT NULL,
	op        TEXT NOT NULL,
	principal TEXT NOT NULL,
	outcome   TEXT NOT NULL,
	count     INTEGER NOT NULL,
	first_at  TEXT NOT NULL,
	last_at   TEXT NOT NULL,
	PRIMARY KEY (org_id, minute, key_name, op, principal, outcome)
) STRICT, WITHOUT ROWID;

CREATE INDEX usage_records_minute ON usage_records (minute);

INSERT INTO usage_records (org_id, minute, key_name, op, principal, outcome, count, first_at, last_at)
	SELECT org_id, minute, key_name, op, principal, 'ok', count, minute, minute FROM usage_counters;

CREATE TABLE usage_cleanup (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	due_at TEXT,
	owner  TEXT NOT NULL DEFAULT ''
) STRICT;

INSERT INTO usage_cleanup (id) VALUES (1);
